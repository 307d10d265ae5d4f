"""The metric regexes (one file, shared with the Lambda) against the printed format."""

from __future__ import annotations

import re

from dogclf import metrics


def test_definitions_file_shape():
    definitions = metrics.load_definitions()
    names = [d["Name"] for d in definitions["MetricDefinitions"]]
    for required in ("train:loss", "valid:loss", "valid:accuracy", "test:accuracy", "epoch:seconds"):
        assert required in names
    assert definitions["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "valid:accuracy",
    }
    assert definitions["GateMetric"] == "test:accuracy"
    for definition in definitions["MetricDefinitions"]:
        assert re.compile(definition["Regex"]).groups >= 1


def test_each_regex_matches_only_its_own_metric():
    log = "\n".join(
        [
            metrics.format_metric("train:loss", 1.5),
            metrics.format_metric("valid:accuracy", 0.25),
            "some other line valid:accuracy 0.99",
            metrics.format_metric("valid:accuracy", 0.8125),
            metrics.format_metric("test:accuracy", 1e-7),
        ]
    )
    found = metrics.parse_log(log)
    assert found["valid:accuracy"] == [0.25, 0.8125]  # SageMaker keeps the last one as final
    assert found["train:loss"] == [1.5]
    assert found["test:accuracy"] == [1e-7]
    assert "valid:loss" not in found
