"""Errors the emulator returns, shaped the way SageMaker returns them.

Control plane (JSON 1.1): HTTP 400 with ``{"__type": <code>, "message": ...}``; botocore takes the
code after any ``#`` and raises ``ClientError`` (or the modeled ``client.exceptions.<Code>``).
Runtime (rest-json): the code travels in ``x-amzn-ErrorType`` and the body.
"""

from __future__ import annotations

from typing import Any


class SageMakerError(Exception):
    """Base for every error the emulator turns into an AWS-shaped error response."""

    code = "InternalFailure"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"__type": self.code, "message": self.message}


class ValidationException(SageMakerError):  # noqa: N818 (AWS error code)
    code = "ValidationException"


class ResourceNotFound(SageMakerError):  # noqa: N818 (AWS error code)
    code = "ResourceNotFound"


class ResourceInUse(SageMakerError):  # noqa: N818 (AWS error code)
    code = "ResourceInUse"


class ResourceLimitExceeded(SageMakerError):  # noqa: N818 (AWS error code)
    code = "ResourceLimitExceeded"


class AccessDeniedException(SageMakerError):  # noqa: N818 (AWS error code)
    """SageMaker's common error for a caller without access (HTTP 400, "You do not have sufficient
    access to perform this action.", https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html)."""

    code = "AccessDeniedException"


class UnknownOperationException(SageMakerError):  # noqa: N818 (AWS error code)
    code = "UnknownOperationException"


class InternalFailure(SageMakerError):  # noqa: N818 (AWS error code)
    code = "InternalFailure"
    status = 500


# --- sagemaker-runtime -------------------------------------------------------------------------


class RuntimeValidationError(SageMakerError):
    """sagemaker-runtime's own validation error code is ``ValidationError`` (not ...Exception)."""

    code = "ValidationError"


class ModelError(SageMakerError):
    """The model container answered with a non-2xx status: SageMaker wraps it as HTTP 424."""

    code = "ModelError"
    status = 424

    def __init__(self, message: str, original_status: int, original_message: str, log_stream_arn: str):
        super().__init__(message)
        self.original_status = original_status
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn

    def body(self) -> dict[str, Any]:
        return {
            "__type": self.code,
            "ErrorCode": "CLIENT_ERROR_FROM_MODEL"
            if self.original_status < 500
            else "SERVER_ERROR_FROM_MODEL",
            "Message": self.message,
            "message": self.message,
            "OriginalStatusCode": self.original_status,
            "OriginalMessage": self.original_message,
            "LogStreamArn": self.log_stream_arn,
        }
