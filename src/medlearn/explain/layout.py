"""How a model's input is laid out, as far as an explanation needs to know: what the axes mean, what to
draw, which methods suit it and what "removed" means for one of its values.

The explain package must not import a modality (``.importlinter``): the task says this through its
:meth:`~medlearn.engine.task.Task.explanation_layout` hook, and explain draws and measures from it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Every attribution method ``medlearn explain --method`` knows.
METHODS = ("gradcam", "gradcam++", "integrated_gradients", "occlusion", "shapley")

Kind = Literal["image", "signal", "sequence"]


class InputLayout(BaseModel):
    """What the preprocessed input of one unit holds (the array the model sees, without the batch axis).

    - ``image``: (C, H, W) a 2D picture or a 2.5D stack of C slices, or (1, D, H, W) a volume;
    - ``signal``: (C, N) channels sampled at ``fs_hz``;
    - ``sequence``: (T, F) time bins of ``bin_hours`` × features named in ``feature_names``.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    #: default methods, first = the one used without ``--method`` (gradient models)
    methods: list[str] = Field(default_factory=lambda: ["integrated_gradients"])
    #: the value a removed input takes (integrated gradients' baseline, occlusion, deletion curves);
    #: 0 is the training mean for standardised inputs
    baseline: float = 0.0
    fs_hz: float | None = None
    channel_names: list[str] = Field(default_factory=list)
    bin_hours: float | None = None
    feature_names: list[str] = Field(default_factory=list)
    #: one per feature: what a value of the feature means (e.g. "z-score; mean 1.1, SD 0.4 mg/dL")
    feature_units: list[str] = Field(default_factory=list)
    #: image: a 2.5D stack's channels are slices (drawn as a montage like a volume's)
    slices_in_channels: bool = False


def generic_layout(shape: tuple[int, ...], has_cam_layer: bool) -> InputLayout:
    """A layout for a task that declares none, from the input's shape alone: a 3D/4D array of a CNN is an
    image, a 2D array a sequence of unnamed features, a 1D array one row of features."""
    if has_cam_layer and len(shape) in (3, 4):
        return InputLayout(kind="image", methods=["gradcam", "gradcam++"])
    if len(shape) == 2:
        return InputLayout(kind="sequence", feature_names=[f"feature {i}" for i in range(shape[1])])
    return InputLayout(kind="sequence", feature_names=[f"feature {i}" for i in range(shape[-1])])
