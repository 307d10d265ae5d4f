"""EventBridge pattern matching: patterns that must and must not match, per AWS's documented rules."""

from typing import Any

import pytest

from localcloud.environment.containerenv import REPO_ROOT
from localcloud.events.patterns import PatternError, matches_event_pattern
from localcloud.stack.template import TemplateResolver, load_template

TRAINING_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "0c9c5a3a-1111-2222-3333-444455556666",
    "detail-type": "SageMaker Training Job State Change",
    "source": "aws.sagemaker",
    "account": "123456789012",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:sagemaker:us-east-1:123456789012:training-job/dogclf-train-abc"],
    "detail": {
        "TrainingJobName": "dogclf-train-abc",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "BillableTimeInSeconds": 42,
        "Tags": {"pipeline": "dogclf"},
        "HyperParameters": {"epochs": "2"},
    },
}


def _template_rules() -> dict[str, dict]:
    """Each AWS::Events::Rule EventPattern that the SAM translator makes of template.yaml's EventBridgeRule
    events (logical id ``<Function><Event>``), resolved with the default parameters."""
    resolver = TemplateResolver(load_template(REPO_ROOT / "template.yaml"), stack_name="dogbreed-local")
    return {
        rule.logical_id: rule.properties["EventPattern"]
        for rule in resolver.of_type("AWS::Events::Rule")
        if "EventPattern"
        in rule.properties  # not the reconcile schedule (tests/localcloud/events/test_schedules.py)
    }


TEMPLATE_RULES = _template_rules()
# The template's own rule for the profiled training job (the default JobNamePrefix is dogclf).
TEMPLATE_RULE = TEMPLATE_RULES["TrainingCompletedFunctionTrainingFinished"]


def with_detail(**changes):
    return {**TRAINING_EVENT, "detail": {**TRAINING_EVENT["detail"], **changes}}


def test_template_rule_matches_the_profiled_job():
    assert matches_event_pattern(TEMPLATE_RULE, TRAINING_EVENT)


@pytest.mark.parametrize(
    "event",
    [
        with_detail(TrainingJobName="dogclf-hpo-abc-001-1234"),  # a tuning trial
        with_detail(TrainingJobName="dogclf-feat-0123456789ab"),  # the features job
        with_detail(TrainingJobStatus="InProgress"),
        {**TRAINING_EVENT, "source": "aws.s3"},
        {**TRAINING_EVENT, "detail-type": "SageMaker HyperParameter Tuning Job State Change"},
        {k: v for k, v in TRAINING_EVENT.items() if k != "detail"},
    ],
)
def test_template_rule_rejects(event):
    assert not matches_event_pattern(TEMPLATE_RULE, event)


def test_prefix_is_case_sensitive_and_equals_ignore_case_is_not():
    assert not matches_event_pattern({"detail": {"TrainingJobName": [{"prefix": "DOGCLF"}]}}, TRAINING_EVENT)
    assert matches_event_pattern(
        {"detail": {"TrainingJobName": [{"equals-ignore-case": "DOGCLF-TRAIN-ABC"}]}}, TRAINING_EVENT
    )
    assert matches_event_pattern(
        {"detail": {"TrainingJobName": [{"prefix": {"equals-ignore-case": "DOGCLF-T"}}]}}, TRAINING_EVENT
    )


def test_suffix():
    assert matches_event_pattern({"detail": {"TrainingJobName": [{"suffix": "-abc"}]}}, TRAINING_EVENT)
    assert not matches_event_pattern({"detail": {"TrainingJobName": [{"suffix": "-xyz"}]}}, TRAINING_EVENT)


@pytest.mark.parametrize(
    ("anything_but", "expected"),
    [
        ("Failed", True),
        ("Completed", False),
        (["Failed", "Stopped"], True),
        (["Failed", "Completed"], False),
        ({"prefix": "Comp"}, False),
        ({"prefix": "Fail"}, True),
        ({"suffix": "ted"}, False),
        ({"equals-ignore-case": ["COMPLETED"]}, False),
    ],
)
def test_anything_but(anything_but, expected):
    pattern = {"detail": {"TrainingJobStatus": [{"anything-but": anything_but}]}}
    assert matches_event_pattern(pattern, TRAINING_EVENT) is expected


def test_anything_but_does_not_match_a_missing_field():
    assert not matches_event_pattern({"detail": {"FailureReason": [{"anything-but": "x"}]}}, TRAINING_EVENT)


def test_anything_but_number_compares_numerically():
    assert matches_event_pattern(
        {"detail": {"BillableTimeInSeconds": [{"anything-but": 41}]}}, TRAINING_EVENT
    )
    assert not matches_event_pattern(
        {"detail": {"BillableTimeInSeconds": [{"anything-but": 42}]}}, TRAINING_EVENT
    )
    assert not matches_event_pattern(
        {"detail": {"BillableTimeInSeconds": [{"anything-but": 42.0}]}}, TRAINING_EVENT
    )


def test_anything_but_number_does_not_exclude_the_same_digits_as_a_string():
    # EventBridge compares types: the string "42" is not the number 42, so it is "anything but" 42.
    event = with_detail(BillableTimeInSeconds="42")
    assert matches_event_pattern({"detail": {"BillableTimeInSeconds": [{"anything-but": 42}]}}, event)
    assert not matches_event_pattern({"detail": {"BillableTimeInSeconds": [{"anything-but": "42"}]}}, event)


