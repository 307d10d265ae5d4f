"""The demo's features stage: its flag, its failure signals and its summary lines."""

from __future__ import annotations

from localcloud.demo.main import parse_args
from localcloud.demo.summary import FAILURE_SUBJECTS, DemoResult, Progress, print_summary


def test_the_features_stage_runs_unless_augment_is_asked_for() -> None:
    assert parse_args([]).parameter_overrides()["AugmentTrials"] == "false"
    assert parse_args(["--augment"]).parameter_overrides()["AugmentTrials"] == "true"
    # Flags that set the search and --param still reach the template as before.
    overrides = parse_args(
        ["--trials", "3", "--param", "TuningInstanceType=ml.c5.xlarge"]
    ).parameter_overrides()
    assert overrides["MaxTuningJobs"] == "3" and overrides["TuningInstanceType"] == "ml.c5.xlarge"


def test_features_notifications_that_stop_the_pipeline_fail_the_demo() -> None:
    def stops(subject: str) -> bool:
        return any(word in subject.lower() for word in FAILURE_SUBJECTS)

    assert stops("Features Failed: dogclf-feat-0123456789ab")
    assert stops("Features Stopped: dogclf-feat-0123456789ab")
    assert stops("Tuning not started: dogclf-feat-0123456789ab")
    assert not stops("Features started: dogclf-feat-0123456789ab")
    assert not stops("Tuning started: dogclf-hpo-0123456789ab")


def test_the_summary_names_the_features_job(capsys) -> None:
    job = {
        "TrainingJobName": "dogclf-feat-0123456789ab",
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {
            "S3ModelArtifacts": "s3://a/features/k/dogclf-feat-0123456789ab/output/model.tar.gz"
        },
    }
    print_summary(DemoResult(exit_code=0, features_job=job), Progress(), 1.0)
    out = capsys.readouterr().out
    assert "features job:          dogclf-feat-0123456789ab Completed" in out
    assert "s3://a/features/k/dogclf-feat-0123456789ab/output/model.tar.gz" in out


def test_epochs_default_to_the_samples_range_and_to_a_short_one_for_a_real_archive(tmp_path) -> None:
    """The sample's 5-6 epochs exist to give the Debugger rules 20 steps on 128 images; an archive
    given with --data has hundreds of steps per epoch: it searches DATA_EPOCHS unless --epochs says
    otherwise."""
    from localcloud.demo.run import DATA_EPOCHS

    archive = str(tmp_path / "d.zip")
    assert parse_args([]).parameter_overrides()["EpochsRange"] == "5,6"
    assert parse_args(["--data", archive]).parameter_overrides()["EpochsRange"] == DATA_EPOCHS == "2,3"
    assert parse_args(["--data", archive, "--epochs", "4,5"]).parameter_overrides()["EpochsRange"] == "4,5"
