"""The ``medlearn`` command line (typer). Argument parsing only: the work lives in the engine/tasks.

Contracts (CONVENTIONS.md): logs and progress on stderr, ``--json`` on stdout; errors the user can fix
are one red line naming the file/key and exit code 2; an existing non-empty output needs ``--force``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from medlearn.engine.progress import info, set_quiet, stderr
from medlearn.errors import InputError, MedlearnError, RunInterrupted


class _OneLineUsageErrors(TyperGroup):
    """The command group: a usage mistake (an option value out of range or of the wrong type, a missing
    argument, an unknown option) is one red line and exit code 2, like every other error the user can fix,
    not click's boxed usage panel."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _usage_errors_in_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _usage_errors_in_one_line():
            return super().invoke(ctx)


@contextlib.contextmanager
def _usage_errors_in_one_line() -> Iterator[None]:
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise  # `medlearn` alone: the help text
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "medlearn"
        message = " ".join(exc.format_message().split())  # click may wrap a message over lines
        _error_line(f"{where}: {message} (see {where} --help)")
        raise click.exceptions.Exit(2) from None


app = typer.Typer(
    cls=_OneLineUsageErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="medlearn: clinical deep learning from raw hospital data to a trustworthy, deployed model.",
)


def _print_version(requested: bool) -> None:
    """Eager ``--version``: print ``medlearn X.Y.Z`` on stdout and stop before any command runs."""
    if requested:
        from medlearn import __version__

        typer.echo(f"medlearn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Options that apply before any command (``--version``)."""


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status lines.")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads for torch (default: torch's choice). Recorded in the bundle: a re-training "
        "reproduces the weights bit for bit only with the same thread count (e.g. --threads 1).",
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite a non-empty output.")]
#: A nodule given by hand (predict, pacs): its centre and its size.
Nodule = Annotated[str | None, typer.Option("--nodule", help="Nodule centre x,y,z in patient mm.")]
Diameter = Annotated[float | None, typer.Option("--diameter", help="Nodule diameter in mm (with --nodule).")]
RequireSignature = Annotated[
    Path | None,
    typer.Option(
        "--require-signature",
        help="Ed25519 public key (PEM): refuse the bundle unless its private key signed it (medlearn sign).",
    ),
]
AllowExternal = Annotated[
    bool,
    typer.Option(
        "--allow-external",
        help="Load a bundle whose task, model or transform is out-of-tree code (package.module:Name): it "
        "imports and runs that installed package. Only for bundles you trust.",
    ),
]


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user-fixable errors into one red line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MedlearnError as exc:  # MissingDependencyError too: the extra to install, one line
            _error_line(str(exc))
            raise typer.Exit(2) from None
        except RunInterrupted as exc:  # Ctrl-C during train: how to go on
            _error_line(exc.message, prefix="[yellow]interrupted:[/]")
            raise typer.Exit(130) from None
        except OSError as exc:
            if not _user_fixable_os_error(exc):
                raise
            # a file or folder the user named cannot be written or read (permissions, a full or read-only
            # disk, a file where a folder should be): the environment, not a bug
            _error_line(f"{exc.filename}: {exc.strerror or exc}")
            raise typer.Exit(2) from None
        except ModuleNotFoundError as exc:
            extra = _missing_extra(exc)
            if extra is None:
                raise  # not an optional library: a bug, keep the traceback
            _error_line(f'{exc.name} is not installed: pip install "medlearn[{extra}]"')
            raise typer.Exit(2) from None

    return wrapper


def _error_line(message: str, prefix: str = "[red]error:[/]") -> None:
    """``error: <message>`` in red on stderr, on one line; the message is text, not markup
    (``medlearn[signals]``)."""
    from rich.markup import escape

    message = " ".join(str(message).split())  # one line, whatever a library's message held
    stderr.print(f"{prefix} {escape(message)}", highlight=False, soft_wrap=True)


#: OSError numbers that mean "this path cannot be used here", which the user fixes (another --out, space,
#: permissions), as opposed to a bug.
_PATH_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.ENOENT,
    errno.EFBIG,
}


def _user_fixable_os_error(exc: OSError) -> bool:
    return exc.filename is not None and exc.errno in _PATH_ERRNOS


