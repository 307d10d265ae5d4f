"""The seed notebook's settings in SDK v3's terms, shared by tests/sdk3's tests and fixtures."""

from __future__ import annotations

import atexit
import functools
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from sagemaker.core import image_uris
from sagemaker.core.helper.session_helper import Session
from sagemaker.core.training.configs import Compute, SourceCode
from sagemaker.train.model_trainer import ModelTrainer

from tests.sdk.settings import FRAMEWORK, HYPERPARAMETERS, PY_VERSION, TRAINING_INSTANCE

REPO = Path(__file__).resolve().parents[2]
TRAINING_DIR = REPO / "training"
sys.path.insert(0, str(REPO / "functions"))  # pipeline.source_dir: the Lambda's own source dir layout
from pipeline.source_dir import PLAIN, write_tree  # noqa: E402


@functools.cache
def source_dir() -> str:
    """training/ as the pipeline ships it to the features job and the trials (``plain``: the entry
    points and dogclf, no requirements.txt), so the job runs on the image's own packages."""
    folder = Path(tempfile.mkdtemp(prefix="sdk3-source-dir-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return str(write_tree(TRAINING_DIR, folder, PLAIN))


def image_uri(session: Session, scope: str) -> str:
    """The SageMaker PyTorch image the local cloud stands in for, as the SDK names it."""
    return str(
        image_uris.retrieve(
            "pytorch",
            region=session.boto_region_name,
            version=FRAMEWORK,
            py_version=PY_VERSION,
            instance_type=TRAINING_INSTANCE,
            image_scope=scope,
        )
    )


def model_trainer(session: Session, role: str, entry_script: str, **options: Any) -> ModelTrainer:
    return ModelTrainer(
        training_image=image_uri(session, "training"),
        source_code=SourceCode(source_dir=source_dir(), entry_script=entry_script),
        compute=Compute(instance_type=TRAINING_INSTANCE, instance_count=1),
        hyperparameters=dict(HYPERPARAMETERS),
        role=role,
        sagemaker_session=session,
        base_job_name=f"sdk3-{entry_script.removesuffix('.py')}",
        **options,
    )
