"""The SageMaker control plane's JSON 1.1 protocol: route by ``X-Amz-Target``, validate, dispatch.

Requests are checked against botocore's own service model (``botocore.validate`` for types, required
members, lengths and unknown members; enums everywhere and patterns of top-level names on top), so a
request SageMaker would reject is rejected here with the same ``ValidationException``.
"""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from typing import Any

import botocore.session
import botocore.validate
from botocore.model import OperationModel, ServiceModel, Shape

from localcloud.sagemaker.backend import SageMakerBackend
from localcloud.sagemaker.exceptions import SageMakerError, UnknownOperationException, ValidationException

logger = logging.getLogger("localcloud.sagemaker.responses")

TARGET_PREFIX = "SageMaker."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"

# Operations this emulator implements (backend method = snake_case of the name).
IMPLEMENTED = (
    "CreateTrainingJob",
    "DescribeTrainingJob",
    "StopTrainingJob",
    "ListTrainingJobs",
    "CreateHyperParameterTuningJob",
    "DescribeHyperParameterTuningJob",
    "StopHyperParameterTuningJob",
    "ListHyperParameterTuningJobs",
    "ListTrainingJobsForHyperParameterTuningJob",
    "CreateModel",
    "DescribeModel",
    "DeleteModel",
    "ListModels",
    "CreateEndpointConfig",
    "DescribeEndpointConfig",
    "DeleteEndpointConfig",
    "ListEndpointConfigs",
    "CreateEndpoint",
    "DescribeEndpoint",
    "UpdateEndpoint",
    "DeleteEndpoint",
    "ListEndpoints",
    "ListTags",
    "AddTags",
    "DeleteTags",
)


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


def snake_case(operation: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", operation).lower()


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _check_enums(value: Any, shape: Shape, path: str, errors: list[str]) -> None:
    if shape.type_name == "structure" and isinstance(value, dict):
        for member_name, member_value in value.items():
            if member_name in shape.members:
                _check_enums(
                    member_value, shape.members[member_name], f"{path}.{_lower_first(member_name)}", errors
                )
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            _check_enums(item, shape.member, f"{path}.{index + 1}.member", errors)
    elif shape.type_name == "map" and isinstance(value, dict):
        for item in value.values():
            _check_enums(item, shape.value, path, errors)
    elif shape.type_name == "string" and isinstance(value, str) and shape.enum and value not in shape.enum:
        errors.append(
            f"Value '{value}' at '{path.lstrip('.')}' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"
        )


def _check_name_patterns(params: dict[str, Any], shape: Shape, errors: list[str]) -> None:
    for member_name, member_shape in shape.members.items():
        value = params.get(member_name)
        pattern = member_shape.metadata.get("pattern")
        if not isinstance(value, str) or member_shape.type_name != "string" or not pattern:
            continue
        try:
            matched = re.fullmatch(pattern, value) is not None
        except re.error:
            continue  # a Java-only construct; botocore's length checks still apply
        if not matched:
            errors.append(
                f"Value '{value}' at '{_lower_first(member_name)}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )


def validate_request(operation: OperationModel, params: dict[str, Any]) -> None:
    if not isinstance(params, dict):
        raise ValidationException("The request body must be a JSON object.")
    report = botocore.validate.ParamValidator().validate(params, operation.input_shape)
    if report.has_errors():
        raise ValidationException(report.generate_report())
    errors: list[str] = []
    _check_enums(params, operation.input_shape, "", errors)
    _check_name_patterns(params, operation.input_shape, errors)
    if errors:
        noun = "error" if len(errors) == 1 else "errors"
        raise ValidationException(f"{len(errors)} validation {noun} detected: " + "; ".join(errors))


def handle_control_plane(
    backend: SageMakerBackend, target: str | None, body: bytes
) -> tuple[int, dict[str, Any]]:
    """Returns (HTTP status, JSON body) for one JSON 1.1 request."""
    try:
        if not target or not target.startswith(TARGET_PREFIX):
            raise UnknownOperationException(f"Missing or unknown X-Amz-Target header: {target!r}")
        operation_name = target[len(TARGET_PREFIX) :]
        model = service_model()
        if operation_name not in model.operation_names:
            raise UnknownOperationException(f"Operation {operation_name} does not exist in SageMaker.")
        if operation_name not in IMPLEMENTED:
            raise UnknownOperationException(
                f"Operation {operation_name} is not implemented by the local emulator."
            )
        try:
            params = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return 400, {
                "__type": "SerializationException",
                "message": f"Request body is not valid JSON: {error}",
            }
        validate_request(model.operation_model(operation_name), params)
        result = backend.operation(snake_case(operation_name))(params)
        return 200, result
    except SageMakerError as error:
        return error.status, error.body()
    except Exception as error:  # a bug here must still answer in SageMaker's shape
        logger.exception("internal error handling %s", target)
        return 500, {"__type": "InternalFailure", "message": f"{type(error).__name__}: {error}"}