def test_exists():
    assert matches_event_pattern({"detail": {"TrainingJobName": [{"exists": True}]}}, TRAINING_EVENT)
    assert not matches_event_pattern({"detail": {"FailureReason": [{"exists": True}]}}, TRAINING_EVENT)
    assert matches_event_pattern({"detail": {"FailureReason": [{"exists": False}]}}, TRAINING_EVENT)
    assert not matches_event_pattern({"detail": {"TrainingJobName": [{"exists": False}]}}, TRAINING_EVENT)


def test_exists_false_or_a_value():
    pattern = {"detail": {"FailureReason": [{"exists": False}, "OOM"]}}
    assert matches_event_pattern(pattern, TRAINING_EVENT)
    assert matches_event_pattern(pattern, with_detail(FailureReason="OOM"))
    assert not matches_event_pattern(pattern, with_detail(FailureReason="other"))


@pytest.mark.parametrize(
    ("numeric", "expected"),
    [
        ([">", 0], True),
        ([">", 0, "<=", 42], True),
        ([">", 0, "<", 42], False),
        (["=", 42], True),
        ([">=", 43], False),
    ],
)
def test_numeric(numeric, expected):
    pattern = {"detail": {"BillableTimeInSeconds": [{"numeric": numeric}]}}
    assert matches_event_pattern(pattern, TRAINING_EVENT) is expected


def test_numeric_never_matches_strings():
    assert not matches_event_pattern({"detail": {"TrainingJobName": [{"numeric": [">", 0]}]}}, TRAINING_EVENT)


def test_literal_types_are_strict():
    assert not matches_event_pattern({"detail": {"BillableTimeInSeconds": ["42"]}}, TRAINING_EVENT)
    assert matches_event_pattern({"detail": {"BillableTimeInSeconds": [42]}}, TRAINING_EVENT)


def test_array_values_match_if_any_element_matches():
    assert matches_event_pattern({"resources": [{"suffix": "dogclf-train-abc"}]}, TRAINING_EVENT)
    assert not matches_event_pattern({"resources": ["arn:other"]}, TRAINING_EVENT)


def test_nested_objects_and_wildcard():
    assert matches_event_pattern({"detail": {"Tags": {"pipeline": ["dogclf"]}}}, TRAINING_EVENT)
    assert not matches_event_pattern({"detail": {"Tags": {"pipeline": ["other"]}}}, TRAINING_EVENT)
    assert matches_event_pattern(
        {"detail": {"TrainingJobName": [{"wildcard": "dogclf-*-abc"}]}}, TRAINING_EVENT
    )
    assert not matches_event_pattern(
        {"detail": {"TrainingJobName": [{"wildcard": "dogclf-*-x"}]}}, TRAINING_EVENT
    )


def test_or():
    pattern: dict[str, Any] = {
        "source": ["aws.sagemaker"],
        "$or": [
            {"detail": {"TrainingJobStatus": ["Failed"]}},
            {"detail": {"SecondaryStatus": ["Completed"]}},
        ],
    }
    assert matches_event_pattern(pattern, TRAINING_EVENT)
    pattern["$or"][1] = {"detail": {"SecondaryStatus": ["Stopping"]}}
    assert not matches_event_pattern(pattern, TRAINING_EVENT)


def test_a_scalar_pattern_value_is_an_error():
    with pytest.raises(PatternError):
        matches_event_pattern({"source": "aws.sagemaker"}, TRAINING_EVENT)


def test_template_tuning_rule_matches_only_our_tuning_jobs():
    rule = TEMPLATE_RULES["TuningCompletedFunctionTuningFinished"]
    event = {
        **TRAINING_EVENT,
        "detail-type": "SageMaker HyperParameter Tuning Job State Change",
        "detail": {
            "HyperParameterTuningJobName": "dogclf-hpo-0123456789ab",
            "HyperParameterTuningJobStatus": "Completed",
        },
    }
    assert matches_event_pattern(rule, event)
    other = {**event, "detail": {**event["detail"], "HyperParameterTuningJobName": "someone-else-hpo-1"}}
    assert not matches_event_pattern(rule, other)
    running = {**event, "detail": {**event["detail"], "HyperParameterTuningJobStatus": "InProgress"}}
    assert not matches_event_pattern(rule, running)


def test_template_features_rule_matches_only_our_features_jobs():
    rule = TEMPLATE_RULES["FeaturesCompletedFunctionFeaturesFinished"]
    assert matches_event_pattern(rule, with_detail(TrainingJobName="dogclf-feat-0123456789ab"))
    assert matches_event_pattern(
        rule, with_detail(TrainingJobName="dogclf-feat-0123456789ab", TrainingJobStatus="Failed")
    )
    for name in ("dogclf-train-abc", "dogclf-hpo-abc-001-1234", "other-feat-0123456789ab"):
        assert not matches_event_pattern(rule, with_detail(TrainingJobName=name)), name
    running = with_detail(TrainingJobName="dogclf-feat-0123456789ab", TrainingJobStatus="InProgress")
    assert not matches_event_pattern(rule, running)
