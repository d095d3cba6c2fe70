"""The Python API: the ``medlearn`` commands as functions, with the same names and the same rules.

``medlearn.train`` is ``medlearn train``, ``medlearn.evaluate`` is ``medlearn evaluate``,
``medlearn.load_bundle(path).predict(...)`` (or ``medlearn.predict``) is ``medlearn predict --json``: the
command line calls these functions, so a run started from Python writes exactly what the command writes
(``bundle/``, ``metrics.json``, ``predictions.csv``, ``history.csv``, ``report.html``,
``run_config.yaml``) and refuses what the command refuses (an existing non-empty output directory without
``force``, an option the task does not take). Keyword arguments are named like the command's flags:
``--set`` is ``overrides``, ``--data`` is ``data``, ``--nodule 55.5,85.6,-116`` is
``nodule="55.5,85.6,-116"`` (a tuple works too).

Errors the user can fix are :class:`~medlearn.errors.MedlearnError` subclasses whose message names the
file, key or option (the command prints that message as its one red line).

Importing this module is light: torch and the modality packages load when a function runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from medlearn.errors import ConfigError, InputError, OutputExistsError, RunInterrupted

if TYPE_CHECKING:
    from medlearn.config import ExperimentConfig
    from medlearn.engine.bundle import Bundle
    from medlearn.engine.callbacks import Callback
    from medlearn.engine.run import RunOutputs

PathLike: TypeAlias = str | os.PathLike[str]
#: ``overrides``: ``--set`` strings (``"train.epochs=3"``, the value parsed as YAML) or a mapping of dotted
#: keys to values (``{"train.epochs": 3}``, the values taken as they are).
Overrides: TypeAlias = Sequence[str] | Mapping[str, Any]

#: Experiment trackers ``train(track=...)`` / ``--track`` offers.
TRACKERS = ("mlflow",)


def train(
    config: PathLike | Mapping[str, Any] | ExperimentConfig | None,
    *,
    out: PathLike | None = None,
    overrides: Overrides = (),
    data: PathLike | None = None,
    resume: PathLike | None = None,
    device: str = "auto",
    threads: int | None = None,
    force: bool = False,
    track: str | None = None,
    callbacks: Sequence[Callback] = (),
) -> RunOutputs:
    """Train a model from a config, as ``medlearn train`` does; writes the bundle, metrics, predictions,
    ``history.csv`` and an HTML report into ``out``.

    The config is checked whole (keys, task options, model parameters, transforms, monitor metric) before
    the output directory is made or any data file is read.

    Args:
        config: a YAML file, the name of a shipped config (``"lung_nodule"``, see
            :func:`medlearn.config.shipped_configs`), a dict of the YAML's sections or an
            :class:`~medlearn.config.ExperimentConfig` (not modified). Relative ``data.root`` values
            resolve against ``MEDLEARN_DATA``, as in a config file. May be None with ``resume``.
        out: output directory; default ``runs/<config name>-<YYYYmmdd-HHMMSS>`` in the current directory.
        overrides: ``--set`` items, as strings (``["train.epochs=3"]``, values parsed as YAML) or as a
            mapping of dotted keys (``{"train.epochs": 3}``); applied before validation, so an error names
            the key.
        data: the dataset (``--data``; overrides ``data.root``), relative to the current directory.
        resume: the directory of an interrupted run: it continues from its last checkpoint with the run's
            own ``run_config.yaml`` (``config`` is then ignored; ``overrides`` may extend it, e.g. more
            epochs). The run stays in that directory, so ``out`` must be unset or the same.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        threads: CPU threads for torch (``torch.set_num_threads``, process-wide); default torch's choice.
            Recorded in the bundle: a re-training reproduces the weights bit for bit only with the same
            thread count.
        force: reuse a non-empty ``out`` (files there are overwritten).
        track: an experiment tracker, ``"mlflow"`` (a local ``sqlite:///<out>/mlflow.db`` store unless
            ``MLFLOW_TRACKING_URI`` is set; needs ``pip install "medlearn[track]"``), or None.
        callbacks: extra :class:`~medlearn.engine.callbacks.Callback` objects given to the trainer beside
            the run's own (``history.csv``, progress lines, the tracker).

    Returns:
        The run's outputs: ``out`` (the directory), ``metrics`` (``metrics.json`` as a dict),
        ``metrics_val``, ``bundle`` (the bundle directory, for :func:`load_bundle` and :func:`evaluate`)
        and ``report`` (``report.html``).

    Raises:
        ConfigError: an unknown key or a bad value in the config or the overrides, naming the key path; an
            unknown ``track``.
        InputError: the data is missing or unreadable (naming the file); a bad ``device`` or ``threads``;
            a ``resume`` directory that holds no interrupted run.
        OutputExistsError: ``out`` exists and is not empty, and ``force`` is not set.
        MissingDependencyError: the task needs an optional extra that is not installed, naming it.

    Examples:
        >>> import medlearn
        >>> run = medlearn.train(
        ...     "ehr_los_mimic4", data="mimic-iv-demo", out="runs/los", overrides={"train.epochs": 5}
        ... )  # doctest: +SKIP
        >>> run.metrics["metrics"]["kappa_linear"]["value"]  # doctest: +SKIP
        0.41
    """
    from medlearn.config import dump_config
    from medlearn.engine.run import train_experiment
    from medlearn.engine.validate import validate_experiment
    from medlearn.paths import default_out_dir, prepare_out_dir, resolve_cli_path

    items = override_items(overrides)
    _check_device(device)
    _check_threads(threads)
    if track is not None:
        _check_track(track)
    if resume is not None:
        resume = Path(resume)
        if out is not None and Path(out).resolve() != resume.resolve():
            raise InputError(
                f"out {out}: a resumed run continues in its own directory ({resume}); leave out unset"
            )
        cfg = _resumed_config(resume, items)
        if config is not None:
            _check_same_config(config, items, cfg, resume)
        if data is not None and resolve_cli_path(data) != _saved_root(cfg):
            raise InputError(
                f"data {data}: {resume} was trained on {cfg.data.root}; a resumed run keeps its data "
                "(start a new run with --out for other data)"
            )
    else:
        if config is None:
            raise ConfigError(
                "config: missing (a YAML file, a shipped config name, a dict or an ExperimentConfig)"
            )
        cfg = resolve_config(config, items)
    # Paths typed by the user are relative to the current directory, not to MEDLEARN_DATA; store them
    # absolute so that evaluate and resume find the same data.
    if data is not None:
        cfg.data.root = str(resolve_cli_path(data))
    elif any(item.split("=", 1)[0].strip() == "data.root" for item in items):
        cfg.data.root = str(resolve_cli_path(cfg.data.root))
    validate_experiment(cfg)  # before the output directory exists
    _set_threads(threads)
    saved_config: str | None = None
    if resume is not None:
        out_dir = resume
        if _finished(out_dir) and not force:
            raise OutputExistsError(
                f"{out_dir}: this run finished (metrics.json and bundle/ exist) and --resume would rewrite "
                "it; pass --force to continue it (e.g. --set train.epochs=N) or train into a new --out"
            )
        _check_writable(out_dir)
        saved_config = (out_dir / "run_config.yaml").read_text()
        if force:  # its results go first, so a failed continuation never leaves old results beside new ones
            clear_run_outputs(out_dir, keep_checkpoints=True)
    else:
        out_dir = Path(out) if out is not None else default_out_dir(cfg.name)
        _check_writable(out_dir)
        out_dir = prepare_out_dir(out_dir, force)
        clear_run_outputs(out_dir, keep_checkpoints=False)  # --force: nothing of an earlier run survives
    _write_atomic(out_dir / "run_config.yaml", dump_config(cfg))
    try:
        return train_experiment(
            cfg, out_dir, resume=resume is not None, device=device, track=track, callbacks=callbacks
        )
    except KeyboardInterrupt:
        raise RunInterrupted(out_dir, resumable=_checkpoint(out_dir) is not None) from None
    except Exception:
        if saved_config is not None and _checkpoint(out_dir) is not None:
            _write_atomic(out_dir / "run_config.yaml", saved_config)  # resumable as it was
        raise


#: What ``train`` writes in its output directory (beside ``checkpoints/``): ``--force`` removes these, and
#: only these, before a new training, so a run never mixes old and new results.
RUN_OUTPUTS = (
    "bundle",
    "metrics.json",
    "metrics_val.json",
    "predictions.csv",
    "report.html",
    "history.csv",
    "history.csv.tmp",
    "config.yaml",
)


def clear_run_outputs(out: Path, keep_checkpoints: bool) -> list[Path]:
    """Remove what an earlier ``train`` wrote in ``out`` (:data:`RUN_OUTPUTS`, ``metrics*.json`` and, unless
    ``keep_checkpoints``, the ``*.pt`` checkpoints), never a file medlearn did not write: a folder such as
    ``bundle/`` or ``checkpoints/`` goes only when nothing else is left in it.

    Args:
        out: a run directory.
        keep_checkpoints: keep ``checkpoints/`` (a ``--resume`` continues from it).

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    names = set(RUN_OUTPUTS) | {p.name for p in out.glob("metrics*.json")}
    for name in sorted(names):
        path = out / name
        if name == "bundle" and path.is_dir():
            for child in path.iterdir():
                if child.is_file() and (
                    child.name in _BUNDLE_FILES or child.suffix in (".safetensors", ".onnx")
                ):
                    child.unlink()
                    removed.append(child)
            _rmdir_if_empty(path)
        elif path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(path)
    checkpoints = out / "checkpoints"
    if not keep_checkpoints and checkpoints.is_dir():
        for child in sorted(checkpoints.rglob("*"), reverse=True):
            if child.is_file() and (child.name.endswith(".pt") or child.name.endswith(".pt.tmp")):
                child.unlink()
                removed.append(child)
            elif child.is_dir():
                _rmdir_if_empty(child)
        _rmdir_if_empty(checkpoints)
    return removed


