"""Attribution methods on one footing: every method takes the class-score model
(:class:`~medlearn.explain.scores.ClassScores`), a batch of preprocessed inputs and the class to explain
for each, and returns an attribution of the input's own shape, so drawing, sanity checks and faithfulness
curves treat them alike.

- ``gradcam`` / ``gradcam++``: a CNN's last convolutional block (:mod:`medlearn.explain.gradcam`), the
  map broadcast over the input's channels;
- ``integrated_gradients`` (Sundararajan et al. 2017, captum): from the layout's baseline (0 = the
  training mean of standardised inputs) to the input;
- ``occlusion`` (Zeiler & Fergus 2014, captum): the score drop when a window (signal), a patch (image) or
  a cell (sequence) is set to the baseline;
- ``shapley``: Shapley value sampling (Štrumbelj & Kononenko 2010, captum ``ShapleyValueSampling``) over
  input groups — for sequences one group per feature across the window, the SHAP-style contributions of
  tree models, which have no gradients. Contributions add up to the score's change from the baseline.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from medlearn.engine.protocols import gradcam_layer
from medlearn.errors import InputError
from medlearn.explain.layout import METHODS, InputLayout

#: Integrated gradients' Riemann steps: enough for the completeness gap of small clinical models to be a
#: few per cent of the score change (reported as ``convergence_delta``).
IG_STEPS = 32
#: Shapley value sampling: permutations averaged.
SHAPLEY_SAMPLES = 8
#: Image groups (patches) and signal groups (windows) are sized to give at most about this many.
MAX_GROUPS = 1024


def check_method(method: str, layout: InputLayout, network: nn.Module, has_gradients: bool) -> None:
    """Refuse a method that does not apply to this bundle, naming what does."""
    if method not in METHODS:
        raise InputError(f"--method {method}: unknown (choose from {', '.join(METHODS)})")
    usable = usable_methods(layout, network, has_gradients)
    if method not in usable:
        raise InputError(
            f"--method {method}: does not apply to this {layout.kind} model (it takes: {', '.join(usable)})"
        )


def usable_methods(layout: InputLayout, network: nn.Module, has_gradients: bool) -> list[str]:
    """The methods that apply: Grad-CAM needs an image CNN naming its layer, integrated gradients needs
    gradients; occlusion and Shapley sampling only need forward passes."""
    methods = []
    if layout.kind == "image" and gradcam_layer(network) and has_gradients:
        methods += ["gradcam", "gradcam++"]
    if has_gradients:
        methods.append("integrated_gradients")
    return [*methods, "occlusion", "shapley"]


def default_method(layout: InputLayout, network: nn.Module, has_gradients: bool) -> str:
    """The layout's first method that applies; a model without gradients (a tree ensemble) gets Shapley
    sampling, its SHAP-style contributions."""
    if not has_gradients:
        return "shapley"
    usable = usable_methods(layout, network, has_gradients)
    chosen = [m for m in layout.methods if m in usable]
    return chosen[0] if chosen else ("integrated_gradients" if has_gradients else "shapley")


def attribute(
    method: str, scores: nn.Module, x: torch.Tensor, targets: list[int], layout: InputLayout
) -> np.ndarray:
    """Attributions of ``x`` (n, *shape) toward each input's target class, as an array of ``x``'s shape."""
    from captum.attr import IntegratedGradients, Occlusion, ShapleyValueSampling

    scores.eval()
    x = x.detach()
    if method in ("gradcam", "gradcam++"):
        from medlearn.explain.gradcam import class_cam, target_layer

        network = scores.model
        cam = class_cam(scores, target_layer(network), x, targets, plus_plus=method == "gradcam++")
        if cam.ndim == x.ndim - 1:  # (n, *spatial) → (n, C, *spatial)
            cam = cam[:, None]
        return np.broadcast_to(cam, tuple(x.shape)).astype(np.float32).copy()
    if method == "integrated_gradients":
        ig = IntegratedGradients(scores)
        attr = ig.attribute(
            x.clone().requires_grad_(True),
            baselines=float(layout.baseline),
            target=targets,
            n_steps=IG_STEPS,
            internal_batch_size=max(1, 256 // max(1, len(x))) * len(x),
        )
        return attr.detach().cpu().numpy().astype(np.float32)
    if method == "occlusion":
        window = occlusion_window(layout, tuple(x.shape[1:]))
        with torch.no_grad():
            attr = Occlusion(scores).attribute(
                x,
                sliding_window_shapes=window,
                strides=tuple(max(1, w // 2) for w in window),
                baselines=float(layout.baseline),
                target=targets,
                perturbations_per_eval=64,
            )
        return attr.detach().cpu().numpy().astype(np.float32)
    if method == "shapley":
        mask = torch.as_tensor(groups(layout, tuple(x.shape[1:]), by_feature=True))[None].to(x.device)
        with torch.no_grad():
            attr = ShapleyValueSampling(scores).attribute(
                x,
                baselines=float(layout.baseline),
                target=targets,
                feature_mask=mask,
                n_samples=SHAPLEY_SAMPLES,
                perturbations_per_eval=128,
            )
        return attr.detach().cpu().numpy().astype(np.float32)
    raise InputError(f"--method {method}: unknown (choose from {', '.join(METHODS)})")


def occlusion_window(layout: InputLayout, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The occluded block: all channels × a window of ~1/100 of a signal (at least 0.1 s), a patch of an
    image (1/8 of each spatial side), one cell of a sequence."""
    if layout.kind == "signal":
        fs = layout.fs_hz or 100.0
        return (shape[0], max(1, min(shape[1], max(int(0.1 * fs), shape[1] // 100))))
    if layout.kind == "image":
        return (shape[0], *[max(1, s // 8) for s in shape[1:]])
    return tuple(1 for _ in shape)


def groups(layout: InputLayout, shape: tuple[int, ...], by_feature: bool = False) -> np.ndarray:
    """An integer group id per input element (the unit a faithfulness curve removes, or a Shapley
    player): image patches and signal windows across all channels (at most ~:data:`MAX_GROUPS`), sequence
    cells — or, ``by_feature``, each feature across the whole window."""
    if layout.kind == "sequence":
        t, f = shape[-2], shape[-1]
        if by_feature:
            return np.broadcast_to(np.arange(f), (t, f)).copy()
        return np.arange(t * f).reshape(t, f)
    spatial = shape[1:]
    if layout.kind == "signal":
        width = max(1, math.ceil(spatial[0] / min(MAX_GROUPS // 4, spatial[0])))
        ids = np.arange(spatial[0]) // width
        return np.broadcast_to(ids, shape).copy()
    side = max(1, math.ceil((float(np.prod(spatial)) / MAX_GROUPS) ** (1 / len(spatial))))
    counts = [math.ceil(s / side) for s in spatial]
    axes = np.meshgrid(*[np.arange(s) // side for s in spatial], indexing="ij")
    ids = np.ravel_multi_index(tuple(axes), counts)
    return np.broadcast_to(ids, shape).copy()
