"""Least privilege and quotas in template.yaml (each function's role reaches only its own resources and
actions; the account's quotas are parameters): what each role may do is
checked against where the code reads and writes, not against a copy of the template."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from test_template import allowed, as_list, functions, statements, sub

from dogclf import contract
from pipeline.image_uris import DEBUGGER_RULE_ACCOUNTS, DLC_ACCOUNT
from pipeline.source_dir import CODE_PREFIX

ARTIFACTS = "arn:${AWS::Partition}:s3:::${AWS::StackName}-artifacts-${AWS::AccountId}-${AWS::Region}"
# Where SageMaker jobs write (OutputDataConfig, CheckpointConfig, builtin Debugger outputs); the keys
# are examples of each, built from the same definitions the request builders use.
JOB_WRITES = [
    f"{contract.features_output_prefix('k' * 12)}/dogclf-feat-{'k' * 12}/output/model.tar.gz",
    "tuning/dogclf-hpo-abc/dogclf-hpo-abc-001-1234abcd/output/model.tar.gz",
    "training/dogclf-train-abc/output/output.tar.gz",
    "checkpoints/dogclf-hpo-abc/checkpoint.pt",
    "debug-output/dogclf-train-abc/debug-output/index/000000000/000000000000_worker_0.json",
    "profiler-output/dogclf-train-abc/profiler-output/framework/trace.json",
]


def execution_role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for owner, s in statements(template) if owner == "SageMakerExecutionRole"]


def grants(template: dict[str, Any], action: str) -> list[str]:
    return [
        sub(resource)
        for statement in execution_role_statements(template)
        if statement["Effect"] == "Allow" and action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    ]


def covered(patterns: list[str], arn: str) -> bool:
    return any(fnmatch.fnmatchcase(arn, pattern) for pattern in patterns)


def test_jobs_may_write_their_outputs_but_never_the_training_code(template):
    writes = grants(template, "s3:PutObject")
    for key in JOB_WRITES:
        assert covered(writes, f"{ARTIFACTS}/{key}"), key
    # code/<hash>/sourcedir.tar.gz is trusted by its hash by every later job: only the functions
    # that upload it (UploadTrainingCode) may write there.
    assert not covered(writes, f"{ARTIFACTS}/{CODE_PREFIX}0123abcd/sourcedir.tar.gz")
    assert covered(grants(template, "s3:GetObject"), f"{ARTIFACTS}/{CODE_PREFIX}0123abcd/sourcedir.tar.gz")


def test_images_are_pulled_only_from_the_dlc_and_debugger_rule_accounts(template):
    pulls = [
        statement
        for statement in execution_role_statements(template)
        if "ecr:BatchGetImage" in as_list(statement["Action"])
    ]
    [statement] = pulls
    resources = as_list(statement["Resource"])
    plain = [r["Fn::Sub"] for r in resources if isinstance(r.get("Fn::Sub"), str)]
    assert sorted(plain) == [
        f"arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:{DLC_ACCOUNT}:repository/pytorch-{scope}"
        for scope in ("inference", "training")
    ]
    [rules] = [r["Fn::Sub"] for r in resources if isinstance(r.get("Fn::Sub"), list)]
    assert rules[0].endswith(":${Account}:repository/sagemaker-debugger-rules")
    assert rules[1] == {
        "Account": {"Fn::FindInMap": ["DebuggerRuleAccounts", {"Ref": "AWS::Region"}, "Account"]}
    }
    mapping = template["Mappings"]["DebuggerRuleAccounts"]
    assert {region: row["Account"] for region, row in mapping.items()} == DEBUGGER_RULE_ACCOUNTS
    assert not any(re.search(r":\*:repository", text) for text in plain)


def test_only_sagemaker_for_this_account_may_assume_the_execution_role(template):
    trust = template["Resources"]["SageMakerExecutionRole"]["Properties"]["AssumeRolePolicyDocument"]
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_the_execution_role_can_read_the_rollback_alarms(template):
    """Deployment guardrails: the execution role needs DescribeAlarms on the auto-rollback alarms."""
    alarms = grants(template, "cloudwatch:DescribeAlarms")
    names = template["Globals"]["Function"]["Environment"]["Variables"]["ROLLBACK_ALARM_NAMES"]["Fn::Sub"]
    arn = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:"
    for name in names.split(","):
        assert covered(alarms, arn + name), name


def test_tuning_completed_may_create_only_the_profiled_job(template):
    creates = [sub(r) for r in allowed(template, "TuningCompletedFunction")["sagemaker:CreateTrainingJob"]]
    job = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:training-job/${JobNamePrefix}"
    assert covered(creates, f"{job}{contract.TRAINING_INFIX}0123456789ab")
    assert not covered(creates, f"{job}-feat-0123456789ab")  # a features job
    assert not covered(creates, f"{job}{contract.TUNING_INFIX}abc-001-1234abcd")  # a trial


def test_no_function_may_scan_or_batch_write_the_table_and_only_idempotent_ones_delete(template):
    idempotent = {
        "IngestFunction",
        "DatasetReadyFunction",
        "FeaturesCompletedFunction",
        "TuningCompletedFunction",
        "TrainingCompletedFunction",
    }
    for name, properties in functions(template).items():
        assert not any("DynamoDBCrudPolicy" in p for p in properties.get("Policies", [])), name
        actions = {a for a in allowed(template, name) if a.startswith("dynamodb:")}
        assert not actions & {"dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchWriteItem"}, name
        assert ("dynamodb:DeleteItem" in actions) == (name in idempotent), name
    assert {a for a in allowed(template, "EndpointStateFunction") if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
    }


def test_serverless_concurrency_is_bounded_by_the_new_account_quota(template):
    parameter = template["Parameters"]["ServerlessMaxConcurrency"]
    assert parameter["MaxValue"] == 10 and parameter["Default"] <= 10


def test_the_dependencies_layer_is_built_for_arm64_like_the_functions(template):
    layer = template["Resources"]["DependenciesLayer"]
    assert template["Globals"]["Function"]["Architectures"] == ["arm64"]
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def test_the_endpoint_function_has_a_reconcile_schedule(template):
    events = template["Resources"]["EndpointStateFunction"]["Properties"]["Events"]
    schedules = [e["Properties"] for e in events.values() if e["Type"] == "Schedule"]
    assert [s["Schedule"] for s in schedules] == ["rate(1 minute)"]


def test_instance_type_parameters_allow_exactly_the_image_allow_list(template):
    """`sam deploy` refuses an instance type no PyTorch image here runs on (Graviton, Neuron), instead of
    a job that fails at start."""
    from pipeline.image_uris import INSTANCE_TYPE_PATTERN

    for name in (
        "FeaturesInstanceType",
        "TuningInstanceType",
        "TrainingInstanceType",
        "EndpointInstanceType",
    ):
        parameter = template["Parameters"][name]
        assert parameter["AllowedPattern"] == INSTANCE_TYPE_PATTERN, name
        assert re.fullmatch(parameter["AllowedPattern"], parameter["Default"]), name
        assert not re.fullmatch(parameter["AllowedPattern"], "ml.c7g.xlarge"), name
