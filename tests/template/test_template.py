"""Static checks of template.yaml that cfn-lint cannot know: it must agree with the function code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from template_loader import REPO

from dogclf import contract
from pipeline import classify
from pipeline.settings import Settings
from pipeline.training_stage import training_job_name
from pipeline.tuning_stage import tuning_job_name

# Actions without resource-level permissions (the service authorization reference lists no resource type).
ALLOWED_WILDCARD_RESOURCE_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "sagemaker:ListEndpointConfigs",
    "sagemaker:ListModels",
}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, properties in functions(template).items():
        for policy in properties.get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                yield name, statement
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield name, statement
        elif resource["Type"] == "AWS::IAM::ManagedPolicy":
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_globals_runtime_architecture_tracing(template):
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Environment"]["Variables"]["TRAINING_CODE_DIR"] == "/opt"


def test_snapstart_is_a_parameter_on_published_versions(template):
    """SnapStart snapshots published versions only, and SAM cannot make AutoPublishAlias conditional:
    every function publishes a version behind one alias; the parameter (off by default) snapshots it."""
    function_globals = template["Globals"]["Function"]
    assert function_globals["AutoPublishAlias"] == "live"
    assert function_globals["SnapStart"] == {
        "ApplyOn": {"Fn::If": ["UseSnapStart", "PublishedVersions", "None"]}
    }
    assert template["Conditions"]["UseSnapStart"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "true"]}
    assert template["Parameters"]["SnapStart"]["Default"] == "false"
    for name, properties in functions(template).items():  # no function opts out of the alias
        assert "AutoPublishAlias" not in properties and "SnapStart" not in properties, name


def test_every_setting_is_declared_in_the_template(template):
    declared = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for properties in functions(template).values():
        declared |= set(properties.get("Environment", {}).get("Variables", {}))
    wanted = {name.upper() for name in Settings.model_fields} - {"AWS_REGION"}  # set by Lambda itself
    assert wanted - declared == set()


def test_handlers_exist(template):
    for name, properties in functions(template).items():
        module, attribute = properties["Handler"].rsplit(".", 1)
        path = REPO / "functions" / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"{name}: {path} missing"
        assert f"def {attribute}(" in path.read_text()


def test_no_wildcard_permissions(template):
    for owner, statement in statements(template):
        if statement["Effect"] != "Allow":
            continue
        actions = as_list(statement["Action"])
        assert not any(action == "*" or action.endswith(":*") for action in actions), (owner, actions)
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= ALLOWED_WILDCARD_RESOURCE_ACTIONS, (owner, actions)


def test_pass_role_only_for_the_sagemaker_role_to_sagemaker(template):
    passes = [(owner, s) for owner, s in statements(template) if "iam:PassRole" in as_list(s["Action"])]
    assert {owner for owner, _ in passes} == {
        "DatasetReadyFunction",
        "FeaturesCompletedFunction",
        "TuningCompletedFunction",
        "TrainingCompletedFunction",
    }
    for _, statement in passes:
        assert statement["Action"] == "iam:PassRole"
        assert statement["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_buckets_are_private_encrypted_and_tls_only(template):
    resources = template["Resources"]
    buckets = [name for name, r in resources.items() if r["Type"] == "AWS::S3::Bucket"]
    assert sorted(buckets) == ["AccessLogsBucket", "ArtifactsBucket", "DatasetBucket", "InferenceBucket"]
    policies = {
        r["Properties"]["Bucket"]["Ref"]: r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy"
    }
    for name in buckets:
        properties = resources[name]["Properties"]
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert all(properties["PublicAccessBlockConfiguration"].values())
        assert properties["LifecycleConfiguration"]["Rules"]
        [deny] = [s for s in policies[name]["Statement"] if s["Effect"] == "Deny"]
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Action"] == "s3:*" and deny["Principal"] == "*"


def test_function_policies_name_buckets_by_string_not_reference(template):
    """A !Ref/!GetAtt to a bucket that triggers the function would make a circular dependency."""
    bucket_names = {"DatasetBucket", "ArtifactsBucket", "InferenceBucket"}

    def references(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "Ref" and isinstance(inner, str):
                    yield inner
                elif key == "Fn::GetAtt":
                    yield inner[0]
                else:
                    yield from references(inner)
        elif isinstance(value, list):
            for inner in value:
                yield from references(inner)

    for properties in functions(template).values():
        assert not set(references(properties.get("Policies", []))) & bucket_names
        assert not set(references(properties.get("Environment", {}))) & bucket_names
    assert not set(references(template["Globals"])) & bucket_names


def s3_filters(properties: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {rule["Name"]: rule["Value"] for rule in event["Properties"]["Filter"]["S3Key"]["Rules"]}
        for event in properties["Events"].values()
        if event["Type"] == "S3"
    ]


def test_s3_triggers_match_the_code(template):
    fns = functions(template)
    # S3 suffix rules are case-sensitive: .zip and .ZIP each need a rule (pipeline.ingest takes both).
    assert s3_filters(fns["IngestFunction"]) == [
        {"prefix": "uploads/", "suffix": ".zip"},
        {"prefix": "uploads/", "suffix": ".ZIP"},
    ]
    # The ingest writes datasets/<id>/manifest.json last; that object starts tuning.
    assert s3_filters(fns["DatasetReadyFunction"]) == [{"prefix": "datasets/", "suffix": "/manifest.json"}]
    # Prefix only: S3 suffix rules are case-sensitive; the handler checks suffixes in any case.
    assert s3_filters(fns["ClassifyFunction"]) == [{"prefix": classify.INPUT_PREFIX}]
    assert classify.is_image_key("input/A.JPG") and not classify.is_image_key("input/a.txt")


def event_pattern(properties: dict[str, Any]) -> dict[str, Any]:
    [event] = [e for e in properties["Events"].values() if e["Type"] == "EventBridgeRule"]
    return event["Properties"]["Pattern"]


def resolve_prefix(value: dict[str, Any], prefix: str) -> str:
    return value["prefix"]["Fn::Sub"].replace("${JobNamePrefix}", prefix)


def test_eventbridge_patterns_match_the_job_names(template):
    prefix = template["Parameters"]["JobNamePrefix"]["Default"]
    tuning = event_pattern(functions(template)["TuningCompletedFunction"])
    assert tuning["source"] == ["aws.sagemaker"]
    assert tuning["detail-type"] == ["SageMaker HyperParameter Tuning Job State Change"]
    assert tuning["detail"]["HyperParameterTuningJobStatus"] == ["Completed", "Failed", "Stopped"]
    tuning_name = tuning_job_name(prefix, "any-dataset")
    assert tuning_name.startswith(resolve_prefix(tuning["detail"]["HyperParameterTuningJobName"][0], prefix))

    training = event_pattern(functions(template)["TrainingCompletedFunction"])
    assert training["detail-type"] == ["SageMaker Training Job State Change"]
    training_prefix = resolve_prefix(training["detail"]["TrainingJobName"][0], prefix)
    assert training_job_name(prefix, tuning_name).startswith(training_prefix)
    # SageMaker names tuning trials <tuning job>-NNN-<hash>: they must not match.
    assert not f"{tuning_name}-001-1a2b3c4d".startswith(training_prefix)


def test_features_rule_matches_features_jobs_only(template):
    prefix = template["Parameters"]["JobNamePrefix"]["Default"]
    pattern = event_pattern(functions(template)["FeaturesCompletedFunction"])
    assert pattern["source"] == ["aws.sagemaker"]
    assert pattern["detail-type"] == ["SageMaker Training Job State Change"]
    assert pattern["detail"]["TrainingJobStatus"] == ["Completed", "Failed", "Stopped"]
    features_prefix = resolve_prefix(pattern["detail"]["TrainingJobName"][0], prefix)
    features_job = contract.features_job_name(prefix, contract.features_key("d", "imagenet", 224, "2.6.0"))
    assert features_job.startswith(features_prefix)
    tuning_name = tuning_job_name(prefix, "d")
    for other in (training_job_name(prefix, tuning_name), f"{tuning_name}-001-1a2b3c4d"):
        assert not other.startswith(features_prefix)
    # ... and the profiled job's rule never sees a features job.
    training = event_pattern(functions(template)["TrainingCompletedFunction"])
    assert not features_job.startswith(resolve_prefix(training["detail"]["TrainingJobName"][0], prefix))


def allowed(template: dict[str, Any], function: str) -> dict[str, list[Any]]:
    """Action -> the resources one function's own statements allow it on."""
    grants: dict[str, list[Any]] = {}
    for owner, statement in statements(template):
        if owner == function and statement["Effect"] == "Allow":
            for action in as_list(statement["Action"]):
                grants.setdefault(action, []).extend(as_list(statement["Resource"]))
    return grants


