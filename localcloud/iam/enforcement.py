"""IAM enforcement for one LocalCloud: the roles of its template, the proxies, the functions' credentials.

Two proxies (``localcloud.iam.proxy``) with the same roles: one for the Lambda functions (their S3
calls go on through the fault-injection proxy when faults are on, their SageMaker calls to the
emulator, everything else to moto) and one for the SageMaker emulator's own S3 calls as execution
roles (straight to moto: injected S3 faults are for the functions). Lambda's Invoke API is not
behind a proxy: the functions do not call it. And the account's IAM endpoint (``localcloud.iam.simulate``):
the policy simulator over the same roles, moto for the rest of IAM, where the roles are created.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from localcloud.iam.proxy import Denial, IamProxy
from localcloud.iam.roles import AccountRoles
from localcloud.iam.simulate import IamApiFront
from localcloud.lambdas.runner import FunctionSpec
from localcloud.stack.template import TemplateResolver

UNPROXIED_ENDPOINTS = ("AWS_ENDPOINT_URL_LAMBDA",)


class IamEnforcement:
    def __init__(self, resolver: TemplateResolver, moto_url: str, functions_s3_url: str) -> None:
        self._resolver = resolver
        self.roles = AccountRoles.from_template(resolver)
        self.functions = IamProxy(self.roles, {"*": moto_url, "s3": functions_s3_url})
        self.jobs = IamProxy(self.roles, {"*": moto_url})
        self.api = IamApiFront(self.roles, moto_url)

    def start(self) -> IamEnforcement:
        self.functions.start()
        self.jobs.start()
        self.api.start()
        return self

    def stop(self) -> None:
        self.functions.stop()
        self.jobs.stop()
        self.api.stop()

    def create_roles(self, iam: Any) -> None:
        """Create the template's roles in moto's IAM with their trust policies, as the stack does, so
        that ``GetRole`` answers for them (SDK v3 reads the trust policy with it). Their permissions
        are the evaluator's (``self.roles``): moto is not asked to decide anything."""
        for role in self.roles.by_name.values():
            iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=json.dumps(role.trust_policy))

    @property
    def denials(self) -> list[Denial]:
        """Every call refused so far, the functions' first."""
        return [*self.functions.denials, *self.jobs.denials]

    def function_endpoints(self, endpoint_env: Mapping[str, str]) -> dict[str, str]:
        """The functions' endpoint variables with every AWS service behind the functions' proxy."""
        return {
            key: self.functions.url
            if key.startswith("AWS_ENDPOINT_URL") and key not in UNPROXIED_ENDPOINTS
            else value
            for key, value in endpoint_env.items()
        }

    def assign_roles(self, specs: Mapping[str, FunctionSpec]) -> None:
        """Give each function its execution role's credentials (session name: the function's name,
        as Lambda names the session)."""
        for spec in specs.values():
            role_arn = str(self._resolver.resources[spec.logical_id].properties["Role"])
            spec.environment.update(self.functions.session_environment(role_arn, spec.name))
