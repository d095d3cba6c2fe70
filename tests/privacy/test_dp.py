"""DP-SGD wiring (medlearn.privacy.dp) without data files: the config section, δ's rule, what is refused,
per-unit gradients that really are each unit's own, and bundles that rebuild the replaced layers.

Trainings on real data (PneumoniaMNIST) are in test_dp_training.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from medlearn.config import PrivacyConfig, TrainConfig, validate
from medlearn.errors import BundleError, ConfigError
from tests.conftest import require_module

require_module("opacus")

from medlearn.engine.artifacts import LayerReplacement  # noqa: E402
from medlearn.privacy.dp import (  # noqa: E402
    PrivateTraining,
    per_unit_mean,
    rebuild_replaced_layers,
    resolve_delta,
)

BASE = {"task": "cxr_pneumonia", "data": {"root": "imaging/pneumoniamnist.npz"}}


def small_cnn() -> nn.Module:
    """Conv → BatchNorm → ReLU(in place) → pool → linear: the batch norm is what DP-SGD cannot train."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 1),
    )


class LSTMHead(nn.Module):
    """An LSTM read at its last step (Opacus replaces the LSTM by its DPLSTM)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.head = nn.Linear(5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0][:, -1])


def units(n: int, shape: tuple[int, ...]) -> list[tuple[np.ndarray, int]]:
    """``n`` (input, label) pairs of all-zero inputs: what PrivateTraining reads of a dataset (its size and
    the shape of one unit)."""
    return [(np.zeros(shape, np.float32), 0)] * n


# -- the config section -----------------------------------------------------------------------------------
@pytest.mark.parametrize("epsilon", [0, -1.0, float("inf")])
def test_privacy_epsilon_must_be_positive_and_finite(epsilon):
    with pytest.raises(ConfigError, match=r"run\.yaml: privacy\.epsilon: "):
        validate({**BASE, "privacy": {"epsilon": epsilon}}, "run.yaml")


def test_privacy_section_needs_an_epsilon_and_rejects_unknown_keys():
    with pytest.raises(ConfigError, match=r"privacy\.epsilon: Field required"):
        validate({**BASE, "privacy": {"delta": 1e-6}}, "run.yaml")
    with pytest.raises(ConfigError, match=r"privacy\.noise: unknown key"):
        validate({**BASE, "privacy": {"epsilon": 3, "noise": 1.0}}, "run.yaml")


def test_a_config_without_privacy_trains_without_it():
    assert validate(BASE, "run.yaml").privacy is None
    cfg = validate({**BASE, "privacy": {"epsilon": 3}}, "run.yaml").privacy
    assert (cfg.epsilon, cfg.delta, cfg.max_grad_norm, cfg.accountant) == (3.0, None, 1.0, "prv")


# -- δ ----------------------------------------------------------------------------------------------------
def test_delta_defaults_to_a_tenth_of_one_over_n_train():
    delta, rule = resolve_delta(PrivacyConfig(epsilon=3), 4708)
    assert delta == pytest.approx(1 / 47080) and delta < 1 / 4708
    assert rule == "1/(10·n_train), n_train = 4708"


def test_a_configured_delta_below_one_over_n_train_is_kept():
    assert resolve_delta(PrivacyConfig(epsilon=3, delta=1e-5), 4708) == (1e-5, "configured")


def test_a_delta_of_one_over_n_train_or_more_is_refused():
    with pytest.raises(ConfigError, match=r"privacy\.delta: 0\.001 is not below 1/n_train = 1/1000"):
        resolve_delta(PrivacyConfig(epsilon=3, delta=1e-3), 1000)


# -- what DP-SGD does not train ------------------------------------------------------------------------------
def test_a_tree_model_with_privacy_is_one_config_error():
    from medlearn.engine.trees import BoostedTrees

    with pytest.raises(ConfigError, match="not supported for BoostedTrees, a model fitted in one pass"):
        PrivateTraining(PrivacyConfig(epsilon=3), TrainConfig(), BoostedTrees(), units(50, (4,)), 3)


def test_a_generator_with_privacy_is_one_config_error():
    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)

        def training_loss(self, x: torch.Tensor) -> torch.Tensor:
            return self.embed(x).mean()

    with pytest.raises(ConfigError, match=r"not supported for generative models \(Generator\)"):
        PrivateTraining(PrivacyConfig(epsilon=3), TrainConfig(), Generator(), units(50, (4,)), 3)


def test_a_generative_task_with_privacy_fails_before_any_data_is_read(tmp_path):
    """The molecule generators: refused from the config alone (data.root does not even exist)."""
    require_module("rdkit")
    from medlearn.config import load_config
    from medlearn.engine.run import train_experiment

    cfg = load_config("mol_charrnn_moses", ["privacy.epsilon=3", f"data.root={tmp_path / 'absent'}"])
    with pytest.raises(ConfigError, match="privacy: differential privacy is not supported for generative"):
        train_experiment(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_grad_clip_beside_privacy_is_refused():
    with pytest.raises(ConfigError, match=r"train\.grad_clip: with privacy each unit's gradient is clipped"):
        PrivateTraining(
            PrivacyConfig(epsilon=3), TrainConfig(grad_clip=1.0), small_cnn(), units(50, (1, 8, 8)), 3
        )


def test_a_model_opacus_cannot_differentiate_per_unit_is_one_config_error():
    """A layer of its own with a buffer (state Opacus cannot make private): refused, naming the model."""

    class RunningScale(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(4))
            self.register_buffer("seen", torch.zeros(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.weight

    model = nn.Sequential(nn.Linear(4, 4), RunningScale(), nn.Linear(4, 1))
    private = PrivateTraining(PrivacyConfig(epsilon=3), TrainConfig(), model, units(50, (4,)), 3)
    with pytest.raises(
        ConfigError, match="privacy: Opacus cannot compute per-unit gradients of model Sequential"
    ):
        private.attach(torch.optim.SGD(model.parameters(), lr=0.1))


# -- layers and per-unit gradients -------------------------------------------------------------------------
def test_batch_norm_is_replaced_in_the_model_itself_and_recorded():
    model = small_cnn()
    private = PrivateTraining(PrivacyConfig(epsilon=3), TrainConfig(), model, units(50, (1, 8, 8)), 3)
    assert isinstance(model[1], nn.GroupNorm) and not model[2].inplace
    assert private.replaced == [
        {
            "path": "1",
            "replaced": "BatchNorm2d",
            "by": "GroupNorm",
            "params": {"num_groups": 4, "num_channels": 4, "eps": 1e-5, "affine": True},
        }
    ]


# torch notes that Opacus' backward hooks fire although the inputs need no gradient: as intended
@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_per_unit_gradients_are_each_units_own_gradient(kind):
    """What Opacus clips must be each unit's gradient of its own loss, for both per-unit gradient engines
    (ExpandedWeights for the CNN, Opacus' hooks and DPLSTM for the LSTM)."""

    torch.manual_seed(0)
    model, shape = (small_cnn(), (1, 8, 8)) if kind == "cnn" else (LSTMHead(), (6, 3))
    private = PrivateTraining(PrivacyConfig(epsilon=3), TrainConfig(), model, units(50, shape), 3)
    assert private.mode == ("ew" if kind == "cnn" else "hooks")
    reference = copy.deepcopy(model)  # the fixed model (batch norm replaced), without Opacus' hooks
    optimizer = private.attach(torch.optim.SGD(model.parameters(), lr=0.1))
    x, y = torch.randn(5, *shape), torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    bce = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))
    optimizer.zero_grad()
    private.loss(bce)(private.module(x)[:, 0], y).backward()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    per_unit = {n: p.grad_sample for n, p in model.named_parameters() if p.requires_grad}
    reference.train()
    params = dict(reference.named_parameters())
    for i in range(5):
        own = bce(reference(x[i : i + 1])[:, 0], y[i : i + 1])
        grads = torch.autograd.grad(own, [params[n] for n in names])
        for n, g in zip(names, grads):
            assert torch.allclose(per_unit[n][i], g, atol=1e-5), (kind, n, i)
    private.detach()