def sub(resource: Any) -> str:
    return resource["Fn::Sub"] if isinstance(resource, dict) and "Fn::Sub" in resource else str(resource)


ARN = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
ARTIFACTS = "arn:${AWS::Partition}:s3:::${AWS::StackName}-artifacts-${AWS::AccountId}-${AWS::Region}"


def test_the_features_stage_has_exactly_the_permissions_it_uses(template):
    start = allowed(template, "DatasetReadyFunction")
    features_jobs = f"{ARN}:training-job/${{JobNamePrefix}}-feat-*"
    for action in ("sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob"):
        assert [sub(r) for r in start[action]] == [features_jobs], action
    assert features_jobs in [sub(r) for r in start["sagemaker:AddTags"]]  # CreateTrainingJob's Tags
    # HeadObject of the features' model.tar.gz is authorised by s3:GetObject; ListBucket makes a
    # missing one a 404 (reuse: no) instead of a 403 (retried).
    assert f"{ARTIFACTS}/features/*" in [sub(r) for r in start["s3:GetObject"]]
    assert [sub(r) for r in start["s3:ListBucket"]] == [ARTIFACTS]

    done = allowed(template, "FeaturesCompletedFunction")
    assert [sub(r) for r in done["sagemaker:DescribeTrainingJob"]] == [features_jobs]
    assert "sagemaker:CreateTrainingJob" not in done
    tuning_jobs = f"{ARN}:hyper-parameter-tuning-job/${{JobNamePrefix}}-hpo-*"
    for action in ("sagemaker:CreateHyperParameterTuningJob", "sagemaker:AddTags"):
        assert [sub(r) for r in done[action]] == [tuning_jobs], action
    assert [sub(r) for r in done["s3:PutObject"]] == [f"{ARTIFACTS}/code/*"]  # the source dir upload
    assert done["iam:PassRole"] == [{"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}]


def test_instance_type_and_augment_parameters(template):
    parameters = template["Parameters"]
    # CPU types in a new account's standard quotas; a GPU type stays an option (docs/deploy.md).
    assert parameters["FeaturesInstanceType"]["Default"] == "ml.m5.xlarge"
    assert parameters["TuningInstanceType"]["Default"] == "ml.m5.large"
    assert parameters["TrainingInstanceType"]["Default"] == "ml.m5.xlarge"
    assert parameters["AugmentTrials"] == {
        "Type": "String",
        "Default": "false",
        "AllowedValues": ["false", "true"],
        "Description": parameters["AugmentTrials"]["Description"],
    }
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["FEATURES_INSTANCE_TYPE"] == {"Ref": "FeaturesInstanceType"}
    assert variables["AUGMENT_TRIALS"] == {"Ref": "AugmentTrials"}


def test_every_function_is_built_by_the_makefile(template):
    makefile = (REPO / "functions" / "Makefile").read_text()
    [line] = [line for line in makefile.splitlines() if line.startswith("FUNCTIONS :=")]
    assert set(line.split(":=")[1].split()) == set(functions(template))


def test_reliability_wiring(template):
    fns = functions(template)
    for name, properties in fns.items():
        on_failure = properties["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        assert on_failure == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}}, (
            name
        )
        alarms = [
            r
            for r in template["Resources"].values()
            if r["Type"] == "AWS::CloudWatch::Alarm"
            and r["Properties"].get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": name}}]
        ]
        assert len(alarms) == 1, name
    for name in (
        "IngestFunction",
        "DatasetReadyFunction",
        "FeaturesCompletedFunction",
        "TuningCompletedFunction",
        "TrainingCompletedFunction",
    ):
        # Powertools idempotency's four item calls on the table, and nothing wider (least privilege).
        tables = allowed(template, name)
        for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
            assert tables[action] == [{"Fn::GetAtt": ["IdempotencyTable", "Arn"]}], (name, action)


def test_outputs(template):
    assert {
        "DatasetBucketName",
        "ArtifactsBucketName",
        "InferenceBucketName",
        "EndpointName",
        "NotificationTopicArn",
    } <= set(template["Outputs"])


def test_rollback_alarms_are_the_ones_the_deploy_uses(template):
    prefix = template["Parameters"]["JobNamePrefix"]["Default"]
    names = {
        r["Properties"]["AlarmName"]["Fn::Sub"].replace("${JobNamePrefix}", prefix)
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and "AlarmName" in r["Properties"]
    }
    configured = template["Globals"]["Function"]["Environment"]["Variables"]["ROLLBACK_ALARM_NAMES"][
        "Fn::Sub"
    ]
    assert set(configured.replace("${JobNamePrefix}", prefix).split(",")) == names


def test_functions_that_read_the_training_code_have_its_layer(template):
    """Every function: pipeline.settings imports dogclf.contract (names, limits) from the layer."""
    for name, properties in functions(template).items():
        assert properties.get("Layers", []) == [{"Ref": "TrainingCodeLayer"}], name
    layer = template["Resources"]["TrainingCodeLayer"]["Properties"]
    assert layer["ContentUri"] == "training/"
