"""medlearn.fusion on small synthetic tensors: packing, masking, modality dropout, gradient flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.errors import ConfigError, InputError
from medlearn.fusion.model import drop_modalities, fused
from medlearn.fusion.packing import FusionPack, Layout, PackedAugmentation

LAYOUT = Layout.from_parts({"grid": (2, 3, 3), "vector": (5,)})
INPUTS = {"grid": {"shape": [2, 3, 3], "in_features": 18}, "vector": {"shape": [5], "in_features": 5}}
ENCODERS = {"grid": {"model": "tabular_mlp", "params": {"hidden": [8]}}, "vector": {"model": "tabular_mlp"}}


def _batch(n: int, seed: int = 0, absent: str | None = None) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    rows = [
        LAYOUT.pack(
            {
                "grid": None if absent == "grid" else rng.normal(size=(2, 3, 3)),
                "vector": None if absent == "vector" else rng.normal(size=5),
            }
        )
        for _ in range(n)
    ]
    return torch.from_numpy(np.stack(rows))


def test_pack_unpack_round_trip_and_absent_part():
    grid, vector = np.arange(18.0).reshape(2, 3, 3), np.arange(5.0) + 100
    packed = LAYOUT.pack({"grid": grid, "vector": vector})
    assert packed.shape == (LAYOUT.width,) == (18 + 5 + 2,) and packed.dtype == np.float32
    parts, present = LAYOUT.unpack_one(packed)
    np.testing.assert_array_equal(parts["grid"], grid)
    np.testing.assert_array_equal(parts["vector"], vector)
    assert present.tolist() == [True, True]
    parts, present = LAYOUT.unpack_one(LAYOUT.pack({"grid": grid}))
    assert present.tolist() == [True, False]
    assert not parts["vector"].any()


def test_pack_refuses_wrong_shapes_and_unknown_parts():
    with pytest.raises(InputError, match="part 'vector' has shape"):
        LAYOUT.pack({"vector": np.zeros(4)})
    with pytest.raises(InputError, match="does not name"):
        LAYOUT.pack({"text": np.zeros(4)})
    with pytest.raises(ValueError, match="packed input must be"):
        LAYOUT.unpack(torch.zeros(2, LAYOUT.width + 1))


def test_fusion_pack_runs_each_parts_own_preprocessing():
    pack = FusionPack(
        [
            {"name": "grid", "shape": [2, 3, 3], "spec": []},
            {
                "name": "vector",
                "shape": [5],
                "spec": [{"name": "normalize", "params": {"mean": 1.0, "std": 2.0}}],
            },
        ]
    )
    out = pack({"grid": np.ones((2, 3, 3)), "vector": np.full(5, 3.0)})
    parts, present = pack.layout.unpack_one(out)
    np.testing.assert_allclose(parts["vector"], 1.0)  # (3 - 1) / 2
    assert present.all()
    assert pack.layout.unpack_one(pack({"grid": np.ones((2, 3, 3)), "vector": None}))[1].tolist() == [
        True,
        False,
    ]
    with pytest.raises(InputError, match="none of the parts"):
        pack({})
    with pytest.raises(InputError, match="unit of named parts"):
        pack(np.zeros(3))


def test_packed_augmentation_touches_only_present_parts():
    flips = PackedAugmentation(LAYOUT, {"grid": lambda g: -g})
    x = LAYOUT.pack({"grid": np.ones((2, 3, 3)), "vector": np.ones(5)})
    parts, _ = LAYOUT.unpack_one(flips(x))
    assert (parts["grid"] == -1).all() and (parts["vector"] == 1).all()
    absent = LAYOUT.pack({"vector": np.ones(5)})
    np.testing.assert_array_equal(flips(absent), absent)


def test_modality_dropout_never_empties_a_unit():
    present = torch.ones(2000, 3, dtype=torch.bool)
    present[:500, 1:] = False  # units with one part only must keep it
    dropped = drop_modalities(present, 0.6, torch.Generator().manual_seed(0))
    assert dropped.any(1).all()
    assert (dropped[:500, 0]).all()
    share = 1 - dropped[500:].float().mean().item()
    # each part drawn with p = 0.6, less the units whose 3 parts were all drawn (restored): 0.6 - 0.6**3
    assert share == pytest.approx(0.6 - 0.6**3, abs=0.02)
    assert torch.equal(drop_modalities(present, 0.0), present)


@pytest.mark.parametrize("fusion", ["late", "attention"])
def test_fused_model_output_shape_and_gradients_reach_every_encoder(fusion):
    torch.manual_seed(0)
    model = fused(INPUTS, ENCODERS, fusion=fusion, embed_dim=8, heads=2, modality_dropout=0.3)
    x = _batch(6)
    out = model(x)
    assert out.shape == (6, 1) and torch.isfinite(out).all()
    out.sum().backward()
    for name, encoder in model.encoders.items():
        grads = [p.grad for p in encoder.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name


def test_late_fusion_with_a_part_absent_is_the_other_parts_own_logit():
    torch.manual_seed(0)
    model = fused(INPUTS, ENCODERS, fusion="late", embed_dim=8).eval()
    x = _batch(4, absent="vector")
    emb, present = model.embeddings(x)
    assert present[:, 1].logical_not().all()
    alone = model.heads["grid"](emb[:, 0])
    torch.testing.assert_close(model(x), alone)


@pytest.mark.parametrize("fusion", ["late", "attention"])
def test_an_absent_parts_values_do_not_reach_the_output(fusion):
    """Masking: once flagged absent, whatever the vector part holds cannot change the prediction."""
    torch.manual_seed(0)
    model = fused(INPUTS, ENCODERS, fusion=fusion, embed_dim=8, heads=2).eval()
    x = _batch(4, absent="vector")
    noisy = x.clone()
    noisy[:, 18:23] = torch.randn(4, 5) * 100  # garbage where the absent part sits, flag still 0
    torch.testing.assert_close(model(x), model(noisy))
    full = _batch(4)
    assert not torch.allclose(model(full), model(_batch(4, absent="vector")))


def test_attention_learns_its_missing_token():
    torch.manual_seed(0)
    model = fused(INPUTS, ENCODERS, fusion="attention", embed_dim=8, heads=2, modality_dropout=0.0)
    model(_batch(4, absent="vector")).sum().backward()
    assert model.missing.grad is not None
    assert model.missing.grad[1].abs().sum() > 0  # the absent part's token took part
    assert model.missing.grad[0].abs().sum() == 0  # the present part's did not


def test_fused_refuses_encoders_that_do_not_match_the_parts():
    with pytest.raises(ValueError, match="missing \\['vector'\\]"):
        fused(INPUTS, {"grid": ENCODERS["grid"]})
    with pytest.raises(ValueError, match="multiple of heads"):
        fused(INPUTS, ENCODERS, embed_dim=6, heads=4)
    with pytest.raises(ConfigError, match="unknown model"):
        fused(INPUTS, {**ENCODERS, "vector": {"model": "no_such_model"}})


def test_attention_mixing_equals_torchs_encoder_and_exports_to_onnx(tmp_path):
    """The step-by-step mixing gives what nn.TransformerEncoder gives (its eval fast path cannot be
    exported to ONNX), and the fused model exports."""
    torch.manual_seed(0)
    model = fused(INPUTS, ENCODERS, fusion="attention", embed_dim=8, heads=2).eval()
    seq = torch.randn(3, 3, 8)
    with torch.no_grad():
        torch.testing.assert_close(model._mix(seq), model.mixer(seq), atol=1e-6, rtol=1e-5)
    x = _batch(2)
    path = tmp_path / "fused.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["x"], dynamo=False)
    assert path.stat().st_size > 0
