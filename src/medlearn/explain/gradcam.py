"""Grad-CAM heatmaps through captum, for 2D, 2.5D and 3D convolutional models.

Models name their target layer in a ``gradcam_layer`` attribute (a dotted module path), so one function
serves every imaging network without knowing its architecture. Wrappers that run their network several
times per forward (test-time augmentation) expose the network as ``gradcam_model``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def target_layer(model: nn.Module) -> nn.Module:
    name = getattr(model, "gradcam_layer", None)
    if not name:
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

    model = getattr(model, "gradcam_model", model)  # e.g. explain a TTA wrapper's network on the original view
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
    peak = up.reshape(len(up), -1).max(axis=1).reshape((-1,) + (1,) * len(spatial))
    return np.where(peak > 0, up / np.where(peak > 0, peak, 1), 0.0).astype(np.float32)


def overlay(gray: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB picture (h, w, 3) in [0, 1]: the grayscale image with the heatmap in a jet colormap on top."""
    from matplotlib import colormaps

    g = np.asarray(gray, dtype=np.float32)
    span = float(g.max() - g.min())
    g = (g - g.min()) / span if span > 0 else np.zeros_like(g)
    rgb = np.repeat(g[..., None], 3, axis=-1)
    colored = colormaps["jet"](np.clip(heat, 0, 1))[..., :3]
    weight = alpha * np.clip(heat, 0, 1)[..., None]
    return np.clip((1 - weight) * rgb + weight * colored, 0.0, 1.0)
