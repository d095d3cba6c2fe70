"""The web page in a real headless Chromium (Debian ``chromium`` driven by Playwright; no browser download):
the real service on loopback with the session's bundles, a real CinC 2017 record uploaded and its rendered
prediction checked, then the live ECG view replaying a record through the WebSocket until the asystole
alarm shows. ``MEDLEARN_SCREENSHOT=1`` saves the page's screenshot as docs/img/serve-page.png (the README's
picture)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_data, require_module, skip_or_fail_in_ci
from tests.serve.conftest import ALL_KEY, ECG, LiveServer

require_module("websockets")  # uvicorn's WebSocket support
sync_api = require_module("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    skip_or_fail_in_ci(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)")

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "serve-page.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, served: LiveServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(served.url + "/")
    page.fill("#api-key", ALL_KEY)
    page.click("#save-key")
    page.wait_for_selector(f"#model option[value={ECG}]", state="attached")
    page.select_option("#model", ECG)
    yield page
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e or "TypeError" in e], errors


def test_upload_a_cinc_record_and_see_the_prediction(page: Any, tmp_path: Path) -> None:
    record = require_data("signals/cinc2017/A00021.hea")
    page.set_input_files("#files", [str(record), str(record.with_suffix(".mat"))])
    page.click("#predict")
    page.wait_for_selector("#records .label")
    label = page.inner_text("#records .label")
    assert label.strip() in {"N", "AF", "O", "~", "Normal", "Other", "Noisy"} or label.strip()
    bars = page.locator("#records .bar")
    assert bars.count() >= 2  # one bar per class
    widths = page.eval_on_selector_all("#records .fill", "els => els.map(e => parseFloat(e.style.width))")
    assert abs(sum(widths) - 100) < 1.0, widths  # the bars are the probabilities
    assert page.locator("#records .bar.top .fill").bounding_box()["width"] > 20  # and they are drawn
    assert page.is_visible("#strip")
    drawn = page.evaluate(
        "() => { const c = document.getElementById('strip'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
        " for (let i = 0; i < d.length; i += 4) if (d[i] < 100 && d[i + 2] > 50) n++; return n; }"
    )
    assert drawn > 500, "the ECG strip is drawn (dark blue trace pixels)"
    assert "version" in page.inner_text("#model-info")
    card = page.inner_html("#card")
    assert "<h" in card and "<script" not in card  # rendered, escaped
    # the README's picture is refreshed on request only (MEDLEARN_SCREENSHOT=1), so a test run leaves the
    # tree clean; otherwise the screenshot goes to the test's temporary folder
    target = SCREENSHOT if os.environ.get("MEDLEARN_SCREENSHOT") == "1" else tmp_path / SCREENSHOT.name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000


def test_live_view_shows_the_asystole_alarm(page: Any, tmp_path: Path) -> None:
    require_module("wfdb")
    from medlearn.signals.demo import write_stream

    stream = write_stream(tmp_path)  # 30 s normal, 40 s AF, 12 s flat
    page.set_input_files("#files", [str(stream.with_suffix(".hea")), str(stream.with_suffix(".dat"))])
    page.select_option("#speed", "50")
    page.click("#live")
    page.wait_for_selector("#alarms li[data-alarm=asystole].on", timeout=40_000)
    assert 30 < float(page.get_attribute("#hr", "data-last")) < 200  # a rate was shown before the flat line
    assert page.locator("#live-probs .bar").count() >= 2  # the rhythm model's probabilities
    page.click("#stop")


def test_a_wrong_key_is_said_plainly(browser: Any, served: LiveServer) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(served.url + "/")
        page.fill("#api-key", "wrong")
        page.click("#save-key")
        page.wait_for_selector("#status.error")
        assert "401" in page.inner_text("#status")
    finally:
        context.close()


def test_a_ct_series_with_grad_cam(browser: Any, served: LiveServer, bundles: Any) -> None:
    """A DICOM series (the tests' phantom CT) with a nodule position typed in: the Grad-CAM overlay shows."""
    from tests.serve.conftest import CT

    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(served.url + "/")
        page.fill("#api-key", ALL_KEY)
        page.click("#save-key")
        page.wait_for_selector(f"#model option[value={CT}]", state="attached")
        page.select_option("#model", CT)
        page.wait_for_selector("#explain-box:not([hidden])")
        page.set_input_files("#files", [str(p) for p in sorted(bundles.ct_data.iterdir())])
        page.fill("[data-option=nodule]", bundles.ct_nodule)
        page.check("#explain")
        page.click("#predict")
        page.wait_for_selector("#pictures img")
        size = page.eval_on_selector("#pictures img", "img => img.decode().then(() => img.naturalWidth)")
        assert size > 0, "the Grad-CAM PNG decodes"
        assert page.locator("#records .bar").count() >= 1
        assert not page.is_visible("#strip")  # no ECG strip for a CT
    finally:
        context.close()
