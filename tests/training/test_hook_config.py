"""The DebugHookConfig the Lambda sends: sized from the dataset, bounded, and what smdebug really saves."""

from __future__ import annotations

import ast
import json
import math
from collections import OrderedDict
from pathlib import Path

import pytest
import trainhelpers

from dogclf.contract import MIN_RULE_STEPS, RULE_NAMES
from dogclf.debugger import hook_config
from dogclf.debugger.hook_config import debug_hook_config, save_plan

DEMO_PY = trainhelpers.REPO / "localcloud" / "demo" / "run.py"  # where DemoSettings lives


def _collections(config: dict) -> dict[str, dict[str, str]]:
    return {
        c["CollectionName"]: c.get("CollectionParameters", {}) for c in config["CollectionConfigurations"]
    }


def test_shape_is_a_debug_hook_config_without_paths():
    config = debug_hook_config(train_examples=64, batch_size=16, epochs=2, valid_examples=24)
    assert set(config) == {"HookParameters", "CollectionConfigurations"}
    assert set(_collections(config)) == {
        "losses",
        "gradients",
        "grad_scale",
        "relu_input",
        "head_activations",
        "weights",
        "biases",
    }
    for parameters in [config["HookParameters"], *_collections(config).values()]:
        assert all(isinstance(value, str) for value in parameters.values()), parameters
    json.dumps(config)  # CreateTrainingJob takes it as is


def test_short_run_saves_every_step():
    """The demo's sample: 64 train images, batch 16, 2 epochs = 8 training steps < 20: save them all."""
    collections = _collections(debug_hook_config(train_examples=64, batch_size=16, epochs=2))
    assert collections["losses"]["save_interval"] == "1"
    assert collections["gradients"]["train.save_interval"] == "1"
    assert collections["relu_input"]["train.save_interval"] == "1"
    assert collections["relu_input"]["include_regex"] == ".*relu_input"


def test_dogimages_sized_run_gives_every_rule_enough_steps_and_stays_bounded():
    plan = save_plan(train_examples=6680, batch_size=64, epochs=5, valid_examples=835)
    assert plan.train_steps == math.ceil(6680 / 64) * 5
    steps = plan.rule_steps()
    assert set(steps) == set(RULE_NAMES)
    assert min(steps.values()) >= MIN_RULE_STEPS, steps
    # Full-value gradients only every k-th step, plus the first MIN_RULE_STEPS steps.
    assert plan.gradient_interval > 1
    assert steps["VanishingGradient"] <= 2 * hook_config.GRADIENT_SAVES + MIN_RULE_STEPS
    collections = _collections(debug_hook_config(train_examples=6680, batch_size=64, epochs=5))
    # Activations and weights: reductions only (scalars), never the full ResNet tensors.
    assert collections["relu_input"]["reductions"] and collections["weights"]["reductions"]
    assert collections["relu_input"]["train.end_step"] == str(MIN_RULE_STEPS)
    # The head Linear's input and output (PoorWeightInitialization's layers): reductions, early steps.
    head = collections["head_activations"]
    assert head["include_regex"] == r"^head\.1_(input|output)_0$" and head["reductions"]
    assert head["train.end_step"] == str(MIN_RULE_STEPS)
    for name in ("gradients", "relu_input", "head_activations", "weights"):
        assert collections[name]["eval.end_step"] == "0", name  # no backward pass in EVAL


@pytest.mark.parametrize(
    "arguments",
    [
        {"train_examples": 0, "batch_size": 16, "epochs": 1},
        {"train_examples": 10, "batch_size": 0, "epochs": 1},
        {"train_examples": 10, "batch_size": 16, "epochs": -1},
        {"train_examples": "10", "batch_size": 16, "epochs": 1},
        {"train_examples": 10, "batch_size": 16, "epochs": 1, "valid_examples": -3},
    ],
)
def test_bad_sizes_are_clear_errors(arguments):
    with pytest.raises(ValueError, match="must be"):
        debug_hook_config(**arguments)


