"""README blocks of deployment and trust: the service benchmarks, prediction sets, subgroups."""

from __future__ import annotations

import json
from typing import Any

from readme_blocks.common import RESULTS, Result, commits, table


# ----------------------------------------------------------------------------------------------- deploy
def _bench(name: str) -> dict[str, Any]:
    path = RESULTS / "serve" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such result (run benchmarks/serve.py --out {path})")
    return json.loads(path.read_text())


def serve_http() -> str:
    """``results/serve/http*.json`` (``benchmarks/serve.py --out``): torch vs onnxruntime in each run; every
    committed run is listed, since on this shared machine one run differs from the next."""
    loaded = {path.name: json.loads(path.read_text()) for path in (RESULTS / "serve").glob("http*.json")}
    if not loaded:
        raise FileNotFoundError(f"{RESULTS / 'serve'}: no http*.json (run benchmarks/serve.py --out ...)")
    runs = sorted(loaded.items(), key=lambda named: named[1]["date"])
    rows = []
    for _, b in runs:
        client = "lean client" if b["load"].get("client", "httpx").startswith("minimal") else "httpx"
        for runtime, r in b["results"].items():
            lat = r["latency_ms"]
            rows.append(
                [
                    f"{b['date'][11:16]} (`{b['commit']}`, {b['load']['requests']:,} requests, {client}, "
                    f"load {b['machine']['load_1min_after']:.1f})",
                    {"torch": "torch (eager)", "onnx": "onnxruntime"}.get(runtime, runtime),
                    f"{r['requests_per_s']:.1f}",
                    f"{lat['p50']:.1f} ms",
                    f"{lat['p95']:.1f} ms",
                    f"{lat['p99']:.1f} ms",
                    str(r["errors"]),
                    f"{r['one_at_a_time_p50_ms']:.1f} ms",
                ]
            )
    header = ["run (UTC)", "runtime", "requests/s", "p50", "p95", "p99", "errors", "one at a time (p50)"]
    b = runs[-1][1]
    load = b["load"]
    notes = (
        f"\nEach run: the requests with {load['in_flight']} in flight, then "
        f"{load['one_at_a_time']} one at a time; `--workers {b['server']['workers']}`, "
        f"{b['server']['threads_per_prediction']} thread per prediction; {b['machine']['cpus']} CPUs shared with "
        f"the load generator (load: the 1-minute load average after the run); {b['date'][:10]}.\n"
    )
    for name, run in runs:
        r = run.get("onnx_over_torch")
        if r:
            notes += (
                f"onnxruntime/torch latency in `{name}`: {r['one_at_a_time_p50']:.2f}x one at a time, "
                f"{r['under_load_p50']:.2f}x under load (p50).\n"
            )
    return table(header, rows) + notes


def serve_stream() -> str:
    """``results/serve/websocket.json`` (``benchmarks/serve.py --websocket --out``)."""
    b = _bench("websocket.json")
    rows = []
    for runtime, got in b["latency_ms"].items():
        for what, f in got.items():
            if f.get("n"):
                rows.append(
                    [
                        {"torch": "torch (eager)", "onnx": "onnxruntime"}.get(runtime, runtime),
                        {"analysis": "sample → analysis", "alarm": "sample → alarm"}[what],
                        str(f["n"]),
                        f"{f['p50']:.1f} ms",
                        f"{f['p95']:.1f} ms",
                        f"{f['max']:,.1f} ms",
                    ]
                )
    notes = (
        f"\n{b['streams']} streams at once, each at {b['speed']:g}x real time; load average "
        f"{b['machine']['load_1min_after']:.1f} after the run; {b['date'][:10]}.\n"
    )
    return table(["runtime", "latency", "n", "p50", "p95", "max"], rows) + notes


def conformal() -> str:
    """The shipped configs' prediction sets, scored once on their test split (``metrics.json``)."""
    rows = []
    for name in CONFORMAL:
        r = Result(name)
        c = (r.test or {}).get("conformal")
        if c is None:
            continue
        scored = c["scored"]
        per = ", ".join(f"{k} {v['coverage']:.3f} (n={v['n']})" for k, v in scored["per_class"].items())
        rows.append(
            [
                f"`{name}`",
                f"{c['score']}",
                f"{c['coverage']:.2f}",
                f"**{scored['coverage']:.3f}** (n={scored['n']})",
                per,
                f"{scored['mean_set_size']:.2f}",
                f"{scored['uncertain_share']:.1%}",
                str(c["n_calibration"]),
            ]
        )
    header = [
        "config",
        "sets",
        "target",
        "test coverage",
        "per class",
        "mean size",
        "uncertain",
        "calibrated on",
    ]
    return (
        table(header, rows)
        + f"\nFrom `results/<config>/metrics.json`; code at commit {commits(CONFORMAL)}.\n"
    )


CONFORMAL = ["cxr_pneumonia"]
SUBGROUPS = [
    ("ehr_los_mimic4", "MIMIC-IV demo, length of stay (LSTM)"),
    ("ehr_los_eicu", "eICU demo, length of stay"),
]


def subgroups() -> str:
    """The shipped EHR configs' test metric per subgroup and the gap between subgroups with its CI."""
    rows = []
    for name, what in SUBGROUPS:
        gaps = (Result(name).test or {}).get("subgroup_gaps") or {}
        for attribute, entry in gaps.items():
            groups = ", ".join(
                f"{g.split('=', 1)[1]} {v['value']:.3f} (n={v['n']})" for g, v in entry["groups"].items()
            )
            if "gap" in entry:
                a, b = (g.split("=", 1)[1] for g in entry["between"])
                ci95 = entry.get("gap_ci95")
                gap = f"{a} − {b}: {entry['gap']:.3f}" + (
                    f" ({ci95[0]:.3f} to {ci95[1]:.3f})" if ci95 else ""
                )
            else:
                gap = "– (one group of ≥ 20)"
            rows.append([what, attribute, entry["metric"], groups, gap])
    header = ["data, task", "subgroup", "metric", "per group (test)", "gap (95% CI)"]
    names = [n for n, _ in SUBGROUPS]
    return table(header, rows) + (
        "\nGroups of fewer than 20 test units are not scored. From `results/<config>/metrics.json`; code at "
        f"commit {commits(names)}.\n"
    )
