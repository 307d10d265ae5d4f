"""Soak run: the whole pipeline in the local cloud, under injected faults, then an audit.

    .venv/bin/python bench/bench_soak.py                 # 6 good + 1 bad dataset, 200 images
    .venv/bin/python bench/bench_soak.py --timeout 2400 --faults '{"seed": 3, ...}'

It starts the local cloud with the faults of ``SOAK_FAULTS`` (or ``--faults``, a LOCALCLOUD_FAULTS
JSON), drops the datasets (tools/sample_data.py; the bad one is not a zip), waits for an InService
endpoint, drops a second wave of datasets and the images (some not images at all), waits until
nothing moves, replays the failure queue (``cli redrive``'s code, through the same functions)
once the failed invocations' in-progress windows are over, and audits what the pipeline left behind:

- every dataset ends in exactly one terminal decision: rejected, a job failed, model rejected by the
  gate, or a deployment outcome (InService, rolled back, failed, superseded);
- every image has exactly one result, ``ok`` for an image and ``failed`` for the bad ones;
- no job is duplicated: at most one tuning job, and one training job of each kind, per dataset;
- nothing is lost (a dataset or image without an outcome, a failure-queue message left after the
  redrive) and nothing is stuck (an idempotency record in progress, a job or the endpoint in a
  non-terminal state, a decision still "pending").

It prints those counts and the injected faults, and exits 1 on any lost, duplicated or stuck item,
3 when the wall-clock cap (--timeout) ends it first.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from soak_audit import PipelineState, audit

from cli.redrive import lambda_invoker, redrive
from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.demo.run import DemoSettings
from localcloud.faults.spec import FaultSpec
from tools.sample_data import write_sample_zip

# Every kind of fault, sized for 6 good datasets (4, then 2 once the endpoint serves): the first
# profiled job and one tuning trial fail, the first CreateEndpoint fails, the first UpdateEndpoint
# rolls back and the second fails, a classify and a training-completed sandbox are killed mid-work.
SOAK_FAULTS: dict[str, Any] = {
    "seed": 11,
    "s3_throttle_fraction": 0.05,
    "s3_timeout_fraction": 0.005,
    "duplicate_s3_fraction": 0.05,
    "duplicate_eventbridge_fraction": 0.1,
    "fail_training_jobs": [
        {"pattern": "*-train-*", "nth": 1},
        {"pattern": "*-hpo-*", "nth": 3},
        {"pattern": "*-feat-*", "nth": 2},
    ],
    "fail_endpoint_creates": [1],
    "rollback_endpoint_updates": [1],
    "fail_endpoint_updates": [2],
    "kill_lambda": [
        {"function": "ClassifyFunction", "nth": 5, "delay_s": 0.2},
        {"function": "TrainingCompletedFunction", "nth": 1, "delay_s": 0.3},
    ],
}
BUSY_ENDPOINT = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
EXIT_OK, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 3


class SoakTimeoutError(RuntimeError):
    pass


class Soak(PipelineState):
    """The soak run: its phases and waits over the state readers the audit uses too."""

    def __init__(self, cloud: LocalCloud, deadline: float) -> None:
        super().__init__(cloud)
        self.deadline = deadline
        self.redriven: list[str] = []

    def say(self, text: str) -> None:
        print(f"[soak {time.strftime('%H:%M:%S')}] {text}", flush=True)

    def wait(self, what: str, ready: Callable[[], bool], poll_s: float = 2.0) -> None:
        """Poll ``ready`` until it holds; the run's wall-clock cap ends the wait."""
        while not ready():
            if time.monotonic() > self.deadline:
                raise SoakTimeoutError(f"wall-clock cap reached while waiting for {what}")
            time.sleep(poll_s)

    # -- waits -------------------------------------------------------------------------------------
    def quiet(self) -> bool:
        """Nothing queued or running: S3 events, invocations, jobs, the endpoint, emulator events."""
        tuning, training = self.jobs()
        moving = [j for j in tuning if j["HyperParameterTuningJobStatus"] in ("InProgress", "Stopping")]
        moving += [j for j in training if j["TrainingJobStatus"] in ("InProgress", "Stopping")]
        if moving or self.endpoint_status() in BUSY_ENDPOINT:
            return False
        return self.cloud.wait_s3_events_delivered(timeout_s=5.0)

    def wait_quiescent(self) -> None:
        def settled() -> bool:
            # Twice in a row, a few seconds apart: an event emitted between two reads is caught.
            if not self.quiet():
                return False
            time.sleep(3)
            return self.quiet()

        self.wait("quiescence", settled, poll_s=5)

    # -- phases ------------------------------------------------------------------------------------
    def upload_datasets(self, zips: list[Path]) -> dict[str, str]:
        bucket, prefix = self.subscription(".zip")
        uploaded = {}
        for path in zips:
            key = f"{prefix}{path.name}"
            self.s3.upload_file(str(path), bucket, key)
            uploaded[key] = path.name
        self.say(f"uploaded {len(zips)} datasets to s3://{bucket}/{prefix}")
        return uploaded

    def subscription(self, suffix: str | None) -> tuple[str, str]:
        for sub in self.cloud.s3_subscriptions:
            rules = {r["Name"]: r["Value"] for r in sub.filter_rules}
            if (suffix is None and sub.bucket == self.outputs["InferenceBucketName"]) or (
                suffix and rules.get("suffix", "").lower() == suffix
            ):
                return sub.bucket, rules.get("prefix", "")
        raise RuntimeError(f"no function is triggered by {suffix or 'inference'} uploads")

    def upload_images(self, images: list[tuple[str, bytes]]) -> list[str]:
        bucket, prefix = self.subscription(None)
        self.input_prefix = prefix
        keys = []
        for name, data in images:
            key = f"{prefix}soak/{name}"
            self.s3.put_object(Bucket=bucket, Key=key, Body=data)
            keys.append(key)
        self.say(f"uploaded {len(images)} images to s3://{bucket}/{prefix}soak/")
        return keys

    def open_windows(self) -> list[float]:
        """In-progress idempotency records whose window (the invocation's deadline) is still open: a
        replay of their event now would fail with IdempotencyAlreadyInProgressError."""
        table = self.cloud.client("dynamodb").scan(TableName=self.outputs["IdempotencyTableName"])
        now_ms = time.time() * 1000
        return [
            float(item["in_progress_expiration"]["N"]) / 1000
            for item in table.get("Items", [])
            if item.get("status", {}).get("S") == "INPROGRESS"
            and float(item.get("in_progress_expiration", {}).get("N", 0)) > now_ms
        ]

    def visible_failures(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.outputs["FailedEventsQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def redrive_failures(self) -> None:
        """Replay the failure queue (what `cli redrive` does) once no in-progress window is open;
        again if the replays' own downstream work sent new events there. A replay that fails stays
        in the queue (invisible for redrive's visibility timeout) and is counted lost."""
        for _ in range(3):
            if not self.visible_failures():
                return
            windows = self.open_windows()
            self.say(
                f"{self.visible_failures()} message(s) in the failure queue; "
                f"redrive once {len(windows)} in-progress window(s) are over"
            )
            self.wait("the in-progress windows to end", lambda: not self.open_windows(), poll_s=5)
            # Through the Lambda Invoke API, synchronously, as `cli redrive` does.
            invoke = lambda_invoker(self.cloud.client("lambda"))
            for outcome in redrive(self.sqs, self.outputs["FailedEventsQueueUrl"], invoke):
                self.say(f"redrive: {outcome.line()}")
                self.redriven.append(outcome.action)
            self.wait_quiescent()


def build_inputs(
    work: Path, good: int, bad: int, image_size: int
) -> tuple[list[Path], list[tuple[str, bytes]]]:
    zips = [
        write_sample_zip(
            work / f"soak-{i}.zip",
            num_classes=4,
            train_per_class=32,
            valid_per_class=6,
            test_per_class=6,
            image_size=image_size,
            seed=100 + i,
        )
        for i in range(good)
    ]
    for i in range(bad):  # permanent: not a zip at all, must end "rejected"
        path = work / f"soak-bad-{i}.zip"
        path.write_bytes(random.Random(i).randbytes(4096))
        zips.append(path)
    images: list[tuple[str, bytes]] = []
    for path in zips[:good]:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.lower().endswith((".jpg", ".jpeg", ".png")) and "/train/" not in member:
                    suffix = member.rsplit(".", 1)[1]
                    # Every fourth suffix in capitals: classify must match them in any case.
                    suffix = suffix.upper() if len(images) % 4 == 0 else suffix
                    images.append((f"{path.stem}-{len(images):03d}.{suffix}", archive.read(member)))
    return zips, images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=6, help="good datasets (plus --bad-datasets)")
    parser.add_argument("--bad-datasets", type=int, default=1)
    parser.add_argument("--images", type=int, default=190, help="good images (plus --bad-images)")
    parser.add_argument("--bad-images", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0, help="wall-clock cap in seconds")
    parser.add_argument("--retry-delay", type=float, default=20.0, help="Lambda's first async retry delay")
    parser.add_argument("--faults", default=json.dumps(SOAK_FAULTS), help="a LOCALCLOUD_FAULTS JSON object")
    parser.add_argument("--state-dir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so LocalCloud stops its workers, jobs and model servers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    spec = FaultSpec.from_json(args.faults)
    settings = DemoSettings(
        image_size=args.image_size, trials=args.trials, parallel=2, accuracy_threshold=0.4
    )
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        zips, images = build_inputs(work, args.datasets, args.bad_datasets, args.image_size)
        while len(images) < args.images:  # fewer held-out images than asked: reuse them under new names
            name, data = images[len(images) % max(1, len(images))]
            images.append((f"again-{len(images):03d}-{name}", data))
        images = images[: args.images]
        bad = [(f"bad-{i:02d}.jpg", b"not an image " + bytes([i])) for i in range(args.bad_images)]
        config = LocalCloudConfig(
            state_dir=args.state_dir or work / "state",
            parameter_overrides=settings.parameter_overrides(),
            faults=spec,
            # Closer to AWS's 1 and 2 minutes than the default 1 and 2 s: a duplicate delivered while
            # the first is still running is retried after it ended, as it mostly would be on AWS.
            retry_delays_s=(args.retry_delay, 2 * args.retry_delay),
        )
        with LocalCloud(config) as cloud:
            soak = Soak(cloud, started + args.timeout)
            code = run(soak, zips, images, bad, args.timeout, started)
            return code


def run(
    soak: Soak,
    zips: list[Path],
    images: list[tuple[str, bytes]],
    bad: list[tuple[str, bytes]],
    timeout: float,
    started: float,
) -> int:
    try:
        # Two waves: the second's models arrive once the endpoint serves, as UpdateEndpoints.
        good = [path for path in zips if "-bad-" not in path.name]
        second = good[len(good) - len(good) // 3 :]
        uploads = soak.upload_datasets([path for path in zips if path not in second])
        soak.wait(
            "an InService endpoint (or the first wave to settle)",
            lambda: soak.endpoint_status() == "InService" or soak.quiet(),
            poll_s=5,
        )
        uploads.update(soak.upload_datasets(second))
        soak.wait("an InService endpoint", lambda: soak.endpoint_status() == "InService", poll_s=5)
        soak.say(f"endpoint InService after {time.monotonic() - started:.0f} s")
        keys = soak.upload_images(images + bad)
        bad_keys = set(keys[len(images) :])
        soak.wait_quiescent()
        soak.redrive_failures()
    except SoakTimeoutError as error:
        print(
            f"SOAK TIMEOUT after {timeout:.0f} s: {error}. "
            f"Faults injected: {soak.cloud.faults.counts() if soak.cloud.faults else {}}"
        )
        return EXIT_TIMEOUT
    report = audit(soak, uploads, keys, bad_keys)
    problems = report["problems"]
    print("\n== soak ==")
    print(f"wall time          {time.monotonic() - started:.0f} s")
    print(f"datasets           {len(uploads)}: {report['decisions']}")
    print(f"images             {len(keys)}: {report['results']}")
    print(f"faults injected    {soak.cloud.faults.counts() if soak.cloud.faults else {}}")
    print(f"redriven           {dict(Counter(soak.redriven))}")
    for kind in ("lost", "duplicated", "stuck"):
        print(f"{kind:<18} {len(problems[kind])}")
        for line in problems[kind]:
            print(f"    {line}")
    return EXIT_FAILED if any(problems.values()) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
