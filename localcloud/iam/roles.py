"""The account's roles as the transformed template defines them, and local credentials for each.

A role's identity-based policies are what AWS evaluates for a call made with its credentials: its
inline ``Policies``, its ``ManagedPolicyArns`` (AWS managed ones from moto's copy of AWS's managed
policies, customer managed ones from the template), and every ``AWS::IAM::ManagedPolicy`` or
``AWS::IAM::Policy`` of the template that lists the role in ``Roles``. The SAM transform has already
expanded policy templates (``S3CrudPolicy``, ``SNSPublishMessagePolicy``) into inline policies.

Credentials stand in for the ones Lambda and SageMaker get from STS AssumeRole: an ``ASIA`` access
key per role session, so the proxy (``localcloud.iam.proxy``) knows the caller from the request's signature
scope; the principal is ``arn:aws:sts::<account>:assumed-role/<role>/<session>``, as AWS names it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from localcloud.shared import ACCOUNT_ID
from localcloud.stack.template import TemplateResolver

IAM_SWITCH_ENV = "LOCALCLOUD_IAM"  # on (the default) or off, like LOCALCLOUD_DEBUGGER_ACCESS


def iam_enforced_from_env() -> bool:
    value = os.environ.get(IAM_SWITCH_ENV, "on").strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"{IAM_SWITCH_ENV}={value!r}: expected on or off")
    return value == "on"


@dataclass(frozen=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


@dataclass(frozen=True)
class Role:
    name: str
    arn: str
    documents: tuple[Mapping[str, Any], ...]
    trust_policy: Mapping[str, Any]

    def credentials(self, session: str) -> RoleCredentials:
        """One session's credentials (deterministic: a restarted cloud hands out the same ones)."""
        digest = hashlib.sha256(f"{self.arn}/{session}".encode()).hexdigest().upper()
        return RoleCredentials(f"ASIA{digest[:16]}", digest[16:56], f"localcloud-session-{digest[:32]}")

    def principal(self, session: str) -> str:
        return f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{self.name}/{session}"

    def trusts(self, service: str) -> bool:
        """Whether the trust policy lets ``service`` (e.g. sagemaker.amazonaws.com) assume the role.
        Its conditions (``aws:SourceAccount``, ``aws:SourceArn``) hold locally: one account, and
        SageMaker assumes the role for this account's own jobs."""
        for statement in _as_list(self.trust_policy.get("Statement", [])):
            principals = (statement.get("Principal") or {}) if isinstance(statement, dict) else {}
            services = _as_list(principals.get("Service", [])) if isinstance(principals, dict) else []
            actions = _as_list(statement.get("Action", []))
            if statement.get("Effect") == "Allow" and service in services and "sts:AssumeRole" in actions:
                return True
        return False


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _aws_managed_policy(arn: str) -> Mapping[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    name = arn.rsplit("/", 1)[-1]
    policies = json.loads(aws_managed_policies_data)
    if name not in policies:
        raise ValueError(f"AWS managed policy {arn} is not in moto's copy of AWS's managed policies")
    document: Mapping[str, Any] = policies[name]["Document"]
    return document


class AccountRoles:
    """The template's roles by name and ARN."""

    def __init__(self, roles: Mapping[str, Role]) -> None:
        self.by_name = dict(roles)
        self.by_arn = {role.arn: role for role in roles.values()}

    @classmethod
    def from_template(cls, resolver: TemplateResolver) -> AccountRoles:
        attached: dict[str, list[Mapping[str, Any]]] = {}
        customer_managed: dict[str, Mapping[str, Any]] = {}
        for res in resolver.of_type("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            document = res.properties["PolicyDocument"]
            customer_managed[res.ref] = document
            for role_name in res.properties.get("Roles", []) or []:
                attached.setdefault(str(role_name), []).append(document)
        roles: dict[str, Role] = {}
        for res in resolver.of_type("AWS::IAM::Role"):
            props = res.properties
            documents = [p["PolicyDocument"] for p in props.get("Policies", []) or []]
            for arn in props.get("ManagedPolicyArns", []) or []:
                arn = str(arn)
                if arn in customer_managed:
                    documents.append(customer_managed[arn])
                elif arn.startswith("arn:aws:iam::aws:policy/"):
                    documents.append(_aws_managed_policy(arn))
                else:
                    raise ValueError(f"{res.logical_id}: managed policy {arn} is not in the template")
            documents += attached.get(res.ref, [])
            roles[res.ref] = Role(
                res.ref,
                res.attributes["Arn"],
                tuple(documents),
                props.get("AssumeRolePolicyDocument") or {},
            )
        return cls(roles)
