"""The in-script rules on trials written by a real smdebug hook around tiny models."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import smdebug.pytorch as smd
import torch
from smdebug import modes
from smdebug.trials import create_trial
from torch import nn

from dogclf import rules


def _train_trial(out_dir, model: nn.Module, *, steps: int = 12, lr: float = 0.05, seed: int = 0):
    torch.manual_seed(seed)
    hook = smd.Hook(
        out_dir=str(out_dir),
        export_tensorboard=False,
        save_config=smd.SaveConfig(save_interval=1),
        include_collections=["losses", "gradients", "relu_input"],
    )
    hook.get_collection("relu_input").include(".*relu_input")
    hook.register_module(model)
    criterion = nn.CrossEntropyLoss()
    hook.register_loss(criterion)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    inputs = torch.randn(64, 8)
    targets = (inputs[:, 0] > 0).long()
    hook.set_mode(modes.TRAIN)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
    hook.close()
    return create_trial(str(out_dir))


def _mlp(scale_layer: int | None = None, scale: float = 1.0) -> nn.Module:
    """Three Linear+ReLU blocks and an output layer; ReLUs named "relu" as in torchvision models, so
    smdebug saves "<block>.relu_input_0" tensors that the default ".*relu_input" regex selects."""
    blocks = [
        nn.Sequential(OrderedDict(fc=nn.Linear(8 if i == 0 else 16, 16), relu=nn.ReLU())) for i in range(3)
    ]
    model = nn.Sequential(*blocks, nn.Linear(16, 2))
    for block in blocks:  # He initialization: keeps activation variance steady across ReLU layers
        nn.init.kaiming_normal_(block.fc.weight, nonlinearity="relu")
        nn.init.zeros_(block.fc.bias)
    if scale_layer is not None:
        layer = model[scale_layer].fc if scale_layer < 3 else model[scale_layer]
        with torch.no_grad():
            layer.weight.mul_(scale)
    return model


def _verdict(trial, name, **parameters) -> rules.Verdict:
    rule_class, defaults = rules.RULES[name]
    return rules.evaluate_rule(rule_class(trial, **{**defaults, **parameters}), name)


def test_poor_weight_initialization_fires_on_a_badly_scaled_layer(tmp_path):
    trial = _train_trial(tmp_path / "bad", _mlp(scale_layer=1, scale=30.0))
    verdict = _verdict(trial, "PoorWeightInitialization")
    assert verdict.RuleEvaluationStatus == rules.ISSUES_FOUND
    assert "activation-input variance" in verdict.StatusDetails


def test_poor_weight_initialization_quiet_on_default_init(tmp_path):
    trial = _train_trial(tmp_path / "ok", _mlp())
    verdict = _verdict(trial, "PoorWeightInitialization")
    assert verdict.RuleEvaluationStatus == rules.NO_ISSUES_FOUND, verdict
    assert verdict.StatusDetails.startswith("no issues found")


def test_poor_weight_initialization_fires_on_dead_gradients(tmp_path):
    model = _mlp()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()  # all-zero init: hidden gradients are all exactly zero
    verdict = _verdict(_train_trial(tmp_path / "zero", model), "PoorWeightInitialization")
    assert verdict.RuleEvaluationStatus == rules.ISSUES_FOUND


def test_vanishing_gradient_fires_on_tiny_gradients_and_not_on_healthy(tmp_path):
    model = _mlp(scale_layer=3, scale=1e-7)
    for index in (0, 1, 2):
        with torch.no_grad():
            model[index].fc.weight.mul_(1e-3)
    bad = _verdict(_train_trial(tmp_path / "bad", model, lr=0.0), "VanishingGradient")
    assert bad.RuleEvaluationStatus == rules.ISSUES_FOUND and "mean |gradient|" in bad.StatusDetails
    assert bad.Step == 0
    good = _verdict(_train_trial(tmp_path / "good", _mlp()), "VanishingGradient")
    assert good.RuleEvaluationStatus == rules.NO_ISSUES_FOUND


def test_missing_tensors_give_no_issue_with_a_reason(tmp_path):
    hook = smd.Hook(
        out_dir=str(tmp_path / "t"),
        export_tensorboard=False,
        include_collections=["losses"],
        save_config=smd.SaveConfig(save_interval=1),
    )
    model = nn.Linear(2, 2)
    hook.register_module(model)
    criterion = nn.CrossEntropyLoss()
    hook.register_loss(criterion)
    criterion(model(torch.randn(4, 2)), torch.tensor([0, 1, 0, 1])).backward()
    hook.close()
    verdict = _verdict(create_trial(str(tmp_path / "t")), "VanishingGradient")
    assert verdict.RuleEvaluationStatus == rules.NO_ISSUES_FOUND
    assert "not enough saved tensors" in verdict.StatusDetails


def test_a_crashing_rule_is_an_error_verdict_not_a_crash(tmp_path, monkeypatch):
    trial = _train_trial(tmp_path / "t", _mlp(), steps=2)

    def explode(self, step):
        raise RuntimeError("boom")

    monkeypatch.setattr(rules.Overfit, "invoke_at_step", explode)
    verdicts = {v.RuleConfigurationName: v for v in rules.evaluate_all(trial)}
    assert (
        verdicts["Overfit"].RuleEvaluationStatus == rules.ERROR
        and "boom" in verdicts["Overfit"].StatusDetails
    )
    assert verdicts["VanishingGradient"].RuleEvaluationStatus == rules.NO_ISSUES_FOUND


@pytest.mark.parametrize("values", [[1.0] * 25, list(np.linspace(1.0, 0.5, 10)) + [0.5] * 15])
def test_loss_not_decreasing_on_flat_losses(tmp_path, values):
    """A loss fixed by construction: the rule must fire once a num_steps window shows no decrease."""
    hook = smd.Hook(
        out_dir=str(tmp_path / "flat"),
        export_tensorboard=False,
        include_collections=["losses"],
        save_config=smd.SaveConfig(save_interval=1),
    )
    model = nn.Linear(1, 1)
    hook.register_module(model)
    hook.set_mode(modes.TRAIN)
    for value in values:
        model(torch.zeros(1, 1))
        hook.save_scalar("loss", float(value), sm_metric=False)
        hook.record_tensor_value("loss_output_0", torch.tensor(float(value)))
    hook.close()
    trial = create_trial(str(tmp_path / "flat"))
    verdict = _verdict(trial, "LossNotDecreasing")
    assert verdict.RuleEvaluationStatus == rules.ISSUES_FOUND, verdict
