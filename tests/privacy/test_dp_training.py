"""Private trainings on real data: PneumoniaMNIST's official split, a small ResNet (MONAI) whose batch norms
DP-SGD cannot train. Each test takes a few seconds on one torch thread.

End to end, one ``train_experiment`` with ``privacy:`` on the whole training split (3 Poisson batches):
what the bundle, ``metrics.json``, the report and the model card say, and the bundle rebuilding its
replaced layers to reproduce the run's own predictions.

At the Trainer, on a few hundred images: the record a private fit hands to its bundle (ε spent within the
target, δ, the batch norms replaced), every unit's gradient clipped before the noise (seen on the
parameters during training), a model that differs from the non-private one of the same seed and start
while a private fit repeats exactly, and a resumed fit that continues the privacy account.
"""

from __future__ import annotations

import copy
import csv
import json
import math

import numpy as np
import pytest
import torch

from medlearn.config import PrivacyConfig, TrainConfig, load_config
from medlearn.engine.callbacks import Callback, FitState
from tests.conftest import require_data, require_module

require_module("opacus")
require_module("monai")

# One torch thread: these small convolutions are fastest on one, and two threads on a busy machine
# (CI shares its cores) spin-wait for each other.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

NPZ = "imaging/pneumoniamnist.npz"
CLIP = 0.5
#: a small ResNet, 3 Poisson batches of ~64 images, ε = 3 over the one configured epoch
TINY = [
    "model.params={widths: [8, 16, 32, 64], layers: [1, 1, 1, 1]}",
    "train.epochs=1",
    "train.max_train_batches=3",
    "train.batch_size=64",
    "eval.n_bootstrap=20",
    "train.augment=false",
    "data.cache=false",
    "privacy.epsilon=3",
    f"privacy.max_grad_norm={CLIP}",
]


