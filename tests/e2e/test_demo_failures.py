"""The demo's failure paths: a clear reason and a non-zero exit, never a hang."""

import time

import pytest

from localcloud.demo.main import run_demo
from localcloud.demo.run import DemoSettings
from localcloud.demo.summary import EXIT_PIPELINE_FAILED, EXIT_TIMEOUT

pytestmark = pytest.mark.slow  # runs the demo


def test_a_corrupt_upload_stops_the_demo_with_the_reason(tmp_path):
    corrupt = tmp_path / "broken.zip"
    corrupt.write_bytes(b"this is not a zip archive" * 10)
    started = time.monotonic()
    result = run_demo(DemoSettings(data=corrupt, state_dir=tmp_path / "state", timeout_s=120))
    assert result.exit_code == EXIT_PIPELINE_FAILED
    assert "broken.zip" in result.reason
    assert "rejected" in result.reason.lower()
    assert time.monotonic() - started < 100  # decided by the notification, not by the timeout
    assert not result.tuning_job


def test_the_overall_timeout_is_a_clear_failure(tmp_path):
    started = time.monotonic()
    settings = DemoSettings(state_dir=tmp_path / "state", num_classes=2, image_size=32, timeout_s=8)
    result = run_demo(settings)
    assert result.exit_code == EXIT_TIMEOUT
    assert "timed out after 8s waiting for" in result.reason
    assert time.monotonic() - started < 60  # jobs in flight are stopped with the cloud


def test_a_failed_features_job_stops_the_demo_before_tuning(tmp_path):
    """Weights that cannot be loaded fail the features job: the demo stops with its reason, no tuning."""
    settings = DemoSettings(
        state_dir=tmp_path / "state",
        num_classes=2,
        train_per_class=4,
        valid_per_class=2,
        test_per_class=2,
        image_size=32,
        timeout_s=240,
        extra_parameters={"PretrainedWeights": "/nonexistent/weights.pt"},
    )
    result = run_demo(settings)
    assert result.exit_code == EXIT_PIPELINE_FAILED
    assert "dogclf-feat-" in result.reason and "failed" in result.reason.lower()
    assert "features" in result.stage_seconds
    assert not result.tuning_job
