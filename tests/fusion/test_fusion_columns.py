"""Fusion over column groups of one (batch, time, features) input: the EHR pairing's layout."""

from __future__ import annotations

import pytest
import torch

from medlearn.fusion.columns import ColumnLayout, group_columns
from medlearn.fusion.model import fused_columns

NAMES = ["lab:k", "lab:na", "measured:k", "measured:na", "time", "age", "sex_F", "history:I10", "history:E11"]
GROUPS = {
    "timeseries": {"prefixes": ["lab:", "measured:", "time"], "series": True},
    "history": {"prefixes": ["history:"]},
    "static": {"prefixes": ["age", "sex_"]},
}


def test_group_columns_by_prefix_and_leaves_out_empty_groups():
    parts = group_columns(NAMES, GROUPS)
    assert parts == {
        "timeseries": {"columns": [0, 1, 2, 3, 4], "series": True},
        "history": {"columns": [7, 8], "series": False},
        "static": {"columns": [5, 6], "series": False},
    }
    assert "history" not in group_columns(NAMES[:7], GROUPS)
    with pytest.raises(ValueError, match="belongs to no group"):
        group_columns([*NAMES, "mystery"], GROUPS)


def test_column_layout_unpacks_series_and_first_step():
    layout = ColumnLayout.from_parts(group_columns(NAMES, GROUPS))
    x = torch.arange(2 * 3 * 9, dtype=torch.float32).reshape(2, 3, 9)
    parts, present = layout.unpack(x)
    assert parts["timeseries"].shape == (2, 3, 5)
    assert parts["history"].shape == (2, 2) and parts["static"].shape == (2, 2)
    torch.testing.assert_close(parts["history"], x[:, 0, 7:9])
    assert present.all() and present.shape == (2, 3)
    with pytest.raises(ValueError, match="columns"):
        layout.unpack(x[:, :, :8])
    with pytest.raises(ValueError, match="overlap"):
        ColumnLayout(("a", "b"), ((0, 1), (1,)), (True, False))


@pytest.mark.parametrize("fusion", ["late", "attention"])
def test_fused_columns_trains_every_encoder(fusion):
    torch.manual_seed(0)
    encoders = {
        "timeseries": {"model": "tabular_mlp"},  # any registered model: an MLP over the flattened series
        "history": {"model": "tabular_mlp", "params": {"hidden": [4]}},
        "static": {"model": "tabular_mlp", "params": {"hidden": []}},
    }
    parts = group_columns(NAMES, GROUPS)
    parts["timeseries"]["series"] = False  # an MLP takes the first step; an LSTM would take the series
    model = fused_columns(parts, encoders, out_channels=3, fusion=fusion, embed_dim=8, heads=2)
    out = model(torch.randn(5, 4, 9))
    assert out.shape == (5, 3)
    out.sum().backward()
    for name, encoder in model.encoders.items():
        assert sum(float(p.grad.abs().sum()) for p in encoder.parameters()) > 0, name
