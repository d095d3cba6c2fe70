"""Signal networks: any input length, named Grad-CAM layers, state dicts that save without aliasing."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from medlearn.signals.models import cnn1d, cnn_lstm, epoch_gru, resnet1d


@pytest.mark.parametrize(
    "factory,shape",
    [(resnet1d, (2, 1, 3000)), (cnn1d, (2, 4, 126)), (cnn_lstm, (2, 1, 2000)), (epoch_gru, (2, 72, 15))],
)
def test_models_map_any_length_to_class_scores_and_round_trip(factory, shape, tmp_path):
    torch.manual_seed(0)
    model = factory(shape[1], 5).eval()
    out = model(torch.randn(*shape))
    assert out.shape == (2, 5)
    if factory is not epoch_gru:
        assert model(torch.randn(shape[0], shape[1], shape[2] + 37)).shape == (
            2,
            5,
        )  # length-agnostic pooling
        layer = model.get_submodule(model.gradcam_layer)
        assert isinstance(layer, torch.nn.Module)
    save_file(model.state_dict(), str(tmp_path / "m.safetensors"))  # no shared tensors
    again = factory(shape[1], 5).eval()
    again.load_state_dict(load_file(str(tmp_path / "m.safetensors")))
    x = torch.randn(*shape)
    assert torch.allclose(again(x), model(x))