def _missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra of ``pyproject.toml`` that installs the library ``exc`` failed to import, or None when it is
    not one of medlearn's optional libraries. A safety net: the registry and ``lazy.require_extra`` already
    raise MissingDependencyError naming the extra where a modality or a tracker is looked up."""
    import re
    from importlib import metadata

    library = (exc.name or "").split(".")[0].lower()
    try:
        requires = metadata.requires("medlearn") or []
    except metadata.PackageNotFoundError:
        return None
    for requirement in requires:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)[^;]*;.*\bextra\s*==\s*\W([\w-]+)", requirement)
        if match is None or match.group(2) in ("all", "dev", "docs"):
            continue
        dist = match.group(1).lower().replace("-", "_")
        if _IMPORT_NAMES.get(dist, dist) == library:
            return match.group(2)
    return None


#: Distributions whose import name is not their distribution name (lower case, ``-`` as ``_``).
_IMPORT_NAMES = {"pillow": "pil", "pylibjpeg_libjpeg": "libjpeg"}


def _setup(quiet: bool, device: str = "auto", threads: int | None = None) -> None:
    from medlearn.api import _check_device, _set_threads

    set_quiet(quiet)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    _check_device(device)
    _set_threads(threads)


def _out_dir(out: Path | None, name: str, force: bool) -> Path:
    from medlearn.api import _check_writable
    from medlearn.paths import default_out_dir, prepare_out_dir

    path = out if out is not None else default_out_dir(name)
    _check_writable(path)
    return prepare_out_dir(path, force)


def _out_file(path: Path, force: bool) -> Path:
    """An output file's checks: not a folder, its folder writable, an existing file only with ``--force``."""
    from medlearn.api import _check_writable
    from medlearn.paths import prepare_out_file

    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a file name")
    _check_writable(path.parent)
    return prepare_out_file(path, force)


def _positive_finite(value: float | None, option: str, example: str) -> None:
    """A rate, a temperature, a speed: a finite number > 0 (nan, inf, 0 and negatives are typos)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InputError(f"{option} {value}: expected a finite number > 0, e.g. {option} {example}")


def _summary(outputs: Any) -> None:
    metrics = outputs.metrics
    headline = (
        "validity",
        "fcd_test",
        "novelty",
        "challenge_f1",
        "auroc",
        "kappa_linear",
        "mad",
        "mae",
        "auprc",
        "sensitivity",
        "specificity",
        "accuracy",
    )
    names = sorted(metrics["metrics"], key=lambda n: headline.index(n) if n in headline else len(headline))
    parts = []
    for name, m in ((n, metrics["metrics"][n]) for n in names[:4]):
        if m["value"] is not None:
            ci = m.get("ci95")
            parts.append(f"{name} {m['value']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    info(f"[green]{metrics['split']}[/] (n={metrics['n']} {metrics['unit']}s): " + ", ".join(parts))
    info(f"report: {outputs.report}")


@app.command()
@handles_errors
def train(
    config: Annotated[
        str | None,
        typer.Argument(
            help="YAML file or the name of a shipped config (e.g. lung_nodule); with --resume, leave it out "
            "(the run's own run_config.yaml is used; a different CONFIG is refused).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default runs/<config>-<time>).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: --set train.epochs=3.")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset path (overrides data.root).")] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the interrupted run in this directory.")
    ] = None,
    track: Annotated[
        str | None,
        typer.Option(
            "--track",
            help="Experiment tracker: mlflow (a local sqlite store <out>/mlflow.db unless MLFLOW_TRACKING_URI "
            'is set; pip install "medlearn[track]").',
        ),
    ] = None,
    device: Device = "auto",
    threads: Threads = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Train a model from a config; writes bundle, metrics, predictions, history.csv and an HTML report."""
    from medlearn.api import train as train_run

    _setup(quiet)
    if config is None and resume is None:
        raise InputError("train: missing CONFIG (a YAML file or a shipped config name), or --resume OUT")
    outputs = train_run(
        config,
        out=out,
        overrides=set_ or [],
        data=data,
        resume=resume,
        device=device,
        threads=threads,
        force=force,
        track=track,
    )
    _summary(outputs)
    info(f"bundle: {outputs.bundle}")


