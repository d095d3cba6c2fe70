"""Grad-CAM heatmaps through captum, for 2D, 2.5D and 3D convolutional models.

Models name their target layer in a ``gradcam_layer`` attribute (a dotted module path), so one function
serves every imaging network without knowing its architecture. Wrappers that run their network several
times per forward (test-time augmentation) expose the network as ``gradcam_model``.

A map can be empty: when the target layer's activations or the gradients reaching them vanish (dead ReLUs,
a saturated output), Grad-CAM is zero everywhere. Drawn as an overlay that is just the input picture, which
a reader takes for "no evidence anywhere but fine". :func:`cam_problem` names such maps and
:func:`overlay` writes the sentence across the picture instead.
"""

from __future__ import annotations

import logging
import math
import textwrap

import numpy as np
import torch
from torch import nn

from medlearn.engine.protocols import WrapsGradCAMModel, gradcam_layer

log = logging.getLogger(__name__)

#: What a picture or report says instead of showing a blank overlay.
ZERO_CAM = "Grad-CAM is zero everywhere: the last conv block gives no evidence for the class"
#: ...and for a map that is the same non-zero value everywhere (nothing localised).
UNIFORM_CAM = "Grad-CAM is the same everywhere: the last conv block does not localise the evidence"


def target_layer(model: nn.Module) -> nn.Module:
    """The module whose activations Grad-CAM weighs, named by the model (the ``HasGradCAMLayer`` protocol
    of :mod:`medlearn.engine.protocols`)."""
    name = gradcam_layer(model)
    if name is None:
        raise ValueError(f"{type(model).__name__} does not declare a gradcam_layer")
    return model.get_submodule(name)


