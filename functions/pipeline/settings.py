"""Environment variables (declared in template.yaml) parsed into one typed settings model."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from dogclf import contract


def _split(value: object) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)  # type: ignore[call-overload]


class Settings(BaseModel):
    """Everything the functions read from their environment; field name = lower-cased env var."""

    aws_region: str = "us-east-1"
    dataset_bucket: str
    artifacts_bucket: str
    idempotency_table: str
    notification_topic_arn: str
    sagemaker_role_arn: str
    job_name_prefix: str = Field(default="dogclf", pattern=r"^[a-z][a-z0-9]{1,9}$")
    endpoint_name: str = ""  # empty: contract.endpoint_name(job_name_prefix), as the template sets it
    training_code_dir: Path = Path("/opt")
    framework_version: str = "2.6.0"
    # CPU defaults that a new account's standard quotas run (docs/deploy.md, "Instance types"): the
    # features job runs the backbone once, trials fit a linear layer on its features, and the profiled
    # job runs the full model once. A GPU type (ml.g4dn.xlarge) is an option for any of them.
    features_instance_type: str = "ml.m5.xlarge"
    tuning_instance_type: str = "ml.m5.large"
    training_instance_type: str = "ml.m5.xlarge"
    augment_trials: bool = False  # true: no features stage, trials train from images (hpo.py --augment)
    endpoint_instance_type: str = "ml.m5.large"
    endpoint_mode: Literal["serverless", "instance"] = "serverless"
    serverless_memory_mb: int = 3072
    serverless_max_concurrency: int = 5
    max_tuning_jobs: int = Field(default=12, ge=1)
    use_spot_training: bool = False  # managed spot for the tuning trials (pipeline.tuning_stage)
    max_parallel_tuning_jobs: int = Field(default=2, ge=1)
    learning_rate_range: tuple[float, float] = (1e-4, 0.1)
    batch_size_values: list[int] = Field(default_factory=lambda: [32, 64, 128])
    epochs_range: tuple[int, int] = (2, 5)
    pretrained_weights: str = "imagenet"
    image_size: int = 224
    training_max_runtime_seconds: int = 7200
    accuracy_threshold: float = Field(default=0.6, ge=0, le=1)
    gate_blocking_rules: list[str] = Field(default_factory=lambda: list(contract.DEFAULT_BLOCKING_RULES))
    debugger_mode: str = contract.DEFAULT_DEBUGGER_MODE
    rollback_alarm_names: list[str] = Field(default_factory=list)
    # endpoint configs and models kept on InService (pipeline.endpoint_lifecycle.cleanup_plan)
    endpoint_keep_configs: int = Field(default=3, ge=1)
    # ingest guards
    ingest_max_members: int = 100_000
    ingest_max_total_bytes: int = 20 * 1024**3
    ingest_max_member_bytes: int = 50 * 1024**2
    ingest_max_ratio: float = 100.0
    # URL import (pipeline.url_import)
    url_import_max_bytes: int = Field(default=2 * 1024**3, ge=1)
    url_import_part_bytes: int = Field(default=16 * 1024**2, ge=5 * 1024**2)
    url_import_allow_loopback_http: bool = False  # local tests only: http://127.0.0.1
    # classify
    # the largest image classify reads; over the endpoint's payload limit it is downscaled (512 MB
    # function: 50 MB of file plus at most MAX_IMAGE_PIXELS decoded as RGB, 120 MB, fit comfortably)
    classify_max_image_bytes: int = Field(default=50_000_000, ge=1)
    classify_top_k: int = Field(default=5, ge=1)

    @field_validator("learning_rate_range", "epochs_range", mode="before")
    @classmethod
    def _parse_pair(cls, value: object) -> object:
        parts = _split(value)
        if len(parts) != 2:
            raise ValueError(f"expected 'min,max', got {value!r}")
        return parts

    @field_validator("learning_rate_range", "epochs_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(f"min {value[0]} is above max {value[1]}")
        return value

    @field_validator("batch_size_values", "gate_blocking_rules", "rollback_alarm_names", mode="before")
    @classmethod
    def _parse_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("debugger_mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in contract.DEBUGGER_MODES:
            raise ValueError(f"debugger mode {value!r} is not one of {', '.join(contract.DEBUGGER_MODES)}")
        return value

    @field_validator(
        "features_instance_type", "tuning_instance_type", "training_instance_type", "endpoint_instance_type"
    )
    @classmethod
    def _supported_instance_type(cls, value: str) -> str:
        # The template's AllowedPattern refuses these at deploy time; this is the same list, so a
        # function started with another type fails at once, saying which types work.
        from pipeline.image_uris import check_instance_type

        return check_instance_type(value)

    @field_validator("gate_blocking_rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        # A misspelt rule would never block anything: refuse it.
        known = {*contract.RULE_NAMES, contract.PROFILER_REPORT_RULE, *contract.PROFILER_RULE_NAMES}
        unknown = [rule for rule in value if rule not in known]
        if unknown:
            raise ValueError(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return value

    @model_validator(mode="after")
    def _default_endpoint_name(self) -> Settings:
        if not self.endpoint_name:
            self.endpoint_name = contract.endpoint_name(self.job_name_prefix)
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, str] = {
            name: environ[name.upper()] for name in cls.model_fields if name.upper() in environ
        }
        if "aws_region" not in values and "AWS_DEFAULT_REGION" in environ:
            values["aws_region"] = environ["AWS_DEFAULT_REGION"]
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process (cached: the environment of a Lambda sandbox does not change)."""
    return Settings.from_env()