class ClippingProbe(Callback):
    """After each epoch's last step, what Opacus left on the parameters: every unit's gradient
    (``grad_sample``) and the sum of the clipped ones before the noise (``summed_grad``)."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def on_fit_start(self, state: FitState) -> None:
        self.model = state.model

    def on_epoch_end(self, epoch: int, row: dict) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        per_unit = [p.grad_sample for p in params]
        norms = torch.stack([g.reshape(len(g), -1).norm(dim=1) for g in per_unit], dim=1).norm(dim=1)
        factor = (CLIP / (norms + 1e-6)).clamp(max=1.0)
        summed = torch.cat([p.summed_grad.reshape(-1) for p in params])
        clipped = torch.cat([torch.einsum("i,i...", factor, g).reshape(-1) for g in per_unit])
        self.seen.append(
            {
                "units": len(per_unit[0]),
                "shapes": all(g.shape[1:] == p.shape for g, p in zip(per_unit, params)),
                "largest_unit_norm": float(norms.max()),
                "summed_is_sum_of_clipped": bool(torch.allclose(summed, clipped, atol=1e-6)),
                "summed_norm": float(summed.norm()),
                "unclipped_norm": float(torch.cat([g.sum(0).reshape(-1) for g in per_unit]).norm()),
            }
        )


@pytest.fixture(scope="module")
def private_run(tmp_path_factory):
    from medlearn.engine.run import train_experiment

    require_data(NPZ)
    out = tmp_path_factory.mktemp("dp") / "cxr"
    return train_experiment(load_config("cxr_pneumonia", TINY), out, device="cpu")


def test_the_bundle_records_an_epsilon_spent_within_its_target(private_run):
    from medlearn.engine.bundle import load_bundle

    outputs = private_run
    p = load_bundle(outputs.bundle).meta.privacy
    assert 0 < p.epsilon <= p.target_epsilon == 3.0
    assert p.delta == pytest.approx(1 / (10 * 4708)) and p.delta_rule.startswith("1/(10·n_train)")
    assert p.steps == 3 and p.epochs_planned == 1 and p.n_train == 4708
    assert p.sample_rate == pytest.approx(1 / math.ceil(4708 / 64)) and p.poisson_sampling
    assert p.max_grad_norm == CLIP and p.noise_multiplier > 0.3 and p.accountant == "prv"


def test_batch_norm_was_replaced_the_replacement_recorded_and_rebuilt_when_the_bundle_loads(private_run):
    from medlearn.engine.bundle import load_bundle

    outputs = private_run
    bundle = load_bundle(outputs.bundle)
    replaced = bundle.meta.privacy.replaced_layers
    assert len(replaced) == 12  # stem + 2 per block x 4 blocks + 3 downsampling branches
    assert {(r.replaced, r.by) for r in replaced} == {("BatchNorm2d", "GroupNorm")}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in bundle.model.modules())
    # the rebuilt model is the trained one: it reproduces the run's own test predictions
    with (outputs.out / "predictions.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"][:16]
    images = np.load(require_data(NPZ))["test_images"][:16]
    probabilities = bundle.predict_arrays([bundle.preprocessing(im) for im in images])
    assert [r["id"] for r in rows] == [f"test-{i:05d}" for i in range(16)]
    np.testing.assert_allclose(probabilities, [float(r["probability"]) for r in rows], atol=1e-5)


def test_metrics_json_report_and_model_card_state_the_privacy_spent(private_run):
    from medlearn.engine.bundle import load_bundle

    outputs = private_run
    record = load_bundle(outputs.bundle).meta.privacy
    metrics = json.loads((outputs.out / "metrics.json").read_text())
    assert metrics["privacy"] == record.model_dump(mode="json")
    card = (outputs.bundle / "model_card.md").read_text()
    assert f"**ε = {record.epsilon:.3g}** spent (target 3)" in card
    assert "BatchNorm2d → GroupNorm" in card and "outside it" in card
    report = (outputs.out / "report.html").read_text()
    assert "<h3>Differential privacy</h3>" in report and f"{record.epsilon:.3g} of target 3" in report


# -- Trainer-level runs on a real subset -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pneumonia():
    """512 training and 128 validation images of PneumoniaMNIST, preprocessed as the task does."""
    from medlearn.engine.data import CachedDataset, Preprocessing
    from medlearn.registry import task_class

    task = task_class("cxr_pneumonia")({})
    table = task.load(require_data(NPZ))
    pre = Preprocessing(task.preprocessing_spec("resnet2d"))

    def dataset(split: str, n: int) -> CachedDataset:
        units = table.subset(np.flatnonzero(table.split == split)[:n])
        return CachedDataset(units.raw, units.targets, pre)

    return task.target, dataset("train", 512), dataset("val", 128)


def small_resnet() -> torch.nn.Module:
    from medlearn.imaging.models import resnet2d

    torch.manual_seed(0)
    return resnet2d(widths=(8, 16, 32, 64), layers=(1, 1, 1, 1))


def fit(target, train, val, model, privacy=None, checkpoints=None, resume=False, callbacks=(), epochs=2):
    from medlearn.engine.trainer import Trainer

    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.002, scheduler="none", augment=False)
    trainer = Trainer(cfg, target, checkpoint_dir=checkpoints, callbacks=callbacks, privacy=privacy)
    return trainer.fit(model, train, val, resume=resume)


def test_a_private_fit_records_epsilon_within_its_target_and_the_replaced_batch_norms(pneumonia):
    from medlearn.engine.artifacts import PrivacyRecord

    target, train, val = pneumonia
    model = small_resnet()
    result = fit(target, train, val, model, PrivacyConfig(epsilon=3, max_grad_norm=CLIP), epochs=1)
    record = PrivacyRecord(**result.extra["privacy"])  # what run.py hands to the bundle, validated
    assert 0 < record.epsilon <= record.target_epsilon == 3.0
    assert record.delta == pytest.approx(1 / (10 * 512)) and record.delta_rule.startswith("1/(10·n_train)")
    assert record.steps == math.ceil(512 / 64) and record.sample_rate == pytest.approx(1 / 8)
    assert record.noise_multiplier > 0.3 and record.max_grad_norm == CLIP
    assert len(record.replaced_layers) == 12  # stem + 2 per block x 4 blocks + 3 downsampling branches
    assert {(r.replaced, r.by) for r in record.replaced_layers} == {("BatchNorm2d", "GroupNorm")}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())  # Opacus detached after the fit


def test_each_units_gradient_was_clipped_before_the_noise_during_training(pneumonia):
    target, train, val = pneumonia
    probe = ClippingProbe()
    fit(target, train, val, small_resnet(), PrivacyConfig(epsilon=3, max_grad_norm=CLIP), callbacks=[probe])
    assert len(probe.seen) == 2
    for seen in probe.seen:
        assert seen["units"] > 20 and seen["shapes"]  # Opacus' per-unit gradients, one row per image
        assert seen["largest_unit_norm"] > CLIP  # so clipping had work to do
        assert seen["summed_is_sum_of_clipped"]  # the sum DP-SGD noises is of the clipped gradients
        assert seen["summed_norm"] <= seen["units"] * CLIP + 1e-4 < seen["unclipped_norm"]


def test_private_training_differs_from_the_same_start_and_seed_without_privacy(pneumonia):
    """Both runs start from the same weights of the same (group-norm) network with the same seed: only
    DP-SGD's Poisson batches, clipping and noise can make them differ; twice private is the same model."""
    from medlearn.privacy.dp import fix_model

    target, train, val = pneumonia
    start = small_resnet()
    fix_model(start)  # batch norm → group norm for both runs
    plain = fit(target, train, val, copy.deepcopy(start), epochs=1)
    private = fit(target, train, val, copy.deepcopy(start), PrivacyConfig(epsilon=3), epochs=1)
    again = fit(target, train, val, copy.deepcopy(start), PrivacyConfig(epsilon=3), epochs=1)
    assert private.extra["privacy"]["replaced_layers"] == []  # nothing left to replace
    assert "privacy" not in plain.extra
    differing = [
        k for k in plain.best_state if not torch.allclose(plain.best_state[k], private.best_state[k])
    ]
    assert len(differing) == len(plain.best_state)
    assert all(torch.equal(private.best_state[k], again.best_state[k]) for k in private.best_state)
    assert private.extra["privacy"]["epsilon"] == again.extra["privacy"]["epsilon"] <= 3


