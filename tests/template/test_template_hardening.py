"""The checkov findings, fixed in template.yaml or skipped there with a reason (make checkov runs checkov
itself, in its own environment): access logging, the encrypted topic, reserved concurrency."""

from __future__ import annotations

import re
from typing import Any

DATA_BUCKETS = ("DatasetBucket", "ArtifactsBucket", "InferenceBucket")
# checkov findings that are real for these resources (logging, versioning, encryption of the data
# buckets...): fixed in the template, never skipped.
MUST_NOT_SKIP = {
    "CKV_AWS_18": set(DATA_BUCKETS),  # S3 access logging
    "CKV_AWS_26": {"NotificationTopic"},  # SNS encryption
    "CKV_AWS_115": {"IngestFunction", "ClassifyFunction"},  # reserved concurrency
}


def resources_of(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == rtype}


def checkov_skips(template: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    return {
        name: resource["Metadata"]["checkov"]["skip"]
        for name, resource in template["Resources"].items()
        if "checkov" in resource.get("Metadata", {})
    }


def test_every_skip_names_a_check_and_says_why(template):
    skips = checkov_skips(template)
    assert skips, "no skips: then this test and its list are stale"
    for name, entries in skips.items():
        for entry in entries:
            assert set(entry) == {"id", "comment"}, (name, entry)
            assert re.fullmatch(r"CKV_AWS_\d+", entry["id"]), (name, entry)
            assert len(entry["comment"].split()) >= 5, (name, entry)  # a reason, not a placeholder
        ids = [entry["id"] for entry in entries]
        assert len(ids) == len(set(ids)), name
    for check, names in MUST_NOT_SKIP.items():
        skipped = {name for name, entries in skips.items() if check in {e["id"] for e in entries}}
        assert not skipped & names, (check, skipped & names)


def test_the_data_buckets_log_to_the_access_log_bucket(template):
    resources = template["Resources"]
    prefixes = []
    for name in DATA_BUCKETS:
        bucket = resources[name]
        logging = bucket["Properties"]["LoggingConfiguration"]
        assert logging["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}, name
        prefixes.append(logging["LogFilePrefix"])
        # Log delivery is allowed (the policy) before the bucket turns logging on.
        assert bucket["DependsOn"] == "AccessLogsBucketPolicy", name
    assert all(p.endswith("/") for p in prefixes) and len(set(prefixes)) == len(prefixes)

    logs = resources["AccessLogsBucket"]["Properties"]
    assert "LoggingConfiguration" not in logs
    [encryption] = logs["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}  # SSE-S3
    assert logs["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    expiring = [r for r in logs["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r]
    assert expiring == [
        {
            "Id": "expire-access-logs",
            "Status": "Enabled",
            "ExpirationInDays": {"Ref": "AccessLogRetentionDays"},
        }
    ]


def test_only_the_s3_logging_service_may_write_logs_and_only_from_our_buckets(template):
    resources = template["Resources"]
    [policy] = [
        r["Properties"]["PolicyDocument"]
        for r in resources_of(template, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": "AccessLogsBucket"}
    ]
    [allow] = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # The source ARNs are the buckets' own names (by string, as the buckets depend on this policy).
    sources = {s["Fn::Sub"] for s in allow["Condition"]["ArnLike"]["aws:SourceArn"]}
    names = {resources[name]["Properties"]["BucketName"]["Fn::Sub"] for name in DATA_BUCKETS}
    assert sources == {f"arn:${{AWS::Partition}}:s3:::{name}" for name in names}


def test_the_topic_is_encrypted_with_a_key_the_alarms_can_use(template):
    topic = template["Resources"]["NotificationTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": ["NotificationTopicKey", "Arn"]}
    key = template["Resources"]["NotificationTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    [cloudwatch] = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    # Why it is not alias/aws/sns: CloudWatch alarms publish to the topic.
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    assert any({"Ref": "NotificationTopic"} in a["Properties"]["AlarmActions"] for a in alarms)


def test_every_function_that_publishes_can_use_the_topic_key(template):
    publishers = {
        name
        for name, r in resources_of(template, "AWS::Serverless::Function").items()
        for policy in r["Properties"].get("Policies", [])
        if isinstance(policy, dict) and "SNSPublishMessagePolicy" in policy
    }
    key_use = template["Resources"]["NotificationTopicKeyUse"]["Properties"]
    # SAM names a function's generated role <Function>Role.
    assert {role["Ref"].removesuffix("Role") for role in key_use["Roles"]} == publishers
    [statement] = key_use["PolicyDocument"]["Statement"]
    assert set(statement["Action"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    assert statement["Resource"] == {"Fn::GetAtt": ["NotificationTopicKey", "Arn"]}


def test_reserved_concurrency_is_a_parameter_that_defaults_to_none(template):
    """AWS keeps 100 executions unreserved, so a new account (limit 10) cannot reserve any: the default
    (0) must leave the property out, and any other value set it."""
    functions = resources_of(template, "AWS::Serverless::Function")
    for function, parameter in (
        ("IngestFunction", "IngestReservedConcurrency"),
        ("ClassifyFunction", "ClassifyReservedConcurrency"),
        ("ImportUrlFunction", "UrlImportReservedConcurrency"),
    ):
        condition, value, otherwise = functions[function]["Properties"]["ReservedConcurrentExecutions"][
            "Fn::If"
        ]
        assert (value, otherwise) == ({"Ref": parameter}, {"Ref": "AWS::NoValue"}), function
        [[ref, zero]] = template["Conditions"][condition]["Fn::Not"][0].values()
        assert ref == {"Ref": parameter} and str(zero) == "0", function
        spec = template["Parameters"][parameter]
        assert (spec["Type"], spec["Default"], spec["MinValue"]) == ("Number", 0, 0), parameter
