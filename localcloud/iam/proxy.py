"""The IAM front: an HTTP endpoint on 127.0.0.1 that authorizes each call, then forwards it.

The Lambdas' ``AWS_ENDPOINT_URL*`` and the SageMaker emulator's S3 endpoint point here. The caller
is known from the access key in the request's SigV4 credential scope (``localcloud.iam.roles``); the
service from its signing name. Each check of ``localcloud.iam.actions`` is evaluated against the
role's policies (``localcloud.iam.policy``); the first one denied is answered in the service's error
shape with AWS's message form
(https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html):
``User: <principal> is not authorized to perform: <action> on resource: <arn> because no
identity-based policy allows the <action> action``. Allowed calls go on to moto or the emulator
unchanged (neither checks signatures). The signature itself is not verified.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from localcloud.faults.s3_proxy import ProxyHandler
from localcloud.iam.actions import WireRequest, checks_for
from localcloud.iam.policy import Check, Decision, evaluate
from localcloud.iam.roles import AccountRoles, Role
from localcloud.shared import LocalHTTPServer

_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
QUERY_SERVICES = frozenset({"sns", "sts", "iam"})  # awsQuery: XML <ErrorResponse>


@dataclass(frozen=True)
class Denial:
    principal: str
    check: Check
    decision: Decision

    @property
    def message(self) -> str:
        action, resource = self.check.action, self.check.resource
        on = f" on resource: {resource}" if resource != "*" else ""
        head = f"User: {self.principal} is not authorized to perform: {action}{on}"
        if self.decision is Decision.EXPLICIT_DENY:
            return f"{head} with an explicit deny in an identity-based policy"
        return f"{head} because no identity-based policy allows the {action} action"


class IamProxy:
    """Authorizes and forwards; ``upstreams`` maps a signing name to a URL, ``"*"`` for the rest."""

    def __init__(self, roles: AccountRoles, upstreams: Mapping[str, str]) -> None:
        self.roles = roles
        self.upstreams = {name: urlsplit(url) for name, url in upstreams.items()}
        self.denials: list[Denial] = []  # every refused call, for tests and the demo's failure report
        self._sessions: dict[str, tuple[Role, str]] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(_IamHandler):
            owner = proxy

        self._httpd = LocalHTTPServer(("127.0.0.1", 0), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def route(self, service: str, url: str) -> None:
        """Send calls signed for ``service`` to ``url`` (a server started after this proxy)."""
        self.upstreams[service] = urlsplit(url)

    def session_environment(self, role_arn: str, session: str) -> dict[str, str]:
        """Credentials of ``role_arn`` for one session (a function's name, SageMaker's), as env vars."""
        role = self.roles.by_arn.get(role_arn)
        if role is None:
            raise KeyError(f"{role_arn} is not a role of the template")
        credentials = role.credentials(session)
        with self._lock:
            self._sessions[credentials.access_key_id] = (role, session)
        return credentials.environment()

    def assumable_by(self, role_arn: str, service: str) -> bool:
        """Whether the account has the role and its trust policy lets ``service`` assume it."""
        role = self.roles.by_arn.get(role_arn)
        return role is not None and role.trusts(service)

    def start(self) -> IamProxy:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="iam-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def authorize(self, access_key: str, request: WireRequest) -> Denial | str | None:
        """None: allowed; a Denial; or a string naming an unknown access key."""
        with self._lock:
            caller = self._sessions.get(access_key)
        if caller is None:
            return access_key
        role, session = caller
        for check in checks_for(request):
            decision = evaluate(role.documents, check)
            if decision is not Decision.ALLOWED:
                denial = Denial(role.principal(session), check, decision)
                with self._lock:
                    self.denials.append(denial)
                return denial
        return None


def _access_key_and_scope(handler: ProxyHandler) -> tuple[str, str, str]:
    """(access key, region, signing name) from the Authorization header or a presigned URL's query."""
    match = _SCOPE.search(handler.headers.get("Authorization", ""))
    if match:
        return match.group(1), match.group(2), match.group(3)
    credential = parse_qs(urlsplit(handler.path).query).get("X-Amz-Credential", [""])[0]
    parts = credential.split("/")
    if len(parts) == 5:
        return parts[0], parts[2], parts[3]
    return "", "", ""


class _IamHandler(ProxyHandler):
    owner: IamProxy  # type: ignore[assignment]

    def _authorize_and_forward(self) -> None:
        body = self._read_body()
        access_key, region, service = _access_key_and_scope(self)
        request = WireRequest(service, self.command, self.path, dict(self.headers.items()), body, region)
        verdict = self.owner.authorize(access_key, request) if service else access_key
        if verdict is not None:
            self._refuse(request, verdict)
            return
        upstream = self.owner.upstreams.get(service) or self.owner.upstreams["*"]
        self.upstream_host = upstream.hostname or "127.0.0.1"
        self.upstream_port = upstream.port or 80
        self._forward(body)

    def _refuse(self, request: WireRequest, verdict: Denial | str) -> None:
        status, headers, payload = error_response(request, verdict)
        self.send_response_only(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _authorize_and_forward  # noqa: N815


def error_response(request: WireRequest, verdict: Denial | str) -> tuple[int, dict[str, str], bytes]:
    """AWS's error for a refused call, in the service's protocol. A string verdict is an access key
    the account does not have (InvalidAccessKeyId / UnrecognizedClientException / InvalidClientTokenId)."""
    request_id = str(uuid.uuid4())
    denied = isinstance(verdict, Denial)
    message = (
        verdict.message
        if isinstance(verdict, Denial)
        else "The security token included in the request is invalid."
    )
    if request.service == "s3":
        # 403 AccessDenied / InvalidAccessKeyId: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
        code = "AccessDenied" if denied else "InvalidAccessKeyId"
        if not denied:
            message = "The AWS Access Key Id you provided does not exist in our records."
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{_xml(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        )
        return 403, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body.encode()
    if request.service in QUERY_SERVICES:
        # SNS answers AuthorizationError (https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html)
        code = (
            ("AuthorizationError" if request.service == "sns" else "AccessDenied")
            if denied
            else "InvalidClientTokenId"
        )
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{_xml(message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return 403, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()
    # JSON services: 400 AccessDeniedException, the common error of every AWS API
    # (https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html,
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/CommonErrors.html).
    code = "AccessDeniedException" if denied else "UnrecognizedClientException"
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": code}
    if request.service == "sqs":  # awsQueryCompatible: the query protocol's code, as SQS sends it
        headers["x-amzn-query-error"] = f"{'AccessDenied' if denied else 'InvalidClientTokenId'};Sender"
    if request.header("Content-Type") == "application/cbor":
        headers.update({"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"})
        return 400, headers, _cbor_text_map({"__type": code, "message": message})
    headers["Content-Type"] = request.header("Content-Type") or "application/x-amz-json-1.1"
    return 400, headers, json.dumps({"__type": code, "message": message}).encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cbor_text_map(fields: Mapping[str, str]) -> bytes:
    """A CBOR map of text strings (RFC 8949: major types 5 and 3), for the RPC v2 CBOR error body."""

    def text(value: str) -> bytes:
        data = value.encode()
        size = len(data)
        if size < 24:
            head = bytes([0x60 + size])
        elif size < 256:
            head = bytes([0x78, size])
        else:
            head = bytes([0x79]) + size.to_bytes(2, "big")
        return head + data

    return bytes([0xA0 + len(fields)]) + b"".join(text(k) + text(v) for k, v in fields.items())
