"""IAM's policy simulator (localcloud.iam.simulate): requests serialized and answers parsed by botocore's
own iam model, so the request is what boto3 sends and the answer what it reads."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode

import botocore.session
from botocore.parsers import QueryParser
from botocore.serialize import QuerySerializer

from localcloud.iam.roles import AccountRoles, Role
from localcloud.iam.simulate import simulate_principal_policy

ROLE_ARN = "arn:aws:iam::123456789012:role/JobRole"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "s3:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        },
    ],
}
ROLES = AccountRoles({"JobRole": Role("JobRole", ROLE_ARN, (POLICY,), {})})
IAM = botocore.session.get_session().get_service_model("iam")
OPERATION = IAM.operation_model("SimulatePrincipalPolicy")


def simulate(**params: Any) -> tuple[int, dict[str, Any]]:
    """boto3's request, form-encoded as it goes on the wire, answered, and parsed as boto3 parses it."""
    request = QuerySerializer().serialize_to_request(params, OPERATION)
    status, body = simulate_principal_policy(ROLES, parse_qs(urlencode(request["body"])))
    parsed = QueryParser().parse({"status_code": status, "headers": {}, "body": body}, OPERATION.output_shape)
    return status, parsed


def decisions(parsed: dict[str, Any]) -> dict[str, str]:
    return {result["EvalActionName"]: result["EvalDecision"] for result in parsed["EvaluationResults"]}


def test_an_allowed_and_a_denied_action_in_botocores_output_shape() -> None:
    status, parsed = simulate(
        PolicySourceArn=ROLE_ARN,
        ActionNames=["ecr:GetAuthorizationToken", "ec2:CreateNetworkInterface", "s3:DeleteBucket"],
    )
    assert status == 200 and parsed["IsTruncated"] is False
    assert decisions(parsed) == {
        "ecr:GetAuthorizationToken": "allowed",
        "ec2:CreateNetworkInterface": "implicitDeny",  # no statement allows it
        "s3:DeleteBucket": "explicitDeny",  # allowed by s3:* and denied by name: the Deny wins
    }
    assert {result["EvalResourceName"] for result in parsed["EvaluationResults"]} == {"*"}


def test_each_action_is_simulated_on_each_resource_given() -> None:
    buckets = ["arn:aws:s3:::a", "arn:aws:s3:::b"]
    _, parsed = simulate(PolicySourceArn=ROLE_ARN, ActionNames=["s3:ListBucket"], ResourceArns=buckets)
    results = parsed["EvaluationResults"]
    assert [(r["EvalResourceName"], r["EvalDecision"]) for r in results] == [(b, "allowed") for b in buckets]


def test_a_condition_key_not_supplied_denies_and_is_reported_missing() -> None:
    _, parsed = simulate(PolicySourceArn=ROLE_ARN, ActionNames=["cloudwatch:PutMetricData"])
    [result] = parsed["EvaluationResults"]
    assert result["EvalDecision"] == "implicitDeny"
    assert result["MissingContextValues"] == ["cloudwatch:namespace"]

    entry = {"ContextKeyName": "cloudwatch:namespace", "ContextKeyValues": ["/aws/sagemaker/Jobs"]}
    entry["ContextKeyType"] = "string"
    _, parsed = simulate(
        PolicySourceArn=ROLE_ARN, ActionNames=["cloudwatch:PutMetricData"], ContextEntries=[entry]
    )
    [result] = parsed["EvaluationResults"]
    assert result["EvalDecision"] == "allowed" and result["MissingContextValues"] == []


def test_a_role_the_account_does_not_have_is_no_such_entity() -> None:
    status, error = simulate(
        PolicySourceArn="arn:aws:iam::123456789012:role/Nobody", ActionNames=["s3:GetObject"]
    )
    assert status == 404 and error["Error"]["Code"] == "NoSuchEntity"