@app.command()
@handles_errors
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (<out>/bundle).")],
    data: Annotated[Path | None, typer.Option("--data", help="Score the whole dataset at PATH.")] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="Score one of the bundle's splits (train/val/test).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default runs/evaluate-<time>).")
    ] = None,
    allow_external: AllowExternal = False,
    require_signature: RequireSignature = None,
    device: Device = "auto",
    threads: Threads = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Score a bundle on its own test split, a named split, or a whole dataset (--data)."""
    from medlearn.api import evaluate as evaluate_run

    _setup(quiet)
    outputs = evaluate_run(
        bundle,
        out=out,
        data=data,
        split=split,
        device=device,
        threads=threads,
        force=force,
        allow_external=allow_external,
        public_key=require_signature,
    )
    _summary(outputs)


@app.command()
@handles_errors
def predict(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory.")],
    inputs: Annotated[
        list[Path], typer.Argument(help="Input files or folders (e.g. a DICOM series folder).")
    ],
    json_: Annotated[bool, typer.Option("--json", help="Print predictions as JSON on stdout.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory for pictures (Grad-CAM overlays).")
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option("--annotations", help="LIDC XML with reader contours.")
    ] = None,
    reader: Annotated[
        str | None, typer.Option("--reader", help="Reader mark id or reading session (with --annotations).")
    ] = None,
    nodule: Nodule = None,
    diameter: Diameter = None,
    series: Annotated[
        str | None, typer.Option("--series", help="SeriesInstanceUID when a folder holds several.")
    ] = None,
    fs: Annotated[
        float | None,
        typer.Option("--fs", help="Sampling rate (Hz) of header-less signal files (.txt, bare .mat)."),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse units outside what the bundle was trained on.")
    ] = False,
    runtime: Annotated[
        str, typer.Option("--runtime", help="torch, or onnx (the bundle's ONNX export; medlearn export).")
    ] = "torch",
    fhir: Annotated[
        bool, typer.Option("--fhir", help="EHR bundles: print a FHIR R4 Bundle of RiskAssessments.")
    ] = False,
    allow_external: AllowExternal = False,
    require_signature: RequireSignature = None,
    device: Device = "auto",
    threads: Threads = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Predict with a bundle, applying the bundle's own preprocessing."""
    from medlearn.api import predict as predict_run

    _setup(quiet, device, threads)
    _positive_finite(fs, "--fs", "300")
    _positive_finite(diameter, "--diameter", "10")
    # The flags given (None = not given) go to the bundle's task, whose PredictOptions say which apply.
    records = predict_run(
        bundle,
        inputs,
        out=out,
        device=device,
        force=force,
        allow_external=allow_external,
        strict=strict,
        public_key=require_signature,
        runtime=runtime,
        annotations=annotations,
        reader=reader,
        nodule=nodule,
        diameter=diameter,
        series=series,
        fs=fs,
    )
    if fhir:
        sys.stdout.write(json.dumps(_risk_assessments(bundle, records), indent=2) + "\n")
        return
    if json_:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    for r in records:  # the predictions are the command's output: stdout, also under --quiet
        if "skipped" in r:
            line = f"skipped {r['skipped'].get('unit', r['input'])}: {r['skipped']['reason']}"
        elif "refused" in r:  # outside what the bundle was trained on (docs/conventions.md): no prediction
            line = f"refused {r['unit']}: {'; '.join(r['refused'])}"
        elif "probability" in r:
            line = f"{r['unit']}: {r['label']} (p={r['probability']:.3f}, threshold {r['threshold']:.3f})"
        elif "probabilities" in r:
            line = f"{r['unit']}: {r['label']} {r['probabilities']}"
        else:
            line = f"{r['unit']}: {r['value']:.3f}"
        warnings = "; ".join(r.get("warnings", []))
        sys.stdout.write(line + (f"  [warning: {warnings}]" if warnings else "") + "\n")