def test_an_empty_poisson_batch_takes_a_noise_only_step_that_is_accounted():
    model = small_cnn()
    cfg = PrivacyConfig(epsilon=3, accountant="rdp")
    private = PrivateTraining(cfg, TrainConfig(), model, units(200, (1, 8, 8)), 3)
    private.attach(torch.optim.SGD(model.parameters(), lr=0.1))
    before = [p.detach().clone() for p in model.parameters()]
    private.empty_step()
    assert private.steps() == 1 and private.epsilon() > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # noise moved them


def test_weighted_cross_entropy_is_averaged_over_units_not_over_weights():
    ce = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0]))
    out, y = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 1, 1])
    expected = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0]), reduction="none")(out, y).mean()
    assert per_unit_mean(ce)(out, y) == pytest.approx(float(expected))
    assert per_unit_mean(ce)(out, y) != pytest.approx(float(ce(out, y)))  # the weighted mean differs
    assert ce.reduction == "mean"  # the task's own loss is untouched


# -- bundles ---------------------------------------------------------------------------------------------
def test_a_fresh_model_rebuilds_the_replaced_layers_and_loads_the_private_weights():
    trained = small_cnn()
    private = PrivateTraining(PrivacyConfig(epsilon=3), TrainConfig(), trained, units(50, (1, 8, 8)), 3)
    with torch.no_grad():
        trained[1].weight.mul_(1.5)
    fresh = small_cnn()
    with pytest.raises(RuntimeError):  # batch norm's running statistics have no place in the weights
        fresh.load_state_dict(trained.state_dict())
    rebuild_replaced_layers(fresh, [LayerReplacement(**r) for r in private.replaced])
    fresh.load_state_dict(trained.state_dict())
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(fresh.eval()(x), trained.eval()(x))


def test_a_replacement_that_does_not_match_the_model_is_a_bundle_error():
    wrong = LayerReplacement(path="0", replaced="BatchNorm2d", by="GroupNorm", params={})
    with pytest.raises(
        BundleError, match="privacy.replaced_layers: 0 is a Conv2d, not the recorded BatchNorm2d"
    ):
        rebuild_replaced_layers(small_cnn(), [wrong])
    missing = LayerReplacement(path="9", replaced="BatchNorm2d", by="GroupNorm", params={})
    with pytest.raises(BundleError, match="the model has no layer '9'"):
        rebuild_replaced_layers(small_cnn(), [missing])


def test_bundle_metadata_without_privacy_still_loads():
    from tests.engine.minimal_meta import minimal_meta

    assert minimal_meta().privacy is None
