"""Fault injection for the local cloud: one typed spec, off by default, seeded, every fault counted.

    LOCALCLOUD_FAULTS='{"seed": 7, "s3_throttle_fraction": 0.05, "kill_lambda": [{"function":
    "ClassifyFunction", "nth": 3}]}' .venv/bin/python -m localcloud.demo

or ``LocalCloudConfig(faults=FaultSpec(...))``. What each fault does, and where it acts:

- S3 (``localcloud.faults.s3_proxy``): the Lambda functions' S3 endpoint is a proxy in front of moto that
  answers a fraction of the calls ``503 SlowDown`` or stalls them past the functions' read timeout
  (then drops the connection, unanswered). The local cloud's own clients (the router, the SageMaker
  emulator, the user's) talk to moto directly.
- SageMaker emulator: the n-th training job whose name matches a pattern fails (AlgorithmError, as a
  crashed script reports it); the n-th CreateEndpoint or UpdateEndpoint fails to start its model
  server (create: Failed; update: rolled back, as SageMaker does); the n-th UpdateEndpoint comes up and
  is then rolled back by its deployment guardrail (Updating -> RollingBack -> InService on the old
  config, with FailureReason).
- Lambda (``LambdaRunner``): from the n-th invocation of a function on, the first one on a warm
  sandbox (init done) still running ``delay_s`` after it started has its sandbox SIGKILLed: the
  attempt fails with ``Runtime.ExitError`` and the asynchronous retry rules apply.
- Delivery (``EventRouter``): a fraction of S3 notifications and of EventBridge events is delivered
  twice (the same record, the same event id), as both services may do.

Every decision draws from its own ``random.Random`` seeded from ``seed`` and the fault's name, so one
fault's draws do not shift another's. ``FaultInjector.counts()`` says how many of each were injected.
"""

from __future__ import annotations

import fnmatch
import json
import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Literal

FAULTS_ENV = "LOCALCLOUD_FAULTS"
# The functions' botocore read timeout (pipeline.adapters.aws); a stalled S3 call must outlast it.
READ_TIMEOUT_ENV = "BOTO_READ_TIMEOUT_SECONDS"

EndpointFault = Literal["fail", "rollback"]


@dataclass(frozen=True)
class TrainingJobFault:
    """The ``nth`` (1-based) training job whose name matches ``pattern`` (fnmatch) fails."""

    pattern: str
    nth: int = 1


@dataclass(frozen=True)
class LambdaKill:
    """From the ``nth`` invocation attempt of ``function`` (logical id or name) on, the first one on a
    warm sandbox still running ``delay_s`` after it started is killed; ``count`` such kills in all."""

    function: str
    nth: int = 1
    delay_s: float = 0.3
    count: int = 1


@dataclass(frozen=True)
class FaultSpec:
    seed: int = 0
    s3_throttle_fraction: float = 0.0
    s3_timeout_fraction: float = 0.0
    s3_stall_s: float = 7.0  # how long a "timeout" call is held before the connection is dropped
    function_read_timeout_s: float = 5.0  # set in the functions' env when s3_timeout_fraction > 0
    duplicate_s3_fraction: float = 0.0
    duplicate_eventbridge_fraction: float = 0.0
    fail_training_jobs: tuple[TrainingJobFault, ...] = ()
    fail_endpoint_creates: tuple[int, ...] = ()  # 1-based CreateEndpoint numbers
    fail_endpoint_updates: tuple[int, ...] = ()  # 1-based UpdateEndpoint numbers
    rollback_endpoint_updates: tuple[int, ...] = ()
    kill_lambda: tuple[LambdaKill, ...] = ()

    def __post_init__(self) -> None:
        fractions = (
            self.s3_throttle_fraction,
            self.s3_timeout_fraction,
            self.duplicate_s3_fraction,
            self.duplicate_eventbridge_fraction,
        )
        if any(not 0.0 <= value <= 1.0 for value in fractions):
            raise ValueError("fault fractions must be between 0 and 1")
        if self.s3_throttle_fraction + self.s3_timeout_fraction > 1.0:
            raise ValueError("s3_throttle_fraction + s3_timeout_fraction must not exceed 1")
        if self.s3_timeout_fraction and self.s3_stall_s <= self.function_read_timeout_s:
            raise ValueError("s3_stall_s must be longer than function_read_timeout_s")
        if set(self.fail_endpoint_updates) & set(self.rollback_endpoint_updates):
            raise ValueError("an UpdateEndpoint cannot both fail and roll back")

    @property
    def s3_faults(self) -> bool:
        return bool(self.s3_throttle_fraction or self.s3_timeout_fraction)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        values = dict(data)
        values["fail_training_jobs"] = tuple(
            TrainingJobFault(**item) for item in values.get("fail_training_jobs", ())
        )
        values["kill_lambda"] = tuple(LambdaKill(**item) for item in values.get("kill_lambda", ()))
        for key in ("fail_endpoint_creates", "fail_endpoint_updates", "rollback_endpoint_updates"):
            values[key] = tuple(int(n) for n in values.get(key, ()))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> FaultSpec:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{FAULTS_ENV} must be a JSON object")
        return cls.from_dict(data)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> FaultSpec | None:
        """The spec in LOCALCLOUD_FAULTS, or None (no faults) when it is unset or empty."""
        text = (os.environ if environ is None else environ).get(FAULTS_ENV, "").strip()
        return cls.from_json(text) if text else None


