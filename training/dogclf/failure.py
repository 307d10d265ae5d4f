"""The job's failure handling: expected errors become one clear line, exit code 2 and the failure file
SageMaker reports as FailureReason (<base>/output/failure); anything else is written there and re-raised."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from dogclf.data import BadImagesError
from dogclf.feature_files import FeaturesError
from dogclf.layout import DatasetLayoutError
from dogclf.model import WeightsUnavailableError

EXPECTED_ERRORS = (DatasetLayoutError, BadImagesError, WeightsUnavailableError, FeaturesError)


def run_main(main: Callable[[], int]) -> int:
    try:
        return main()
    except EXPECTED_ERRORS as error:
        # SageMaker shows the job's last log lines and /opt/ml/output/failure as the failure reason.
        message = f"{type(error).__name__}: {error}"
        print(f"ERROR: {message}", file=sys.stderr, flush=True)
        _write_failure(message)
        return 2
    except Exception:
        _write_failure(traceback.format_exc(limit=5))
        raise


def _write_failure(message: str) -> None:
    """SageMaker reports the contents of <base>/output/failure as the job's FailureReason."""
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    output = base / "output"
    if "SAGEMAKER_BASE_DIR" in os.environ or output.is_dir():
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(message[:1024])
