"""The whole pipeline, locally, driven by events alone.

    .venv/bin/python -m localcloud.demo [--data ZIP] [--keep-running] [--trials 4 --parallel 2 ...]

Builds the sample dataset zip (unless --data names a real one), starts the local cloud from
template.yaml, uploads the zip under the ingest function's prefix, and then only watches: S3 and
EventBridge events drive ingest, tuning, profiled training, the gate and the endpoint. It then drops
test images into the inference bucket and prints the result JSONs the classify function writes.
Any failure (a Lambda that exhausted its retries, a failed job, a gate rejection, the overall
timeout) is printed with its reason and gives a non-zero exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.demo.run import DATA_EPOCHS, DemoRun, DemoSettings, build_sample_zip
from localcloud.demo.summary import (
    EXIT_GATE_REJECTED,
    EXIT_OK,
    EXIT_PIPELINE_FAILED,
    EXIT_WEIGHTS_UNAVAILABLE,
    DemoResult,
    PipelineFailedError,
    Progress,
    print_summary,
)
from localcloud.demo.weights import WEIGHTS_CHOICES, WeightsUnavailableError, resolve_weights
from localcloud.state import StateDirError, keep_running, prepare_state_dir, write_state_file


# -- entry points -----------------------------------------------------------------------------------
def run_demo(
    settings: DemoSettings,
    after_run: Callable[[LocalCloud, DemoResult], None] | None = None,
    on_finish: Callable[[LocalCloud, DemoResult], None] | None = None,
) -> DemoResult:
    """Run the pipeline; ``after_run`` (tests, tools) sees the cloud still up after a successful run,
    ``on_finish`` (benches) after any run that started it, failed or not, before it stops."""
    progress = Progress()
    state_dir = settings.state_dir.resolve()
    result = DemoResult(exit_code=EXIT_OK)
    cloud: LocalCloud | None = None
    run: DemoRun | None = None
    backbone = ""
    try:
        settings, backbone = _backbone_weights(settings, progress)
        zip_path = _dataset(settings, state_dir, progress)
        progress.stage("start local cloud")
        cloud = LocalCloud(_cloud_config(settings, state_dir, progress), on_record=progress.on_record)
        cloud.start()
        state_file = write_state_file(cloud, state_dir)
        progress.say(
            f"S3/DynamoDB/SNS/SQS at {cloud.endpoints['s3']}, SageMaker at {cloud.endpoints['sagemaker']}"
        )
        progress.say(f"state: {state_file}")
        progress.say(
            "IAM enforced: each function calls AWS as its own role (LOCALCLOUD_IAM=off turns it off)"
            if cloud.iam
            else "IAM not enforced (LOCALCLOUD_IAM=off)"
        )
        run = DemoRun(settings, cloud, progress)
        result = run.run(zip_path)
        if after_run is not None:
            after_run(cloud, result)
    except PipelineFailedError as failure:
        result.exit_code, result.reason = failure.exit_code, str(failure)
        if run is not None:
            result = _merge_partial(run.result, result)
    except KeyboardInterrupt:
        result.exit_code, result.reason = 130, "interrupted"
    except Exception as error:  # an unexpected error still gets a summary, a reason and exit 1
        traceback.print_exc()
        result.exit_code, result.reason = EXIT_PIPELINE_FAILED, f"{type(error).__name__}: {error}"
        if run is not None:
            result = _merge_partial(run.result, result)
    finally:
        progress.finish()
        result.stage_seconds = dict(progress.stage_seconds)
        result.backbone = backbone
        if cloud is not None:
            result.poller_errors = list(cloud.poller_errors)
        print_summary(result, progress, time.monotonic() - progress.started)
        if cloud is not None and on_finish is not None:
            on_finish(cloud, result)
        if cloud is not None:
            if settings.keep_running and result.exit_code in (EXIT_OK, EXIT_GATE_REJECTED):
                keep_running(cloud)
            cloud.stop()
    return result


def _backbone_weights(settings: DemoSettings, progress: Progress) -> tuple[DemoSettings, str]:
    """--weights resolved to what the jobs can load, and the line saying so; before anything starts."""
    try:
        choice = resolve_weights(settings.weights)
    except WeightsUnavailableError as error:
        raise PipelineFailedError(str(error), EXIT_WEIGHTS_UNAVAILABLE) from error
    progress.say(choice.note)
    return dataclasses.replace(settings, weights=choice.weights), choice.note


def _dataset(settings: DemoSettings, state_dir: Path, progress: Progress) -> Path:
    """A clean state dir, and the dataset zip: --data, or a freshly built sample."""
    try:
        prepare_state_dir(state_dir)
    except StateDirError as error:
        raise PipelineFailedError(str(error)) from error
    progress.stage("dataset")
    if settings.data:
        zip_path = settings.data.resolve()
        if not zip_path.is_file():
            raise PipelineFailedError(f"--data {settings.data}: no such file")
        progress.say(f"using {zip_path}")
    else:
        zip_path = build_sample_zip(settings, state_dir / "sample-dogImages.zip")
        progress.say(
            f"built {zip_path} ({settings.num_classes} classes, {settings.image_size}px, "
            f"{zip_path.stat().st_size / 1e3:.0f} kB)"
        )
    return zip_path


def _cloud_config(settings: DemoSettings, state_dir: Path, progress: Progress) -> LocalCloudConfig:
    config = LocalCloudConfig(
        template=settings.template,
        state_dir=state_dir,
        stack_name=settings.stack_name,
        parameter_overrides=settings.parameter_overrides(),
        on_job_log=(lambda job, line: progress.say(f"{job}: {line.rstrip()}")) if settings.verbose else None,
    )
    return config


def _merge_partial(partial: DemoResult, failure: DemoResult) -> DemoResult:
    partial.exit_code, partial.reason = failure.exit_code, failure.reason
    return partial


def parse_args(argv: list[str] | None = None) -> DemoSettings:
    """The demo's flags as DemoSettings. (Long only because it lists every flag: it decides nothing.)"""
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(prog="python -m localcloud.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, help="a dataset zip in the dogImages layout (default: build a sample)"
    )
    parser.add_argument("--keep-running", action="store_true", help="leave the local cloud up afterwards")
    parser.add_argument("--template", type=Path, default=defaults.template, help="SAM template to run")
    parser.add_argument(
        "--state-dir", type=Path, default=defaults.state_dir, help="local cloud state (wiped)"
    )
    parser.add_argument("--classes", type=int, default=defaults.num_classes, help="sample dataset classes")
    parser.add_argument("--train-per-class", type=int, default=defaults.train_per_class)
    parser.add_argument("--valid-per-class", type=int, default=defaults.valid_per_class)
    parser.add_argument("--test-per-class", type=int, default=defaults.test_per_class)
    parser.add_argument(
        "--image-size", type=int, default=defaults.image_size, help="sample and model image size"
    )
    parser.add_argument("--trials", type=int, default=defaults.trials, help="tuning jobs in total")
    parser.add_argument("--parallel", type=int, default=defaults.parallel, help="tuning jobs at once")
    parser.add_argument(
        "--epochs",
        help=f"min,max epochs the tuner searches (default: {defaults.epochs} for the sample, {DATA_EPOCHS} "
        "with --data)",
    )
    parser.add_argument(
        "--batch-sizes", default=defaults.batch_sizes, help="batch sizes the tuner picks from"
    )
    parser.add_argument("--learning-rates", default=defaults.learning_rates, help="min,max learning rate")
    parser.add_argument("--accuracy-threshold", type=float, default=defaults.accuracy_threshold)
    parser.add_argument(
        "--weights",
        choices=WEIGHTS_CHOICES,
        default="auto",
        help="backbone: auto = ImageNet if in torch's cache, else random init; imagenet = cache or "
        "download, else stop (exit 4); none = random init",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="AugmentTrials=true: no features stage; the trials train from the images (random crops/flips)",
    )
    parser.add_argument(
        "--classify", type=int, default=defaults.classify_images, help="test images to classify"
    )
    parser.add_argument("--timeout", type=float, default=defaults.timeout_s, help="overall limit in seconds")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other template parameter override",
    )
    parser.add_argument("--verbose", action="store_true", help="also print the training jobs' log lines")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param {item!r}: expected KEY=VALUE")
        extra[key] = value
    return DemoSettings(
        data=args.data,
        template=args.template,
        state_dir=args.state_dir,
        num_classes=args.classes,
        train_per_class=args.train_per_class,
        valid_per_class=args.valid_per_class,
        test_per_class=args.test_per_class,
        image_size=args.image_size,
        trials=args.trials,
        parallel=args.parallel,
        epochs=args.epochs or (DATA_EPOCHS if args.data else defaults.epochs),
        batch_sizes=args.batch_sizes,
        learning_rates=args.learning_rates,
        accuracy_threshold=args.accuracy_threshold,
        weights=args.weights,
        augment=args.augment,
        classify_images=args.classify,
        timeout_s=args.timeout,
        keep_running=args.keep_running,
        verbose=args.verbose,
        extra_parameters=extra,
    )


def main(argv: list[str] | None = None) -> int:
    return run_demo(parse_args(argv)).exit_code


if __name__ == "__main__":
    sys.exit(main())
