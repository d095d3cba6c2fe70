"""``medlearn pacs-listen``: a DICOM node (C-STORE SCP, pynetdicom) that predicts when a study arrives.

A PACS (or a modality) sends a study to medlearn's AE title, as it would to any AI node. Each instance is
written to a working folder by study; once no instance of a study has arrived for ``settle`` seconds, the
study is complete: its CT series (the largest) and its TID 1500 reports go through the same route as
``medlearn pacs`` (:func:`medlearn.imaging.pacs.predict_and_store`): nodules from a received report, the
bundle's prediction, and the SR and Grad-CAM Secondary Captures stored over STOW-RS into the PACS at
``url``. A study that cannot be predicted (no CT, no nodule) is logged and dropped, and the node goes on.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlearn.errors import InputError, MedlearnError
from medlearn.imaging.pacs import (
    SR_SOP_CLASSES,
    PulledStudy,
    connect,
    is_prediction_sr,
    predict_and_store,
)

log = logging.getLogger(__name__)

#: Study outcome handed to ``on_study``: the study UID, its records (or None) and the error (or None).
StudyResult = tuple[str, list[dict[str, Any]] | None, str | None]


def received_study(url: str, study_uid: str, folder: Path) -> PulledStudy:
    """A received study's largest CT series (``folder/ct/<series>``) and its TID 1500 reports, as
    :class:`~medlearn.imaging.pacs.PulledStudy` (``url`` is where the results go)."""
    import pydicom

    series = sorted(p for p in (folder / "ct").glob("*") if p.is_dir())
    if not series:
        raise InputError(f"study {study_uid} arrived without a CT series")
    ct = max(series, key=lambda p: sum(1 for _ in p.glob("*.dcm")))
    images = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(ct.glob("*.dcm"))]
    reports = []
    for f in sorted((folder / "sr").glob("*.dcm")):
        ds = pydicom.dcmread(f)
        if str(ds.get("SOPClassUID", "")) in SR_SOP_CLASSES and not is_prediction_sr(ds):
            reports.append(ds)
    return PulledStudy(url, study_uid, ct.name, ct, images, reports)


@dataclass
class StudyListener:
    """A C-STORE SCP on ``host:port`` as ``aet`` that predicts each study ``settle`` s after its last
    instance and stores the results into the DICOMweb service at ``url``."""

    bundle: Any
    url: str
    aet: str = "MEDLEARN"
    host: str = "127.0.0.1"
    port: int = 11112
    settle: float = 5.0
    explain: bool = True
    on_study: Callable[[str, list[dict[str, Any]] | None, str | None], None] | None = None
    results: list[StudyResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="medlearn-listen-"))
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: Any = None
        self._worker: threading.Thread | None = None
        self._client = connect(self.url)

    # -- receiving --

    def _on_store(self, event: Any) -> int:
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            study = str(ds.StudyInstanceUID)
            modality = str(ds.get("Modality", "")).upper()
            if modality == "CT":
                folder = self._folder / study / "ct" / str(ds.SeriesInstanceUID)
            elif str(ds.get("SOPClassUID", "")) in SR_SOP_CLASSES:
                folder = self._folder / study / "sr"
            else:
                return 0x0000  # accepted and ignored: not what a nodule model reads
            folder.mkdir(parents=True, exist_ok=True)
            ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
            with self._lock:
                self._last[study] = time.monotonic()
            return 0x0000
        except Exception as exc:  # a broken instance is refused, the node goes on
            log.warning("C-STORE refused: %s", exc)
            return 0xC210  # cannot understand

    # -- predicting --

    def _due(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            due = [s for s, t in self._last.items() if now - t >= self.settle]
            for s in due:
                del self._last[s]
        return due

    def _predict(self, study: str) -> None:
        folder = self._folder / study
        records, error = None, None
        try:
            with tempfile.TemporaryDirectory(prefix="medlearn-listen-work-") as work:
                pulled = received_study(self.url, study, folder)
                records = predict_and_store(
                    self.bundle, self._client, pulled, Path(work), explain=self.explain
                )
        except MedlearnError as exc:
            error = str(exc)
            log.warning("study %s: %s", study, error)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.results.append((study, records, error))
        if self.on_study is not None:
            self.on_study(study, records, error)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for study in self._due():
                self._predict(study)

    # -- life cycle --

    def start(self) -> None:
        """Listen (in the background) and predict studies as they complete."""
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=self.aet)
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)  # C-ECHO, so a PACS can test the node
        try:
            self._server = ae.start_server(
                (self.host, self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
            )
        except OSError as exc:
            raise InputError(
                f"--port {self.port}: cannot listen on {self.host}:{self.port} ({exc})"
            ) from None
        self._worker = threading.Thread(target=self._run, name="medlearn-listen", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Stop listening, finish the study being predicted, and remove the working folder."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self._worker is not None:
            self._worker.join()
        shutil.rmtree(self._folder, ignore_errors=True)

    def serve_forever(self) -> None:
        """``start`` and wait until interrupted (Ctrl-C, or SIGTERM as a service manager stops it), then
        ``stop``: the study being predicted is finished first."""
        import signal

        def interrupted(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, interrupted)
            signal.signal(signal.SIGINT, interrupted)
        self.start()
        try:
            while True:
                time.sleep(0.5)
        finally:
            self.stop()