def gradcam(model: nn.Module, x: np.ndarray | torch.Tensor, target: int | None = None) -> np.ndarray:
    """Grad-CAM maps for a batch ``x`` (n, C, *spatial), upsampled to the input's spatial size, in [0, 1].

    Args:
        model: a network with ``gradcam_layer``.
        x: preprocessed inputs (the bundle's preprocessing output).
        target: output index to explain; None = output 0 for single-logit models, else the argmax class.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    if isinstance(model, WrapsGradCAMModel):  # e.g. explain a TTA wrapper's network on the original view
        model = model.gradcam_model
    model.eval()
    device = next(model.parameters(), torch.zeros(0)).device  # a parameter-free model runs on the CPU
    inputs = torch.as_tensor(np.asarray(x), dtype=torch.float32).to(device).clone().requires_grad_(True)
    with torch.no_grad():
        out = model(inputs)
    if target is None:
        targets = 0 if out.reshape(len(out), -1).shape[1] == 1 else out.argmax(1).tolist()
    else:
        targets = target
    cam = LayerGradCam(model, target_layer(model))
    attr = cam.attribute(inputs, target=targets, relu_attributions=True)
    spatial = tuple(inputs.shape[2:])
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    up = LayerAttribution.interpolate(attr, spatial, interpolate_mode=mode).detach()[:, 0].cpu().numpy()
    broken = ~np.isfinite(up.reshape(len(up), -1)).all(axis=1)
    for i in np.flatnonzero(broken):
        log.warning("Grad-CAM of input %d is not finite (NaN or infinite gradients); shown as zero", i)
    up[broken] = 0.0
    peak = up.reshape(len(up), -1).max(axis=1).reshape((-1,) + (1,) * len(spatial))
    return np.where(peak > 0, up / np.where(peak > 0, peak, 1), 0.0).astype(np.float32)


def class_cam(
    scores: nn.Module, layer: nn.Module, x: torch.Tensor, targets: list[int], plus_plus: bool = False
) -> np.ndarray:
    """Grad-CAM (or Grad-CAM++) maps of ``layer`` for each input's class in ``targets``, upsampled to the
    input's spatial size, each scaled to a peak of 1 (all zero when nothing is positive).

    Args:
        scores: a model with one output per class (:class:`~medlearn.explain.scores.ClassScores`), so a
            binary model's negative class is explained as well as its positive one.
        layer: the convolutional block whose activations are weighed (a module inside ``scores``).
        x: preprocessed inputs (n, C, *spatial) on the model's device.
        targets: the class explained for each input.
        plus_plus: Grad-CAM++ (Chattopadhay et al., WACV 2018): pixel-wise weights
            ``g² / (2 g² + Σ A · g³)`` of the positive gradients, from the activations ``A`` and
            gradients ``g`` of the layer (captum has no Grad-CAM++; the formula is MONAI's ``GradCAMpp``).
    """
    from captum.attr import LayerAttribution, LayerGradCam

    scores.eval()
    spatial = tuple(x.shape[2:])
    if plus_plus:
        acts, grads = layer_activations_and_gradients(scores, layer, x, targets)
        dims = tuple(range(2, acts.ndim))
        g2, g3 = grads.pow(2), grads.pow(3)
        denominator = 2 * g2 + acts.sum(dim=dims, keepdim=True) * g3
        alpha = g2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        weights = (alpha * torch.relu(grads)).sum(dim=dims, keepdim=True)
        attr = torch.relu((weights * acts).sum(dim=1, keepdim=True))
    else:
        inputs = x.detach().clone().requires_grad_(True)
        attr = LayerGradCam(scores, layer).attribute(inputs, target=targets, relu_attributions=True)
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(spatial)]
    up = LayerAttribution.interpolate(attr.detach(), spatial, interpolate_mode=mode)[:, 0].cpu().numpy()
    up = np.where(np.isfinite(up), up, 0.0)
    peak = up.reshape(len(up), -1).max(axis=1).reshape((-1,) + (1,) * len(spatial))
    return np.where(peak > 0, up / np.where(peak > 0, peak, 1), 0.0).astype(np.float32)


def layer_activations_and_gradients(
    scores: nn.Module, layer: nn.Module, x: torch.Tensor, targets: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The activations of ``layer`` for ``x`` and the gradients of each input's target score with
    respect to them (a forward hook; one backward pass for the batch)."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        out = scores(x.detach())
    finally:
        handle.remove()
    acts = captured[0]
    chosen = out[torch.arange(len(x)), torch.as_tensor(targets, device=out.device)]
    (grads,) = torch.autograd.grad(chosen.sum(), acts)
    return acts.detach(), grads.detach()


def cam_problem(heat: np.ndarray) -> str | None:
    """Why a Grad-CAM map shows nothing, or None when it localises something.

    :data:`ZERO_CAM` when no value is positive and finite (all zero, or NaN/inf), :data:`UNIFORM_CAM` when
    every value is the same positive number (e.g. a 1x1 target layer upsampled).
    """
    h = np.asarray(heat, dtype=np.float64)
    finite = h[np.isfinite(h)]
    if finite.size < h.size or not (finite > 0).any():
        return ZERO_CAM
    if h.size > 1 and float(np.ptp(finite)) <= 1e-6 * float(finite.max()):
        return UNIFORM_CAM
    return None


def overlay(gray: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB picture (h, w, 3) in [0, 1]: the grayscale image with the heatmap in a jet colormap on top.

    When the map shows nothing (:func:`cam_problem`), the picture says so instead: the image, upscaled to
    at least 256 pixels a side so the words are legible, with the sentence written across it.
    """
    from matplotlib import colormaps

    g = np.asarray(gray, dtype=np.float32)
    span = float(g.max() - g.min())
    g = (g - g.min()) / span if span > 0 else np.zeros_like(g)
    rgb = np.repeat(g[..., None], 3, axis=-1)
    problem = cam_problem(heat)
    if problem == ZERO_CAM:
        return write_across(rgb, problem)
    colored = colormaps["jet"](np.clip(heat, 0, 1))[..., :3]
    weight = alpha * np.clip(heat, 0, 1)[..., None]
    picture = np.clip((1 - weight) * rgb + weight * colored, 0.0, 1.0)
    return picture if problem is None else write_across(picture, problem)


def write_across(rgb: np.ndarray, text: str, min_side: int = 256) -> np.ndarray:
    """``rgb`` (h, w, 3) in [0, 1], upscaled (nearest) to at least ``min_side`` pixels a side, with
    ``text`` in a dark box across the middle; rendered by Agg without pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h, w = rgb.shape[:2]
    scale = max(1, math.ceil(min_side / max(1, min(h, w))))
    big = np.repeat(np.repeat(np.asarray(rgb, dtype=np.float32), scale, axis=0), scale, axis=1)
    fig = Figure(figsize=(big.shape[1] / 100, big.shape[0] / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(big, interpolation="nearest")
    ax.axis("off")
    chars = max(16, int(big.shape[1] / 8.5))
    ax.text(
        0.5,
        0.5,
        textwrap.fill(text, chars),
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=9,
        color="white",
        bbox={"facecolor": "black", "alpha": 0.75, "edgecolor": "none"},
    )
    canvas.draw()
    out = np.asarray(canvas.buffer_rgba())[..., :3].astype(np.float32) / 255.0
    fig.clear()
    return out
