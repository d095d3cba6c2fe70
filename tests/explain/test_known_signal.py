"""Explanations tested on models whose evidence is known: one small model per modality (a 2D CNN, a
1D CNN on a signal, an LSTM on time bins × features, gradient-boosted trees), each trained in a second or
two on data where the class sits in one place. The attribution mass must be there, randomising the
weights (Adebayo et al. 2018) must drop the rank correlation below the stated threshold, and deleting
the most-attributed inputs first must lower the class probability faster than deleting random ones."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from medlearn.engine.posthoc import Calibration
from medlearn.explain.layout import InputLayout
from medlearn.explain.run import explain_arrays, summarise
from medlearn.explain.sanity import PASS_BELOW


def fake_bundle(model: nn.Module, layout: InputLayout, kind: str = "binary", classes=("absent", "present")):
    """What explain_arrays reads of a bundle: the model, its kind, classes, calibration and layout."""
    task = SimpleNamespace(explanation_layout=lambda pre: layout, name="known_signal")
    return SimpleNamespace(
        model=model.eval(),
        kind=kind,
        class_names=list(classes),
        calibration=Calibration(),
        threshold=0.5,
        device=torch.device("cpu"),
        path=Path("memory"),
        task=task,
        preprocessing=None,
    )


def fit(model: nn.Module, x: np.ndarray, y: np.ndarray, steps: int = 150, lr: float = 0.01) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).float()
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(xt)[:, 0], yt)
        loss.backward()
        opt.step()
    return model.eval()


# -- imaging: a bright square in the top-left quadrant ----------------------------------------------------


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 1))
        self.gradcam_layer = "features.3"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.2, (n, 1, 16, 16)).astype(np.float32)
    y = np.arange(n) % 2
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, 5, 2)
        x[i, 0, r : r + 4, c : c + 4] += 1.5
    return x, y


@pytest.fixture(scope="module")
def image_model() -> nn.Module:
    x, y = squares(120, 0)
    return fit(TinyCNN(), x, y, steps=80)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_image_cam_sits_on_the_square_and_passes_both_checks(image_model, method):
    x, _ = squares(8, 1)
    positives = [x[i] for i in range(1, 8, 2)]
    layout = InputLayout(kind="image", methods=["gradcam"])
    found = explain_arrays(fake_bundle(image_model, layout), positives, [method])
    assert found.predicted == [1, 1, 1, 1]
    for item in found.items:
        heat = item.attribution[0]
        assert heat[:8, :8].sum() / heat.sum() > 0.6  # the squares lie within rows/cols 0-8
        assert (
            item.checks["model_randomisation"]["final"] is None
            or item.checks["model_randomisation"]["final"] < PASS_BELOW
        )
    summary = summarise(found.items)[method]
    assert summary["deletion_beats_random"] == "4/4" and summary["beats_random_ratio"] == 0.98
    assert summary["deletion_ratio_median"] < 0.8


def test_the_negative_class_is_explained_when_predicted_and_target_can_choose(image_model):
    x, _ = squares(4, 2)
    negative = [x[0]]
    layout = InputLayout(kind="image", methods=["gradcam"])
    found = explain_arrays(fake_bundle(image_model, layout), negative, ["integrated_gradients"], checks=False)
    assert found.targets == [0] and found.items[0].probability > 0.5  # P(absent), the predicted class
    forced = explain_arrays(
        fake_bundle(image_model, layout), negative, ["integrated_gradients"], "present", False
    )
    assert forced.targets == [1] and forced.items[0].probability < 0.5


# -- signals: a 10 Hz burst between 1.0 and 1.5 s ---------------------------------------------------------


def bursts(n: int, seed: int, fs: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (n, 1, 200)).astype(np.float32)
    y = np.arange(n) % 2
    t = np.arange(50) / fs
    for i in np.flatnonzero(y):
        x[i, 0, 100:150] += np.sin(2 * np.pi * 10 * t) * 1.5  # 1.0-1.5 s
    return x, y


class TinyCNN1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 8, 9, padding=4), nn.ReLU(), nn.Conv1d(8, 8, 9, padding=4), nn.ReLU()
        )
        self.head = nn.Sequential(nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def signal_model() -> nn.Module:
    x, y = bursts(100, 0)
    return fit(TinyCNN1d(), x, y, steps=80)


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_signal_attribution_sits_on_the_burst_and_passes_both_checks(signal_model, method):
    model = signal_model
    test, _ = bursts(6, 1)
    layout = InputLayout(kind="signal", methods=["integrated_gradients"], fs_hz=100.0)
    found = explain_arrays(fake_bundle(model, layout), [test[i] for i in (1, 3, 5)], [method])
    for item in found.items:
        mass = np.clip(item.attribution[0], 0, None)
        assert mass[95:155].sum() / mass.sum() > 0.6
        randomised = item.checks["model_randomisation"]
        assert randomised["judged_on"] == "signed" and randomised["passes"]
        assert randomised["final_signed"] < PASS_BELOW
        # the absolute ranking, reported beside it, keeps part of the burst's own amplitude under any
        # weights (input dominance): 0.5-0.9 here
        assert randomised["final"] is not None
    assert summarise(found.items)[method]["deletion_beats_random"] in ("2/3", "3/3")


# -- EHR sequence: feature 2 high in the last 3 bins ------------------------------------------------------


def admissions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 12, 6)).astype(np.float32)
    y = np.arange(n) % 2
    x[y == 1, 9:, 2] += 2.0
    return x, y


def test_sequence_attribution_names_the_feature_and_the_bins_that_carry_the_class():
    from medlearn.ehr.models import LSTMModel

    x, y = admissions(200, 0)
    model = fit(LSTMModel(in_features=6, out_channels=1), x, y, steps=80)
    test, _ = admissions(6, 1)
    names = [f"lab:{k}" for k in "abcdef"]
    layout = InputLayout(kind="sequence", bin_hours=2.0, feature_names=names, feature_units=["z"] * 6)
    found = explain_arrays(fake_bundle(model, layout), [test[i] for i in (1, 3, 5)])
    for item in found.items:
        per_feature = np.abs(item.attribution).sum(axis=0)
        assert int(per_feature.argmax()) == 2
        assert np.abs(item.attribution[9:, 2]).sum() > 0.5 * np.abs(item.attribution[:, 2]).sum()
    summary = summarise(found.items)["integrated_gradients"]
    assert summary["model_randomisation_spearman_median"] < PASS_BELOW  # signed ranking
    assert summary["deletion_beats_random"] == "3/3"


# -- gradient boosting: the mean of feature 3 decides -----------------------------------------------------


def test_tree_shapley_contributions_find_the_deciding_feature_and_pass_both_checks():
    from medlearn.ehr.models import gradient_boosting

    x, y = admissions(300, 0)
    x[:, :, 2] = np.random.default_rng(5).normal(0, 1, (300, 12))  # no signal in feature 2 here
    x[y == 1, :, 3] += 1.0
    model = gradient_boosting(in_features=6, out_channels=1, max_iter=30)
    model.fit_arrays(x, y, "binary", None, seed=0)
    layout = InputLayout(kind="sequence", feature_names=[f"f{k}" for k in range(6)])
    test = [x[i] for i in range(1, 12, 2)]
    found = explain_arrays(fake_bundle(model, layout), test)
    assert {i.method for i in found.items} == {"shapley"}
    for item in found.items:
        assert int(np.abs(item.attribution[0]).argmax()) == 3
    summary = summarise(found.items)["shapley"]
    assert summary["model_randomisation_spearman_median"] < PASS_BELOW
    assert summary["deletion_beats_random"] == f"{len(test)}/{len(test)}"


# -- label randomisation: a model trained on shuffled labels explains differently -------------------------


@pytest.mark.slow
def test_a_model_trained_on_shuffled_labels_gives_uncorrelated_maps(image_model):
    from medlearn.explain.sanity import rank_correlation

    x, y = squares(120, 0)
    shuffled = fit(TinyCNN(), x, np.random.default_rng(3).permutation(y), steps=80)
    test, _ = squares(8, 1)
    positives = [test[i] for i in range(1, 8, 2)]
    layout = InputLayout(kind="image", methods=["gradcam"])
    found = explain_arrays(
        fake_bundle(image_model, layout), positives, ["gradcam"], shuffled=fake_bundle(shuffled, layout)
    )
    labels = [i.checks["label_randomisation"]["spearman"] for i in found.items]
    assert all(r is None or r < PASS_BELOW for r in labels)
    assert rank_correlation(found.items[0].attribution, found.items[0].attribution) == pytest.approx(1.0)