def _risk_assessments(bundle: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """``--fhir``: the records as the task's FHIR resources (EHR: a Bundle of RiskAssessments)."""
    from medlearn.engine.integrity import bundle_version
    from medlearn.engine.predictor import read_bundle

    folder, meta, task = read_bundle(bundle, allow_external=True)  # already loaded and checked once
    resources = task.fhir_resources(records, bundle_version(folder))
    if resources is None:
        raise InputError(
            f"--fhir: task {meta.task.name} has no FHIR form (RiskAssessments are for EHR bundles)"
        )
    return resources


@app.command("info")
@handles_errors
def info_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory.")],
    json_: Annotated[bool, typer.Option("--json", help="Print bundle.json's summary as JSON.")] = False,
    allow_external: AllowExternal = False,
    require_signature: RequireSignature = None,
) -> None:
    """Show what a bundle holds: task, model, preprocessing, metrics, data and versions."""
    from medlearn.api import load_bundle

    meta = load_bundle(bundle, allow_external=allow_external, public_key=require_signature).meta
    training = meta.training
    summary: dict[str, Any] = {
        "task": meta.task.model_dump(mode="json"),
        "kind": meta.kind,
        "unit": meta.unit,
        "class_names": meta.class_names,
        "model": meta.model.model_dump(mode="json"),
        "preprocessing": meta.preprocessing,
        "operating_point": None if meta.operating_point is None else meta.operating_point.model_dump(),
        "data": meta.data.model_dump(mode="json"),
        "versions": meta.versions,
        "created": meta.created,
        "metrics": {s: dict(m["metrics"]) for s, m in meta.metrics.items()},
        "splits": {s: len(ids) for s, ids in meta.splits.items()},
        "training": {
            k: v
            for k, v in training.model_dump(
                mode="json",
                include={
                    "summary",
                    "threads",
                    "deterministic",
                    "reproducibility",
                    "refit",
                    "calibrated_on",
                    "folds",
                },
            ).items()
            if v is not None
        },
    }
    if json_:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{meta.task.name}[/] · model [bold]{meta.model.name}[/] · created {meta.created}",
        highlight=False,
    )
    console.print(
        f"data: {meta.data.root} (fingerprint {meta.data.fingerprint[:12]}, "
        f"{meta.data.n_units} {meta.unit}s; splits {summary['splits']})"
    )
    console.print("preprocessing: " + " → ".join(s["name"] for s in meta.preprocessing))
    if training.folds > 1:
        console.print(
            f"{training.folds}-fold cross-validation: the metrics (split cv) pool every fold model's "
            "held-out units; the weights are the refit described below, which no held-out unit scored"
        )
    if training.summary:
        console.print("training: " + training.summary, highlight=False)
    elif training.threads is not None:
        console.print(
            f"training: {training.threads} torch threads, deterministic algorithms "
            f"{'on' if training.deterministic else 'off'}",
            highlight=False,
        )
    if meta.operating_point is not None:
        op = meta.operating_point
        console.print(f"operating point: threshold {op.threshold:.4f} ({op.rule} on {op.chosen_on})")
    # columns named by each metrics block's own split ("test", "cv", "generated", "val")
    table = Table("metric", *(m.get("split", s) for s, m in meta.metrics.items()))
    names = list(dict.fromkeys(n for block in summary["metrics"].values() for n in block))
    for name in names:
        cells = []
        for split in summary["metrics"]:
            m = summary["metrics"][split].get(name, {})
            v, ci = m.get("value"), m.get("ci95")
            cells.append("–" if v is None else f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
        table.add_row(name, *cells)
    console.print(table)
    for block in meta.metrics.values():
        if block.get("ci_note"):
            console.print(f"{block.get('split')}: {block['ci_note']}", highlight=False)
        spread = block.get("folds_summary")
        if spread:
            console.print(
                "per-fold spread (mean ± sd, min–max): "
                + "; ".join(
                    f"{name} {s['mean']:.3f} ± {s['sd'] or 0:.3f} ({s['min']:.3f}–{s['max']:.3f})"
                    for name, s in spread.items()
                    if s["mean"] is not None
                ),
                highlight=False,
            )
    console.print("versions: " + ", ".join(f"{k} {v}" for k, v in meta.versions.items()))


DEMOS = ("imaging", "ehr", "signals", "molecules")


@app.command()
@handles_errors
def monitor(
    bundle: Annotated[
        Path | None,
        typer.Argument(help="An ecg_af bundle for AF alarms (omit: rate, asystole and quality alarms only)."),
    ] = None,
    record: Annotated[
        Path | None, typer.Option("--record", help="WFDB record name or its .hea/.mat, or an .edf file.")
    ] = None,
    use_stdin: Annotated[
        bool,
        typer.Option("--stdin", help="Read samples from stdin, one line per sample (comma-separated leads)."),
    ] = False,
    fs: Annotated[float | None, typer.Option("--fs", help="Sampling rate of --stdin in Hz.")] = None,
    speed: Annotated[
        float, typer.Option("--speed", help="Replay speed (1 = real time, 0 = as fast as possible).")
    ] = 1.0,
    alarms: Annotated[
        Path | None, typer.Option("--alarms", help="Write alarms as JSON lines here (default: stdout).")
    ] = None,
    lead: Annotated[int, typer.Option("--lead", help="Which lead (0-based) to monitor.")] = 0,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Watch an ECG stream in (simulated) real time and raise alarms: AF, tachy/bradycardia, asystole, poor signal."""
    _setup(quiet)
    from medlearn.engine.progress import bars_enabled
    from medlearn.signals.monitor import run_monitor

    if not (math.isfinite(speed) and speed >= 0):
        raise InputError(
            f"--speed {speed}: expected a finite number >= 0 (1 = real time, 0 = as fast as possible)"
        )
    _positive_finite(fs, "--fs", "300")
    if lead < 0:
        raise InputError(f"--lead {lead}: expected a lead number from 0")
    if alarms is not None:
        _out_file(alarms, force)
    summary = run_monitor(bundle, record, use_stdin, fs, speed, alarms, lead, live=bars_enabled())
    info(
        f"monitored {summary['seconds']:.1f} s in {summary['analyses']} analyses: "
        f"{len(summary['alarms'])} alarm event(s); "
        f"latency per window p50 {summary['latency_ms_p50']:.1f} ms, p95 {summary['latency_ms_p95']:.1f} ms"
    )


@app.command()
@handles_errors
def demo(
    pipeline: Annotated[
        str,
        typer.Argument(
            help="imaging, ehr, signals, molecules, or all (default: every pipeline, one folder each)."
        ),
    ] = "all",
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory (default runs/demo-<time>).")
    ] = None,
    patients: Annotated[
        int, typer.Option("--patients", min=8, max=10_000, help="imaging: synthetic CT studies to write.")
    ] = 120,
    epochs: Annotated[
        int,
        typer.Option(
            "--epochs",
            min=1,
            max=1000,
            help="imaging: training epochs (signals: at most 15; molecules: at most 12).",
        ),
    ] = 25,
    device: Device = "auto",
    threads: Threads = None,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Embedded demos on data they write themselves (no download, no shared data): imaging (synthetic
    chest CTs as DICOM → 3D CNN), ehr (synthetic MIMIC-IV-format tables → LSTM length of stay) and
    signals (synthetic ECG → AF classifier → real-time monitor replay with alarms) and molecules (a
    CharRNN on the NCI molecules RDKit ships → 2,000 samples scored with the MOSES table)."""
    if pipeline not in (*DEMOS, "all"):
        raise InputError(f"demo {pipeline}: unknown pipeline (choose {', '.join(DEMOS)} or all)")
    _setup(quiet, device, threads)
    out_dir = _out_dir(out, "demo", force)
    for name in DEMOS if pipeline == "all" else (pipeline,):
        target = out_dir / name if pipeline == "all" else out_dir
        target.mkdir(parents=True, exist_ok=True)
        if name == "imaging":
            from medlearn.imaging.demo import run_demo as run_imaging

            outputs = run_imaging(target, n_patients=patients, epochs=epochs, device=device)
        elif name == "ehr":
            from medlearn.ehr.demo import run_demo as run_ehr

            outputs = run_ehr(target, device=device)
        elif name == "signals":
            from medlearn.signals.demo import run_demo as run_signals

            outputs = run_signals(target, epochs=min(epochs, 15), device=device)
        else:
            from medlearn.molecules.demo import run_demo as run_molecules

            outputs = run_molecules(target, epochs=min(epochs, 12), device=device)
        _summary(outputs)
        info(
            f"[bold]{name} demo finished[/]: {target.resolve()}  (bundle, metrics.json, predictions.csv, report.html)"
        )


# The molecule commands live in their own module; importing it registers them on ``app``.
from medlearn.cli import deid as _deid  # noqa: E402,F401
from medlearn.cli import explain as _explain  # noqa: E402,F401
from medlearn.cli import export as _export  # noqa: E402,F401
from medlearn.cli import federate as _federate  # noqa: E402,F401
from medlearn.cli import integrity as _integrity  # noqa: E402,F401
from medlearn.cli import molecules as _molecules  # noqa: E402,F401
from medlearn.cli import pacs as _pacs  # noqa: E402,F401
from medlearn.cli import serve as _serve  # noqa: E402,F401


def main() -> None:
    app()


if __name__ == "__main__":
    main()