#: The files ``save_bundle`` writes (and ``medlearn sign``).
_BUNDLE_FILES = {
    "bundle.json",
    "model_card.md",
    "model_card.json",
    "manifest.json",
    "manifest.sig",
    "model.safetensors",
}


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty (a file medlearn did not write) or already gone


def _saved_root(cfg: ExperimentConfig) -> Path | None:
    """The run's data folder as its config resolves it (None when ``MEDLEARN_DATA`` is needed and unset)."""
    from medlearn.paths import resolve_config_data_path

    try:
        return resolve_config_data_path(cfg.data.root).resolve()
    except InputError:
        return None


def _finished(run: Path) -> bool:
    """A run whose results exist: ``metrics.json`` and ``bundle/``."""
    return (run / "metrics.json").is_file() and (run / "bundle").is_dir()


def _checkpoint(run: Path) -> Path | None:
    """The run's checkpoint (``checkpoints/last.pt``, or a fold's or the refit's), or None."""
    folder = run / "checkpoints"
    if (folder / "last.pt").is_file():
        return folder / "last.pt"
    return next(iter(sorted(folder.rglob("last.pt"))), None) if folder.is_dir() else None


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so the file is the old or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def evaluate(
    bundle: PathLike,
    *,
    out: PathLike | None = None,
    data: PathLike | None = None,
    split: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    force: bool = False,
    allow_external: bool = False,
    public_key: PathLike | None = None,
) -> RunOutputs:
    """Score a bundle, as ``medlearn evaluate`` does: on its own test split, on one of its splits, or on
    a whole dataset; writes ``metrics.json``, ``predictions.csv`` and ``report.html`` into ``out``.

    Only the bundle's own preprocessing is applied: nothing is re-fitted on the data scored.

    Args:
        bundle: the bundle directory (``<run>/bundle``; the run directory itself works too).
        out: output directory; default ``runs/evaluate-<YYYYmmdd-HHMMSS>`` in the current directory.
        data: score every unit of the dataset at this path (split ``"all"``), relative to the current
            directory; default the bundle's own data and test split.
        split: score one of the bundle's splits (``"train"``, ``"val"``, ``"test"``).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        threads: CPU threads for torch (process-wide); default torch's choice.
        force: reuse a non-empty ``out``.
        allow_external: load a bundle whose task, model or transform is an out-of-tree
            ``package.module:Name``. That imports and runs code from that installed package: allow it only
            for bundles you trust.
        public_key: require the bundle to be signed by the private key of this Ed25519 public key (PEM).

    Returns:
        The evaluation's outputs: ``out``, ``metrics`` (``metrics.json`` as a dict) and ``report``.

    Raises:
        BundleError: not a bundle, a damaged one, or one naming out-of-tree code without
            ``allow_external``.
        InputError: the data does not exist or cannot be read; ``split`` is not one of the bundle's.
        OutputExistsError: ``out`` exists and is not empty, and ``force`` is not set.

    Examples:
        >>> import medlearn
        >>> scored = medlearn.evaluate("runs/los/bundle", out="runs/los-eval")  # doctest: +SKIP
        >>> scored.metrics["split"], scored.metrics["n"]  # doctest: +SKIP
        ('test', 61)
    """
    from medlearn.engine.run import evaluate_bundle
    from medlearn.paths import default_out_dir, prepare_out_dir, resolve_cli_path

    _check_device(device)
    _set_threads(threads)
    if split is not None and not split.strip():
        raise InputError("split '': expected the name of one of the bundle's splits (train, val, test)")
    out_dir = Path(out) if out is not None else default_out_dir("evaluate")
    _check_writable(out_dir)
    out_dir = prepare_out_dir(out_dir, force)
    data_path = resolve_cli_path(data) if data is not None else None
    return evaluate_bundle(
        Path(bundle), out_dir, data_path, split, device, allow_external=allow_external, public_key=public_key
    )


