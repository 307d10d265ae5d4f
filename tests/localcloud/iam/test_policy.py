"""localcloud.iam's evaluation and request reading, without servers: AWS's evaluation order (explicit
Deny, then Allow, else implicit deny), wildcards, NotAction/NotResource, the condition keys evaluated
locally and the strict side for the others; what IAM action and resource a wire request is."""

import json

import pytest

from localcloud.environment.containerenv import REPO_ROOT
from localcloud.iam.actions import WireRequest, checks_for
from localcloud.iam.policy import Check, Decision, evaluate
from localcloud.iam.proxy import Denial, error_response
from localcloud.iam.roles import AccountRoles
from localcloud.shared import ACCOUNT_ID
from localcloud.stack.template import TemplateResolver, load_template

BUCKET = "arn:aws:s3:::data"


def _doc(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_nothing_is_allowed_without_an_allow() -> None:
    assert evaluate([], Check("s3:GetObject", f"{BUCKET}/k")) is Decision.IMPLICIT_DENY


def test_wildcards_in_actions_and_resources() -> None:
    policy = _doc({"Effect": "Allow", "Action": "s3:Get*", "Resource": f"{BUCKET}/uploads/?.zip"})
    assert evaluate([policy], Check("s3:GetObject", f"{BUCKET}/uploads/a.zip")) is Decision.ALLOWED
    # Action names are case-insensitive, resources are not; ? is one character.
    assert evaluate([policy], Check("S3:getobject", f"{BUCKET}/uploads/a.zip")) is Decision.ALLOWED
    assert evaluate([policy], Check("s3:GetObject", f"{BUCKET}/Uploads/a.zip")) is Decision.IMPLICIT_DENY
    assert evaluate([policy], Check("s3:GetObject", f"{BUCKET}/uploads/ab.zip")) is Decision.IMPLICIT_DENY
    assert evaluate([policy], Check("s3:PutObject", f"{BUCKET}/uploads/a.zip")) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_wins_over_any_allow() -> None:
    allow = _doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    deny = _doc({"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": f"{BUCKET}/*"})
    assert evaluate([allow, deny], Check("s3:DeleteObject", f"{BUCKET}/k")) is Decision.EXPLICIT_DENY
    assert evaluate([allow, deny], Check("s3:GetObject", f"{BUCKET}/k")) is Decision.ALLOWED


def test_not_action_and_not_resource() -> None:
    policy = _doc({"Effect": "Allow", "NotAction": "s3:Delete*", "NotResource": f"{BUCKET}/private/*"})
    assert evaluate([policy], Check("s3:GetObject", f"{BUCKET}/public/k")) is Decision.ALLOWED
    assert evaluate([policy], Check("s3:DeleteObject", f"{BUCKET}/public/k")) is Decision.IMPLICIT_DENY
    assert evaluate([policy], Check("s3:GetObject", f"{BUCKET}/private/k")) is Decision.IMPLICIT_DENY


def test_an_allow_whose_evaluated_condition_fails_grants_nothing_but_denies_nothing() -> None:
    # moto 5.2 answers an explicit deny here; AWS does not apply the statement.
    conditional = _doc(
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        }
    )
    plain = _doc({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"})
    to_lambda = Check(
        "iam:PassRole", "arn:aws:iam::1:role/r", {"iam:PassedToService": "lambda.amazonaws.com"}
    )
    to_sagemaker = Check(
        "iam:PassRole", "arn:aws:iam::1:role/r", {"iam:PassedToService": "sagemaker.amazonaws.com"}
    )
    assert evaluate([conditional], to_sagemaker) is Decision.ALLOWED
    assert evaluate([conditional], to_lambda) is Decision.IMPLICIT_DENY
    assert evaluate([conditional, plain], to_lambda) is Decision.ALLOWED


def test_conditions_on_keys_not_evaluated_locally_take_the_strict_side() -> None:
    unknown = {"StringEquals": {"aws:PrincipalTag/team": "ml"}}
    allow = _doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": unknown})
    deny = _doc({"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*", "Condition": unknown})
    everything = _doc({"Effect": "Allow", "Action": "*", "Resource": "*"})
    check = Check("s3:GetObject", f"{BUCKET}/k")
    assert evaluate([allow], check) is Decision.IMPLICIT_DENY
    assert evaluate([everything, deny], check) is Decision.EXPLICIT_DENY


def test_secure_transport_and_if_exists() -> None:
    insecure_deny = _doc(
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    everything = _doc({"Effect": "Allow", "Action": "*", "Resource": "*"})
    https = checks_for(WireRequest("s3", "GET", "/data/k", {}, b"", "us-east-1"))
    assert evaluate([everything, insecure_deny], https[0]) is Decision.ALLOWED
    namespace = _doc(
        {
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringLikeIfExists": {"cloudwatch:namespace": "aws/sagemaker/*"}},
        }
    )
    assert evaluate([namespace], Check("cloudwatch:PutMetricData", "*")) is Decision.ALLOWED
    assert (
        evaluate([namespace], Check("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "mine"}))
        is Decision.IMPLICIT_DENY
    )


@pytest.mark.parametrize(
    ("method", "target", "headers", "expected"),
    [
        ("GET", "/b/a%20b.txt", {}, [("s3:GetObject", "arn:aws:s3:::b/a b.txt")]),
        ("HEAD", "/b/k", {}, [("s3:GetObject", "arn:aws:s3:::b/k")]),
        ("HEAD", "/b/k?versionId=3", {}, [("s3:GetObjectVersion", "arn:aws:s3:::b/k")]),
        ("HEAD", "/b", {}, [("s3:ListBucket", "arn:aws:s3:::b")]),
        ("GET", "/b?list-type=2&prefix=x", {}, [("s3:ListBucket", "arn:aws:s3:::b")]),
        ("POST", "/b/k?uploads", {}, [("s3:PutObject", "arn:aws:s3:::b/k")]),
        ("PUT", "/b/k?partNumber=1&uploadId=u", {}, [("s3:PutObject", "arn:aws:s3:::b/k")]),
        ("DELETE", "/b/k?uploadId=u", {}, [("s3:AbortMultipartUpload", "arn:aws:s3:::b/k")]),
        (
            "PUT",
            "/b/k",
            {"x-amz-copy-source": "src/a%2Fb"},
            [("s3:PutObject", "arn:aws:s3:::b/k"), ("s3:GetObject", "arn:aws:s3:::src/a/b")],
        ),
    ],
)
def test_s3_requests_map_to_their_permissions(
    method: str, target: str, headers: dict, expected: list
) -> None:
    checks = checks_for(WireRequest("s3", method, target, headers, b"", "us-east-1"))
    assert [(c.action, c.resource) for c in checks] == expected


def test_delete_objects_checks_each_key() -> None:
    body = b"<Delete><Object><Key>a</Key></Object><Object><Key>b/c</Key></Object></Delete>"
    checks = checks_for(WireRequest("s3", "POST", "/b?delete", {}, body, "us-east-1"))
    assert [(c.action, c.resource) for c in checks] == [
        ("s3:DeleteObject", "arn:aws:s3:::b/a"),
        ("s3:DeleteObject", "arn:aws:s3:::b/b/c"),
    ]


def test_json_query_and_rest_requests_name_their_resources() -> None:
    def checks(service: str, target: str, headers: dict, body: dict | bytes, path: str = "/") -> list:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = WireRequest(service, "POST", path, {"X-Amz-Target": target, **headers}, raw, "eu-west-1")
        return [
            (c.action, c.resource, dict(c.context).get("iam:PassedToService")) for c in checks_for(request)
        ]

    assert checks("dynamodb", "DynamoDB_20120810.PutItem", {}, {"TableName": "t"}) == [
        ("dynamodb:PutItem", f"arn:aws:dynamodb:eu-west-1:{ACCOUNT_ID}:table/t", None)
    ]
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/exec"
    assert checks(
        "sagemaker", "SageMaker.CreateTrainingJob", {}, {"TrainingJobName": "Job-A", "RoleArn": role}
    ) == [
        ("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:eu-west-1:{ACCOUNT_ID}:training-job/job-a", None),
        ("iam:PassRole", role, "sagemaker.amazonaws.com"),
    ]
    assert checks("sagemaker", "SageMaker.ListTrainingJobs", {}, {}) == [
        ("sagemaker:ListTrainingJobs", "*", None)
    ]
    assert checks("sqs", "AmazonSQS.SendMessage", {}, {"QueueUrl": "http://127.0.0.1:5/123/q"}) == [
        ("sqs:SendMessage", f"arn:aws:sqs:eu-west-1:{ACCOUNT_ID}:q", None)
    ]
    topic = f"arn:aws:sns:eu-west-1:{ACCOUNT_ID}:t"
    sns = WireRequest(
        "sns", "POST", "/", {}, f"Action=Publish&TopicArn={topic}&Message=m".encode(), "eu-west-1"
    )
    assert [(c.action, c.resource) for c in checks_for(sns)] == [("sns:Publish", topic)]
    invoke = WireRequest("sagemaker", "POST", "/endpoints/My-Endpoint/invocations", {}, b"x", "eu-west-1")
    assert [(c.action, c.resource) for c in checks_for(invoke)] == [
        ("sagemaker:InvokeEndpoint", f"arn:aws:sagemaker:eu-west-1:{ACCOUNT_ID}:endpoint/my-endpoint")
    ]
    identity = WireRequest(
        "sts", "POST", "/", {}, b"Action=GetCallerIdentity&Version=2011-06-15", "eu-west-1"
    )
    assert checks_for(identity) == []


def test_error_shapes_per_protocol() -> None:
    denial = Denial(
        "arn:aws:sts::1:assumed-role/r/f",
        Check("sns:Publish", "arn:aws:sns:us-east-1:1:t"),
        Decision.IMPLICIT_DENY,
    )
    status, _, body = error_response(WireRequest("sns", "POST", "/", {}, b"", "us-east-1"), denial)
    assert status == 403 and b"<Code>AuthorizationError</Code>" in body
    status, headers, body = error_response(
        WireRequest("sqs", "POST", "/", {"Content-Type": "application/x-amz-json-1.0"}, b"{}", "us-east-1"),
        denial,
    )
    assert (status, headers["x-amzn-query-error"]) == (400, "AccessDenied;Sender")
    assert json.loads(body)["__type"] == "AccessDeniedException"
    explicit = Denial("p", Check("s3:GetObject", "*"), Decision.EXPLICIT_DENY)
    assert explicit.message == (
        "User: p is not authorized to perform: s3:GetObject with an explicit deny in an identity-based policy"
    )
    status, _, body = error_response(WireRequest("s3", "GET", "/b/k", {}, b"", "us-east-1"), "AKIAUNKNOWN")
    assert status == 403 and b"<Code>InvalidAccessKeyId</Code>" in body


def test_the_project_roles_come_from_the_transformed_template() -> None:
    resolver = TemplateResolver(load_template(REPO_ROOT / "template.yaml"), stack_name="dogbreed-local")
    roles = AccountRoles.from_template(resolver)
    execution = roles.by_name["dogbreed-local-sagemakerexecutionrole"]
    assert execution.trusts("sagemaker.amazonaws.com") and not execution.trusts("lambda.amazonaws.com")
    ingest = roles.by_name["dogbreed-local-ingestfunctionrole"]
    # SNSPublishMessagePolicy (a SAM policy template) expanded; the template's customer managed
    # policy attached through its Roles list; AWSLambdaBasicExecutionRole from AWS's managed policies.
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:dogbreed-local-notificationtopic"
    assert evaluate(ingest.documents, Check("sns:Publish", topic)) is Decision.ALLOWED
    sids = [statement.get("Sid") for document in ingest.documents for statement in document["Statement"]]
    assert "PublishEncrypted" in sids
    log_group = f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:/aws/lambda/x:*"
    assert evaluate(ingest.documents, Check("logs:CreateLogStream", log_group)) is Decision.ALLOWED
    assert evaluate(ingest.documents, Check("sagemaker:CreateTrainingJob", "*")) is Decision.IMPLICIT_DENY


def test_the_stack_outputs_name_the_execution_role() -> None:
    resolver = TemplateResolver(load_template(REPO_ROOT / "template.yaml"), stack_name="dogbreed-local")
    output = resolver.template["Outputs"]["SageMakerExecutionRoleArn"]["Value"]
    assert resolver.resolve(output) == f"arn:aws:iam::{ACCOUNT_ID}:role/dogbreed-local-sagemakerexecutionrole"
