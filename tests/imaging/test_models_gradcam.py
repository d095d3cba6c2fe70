"""Every registered imaging model builds from its name and runs; Grad-CAM works on each of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.engine.models import build_model
from medlearn.explain.gradcam import UNIFORM_CAM, ZERO_CAM, cam_problem, gradcam, overlay

CASES = [
    ("seed_cnn", {"in_channels": 1}, (2, 1, 64, 64)),
    ("nodule_resnet25d", {"in_channels": 16, "widths": [8, 16, 32, 64]}, (2, 16, 64, 64)),
    ("resnet2d", {"in_channels": 1, "widths": [8, 16, 32, 64]}, (2, 1, 28, 28)),
    ("cnn3d", {"in_channels": 1}, (2, 1, 32, 32, 32)),
    ("resnet3d", {"in_channels": 1, "widths": [4, 8, 16, 32]}, (2, 1, 16, 32, 32)),
]


@pytest.mark.parametrize("name, params, shape", CASES)
def test_model_runs_and_grad_cam_has_the_input_shape(name, params, shape):
    torch.manual_seed(0)
    model, kwargs = build_model(name, params, {"out_channels": 1})
    model.eval()
    x = torch.rand(shape)
    assert model(x).shape == (shape[0], 1)
    heat = gradcam(model, x.numpy())
    assert heat.shape == (shape[0], *shape[2:]) and heat.min() >= 0 and heat.max() <= 1
    assert "out_channels" in kwargs and kwargs["in_channels"] == shape[1]


def test_3d_cnn_accepts_a_whole_small_volume():
    model, _ = build_model("cnn3d", {}, {"in_channels": 1, "out_channels": 1})
    model.eval()
    assert model(torch.rand(1, 1, 48, 96, 96)).shape == (1, 1)


def test_tta_averages_the_eight_views_and_is_invariant_to_them():
    torch.manual_seed(0)
    model, _ = build_model("nodule_resnet25d", {"widths": [8, 16, 32, 64], "tta": True}, {"in_channels": 4})
    model.eval()
    x = torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), model(torch.rot90(x, 1, dims=(-2, -1))), atol=1e-5)
        assert torch.allclose(model(x), model(x.flip(-1)), atol=1e-5)


def test_grad_cam_points_at_the_evidence():
    """Feature map 0 sees only the top-left quadrant and is the only one the output uses, map 1 sees
    the bottom-right one: the heat must sit top-left although the input is bright everywhere."""

    class Quadrants(torch.nn.Module):
        def forward(self, x):
            top_left = torch.zeros_like(x)
            top_left[..., :16, :16] = 1
            bottom_right = torch.zeros_like(x)
            bottom_right[..., 16:, 16:] = 1
            return torch.cat([x * top_left, x * bottom_right], dim=1)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = Quadrants()
            self.gradcam_layer = "features"

        def forward(self, x):
            return self.features(x)[:, :1].mean(dim=(1, 2, 3)).unsqueeze(1)

    heat = gradcam(Net(), np.ones((1, 1, 32, 32), np.float32))[0]
    assert heat[:14, :14].mean() > 0.9 and heat[18:, 18:].max() < 0.05


def test_overlay_is_rgb_in_unit_range():
    rgb = overlay(np.arange(16.0).reshape(4, 4), np.linspace(0, 1, 16).reshape(4, 4))
    assert rgb.shape == (4, 4, 3) and rgb.min() >= 0 and rgb.max() <= 1


class DeadNet(torch.nn.Module):
    """A ReLU network whose weights are all zero: no activation, no gradient, Grad-CAM zero everywhere."""

    gradcam_layer = "features"

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Linear(4, 1)
        for p in self.parameters():
            torch.nn.init.zeros_(p)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def test_vanishing_gradients_give_a_zero_map_that_is_named():
    heat = gradcam(DeadNet(), np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32))
    assert heat.shape == (2, 16, 16) and not heat.any()
    assert [cam_problem(h) for h in heat] == [ZERO_CAM, ZERO_CAM]
    assert ZERO_CAM == "Grad-CAM is zero everywhere: the last conv block gives no evidence for the class"


def test_cam_problem_tells_zero_non_finite_and_uniform_maps_from_useful_ones():
    assert cam_problem(np.full((4, 4), np.nan)) == ZERO_CAM
    assert cam_problem(np.where(np.eye(4) > 0, np.nan, 1.0)) == ZERO_CAM
    assert cam_problem(np.ones((4, 4))) == UNIFORM_CAM
    assert cam_problem(np.linspace(0, 1, 16).reshape(4, 4)) is None


def test_a_zero_map_overlay_writes_the_sentence_instead_of_a_blank_picture():
    gray = np.tile(np.linspace(0, 1, 32), (32, 1))
    picture = overlay(gray, np.zeros((32, 32)))
    assert picture.shape == (256, 256, 3) and picture.min() >= 0 and picture.max() <= 1
    plain = np.repeat(np.repeat(gray, 8, 0), 8, 1)
    # The text box darkens the middle band; the corners are the input picture itself.
    middle = picture[112:144, 40:216].mean(axis=-1)
    assert middle.mean() < plain[112:144, 40:216].mean() - 0.2
    assert np.allclose(picture[:20, :20].mean(axis=-1), plain[:20, :20], atol=0.02)
    assert overlay(gray, np.linspace(0, 1, 1024).reshape(32, 32)).shape == (
        32,
        32,
        3,
    )  # a real map is not stamped