def load_bundle(
    path: PathLike,
    *,
    device: str = "cpu",
    allow_external: bool = False,
    public_key: PathLike | None = None,
    runtime: str = "torch",
) -> Bundle:
    """Load a model bundle written by :func:`train` (``medlearn train``) for prediction.

    Args:
        path: the bundle directory (``<run>/bundle``; the run directory itself works too).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        allow_external: load a bundle whose task, model or transform is an out-of-tree
            ``package.module:Name``. That imports and runs code from that installed package: allow it only
            for bundles you trust. Bundles of medlearn's own tasks never need it.
        public_key: an Ed25519 public key (PEM) whose private key must have signed the bundle
            (``--require-signature``; see ``medlearn keygen`` and ``medlearn sign``).
        runtime: ``"torch"``, or ``"onnx"`` to predict through the bundle's ONNX export with onnxruntime
            (``medlearn export`` first; no torch needed for ECG and EHR bundles, no Grad-CAM).

    Returns:
        The :class:`~medlearn.engine.bundle.Bundle` (an ``OnnxBundle`` for ``runtime="onnx"``):
        ``predict(inputs, **options)`` gives the records of ``medlearn predict --json`` for a path or a
        list of paths; ``generate(n)`` samples a generative bundle; ``meta`` is ``bundle.json``.

    Raises:
        BundleError: not a bundle, a damaged or incompatible one, or one naming out-of-tree code without
            ``allow_external``.
        MissingDependencyError: the bundle's task needs an optional extra that is not installed.

    Examples:
        >>> import medlearn
        >>> bundle = medlearn.load_bundle("runs/los/bundle")  # doctest: +SKIP
        >>> [r["label"] for r in bundle.predict("patient_bundle.json")]  # doctest: +SKIP
        ['2-3d']
    """
    if runtime == "onnx":
        from medlearn.engine.onnx_runtime import load_onnx_bundle

        return load_onnx_bundle(path, allow_external=allow_external, public_key=public_key)  # type: ignore[return-value]
    if runtime != "torch":
        raise InputError(f"--runtime {runtime}: choose torch or onnx")
    from medlearn.engine.bundle import load_bundle as _load

    _check_device(device)
    return _load(path, device, allow_external=allow_external, public_key=public_key)


