"""The optional hooks the engine calls on models, declared as protocols instead of found with ``getattr``.

A model opts in by having the attribute; ``isinstance(model, HasOwnObjective)`` is how the engine asks.
Each protocol says who calls it and why, so a hospital writing its own model knows what it can offer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: predicting with onnxruntime imports this module without torch
    import torch
    from torch import nn


@runtime_checkable
class HasOwnObjective(Protocol):
    """A model that carries its objective (generators: next-token cross-entropy, a VAE's negative ELBO, a
    GAN's critic + generator losses). The Trainer calls ``training_loss(x)`` for the mean loss of a batch
    and needs no targets; in eval mode it must return a loss comparable across epochs."""

    def training_loss(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class HasGradCAMLayer(Protocol):
    """A CNN naming the module (dotted path under the model) whose activations Grad-CAM weighs."""

    gradcam_layer: str


@runtime_checkable
class WrapsGradCAMModel(Protocol):
    """A wrapper that runs its network several times per forward (test-time augmentation) and exposes
    that network, which Grad-CAM explains on the original view."""

    gradcam_model: nn.Module


@runtime_checkable
class Reseedable(Protocol):
    """A random training-time augmentation whose generator can be reseeded, so that a resumed or repeated
    run draws the same augmentations (the Trainer calls ``reseed(seed)`` at the start of every epoch)."""

    def reseed(self, seed: int) -> None: ...


@runtime_checkable
class RebuildableFromParams(Protocol):
    """A model built from files (e.g. a GAN around a trained autoencoder bundle) that names, in
    ``init_params``, the keyword arguments that rebuild it without those files (stored in the bundle)."""

    init_params: dict[str, Any]


def gradcam_layer(model: Any) -> str | None:
    """The model's Grad-CAM layer name, or None when it offers none (non-CNN models)."""
    return model.gradcam_layer if isinstance(model, HasGradCAMLayer) and model.gradcam_layer else None