def _demo_defaults() -> dict[str, str]:
    """DemoSettings' literal defaults in localcloud/demo/run.py (read, not imported: no boto3 here)."""
    tree = ast.parse(DEMO_PY.read_text())
    settings = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DemoSettings")
    return {
        node.target.id: str(ast.literal_eval(node.value))
        for node in settings.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and isinstance(node.value, ast.Constant)
    }


def test_the_demo_gives_every_rule_enough_steps_whatever_the_tuner_picks():
    """Worst case of the demo's search space (fewest epochs, largest batch) still gives each rule
    MIN_RULE_STEPS saved steps: otherwise the demo's verdicts would be "not enough data"."""
    demo = _demo_defaults()
    classes = int(demo["num_classes"])
    epochs = min(int(value) for value in demo["epochs"].split(","))
    batch = max(int(value) for value in demo["batch_sizes"].split(","))
    plan = save_plan(
        train_examples=classes * int(demo["train_per_class"]),
        valid_examples=classes * int(demo["valid_per_class"]),
        batch_size=batch,
        epochs=epochs,
    )
    assert min(plan.rule_steps().values()) >= MIN_RULE_STEPS, (demo, plan.rule_steps())


def test_smdebug_saves_what_the_plan_says(tmp_path: Path):
    """The config through smdebug's own JSON parser and hook, on a tiny model with the same mode split."""
    smd = pytest.importorskip("smdebug.pytorch")
    import torch
    from smdebug import modes
    from smdebug.trials import create_trial
    from torch import nn

    train_examples, valid_examples, batch, epochs = 96, 32, 8, 3
    config = debug_hook_config(
        train_examples=train_examples, valid_examples=valid_examples, batch_size=batch, epochs=epochs
    )
    config["LocalPath"] = str(tmp_path / "tensors")
    (tmp_path / "config.json").write_text(json.dumps(config))
    hook = smd.Hook.create_from_json_file(str(tmp_path / "config.json"))
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(4, 8), relu=nn.ReLU(), fc2=nn.Linear(8, 2)))
    criterion = nn.CrossEntropyLoss()
    hook.register_module(model)
    hook.register_loss(criterion)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(epochs):
        hook.set_mode(modes.TRAIN)
        for _ in range(math.ceil(train_examples / batch)):
            optimizer.zero_grad()
            criterion(model(torch.randn(batch, 4)), torch.randint(0, 2, (batch,))).backward()
            optimizer.step()
        hook.set_mode(modes.EVAL)
        with torch.no_grad():
            for _ in range(math.ceil(valid_examples / batch)):
                criterion(model(torch.randn(batch, 4)), torch.randint(0, 2, (batch,)))
    hook.close()
    trial = create_trial(str(tmp_path / "tensors"))
    plan = save_plan(
        train_examples=train_examples, valid_examples=valid_examples, batch_size=batch, epochs=epochs
    )
    loss = trial.tensor(trial.tensor_names(collection="losses")[0])
    assert len(loss.steps(mode=modes.TRAIN)) == plan.train_steps
    assert len(loss.steps(mode=modes.EVAL)) == plan.eval_steps
    gradient = trial.tensor(trial.tensor_names(collection="gradients")[0])
    assert len(gradient.steps(mode=modes.TRAIN)) == plan.rule_steps()["VanishingGradient"]
    assert gradient.steps(mode=modes.EVAL) == []
    relu = trial.tensor(trial.tensor_names(regex=".*relu_input")[0])
    assert relu.steps(mode=modes.TRAIN) == list(range(MIN_RULE_STEPS))
    assert relu.reduction_value(0, "variance", mode=modes.TRAIN) >= 0
    with pytest.raises(Exception, match=r"TensorUnavailable|not available"):
        relu.value(0, mode=modes.TRAIN)  # reductions only: the full activation is never written