def predict(
    bundle: Bundle | PathLike,
    inputs: PathLike | Sequence[PathLike],
    *,
    out: PathLike | None = None,
    device: str = "cpu",
    force: bool = False,
    allow_external: bool = False,
    strict: bool = False,
    public_key: PathLike | None = None,
    runtime: str = "torch",
    **options: Any,
) -> list[dict[str, Any]]:
    """Predict with a bundle, as ``medlearn predict --json`` does: the bundle's own preprocessing, one
    record per predicted unit (and one per skipped unit, with the reason).

    Args:
        bundle: a loaded :class:`~medlearn.engine.bundle.Bundle` or a bundle directory.
        inputs: a file or folder (e.g. a DICOM series folder, a FHIR bundle, a WFDB record) or a list.
        out: a directory for pictures (Grad-CAM overlays of image models), named in each record's
            ``"explanation"``; default none.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (when ``bundle`` is a path).
        force: reuse a non-empty ``out``.
        allow_external: see :func:`load_bundle` (when ``bundle`` is a path).
        strict: refuse a unit that is outside what the bundle was trained on (its record says
            ``refused``) instead of predicting it with an ``out_of_scope`` flag.
        public_key: require a signature by this Ed25519 public key's private key (when ``bundle`` is a
            path; see :func:`load_bundle`).
        runtime: ``"torch"`` or ``"onnx"`` (when ``bundle`` is a path; see :func:`load_bundle`).
        **options: the task's predict options, named like the command's flags: ``annotations``,
            ``reader``, ``nodule`` (``"x,y,z"`` or a tuple, patient mm), ``diameter``, ``series`` (imaging),
            ``fs`` (signals). The task says which it takes.

    Returns:
        One dict per unit: ``input``, ``unit``, ``model`` and ``label``/``probability``/``threshold``
        (binary), ``label``/``probabilities`` (multiclass) or ``value``/``interval`` (regression), with
        ``details``, ``warnings`` and ``explanation`` where the task gives them; or ``skipped`` with a
        ``reason``. The fields are those of ``docs/conventions.md``.

    Raises:
        InputError: an input does not exist or cannot be read; an option the task does not take (the
            message names it and lists the options the task takes) or a bad option value.
        BundleError: see :func:`load_bundle`.
        OutputExistsError: ``out`` exists and is not empty, and ``force`` is not set.

    Examples:
        >>> import medlearn
        >>> records = medlearn.predict(
        ...     "runs/ln5/bundle", "CT_FOLDER", nodule=(55.5, 85.6, -116), diameter=20
        ... )  # doctest: +SKIP
        >>> records[0]["label"], records[0]["probability"]  # doctest: +SKIP
        ('malignant', 0.83)
    """
    from medlearn.paths import prepare_out_dir

    paths = [Path(p) for p in ([inputs] if isinstance(inputs, str | os.PathLike) else inputs)]
    for path in paths:
        if not path.exists() and not path.with_name(path.name + ".hea").is_file():  # or a WFDB record name
            raise InputError(f"{path}: no such file or folder")
    if not hasattr(bundle, "predict"):
        bundle = load_bundle(
            bundle, device=device, allow_external=allow_external, public_key=public_key, runtime=runtime
        )
    bundle.task.predict_options(**options)  # an option the task does not take fails before out is made
    if out is not None:
        _check_writable(Path(out))
    out_dir = prepare_out_dir(Path(out), force) if out is not None else None
    return bundle.predict(paths, out_dir, strict=strict, **options)


