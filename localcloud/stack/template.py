"""Read a SAM/CloudFormation template the way AWS reads it, and resolve it to local names.

A template that declares ``Transform: AWS::Serverless-2016-10-31`` is first transformed by AWS's own
SAM translator (``localcloud.stack.sam``), so Globals, function events, layers, aliases and
``EventInvokeConfig`` become the same CloudFormation resources AWS deploys. What stays ours is the
part CloudFormation does at deploy time: Parameters (with their constraints), Conditions, Mappings
and intrinsic functions, resolved with local, deterministic physical names (``<stack>-<logicalid>``
in lower case where the template gives none).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localcloud.shared import ACCOUNT_ID
from localcloud.stack.sam import SAM_TRANSFORM, SamTransformError, sam_transform

NO_VALUE = object()  # AWS::NoValue: the enclosing key or list item disappears.

_SCALAR_TAGS = {
    "!Ref": "Ref",
    "!Condition": "Condition",
}
_FN_TAGS = [
    "Sub",
    "GetAtt",
    "If",
    "Equals",
    "Select",
    "Join",
    "FindInMap",
    "Split",
    "Base64",
    "And",
    "Or",
    "Not",
    "GetAZs",
    "ImportValue",
    "Cidr",
    "Length",
    "ToJsonString",
]


class TemplateError(ValueError):
    """The template uses something the local cloud cannot resolve."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns the short intrinsic tags (!Ref, !Sub, ...) into their long form."""


def _construct_tag(loader: yaml.SafeLoader, tag: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag in _SCALAR_TAGS:
        return {_SCALAR_TAGS[tag]: value}
    name = tag[1:]
    if name == "GetAtt" and isinstance(value, str):
        # "!GetAtt Res.Attr" is the short form of ["Res", "Attr"]; attributes may contain dots.
        logical, _, attribute = value.partition(".")
        value = [logical, attribute]
    return {f"Fn::{name}": value}


for _tag in list(_SCALAR_TAGS) + [f"!{n}" for n in _FN_TAGS]:
    _CfnLoader.add_constructor(_tag, lambda loader, node, _t=_tag: _construct_tag(loader, _t, node))


def load_template(path: Path) -> dict[str, Any]:
    """Parse a template file (YAML or JSON) with CloudFormation's short tags."""
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CfnLoader)
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources section)")
    return document


