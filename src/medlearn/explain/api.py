"""``medlearn explain`` as a function: load the bundle (and a shuffled-label twin), check the inputs and
the output folder, explain, and write the pictures and ``explanations.json``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medlearn.errors import InputError

PathLike = str | os.PathLike


def explain_bundle(
    bundle: Any,
    inputs: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    methods: Sequence[str] | None = None,
    target: str | int | None = None,
    checks: bool = True,
    shuffled_bundle: Any = None,
    device: str = "cpu",
    force: bool = False,
    allow_external: bool = False,
    public_key: PathLike | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Explain a bundle's predictions for the units in ``inputs`` (as ``medlearn explain`` does).

    Args:
        bundle: a loaded torch bundle or its directory.
        inputs: files or folders the bundle's task reads (``medlearn predict``'s inputs).
        out: the output directory; an existing non-empty one only with ``force``.
        methods: ``gradcam``, ``gradcam++``, ``integrated_gradients``, ``occlusion``, ``shapley``;
            default the task's first method that applies to the model.
        target: the class to explain (name or index); default each unit's predicted class.
        checks: run the model-randomisation sanity check and the deletion/insertion curves.
        shuffled_bundle: a bundle (or its directory) of the same task trained on shuffled labels, for
            the data-randomisation check.
        **options: the task's predict options (``nodule``, ``diameter``, ``annotations``, ``fs`` ...).

    Returns:
        What ``explanations.json`` holds: per unit and method the explained class, the picture's file
        name, where the evidence is, and the checks; ``summary`` per method.

    Raises:
        InputError: a missing input, an unknown method or class, a method that does not apply.
        OutputExistsError: ``out`` is not empty and ``force`` is not set.
    """
    from medlearn.api import _check_writable, load_bundle
    from medlearn.explain.run import explain_files
    from medlearn.paths import prepare_out_dir

    paths = [Path(p) for p in ([inputs] if isinstance(inputs, str | os.PathLike) else inputs)]
    if not paths:
        raise InputError("explain: give at least one input file or folder")
    for path in paths:
        if not path.exists() and not path.with_name(path.name + ".hea").is_file():  # or a WFDB record name
            raise InputError(f"{path}: no such file or folder")
    if not hasattr(bundle, "task"):
        bundle = load_bundle(bundle, device=device, allow_external=allow_external, public_key=public_key)
    if shuffled_bundle is not None and not hasattr(shuffled_bundle, "task"):
        shuffled_bundle = load_bundle(shuffled_bundle, device=device, allow_external=allow_external)
    if shuffled_bundle is not None and shuffled_bundle.task.name != bundle.task.name:
        raise InputError(
            f"--shuffled-bundle {shuffled_bundle.path}: task {shuffled_bundle.task.name}, "
            f"not {bundle.task.name} like the bundle explained"
        )
    bundle.task.predict_options(**options)  # an option the task does not take fails before out is made
    _check_writable(Path(out))
    out_dir = prepare_out_dir(Path(out), force)
    return explain_files(
        bundle,
        paths,
        out_dir,
        list(methods) if methods else None,
        target,
        checks,
        shuffled_bundle,
        **options,
    )