# -- helpers shared with the command line -----------------------------------------------------------


def override_items(overrides: Overrides) -> list[str]:
    """``overrides`` as ``--set`` strings: a mapping's values are written as JSON (a subset of YAML), so
    ``{"train.epochs": 3}`` and ``["train.epochs=3"]`` are the same override.

    Args:
        overrides: ``--set`` strings (one string is one override) or a mapping of dotted keys to values.

    Returns:
        The ``key=value`` strings :func:`medlearn.config.apply_overrides` applies.

    Raises:
        ConfigError: an override is neither a ``key=value`` string nor a mapping entry.

    Examples:
        >>> override_items({"train.epochs": 3, "data.options": {"bin_hours": 4}})
        ['train.epochs=3', 'data.options={"bin_hours": 4}']
    """
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value, default=str)}" for key, value in overrides.items()]
    if isinstance(overrides, str):  # one override, not a sequence of characters
        return [overrides]
    items = list(overrides)
    bad = [item for item in items if not isinstance(item, str)]
    if bad:
        raise ConfigError(f"overrides: expected 'key=value' strings or a mapping, got {bad[0]!r}")
    return items


def resolve_config(
    config: PathLike | Mapping[str, Any] | ExperimentConfig, overrides: Overrides = ()
) -> ExperimentConfig:
    """The validated experiment config ``train`` runs: ``config`` (a YAML path, a shipped config name, a
    dict or an :class:`~medlearn.config.ExperimentConfig`) with ``overrides`` applied.

    Args:
        config: as :func:`train` takes it; a dict or an ExperimentConfig given is not modified.
        overrides: as :func:`train` takes them.

    Returns:
        A new, validated :class:`~medlearn.config.ExperimentConfig` (its ``data.root`` as written: relative
        values resolve against ``MEDLEARN_DATA`` when the data is read).

    Raises:
        ConfigError: the config cannot be found or read, or a key or value is wrong (naming the key path).

    Examples:
        >>> resolve_config("ehr_los_mimic4", {"train.epochs": 3}).train.epochs
        3
    """
    from medlearn.config import ExperimentConfig, apply_overrides, load_config, validate

    items = override_items(overrides)
    if isinstance(config, ExperimentConfig):
        return validate(apply_overrides(config.model_dump(mode="json"), items), "config")
    if isinstance(config, Mapping):
        return validate(apply_overrides(json.loads(json.dumps(config, default=str)), items), "config")
    if isinstance(config, str | os.PathLike):
        return load_config(os.fspath(config), items)
    raise ConfigError(
        f"config: expected a YAML path, a shipped config name, a dict or an ExperimentConfig, "
        f"got {type(config).__name__}"
    )


