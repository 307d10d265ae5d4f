"""IAM's policy simulator, ``SimulatePrincipalPolicy``, for the template's roles; the rest of IAM is moto's.

moto does not implement ``SimulatePrincipalPolicy`` (it answers an HTML 500), and AWS's own clients
call it: SageMaker SDK v3 checks an execution role with it before it creates a job
(``sagemaker/core/helper/iam_role_resolver.py``, ``_simulate_denied_actions``). The local cloud hands
out this front as its IAM endpoint (``AWS_ENDPOINT_URL_IAM``): it answers that one action with the
local evaluator (``localcloud.iam.policy``) over the role's identity-based policies, the same ones
the IAM proxy enforces, and forwards every other IAM call to moto unchanged.

The answer follows the IAM API reference
(https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html and
https://docs.aws.amazon.com/IAM/latest/APIReference/API_EvaluationResult.html) and botocore's iam
model (output ``SimulatePrincipalPolicyResult``: ``EvaluationResults[]`` with ``EvalActionName``,
``EvalResourceName``, ``EvalDecision`` one of ``allowed``/``implicitDeny``/``explicitDeny``,
``MissingContextValues``; ``IsTruncated``). Each action is simulated on each of ``ResourceArns``
(``*`` when none is given, as the reference says), with the ``ContextEntries`` given; a condition
on a key no entry supplies does not hold, and the key is listed in ``MissingContextValues``.
What is not simulated: ``PolicyInputList`` and permission boundaries (the template's roles have
none), resource policies, ``CallerArn``, and roles that are not the template's (``NoSuchEntity``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from localcloud.faults.s3_proxy import ProxyHandler
from localcloud.iam.policy import Check, Decision, evaluate, missing_context_keys
from localcloud.iam.roles import AccountRoles, Role
from localcloud.shared import LocalHTTPServer

IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"
EVAL_DECISIONS = {
    Decision.ALLOWED: "allowed",
    Decision.IMPLICIT_DENY: "implicitDeny",
    Decision.EXPLICIT_DENY: "explicitDeny",
}


def _members(form: Mapping[str, list[str]], prefix: str) -> list[str]:
    """The query protocol's list ``Prefix.member.1``, ``Prefix.member.2``, ... in order."""
    values, index = [], 1
    while f"{prefix}.member.{index}" in form:
        values.append(form[f"{prefix}.member.{index}"][0])
        index += 1
    return values


def _context(form: Mapping[str, list[str]]) -> dict[str, str]:
    """``ContextEntries`` as the evaluator's context (a key's first value: its conditions take one)."""
    context, index = {}, 1
    while f"ContextEntries.member.{index}.ContextKeyName" in form:
        entry = f"ContextEntries.member.{index}"
        values = _members(form, f"{entry}.ContextKeyValues")
        if values:
            context[form[f"{entry}.ContextKeyName"][0].lower()] = values[0]
        index += 1
    return context


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def simulate_principal_policy(roles: AccountRoles, form: Mapping[str, list[str]]) -> tuple[int, bytes]:
    """The HTTP status and XML body IAM answers to one ``SimulatePrincipalPolicy`` request."""
    request_id = str(uuid.uuid4())
    source = form.get("PolicySourceArn", [""])[0]
    role: Role | None = roles.by_arn.get(source)
    if role is None:
        # A bad input, permanent: NoSuchEntity, IAM's 404 for an entity the account does not have
        # (https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html, Errors).
        error = (
            f'<ErrorResponse xmlns="{IAM_XMLNS}"><Error><Type>Sender</Type><Code>NoSuchEntity</Code>'
            f"<Message>The role with ARN {_xml(source)} cannot be found.</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return 404, error.encode()
    context = _context(form)
    results = []
    for action in _members(form, "ActionNames"):
        for resource in _members(form, "ResourceArns") or ["*"]:
            check = Check(action, resource, context)
            missing = "".join(
                f"<member>{_xml(key)}</member>" for key in missing_context_keys(role.documents, check)
            )
            results.append(
                f"<member><EvalActionName>{_xml(action)}</EvalActionName>"
                f"<EvalResourceName>{_xml(resource)}</EvalResourceName>"
                f"<EvalDecision>{EVAL_DECISIONS[evaluate(role.documents, check)]}</EvalDecision>"
                f"<MatchedStatements/><MissingContextValues>{missing}</MissingContextValues></member>"
            )
    body = (
        f'<SimulatePrincipalPolicyResponse xmlns="{IAM_XMLNS}"><SimulatePrincipalPolicyResult>'
        f"<IsTruncated>false</IsTruncated><EvaluationResults>{''.join(results)}</EvaluationResults>"
        f"</SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>{request_id}</RequestId>"
        f"</ResponseMetadata></SimulatePrincipalPolicyResponse>"
    )
    return 200, body.encode()


class IamApiFront:
    """The IAM endpoint: ``SimulatePrincipalPolicy`` answered here, every other call forwarded to moto."""

    def __init__(self, roles: AccountRoles, moto_url: str) -> None:
        self.roles = roles
        upstream = urlsplit(moto_url)
        front = self

        class Handler(_IamApiHandler):
            upstream_host = upstream.hostname or "127.0.0.1"
            upstream_port = upstream.port or 80
            owner = front

        self._httpd = LocalHTTPServer(("127.0.0.1", 0), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> IamApiFront:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="iam-api-front", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _IamApiHandler(ProxyHandler):
    owner: IamApiFront  # type: ignore[assignment]

    def _answer_or_forward(self) -> None:
        body = self._read_body()
        form = parse_qs(body.decode("utf-8", "replace")) if self.command == "POST" else {}
        if form.get("Action") != ["SimulatePrincipalPolicy"]:
            self._forward(body)
            return
        status, payload = simulate_principal_policy(self.owner.roles, form)
        self.send_response_only(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer_or_forward  # noqa: N815