def _check_constraints(name: str, spec: Mapping[str, Any], value: Any) -> None:
    """AllowedPattern, MinValue/MaxValue and Number checks, as CloudFormation applies them."""
    text = str(value)
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, text) is None:
        raise TemplateError(f"parameter {name}={text!r} does not match {pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(text)
        except ValueError as error:
            raise TemplateError(f"parameter {name}={text!r} is not a number") from error
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={text} is below MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={text} is above MaxValue {spec['MaxValue']}")


def _local_name(stack_name: str, logical_id: str, max_length: int = 63) -> str:
    """A deterministic physical name; lower case so it is also a valid bucket name."""
    name = re.sub(r"[^a-z0-9-]", "-", f"{stack_name}-{logical_id}".lower())
    return name[:max_length].strip("-")


@dataclass
class ResolvedResource:
    logical_id: str
    type: str
    properties: dict[str, Any]
    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


class TemplateResolver:
    """Resolves Parameters, Conditions, Mappings and intrinsic functions against local names."""

    def __init__(
        self,
        template: dict[str, Any],
        *,
        stack_name: str = "local",
        region: str = "us-east-1",
        parameter_overrides: Mapping[str, str] | None = None,
        queue_url_base: str = "http://127.0.0.1",
    ) -> None:
        self.template = template
        self.stack_name = stack_name
        self.region = region
        self.queue_url_base = queue_url_base.rstrip("/")
        self.parameters = self._resolve_parameters(parameter_overrides or {})
        transforms = template.get("Transform") or []
        if SAM_TRANSFORM in ([transforms] if isinstance(transforms, str) else transforms):
            try:
                self.template = sam_transform(template, self.parameters, region)
            except SamTransformError as error:
                raise TemplateError(str(error)) from error
            template = self.template
        self.mappings: dict[str, Any] = template.get("Mappings", {}) or {}
        self._condition_cache: dict[str, bool] = {}
        self.resources: dict[str, ResolvedResource] = {}
        raw_resources: dict[str, Any] = template.get("Resources", {}) or {}
        self._raw_resources = {
            logical: body
            for logical, body in raw_resources.items()
            if "Condition" not in body or self.condition(body["Condition"])
        }
        # Names first (Ref/GetAtt of any resource may be needed while resolving properties).
        qualified = ("AWS::Lambda::Alias", "AWS::Lambda::Version")  # named after their function
        for logical_id, body in sorted(
            self._raw_resources.items(), key=lambda i: i[1].get("Type") in qualified
        ):
            self.resources[logical_id] = self._identity(logical_id, body)
        for logical_id, body in self._raw_resources.items():
            self.resources[logical_id].properties = self.resolve(body.get("Properties", {}) or {})

    # -- parameters and conditions -------------------------------------------------------------
    def _resolve_parameters(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        declared: dict[str, Any] = self.template.get("Parameters", {}) or {}
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"parameter overrides for undeclared parameters: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in overrides:
                value: Any = overrides[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no Default and no override")
            _check_constraints(name, spec, value)
            allowed = spec.get("AllowedValues")
            if allowed is not None and str(value) not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            if str(spec.get("Type", "String")).startswith("List<") or spec.get("Type") == (
                "CommaDelimitedList"
            ):
                value = [item.strip() for item in str(value).split(",")] if value != "" else []
            else:
                value = str(value)
            values[name] = value
        return values

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            conditions = self.template.get("Conditions", {}) or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._condition_cache[name] = bool(self.resolve(conditions[name]))
        return self._condition_cache[name]

    # -- names -----------------------------------------------------------------------------------
    def _identity(self, logical_id: str, body: dict[str, Any]) -> ResolvedResource:
        """A resource's local Ref and GetAtt values (one table of resource types: long, not branching)."""
        rtype = body.get("Type", "")
        props = body.get("Properties", {}) or {}
        region, account = self.region, ACCOUNT_ID

        def explicit(key: str) -> str | None:
            value = props.get(key)
            if value is None:
                return None
            resolved = self.resolve(value)  # may reference parameters or pseudo parameters
            return None if resolved is NO_VALUE else str(resolved)

        if rtype == "AWS::S3::Bucket":
            name = explicit("BucketName") or _local_name(self.stack_name, logical_id)
            return ResolvedResource(
                logical_id,
                rtype,
                {},
                name,
                {
                    "Arn": f"arn:aws:s3:::{name}",
                    "DomainName": f"{name}.s3.amazonaws.com",
                    "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
                },
            )
        if rtype == "AWS::DynamoDB::Table":
            name = explicit("TableName") or _local_name(self.stack_name, logical_id, 255)
            arn = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
            return ResolvedResource(logical_id, rtype, {}, name, {"Arn": arn, "StreamArn": f"{arn}/stream/0"})
        if rtype == "AWS::SNS::Topic":
            name = explicit("TopicName") or _local_name(self.stack_name, logical_id, 256)
            arn = f"arn:aws:sns:{region}:{account}:{name}"
            return ResolvedResource(logical_id, rtype, {}, arn, {"TopicName": name, "TopicArn": arn})
        if rtype == "AWS::SQS::Queue":
            name = explicit("QueueName") or _local_name(self.stack_name, logical_id, 80)
            arn = f"arn:aws:sqs:{region}:{account}:{name}"
            url = f"{self.queue_url_base}/{account}/{name}"
            return ResolvedResource(
                logical_id, rtype, {}, url, {"Arn": arn, "QueueName": name, "QueueUrl": url}
            )
        if rtype == "AWS::Lambda::Function":
            name = explicit("FunctionName") or _local_name(self.stack_name, logical_id, 64)
            arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
            return ResolvedResource(logical_id, rtype, {}, name, {"Arn": arn})
        if rtype in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
            # Ref is the qualified ARN (AutoPublishAlias: events and destinations target the alias);
            # every local version is version 1, since the local cloud runs the code on disk.
            function = self.ref(str(props["FunctionName"]["Ref"]))
            qualifier = explicit("Name") if rtype == "AWS::Lambda::Alias" else "1"
            arn = f"arn:aws:lambda:{region}:{account}:function:{function}:{qualifier}"
            return ResolvedResource(logical_id, rtype, {}, arn, {"Version": "1", "AliasArn": arn})
        if rtype == "AWS::Lambda::LayerVersion":
            name = explicit("LayerName") or _local_name(self.stack_name, logical_id, 64)
            arn = f"arn:aws:lambda:{region}:{account}:layer:{name}:1"
            return ResolvedResource(logical_id, rtype, {}, arn, {"Arn": arn})
        if rtype == "AWS::IAM::Role":
            name = explicit("RoleName") or _local_name(self.stack_name, logical_id, 64)
            arn = f"arn:aws:iam::{account}:role/{name}"
            return ResolvedResource(
                logical_id, rtype, {}, name, {"Arn": arn, "RoleId": f"AROA{name.upper()[:16]}"}
            )
        if rtype == "AWS::Events::Rule":
            name = explicit("Name") or _local_name(self.stack_name, logical_id, 64)
            arn = f"arn:aws:events:{region}:{account}:rule/{name}"
            return ResolvedResource(logical_id, rtype, {}, name, {"Arn": arn})
        # Anything else: a name-like Ref and a fake ARN, enough for environment variables.
        name = _local_name(self.stack_name, logical_id, 128)
        service = rtype.split("::")[1].lower() if rtype.count("::") >= 2 else "local"
        return ResolvedResource(
            logical_id, rtype, {}, name, {"Arn": f"arn:aws:{service}:{region}:{account}:{name}"}
        )

    def pseudo_parameter(self, name: str) -> Any:
        values: dict[str, Any] = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/local"
            ),
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
            "AWS::NotificationARNs": [],
        }
        if name not in values:
            raise TemplateError(f"unknown pseudo parameter {name}")
        return values[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo_parameter(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.resources[name].ref
        raise TemplateError(f"!Ref to unknown name {name}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        if logical_id not in self.resources:
            raise TemplateError(f"!GetAtt of unknown resource {logical_id}")
        res = self.resources[logical_id]
        if attribute in res.attributes:
            return res.attributes[attribute]
        # Unknown attributes resolve to a recognisable placeholder rather than failing the run.
        return f"{res.ref}:{attribute}"

    # -- intrinsic functions -----------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(self.resolve(arg))
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key[4:], arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _function(self, name: str, arg: Any) -> Any:
        if name == "Sub":
            if isinstance(arg, list):
                text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
            else:
                text, variables = arg, {}
            return self._sub(text, variables)
        if name == "GetAtt":
            parts = self.resolve(arg)
            if isinstance(parts, str):
                parts = parts.split(".", 1)
            return self.get_att(parts[0], parts[1])
        if name == "If":
            cond, when_true, when_false = arg
            return self.resolve(when_true if self.condition(cond) else when_false)
        if name == "Equals":
            left, right = (self.resolve(a) for a in arg)
            return str(left) == str(right)
        if name == "And":
            return all(bool(self.resolve(a)) for a in arg)
        if name == "Or":
            return any(bool(self.resolve(a)) for a in arg)
        if name == "Not":
            return not bool(self.resolve(arg[0]))
        if name == "Select":
            index, items = self.resolve(arg[0]), self.resolve(arg[1])
            return items[int(index)]
        if name == "Join":
            delimiter, items = arg[0], self.resolve(arg[1])
            return delimiter.join(str(i) for i in items)
        if name == "Split":
            delimiter, text = arg[0], self.resolve(arg[1])
            return str(text).split(delimiter)
        if name == "FindInMap":
            map_name, top, second = (self.resolve(a) for a in arg[:3])
            try:
                return self.mappings[map_name][top][second]
            except KeyError as error:
                if len(arg) > 3 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                    return self.resolve(arg[3]["DefaultValue"])
                raise TemplateError(f"!FindInMap {map_name}/{top}/{second} not found") from error
        if name == "Base64":
            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        if name == "GetAZs":
            return [f"{self.region}a", f"{self.region}b", f"{self.region}c"]
        if name == "Length":
            return len(self.resolve(arg))
        if name == "ImportValue":
            return f"imported-{self.resolve(arg)}"
        raise TemplateError(f"Fn::{name} is not supported locally")

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):  # ${!Literal} is an escaped "${Literal}"
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token and not token.startswith("AWS::"):
                logical, attribute = token.split(".", 1)
                return str(self.get_att(logical, attribute))
            value = self.ref(token)
            if value is NO_VALUE:
                raise TemplateError(f"${{{token}}} resolves to AWS::NoValue inside !Sub")
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # -- convenience -------------------------------------------------------------------------------
    def of_type(self, *types: str) -> list[ResolvedResource]:
        return [r for r in self.resources.values() if r.type in types]

    def find_by_arn_or_ref(self, value: str) -> ResolvedResource | None:
        for res in self.resources.values():
            if value == res.ref or value in res.attributes.values():
                return res
        return None