#: What a ``--resume`` may change in the run's config (``--set``): how long it goes on and how it is scored.
#: Anything else (the model, the data, the preprocessing, the optimiser) would not fit the checkpoint.
RESUME_MAY_CHANGE = (
    "train.epochs",
    "train.time_limit_minutes",
    "train.max_train_batches",
    "train.early_stopping",
    "eval",
)


def _resumed_config(run: Path, items: list[str]) -> ExperimentConfig:
    """The interrupted run's own config, which ``overrides`` may extend (more epochs, another time limit,
    other evaluation settings: :data:`RESUME_MAY_CHANGE`); an override that would change what the checkpoint
    was trained with is a ConfigError naming the key."""
    from medlearn.config import apply_overrides, load_raw, validate

    if not run.is_dir():
        raise InputError(f"{run}: no such run directory to resume")
    saved = run / "run_config.yaml"
    if not saved.is_file():
        raise InputError(f"{saved}: missing, so {run} cannot be resumed")
    if _checkpoint(run) is None:
        raise InputError(f"{run / 'checkpoints' / 'last.pt'}: missing, so {run} cannot be resumed")
    raw = load_raw(saved)
    before = validate(raw, str(saved))
    after = validate(apply_overrides(load_raw(saved), items), str(saved))
    for key, (old, new) in _differences(
        before.model_dump(mode="json"), after.model_dump(mode="json")
    ).items():
        if not any(key == k or key.startswith(k + ".") for k in RESUME_MAY_CHANGE):
            raise ConfigError(
                f"--set {key}: a resumed run keeps its config ({old!r} in {saved}; only "
                f"{', '.join(RESUME_MAY_CHANGE)} may change); start a new run with --out to train with {new!r}"
            )
    return after


def _differences(a: Any, b: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """The dotted key paths where two config dicts differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: dict[str, tuple[Any, Any]] = {}
        for key in dict.fromkeys([*a, *b]):
            found.update(_differences(a.get(key), b.get(key), f"{prefix}{key}."))
        return found
    return {} if a == b else {prefix.rstrip("."): (a, b)}


def _check_same_config(
    config: PathLike | Mapping[str, Any] | ExperimentConfig,
    items: list[str],
    cfg: ExperimentConfig,
    run: Path,
) -> None:
    """``config`` given with ``resume`` must be the run's own (with the same overrides): training another
    config from this checkpoint would mix two experiments in one run. Its ``data.root`` is not compared
    (the run keeps the data it was trained on, stored absolute)."""
    given = resolve_config(config, items).model_dump(mode="json")
    saved = cfg.model_dump(mode="json")
    given["data"].pop("root", None)
    saved["data"].pop("root", None)
    diff = _differences(saved, given)
    if diff:
        key, (old, new) = next(iter(diff.items()))
        shown = config if isinstance(config, str | os.PathLike) else type(config).__name__
        raise ConfigError(
            f"config {shown}: not the config of the run being resumed ({key}: {new!r} here, {old!r} in "
            f"{run / 'run_config.yaml'}); --resume continues the run's own config: leave CONFIG out"
        )


def _check_device(device: str) -> None:
    if device not in ("cpu", "cuda", "auto"):
        raise InputError(f"device {device}: expected cpu, cuda or auto")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            build = "a CPU-only torch build" if torch.version.cuda is None else "no CUDA device visible"
            raise InputError(
                f"device cuda: not available here ({build}, torch {torch.__version__}); use --device cpu or auto"
            )


def _check_writable(path: Path) -> None:
    """``path`` (a directory to create or reuse) can be written: its nearest existing ancestor is a writable
    directory. An InputError names the path otherwise, before any work is done."""
    path = Path(path)
    probe = path
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "exists and is not a directory" if probe == path else f"{probe} is a file, not a directory"
        raise InputError(f"{path}: cannot write there ({where})")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write there ({probe}: permission denied)")


#: ``threads`` above this is a typo, not a setting (torch would try to start that many threads).
MAX_THREADS = 1024


def _check_threads(threads: int | None) -> None:
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise InputError(f"threads {threads}: expected a number of CPU threads from 1 to {MAX_THREADS}")


def _check_track(track: str) -> None:
    if track not in TRACKERS:
        raise ConfigError(f"track {track}: unknown tracker (choose {', '.join(TRACKERS)})")
    if track == "mlflow":
        from medlearn.lazy import require_extra

        require_extra("mlflow", "to track runs in MLflow", "track")


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    _check_threads(threads)
    import torch

    torch.set_num_threads(threads)
