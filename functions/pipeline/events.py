"""Parser models of the EventBridge events the functions receive (the ``detail`` part)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TuningJobStateChange(BaseModel):
    """detail of "SageMaker HyperParameter Tuning Job State Change" (it carries no best trial)."""

    model_config = ConfigDict(extra="ignore")
    HyperParameterTuningJobName: str
    HyperParameterTuningJobStatus: str


class TrainingJobStateChange(BaseModel):
    """detail of "SageMaker Training Job State Change"."""

    model_config = ConfigDict(extra="ignore")
    TrainingJobName: str
    TrainingJobStatus: str
    TuningJobArn: str | None = None
