"""Environment variables (declared in template.yaml) parsed into typed settings, per function.

The settings come in small groups (one per concern: the SageMaker jobs, the tuning search, the
endpoint, ingest, ...), and each function's model is the groups it uses, composed by inheritance as
aws-lambda-handler-cookbook composes its env models (service/handlers/models/env_vars.py:
``class MyHandlerEnvVars(Observability, DynamicConfiguration, Idempotency)``). A stage takes the
group it reads, so its signature says which settings it depends on; a handler parses its own
function's model at init. ``Settings`` composes every group, for tests and tools that drive several
stages. Field name = lower-cased env var.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, field_validator, model_validator

from dogclf import contract
from pipeline.image_uris import check_instance_type


def _split(value: object) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)  # type: ignore[call-overload]


def _pair(value: object) -> object:
    parts = _split(value)
    if len(parts) != 2:
        raise ValueError(f"expected 'min,max', got {value!r}")
    return parts


Number = TypeVar("Number", int, float)


def _ordered(value: tuple[Number, Number]) -> tuple[Number, Number]:
    if value[0] > value[1]:
        raise ValueError(f"min {value[0]} is above max {value[1]}")
    return value


# "a,b,c" in the environment; a list in code.
CommaList = Annotated[list[str], BeforeValidator(_split)]
# The template's AllowedPattern refuses other types at deploy time; this is the same list, so a
# function started with another type fails at once, saying which types work.
InstanceType = Annotated[str, AfterValidator(check_instance_type)]


class EnvModel(BaseModel):
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        environ = os.environ if environ is None else environ
        values: dict[str, str] = {
            name: environ[name.upper()] for name in cls.model_fields if name.upper() in environ
        }
        if (
            "aws_region" in cls.model_fields
            and "aws_region" not in values
            and "AWS_DEFAULT_REGION" in environ
        ):
            values["aws_region"] = environ["AWS_DEFAULT_REGION"]
        return cls.model_validate(values)


# ------------------------------------------------------------------------------------------ groups


class CommonSettings(EnvModel):
    """What every function has (the template's Globals)."""

    aws_region: str = "us-east-1"
    notification_topic_arn: str
    job_name_prefix: str = Field(default="dogclf", pattern=r"^[a-z][a-z0-9]{1,9}$")
    training_code_dir: Path = Path("/opt")


class IdempotencySettings(EnvModel):
    """The functions that keep Powertools idempotency records (or the endpoint's state item)."""

    idempotency_table: str


class DatasetsSettings(CommonSettings):
    dataset_bucket: str


class SageMakerSettings(CommonSettings):
    """What any SageMaker resource the pipeline creates needs: where outputs go, the role, the image."""

    artifacts_bucket: str
    sagemaker_role_arn: str
    framework_version: str = "2.6.0"


class ModelSettings(CommonSettings):
    """The model's input: the backbone's weights and the image size it is trained and served at."""

    pretrained_weights: str = "imagenet"
    image_size: int = 224


class JobSettings(SageMakerSettings, ModelSettings):
    """Every training job (features, trials, profiled)."""

    training_max_runtime_seconds: int = 7200


class TuningSettings(JobSettings):
    """The tuning job and its trials (pipeline.tuning_stage)."""

    # CPU defaults that a new account's standard quotas run (docs/deploy.md, "Instance types"): the
    # features job runs the backbone once, trials fit a linear layer on its features, and the profiled
    # job runs the full model once. A GPU type (ml.g4dn.xlarge) is an option for any of them.
    tuning_instance_type: InstanceType = "ml.m5.large"
    max_tuning_jobs: int = Field(default=12, ge=1)
    use_spot_training: bool = False  # managed spot for the tuning trials
    max_parallel_tuning_jobs: int = Field(default=2, ge=1)
    learning_rate_range: Annotated[tuple[float, float], BeforeValidator(_pair), AfterValidator(_ordered)] = (
        1e-4,
        0.1,
    )
    batch_size_values: Annotated[list[int], BeforeValidator(_split)] = Field(
        default_factory=lambda: [32, 64, 128]
    )
    epochs_range: Annotated[tuple[int, int], BeforeValidator(_pair), AfterValidator(_ordered)] = (2, 5)


class FeaturesStageSettings(TuningSettings):
    """The features stage (pipeline.features_stage): the features job, then the tuning job it starts."""

    features_instance_type: InstanceType = "ml.m5.xlarge"
    augment_trials: bool = False  # true: no features stage, trials train from images (hpo.py --augment)


class DebuggerSettings(CommonSettings):
    debugger_mode: str = contract.DEFAULT_DEBUGGER_MODE

    @field_validator("debugger_mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in contract.DEBUGGER_MODES:
            raise ValueError(f"debugger mode {value!r} is not one of {', '.join(contract.DEBUGGER_MODES)}")
        return value


class ProfiledJobSettings(JobSettings, DebuggerSettings):
    """The profiled training job (pipeline.training_stage)."""

    training_instance_type: InstanceType = "ml.m5.xlarge"


class GateSettings(DebuggerSettings):
    """The quality gate (pipeline.gate, pipeline.deploy_stage)."""

    accuracy_threshold: float = Field(default=0.6, ge=0, le=1)
    gate_blocking_rules: CommaList = Field(default_factory=lambda: list(contract.DEFAULT_BLOCKING_RULES))

    @field_validator("gate_blocking_rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        # A misspelt rule would never block anything: refuse it.
        known = {*contract.RULE_NAMES, contract.PROFILER_REPORT_RULE, *contract.PROFILER_RULE_NAMES}
        unknown = [rule for rule in value if rule not in known]
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return value


class EndpointSettings(SageMakerSettings):
    """The endpoint, its models and configs (pipeline.endpoint_requests, pipeline.endpoint_lifecycle)."""

    endpoint_name: str = ""  # empty: contract.endpoint_name(job_name_prefix), as the template sets it
    endpoint_mode: Literal["serverless", "instance"] = "serverless"
    endpoint_instance_type: InstanceType = "ml.m5.large"
    serverless_memory_mb: int = 3072
    serverless_max_concurrency: int = 5
    rollback_alarm_names: CommaList = Field(default_factory=list)
    # endpoint configs and models kept on InService (pipeline.lifecycle_decisions.cleanup_plan)
    endpoint_keep_configs: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _default_endpoint_name(self) -> Self:
        if not self.endpoint_name:
            self.endpoint_name = contract.endpoint_name(self.job_name_prefix)
        return self


class IngestSettings(DatasetsSettings):
    """The archive guards of ingest (pipeline.ingest.service)."""

    ingest_max_members: int = 100_000
    ingest_max_total_bytes: int = 20 * 1024**3
    ingest_max_member_bytes: int = 50 * 1024**2
    ingest_max_ratio: float = 100.0


class UrlImportSettings(DatasetsSettings):
    """pipeline.url_import."""

    url_import_max_bytes: int = Field(default=2 * 1024**3, ge=1)
    url_import_part_bytes: int = Field(default=16 * 1024**2, ge=5 * 1024**2)
    url_import_allow_loopback_http: bool = False  # local tests only: http://127.0.0.1


class ClassifySettings(EndpointSettings, ModelSettings):
    """pipeline.classify: the endpoint it calls and the image size it downscales towards."""

    # the largest image classify reads; over the endpoint's payload limit it is downscaled (512 MB
    # function: 50 MB of file plus at most MAX_IMAGE_PIXELS decoded as RGB, 120 MB, fit comfortably)
    classify_max_image_bytes: int = Field(default=50_000_000, ge=1)
    classify_top_k: int = Field(default=5, ge=1)


# --------------------------------------------------------------------------------- per function


class IngestFunctionSettings(IngestSettings, IdempotencySettings):
    pass


class FeaturesStageFunctionSettings(FeaturesStageSettings, IdempotencySettings):
    """DatasetReadyFunction and FeaturesCompletedFunction."""


class TuningCompletedFunctionSettings(ProfiledJobSettings, IdempotencySettings):
    pass


class DeploySettings(EndpointSettings, GateSettings):
    """Gate, then hand the model to the endpoint (pipeline.deploy_stage)."""


class TrainingCompletedFunctionSettings(DeploySettings, IdempotencySettings):
    pass


class EndpointStateFunctionSettings(EndpointSettings, IdempotencySettings):
    pass


class Settings(
    IngestFunctionSettings,
    FeaturesStageFunctionSettings,
    TuningCompletedFunctionSettings,
    TrainingCompletedFunctionSettings,
    EndpointStateFunctionSettings,
    ClassifySettings,
    UrlImportSettings,
):
    """Every setting of every function: for tests and tools that drive several stages at once."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process (cached: the environment of a Lambda sandbox does not change)."""
    return Settings.from_env()