@dataclass
class _KillState:
    seen: int = 0
    done: int = 0


@dataclass
class FaultInjector:
    """The decisions and the counts. Thread-safe: the proxy, the router, the runner and the
    emulator's threads all ask it."""

    spec: FaultSpec
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counts: Counter[str] = field(default_factory=Counter, repr=False)
    _rngs: dict[str, random.Random] = field(default_factory=dict, repr=False)
    _matches: Counter[str] = field(default_factory=Counter, repr=False)
    _endpoint_calls: Counter[str] = field(default_factory=Counter, repr=False)
    _kills: dict[LambdaKill, _KillState] = field(default_factory=dict, repr=False)

    def _draw(self, stream: str) -> float:
        rng = self._rngs.get(stream)
        if rng is None:
            rng = self._rngs[stream] = random.Random(f"{self.spec.seed}:{stream}")
        return rng.random()

    def count(self, fault: str) -> None:
        with self._lock:
            self._counts[fault] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def function_environment(self) -> dict[str, str]:
        """What the functions' environment gets: a read timeout a stalled call outlasts."""
        if not self.spec.s3_timeout_fraction:
            return {}
        return {READ_TIMEOUT_ENV: f"{self.spec.function_read_timeout_s:g}"}

    # -- S3 and delivery ---------------------------------------------------------------------------
    def s3_fault(self) -> Literal["throttle", "timeout"] | None:
        """For one S3 request of a function: throttle it, stall it, or let it through."""
        if not self.spec.s3_faults:
            return None
        with self._lock:
            draw = self._draw("s3")
            if draw < self.spec.s3_throttle_fraction:
                self._counts["s3_throttle"] += 1
                return "throttle"
            if draw < self.spec.s3_throttle_fraction + self.spec.s3_timeout_fraction:
                self._counts["s3_timeout"] += 1
                return "timeout"
        return None

    def duplicate(self, kind: Literal["s3", "eventbridge"]) -> bool:
        fraction = (
            self.spec.duplicate_s3_fraction if kind == "s3" else self.spec.duplicate_eventbridge_fraction
        )
        if not fraction:
            return False
        with self._lock:
            if self._draw(f"duplicate-{kind}") < fraction:
                self._counts[f"duplicate_{kind}"] += 1
                return True
        return False

    # -- SageMaker ---------------------------------------------------------------------------------
    def training_failure(self, job_name: str) -> str | None:
        """The FailureReason of a training job that must fail, or None."""
        with self._lock:
            for fault in self.spec.fail_training_jobs:
                if fnmatch.fnmatchcase(job_name, fault.pattern):
                    self._matches[fault.pattern] += 1
                    if self._matches[fault.pattern] == fault.nth:
                        self._counts["training_job_failed"] += 1
                        return (
                            "AlgorithmError: injected fault (localcloud.faults.spec): the training script "
                            f"was killed ({fault.pattern} #{fault.nth})"
                        )
        return None

    def endpoint_fault(self, call: Literal["create", "update"]) -> EndpointFault | None:
        """Whether this CreateEndpoint/UpdateEndpoint (counted per kind) fails or rolls back."""
        with self._lock:
            self._endpoint_calls[call] += 1
            number = self._endpoint_calls[call]
            if call == "create" and number in self.spec.fail_endpoint_creates:
                self._counts["endpoint_create_failed"] += 1
                return "fail"
            if call == "update" and number in self.spec.fail_endpoint_updates:
                self._counts["endpoint_update_failed"] += 1
                return "fail"
            if call == "update" and number in self.spec.rollback_endpoint_updates:
                self._counts["endpoint_update_rolled_back"] += 1
                return "rollback"
        return None

    # -- Lambda ------------------------------------------------------------------------------------
    def lambda_kill(self, function_names: tuple[str, ...], warm: bool = True) -> LambdaKill | None:
        """For an invocation attempt of the function known by ``function_names``: the kill to arm
        (its timer calls ``claim_kill`` when ``delay_s`` has passed), or None. Only attempts on a
        warm sandbox (``warm``) are armed, so that ``delay_s`` counts from the handler's start."""
        with self._lock:
            for kill in self.spec.kill_lambda:
                if kill.function not in function_names:
                    continue
                state = self._kills.setdefault(kill, _KillState())
                state.seen += 1
                if warm and state.seen >= kill.nth and state.done < kill.count:
                    return kill
        return None

    def claim_kill(self, kill: LambdaKill) -> bool:
        """The armed kill is due: True (and counted) if it may still fire."""
        with self._lock:
            state = self._kills.setdefault(kill, _KillState())
            if state.done >= kill.count:
                return False
            state.done += 1
            self._counts["lambda_killed"] += 1
            return True