def test_a_resumed_private_fit_continues_the_privacy_account(pneumonia, tmp_path):
    """Stopped after epoch 1 and resumed from its checkpoint, the fit spends what an uninterrupted one
    does (the accountant's history travels in the checkpoint) and ends with the same weights."""

    class StopAfterFirstEpoch(Callback):
        def on_fit_start(self, state: FitState) -> None:
            self.state = state

        def on_epoch_end(self, epoch: int, row: dict) -> None:
            self.state.should_stop = True

    target, train, val = pneumonia
    privacy = PrivacyConfig(epsilon=3, accountant="rdp")
    whole = fit(target, train, val, small_resnet(), privacy, tmp_path / "whole")
    first = fit(
        target, train, val, small_resnet(), privacy, tmp_path / "cut", callbacks=[StopAfterFirstEpoch()]
    )
    resumed = fit(target, train, val, small_resnet(), privacy, tmp_path / "cut", resume=True)
    steps_per_epoch = math.ceil(512 / 64)
    assert first.extra["privacy"]["steps"] == steps_per_epoch
    assert resumed.extra["privacy"]["steps"] == whole.extra["privacy"]["steps"] == 2 * steps_per_epoch
    assert (
        resumed.extra["privacy"]["epsilon"]
        == whole.extra["privacy"]["epsilon"]
        > first.extra["privacy"]["epsilon"]
    )
    assert all(torch.equal(whole.best_state[k], resumed.best_state[k]) for k in whole.best_state)
