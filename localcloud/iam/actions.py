"""What AWS authorizes for a request: its IAM action(s) and resource ARN(s), from the wire request.

The action names and resource types follow the Service Authorization Reference
(https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html):
S3 operations map to their permission (HeadObject -> s3:GetObject, HeadBucket and ListObjectsV2 ->
s3:ListBucket, the multipart calls -> s3:PutObject; moto's ``ACTION_MAP`` is the table), a copy also
needs s3:GetObject on its source; DynamoDB's batch calls are checked per table; SageMaker's Create*
calls that pass a role also need ``iam:PassRole`` on it, with ``iam:PassedToService`` in the context
(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html). Calls with no resource
type (List*, Search, ListTopics) are checked against ``*``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

from moto.s3.responses import ACTION_MAP as S3_ACTION_MAP

from localcloud.iam.policy import Check
from localcloud.shared import ACCOUNT_ID

# SageMaker request members that name a resource, and the resource type in its ARN.
SAGEMAKER_NAMES = {
    "TrainingJobName": "training-job",
    "HyperParameterTuningJobName": "hyper-parameter-tuning-job",
    "ModelName": "model",
    "EndpointConfigName": "endpoint-config",
    "EndpointName": "endpoint",
}
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"


@dataclass(frozen=True)
class WireRequest:
    """An HTTP request as the proxy received it; ``service`` is the SigV4 signing name."""

    service: str
    method: str
    target: str  # path and query, as sent
    headers: Mapping[str, str]
    body: bytes
    region: str

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def header(self, name: str) -> str:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), "")

    def json_body(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def form(self) -> dict[str, str]:
        fields = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in fields.items()}


def checks_for(request: WireRequest) -> list[Check]:
    """Every authorization AWS makes for the request (empty: none needed, e.g. GetCallerIdentity)."""
    context = {"aws:SecureTransport": "true", "aws:RequestedRegion": request.region}
    checks = _checks(request)
    return [Check(c.action, c.resource, {**context, **c.context}) for c in checks]


def _checks(request: WireRequest) -> list[Check]:
    if request.service == "s3":
        return _s3_checks(request)
    if request.service == "sagemaker" and request.path.startswith("/endpoints/"):
        endpoint = unquote(request.path.split("/")[2])  # InvokeEndpoint: /endpoints/<name>/invocations
        return [Check("sagemaker:InvokeEndpoint", _sagemaker_arn(request, "endpoint", endpoint))]
    operation, params = _operation(request)
    if request.service == "sts" and operation == "GetCallerIdentity":
        return []  # needs no permission (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html)
    prefix = "cloudwatch" if request.service == "monitoring" else request.service
    action = f"{prefix}:{operation}"
    resources = _resources(request, operation, params)
    checks = [Check(action, resource) for resource in resources or ["*"]]
    if request.service == "sagemaker":
        for role_arn in _passed_roles(params):
            checks.append(Check("iam:PassRole", role_arn, {"iam:PassedToService": SAGEMAKER_SERVICE}))
    if action == "cloudwatch:PutMetricData" and "Namespace" in params:
        checks = [
            Check(c.action, c.resource, {"cloudwatch:namespace": str(params["Namespace"])}) for c in checks
        ]
    return checks


def _operation(request: WireRequest) -> tuple[str, dict[str, Any]]:
    """The operation name and its parameters: JSON (X-Amz-Target), query (Action=) or RPC v2 path."""
    target = request.header("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1], request.json_body()
    rpc = re.search(r"/operation/([A-Za-z]+)$", request.path)
    if rpc:  # smithy RPC v2 CBOR (CloudWatch): the body is CBOR, its members are not read locally
        return rpc.group(1), {}
    form = request.form() if request.method == "POST" else {}
    if "Action" not in form:
        form.update({k: v[0] for k, v in request.query.items()})
    return form.get("Action", "Unknown"), dict(form)


def _resources(request: WireRequest, operation: str, params: Mapping[str, Any]) -> list[str]:
    region, service = request.region, request.service
    if service == "dynamodb":
        tables = [params["TableName"]] if "TableName" in params else list(params.get("RequestItems") or {})
        for item in params.get("TransactItems") or []:
            tables += [
                body["TableName"] for body in item.values() if isinstance(body, dict) and "TableName" in body
            ]
        return [f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{t}" for t in dict.fromkeys(tables)]
    if service == "sqs" and "QueueUrl" in params:
        return [f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{str(params['QueueUrl']).rstrip('/').rsplit('/', 1)[-1]}"]
    if service == "sns":
        arn = params.get("TopicArn") or params.get("TargetArn")
        return [str(arn)] if arn else []
    if service == "sagemaker":
        if "ResourceArn" in params:
            return [str(params["ResourceArn"])]
        if operation.startswith(("List", "Search")):
            return []
        return [
            _sagemaker_arn(request, kind, str(params[key]))
            for key, kind in SAGEMAKER_NAMES.items()
            if key in params
        ]
    if service == "monitoring":
        names = [v for k, v in params.items() if k == "AlarmNames" or k.startswith("AlarmNames.member.")]
        flat = [n for name in names for n in (name if isinstance(name, list) else [name])]
        return [f"arn:aws:cloudwatch:{region}:{ACCOUNT_ID}:alarm:{n}" for n in flat]
    if service == "logs" and "logGroupName" in params:
        return [f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{params['logGroupName']}:*"]
    return []


def _sagemaker_arn(request: WireRequest, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{request.region}:{ACCOUNT_ID}:{kind}/{name.lower()}"


def _passed_roles(params: Mapping[str, Any]) -> list[str]:
    """The role ARNs a SageMaker request passes to SageMaker (RoleArn, ExecutionRoleArn, definitions)."""
    roles = [params.get("RoleArn"), params.get("ExecutionRoleArn")]
    definitions = [params.get("TrainingJobDefinition"), *(params.get("TrainingJobDefinitions") or [])]
    roles += [d.get("RoleArn") for d in definitions if isinstance(d, dict)]
    return [str(r) for r in dict.fromkeys(roles) if r]


def _s3_checks(request: WireRequest) -> list[Check]:
    bucket, _, key = unquote(request.path).lstrip("/").partition("/")
    if not bucket:
        return [Check("s3:ListAllMyBuckets", "*")]
    query = request.query
    if not key:
        if request.method == "POST" and "delete" in query:  # DeleteObjects: each key's DeleteObject
            return [
                Check("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}") for k in _deleted_keys(request.body)
            ]
        operation = _s3_operation("BUCKET", request.method, query)
        operation = {"HeadBucket": "ListBucket"}.get(operation, operation)
        return [Check(f"s3:{operation}", f"arn:aws:s3:::{bucket}")]
    operation = _s3_operation("KEY", request.method, query)
    if request.method == "HEAD" and "versionId" in query:
        operation = "GetObjectVersion"
    checks = [Check(f"s3:{operation}", f"arn:aws:s3:::{bucket}/{key}")]
    source = request.header("x-amz-copy-source")
    if source and request.method == "PUT":  # CopyObject and UploadPartCopy read the source too
        path, _, version = unquote(source).lstrip("/").partition("?versionId=")
        checks.append(Check("s3:GetObjectVersion" if version else "s3:GetObject", f"arn:aws:s3:::{path}"))
    return checks


def _s3_operation(kind: str, method: str, query: Mapping[str, Any]) -> str:
    table = S3_ACTION_MAP[kind].get(method, {})
    for subresource, operation in table.items():
        if subresource != "DEFAULT" and subresource in query:
            return operation
    return table.get("DEFAULT", f"Unknown{method.title()}")


def _deleted_keys(body: bytes) -> list[str]:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return []
    return [el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]
