"""One endpoint = AWS's serving stack in one process group: TorchServe + the SageMaker PyTorch handler.

``ModelServerProcess`` starts ``python -m localcloud.modelserver`` in the base interpreter (which
plays the inference image; see ``localcloud.environment.containerenv``). That runs the toolkit's own
``sagemaker_pytorch_serving_container.serving.main()``, so TorchServe answers ``/invocations`` with
sagemaker-inference's Transformer around the model's ``inference.py``, as in the image. What stays
ours is the SageMaker-runtime front: the emulator proxies InvokeEndpoint to the endpoint's current
server, and requests hold a lease (``acquire``/``release``) so an update can switch to a new server
atomically and stop the old one only after its in-flight requests have finished (no dropped
requests).

Layout per endpoint generation (``<base>`` = ``SAGEMAKER_BASE_DIR``, ``/opt/ml`` in the image):
``<base>/model`` (model.tar.gz unpacked), ``<base>/tmp`` (TMPDIR: ``torchserve``'s pid file),
``<base>/logs`` (TorchServe's log4j2 files), ``<base>/.sagemaker`` (the toolkit's model store) and
``<base>/sagemaker-ts.properties`` (the generated config). The JVM's temp dir (TEMP) is a short
folder of its own under the system temp dir: TorchServe puts its workers' Unix sockets there
(``<java.io.tmpdir>/.ts.sock.<port>``), and a socket path may hold 107 bytes at most (unix(7)),
which an endpoint name of the SDK's (``pytorch-inference-<timestamp>``) under a deep state dir exceeds.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

from localcloud.environment.containerenv import REPO_ROOT, ContainerEnvError, base_python, overlay_python
from localcloud.logs.shipper import LogStreamWriter, NullStream
from localcloud.shared import free_port

TORCHSERVE = "torchserve"  # the CLI the inference toolkit runs (found on PATH)

logger = logging.getLogger("localcloud.sagemaker.runners.endpoint")

DRAIN_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
MODEL_NAME = "model"  # the name the toolkit registers the model under in TorchServe
# Local default where the model's Environment sets none: one worker per endpoint. The image defaults to
# one per vCPU (TorchServe's default), too many for a small machine that runs two endpoints during an update.
DEFAULT_WORKERS = "1"
# TorchServe's frontend logs this when a worker dies while loading the model (model_fn raised, import
# failed); it then retries with backoff forever, so the endpoint fails at the first one.
LOAD_FAILED = re.compile(r"Load model failed: ")
# The worker's own stderr/stdout lines, as TorchServe relays them; the last "...Error: msg" is the cause.
MODEL_ERROR_LINE = re.compile(r"MODEL_LOG - ((?:[A-Za-z_][\w.]*)?(?:Error|Exception)\b.*)$")
# The frontend logs the failure before it has relayed all of the dead worker's output; these lines end it.
WORKER_OUTPUT_DONE = re.compile(r"Stopped Scanner - W-\S+-(stdout|stderr)")
CAUSE_WAIT_SECONDS = 10.0


class ModelServerStartError(Exception):
    """The model server died, failed to load the model or never got ready; the message says why."""


def live_group_members(pgid: int) -> list[int]:
    """Pids in process group `pgid` that are not zombies (zombies hold no resources; PID 1 may never reap
    the JVM's reparented ones)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


class ModelServerProcess:
    def __init__(
        self,
        name: str,
        model_dir: Path,
        environment: dict[str, str],
        log_path: Path,
        *,
        python: Path | None = None,
        cloudwatch: LogStreamWriter | NullStream | None = None,
    ) -> None:
        self.name = name
        # This "instance"'s CloudWatch Logs stream (/aws/sagemaker/Endpoints/<name>, <variant>/<instance>).
        self.cloudwatch = cloudwatch or NullStream()
        self.model_dir = Path(model_dir)
        if self.model_dir.name != "model":
            # SAGEMAKER_BASE_DIR/model is where the toolkit looks; the emulator unpacks there.
            raise ModelServerStartError(f"model dir must be <base dir>/model, got {self.model_dir}")
        self.base_dir = self.model_dir.parent
        try:
            self.base_python = base_python()
        except ContainerEnvError as error:  # no base env: the endpoint fails with the setup hint
            raise ModelServerStartError(str(error)) from error
        # An overlay over the base when the model ships code/requirements.txt (containerenv.py).
        self.python = Path(python) if python else self.base_python
        self.environment = environment
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self._in_flight = 0
        self._idle = threading.Condition()
        self._log_tail: deque[str] = deque(maxlen=40)
        self._log_activity = threading.Condition()
        self._load_failure: str | None = None
        self._stopped = False
        self._worker_streams_done: set[str] = set()
        self._pump: threading.Thread | None = None
        self._model_error: str | None = None
        self._pool: queue.SimpleQueue[http.client.HTTPConnection] = queue.SimpleQueue()
        self.jvm_tmp: Path | None = None

    def _environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("SM_")}
        env.update(self.environment)
        env.setdefault("SAGEMAKER_PROGRAM", "inference.py")
        env.setdefault("SAGEMAKER_MODEL_SERVER_WORKERS", DEFAULT_WORKERS)
        tmp, logs = self.base_dir / "tmp", self.base_dir / "logs"
        env.update(
            SAGEMAKER_BASE_DIR=str(self.base_dir),
            SAGEMAKER_BIND_TO_PORT=str(self.port),
            TEMP=str(self.jvm_tmp or tmp),  # torchserve passes it to the JVM as -Djava.io.tmpdir
            TMPDIR=str(tmp),  # torchserve's pid file, Python's tempfile
            LOG_LOCATION=str(logs),
            METRICS_LOCATION=str(logs),
            # `torchserve` and the worker's python come from the server's env (an overlay has its own
            # `torchserve`, see _add_torchserve_script), then the base's bin, as the image's PATH has them.
            PATH=os.pathsep.join(
                dict.fromkeys(
                    [str(self.python.parent), str(self.base_python.parent), env.get("PATH", os.defpath)]
                )
            ),
            # Only for importing the launcher; it removes this entry before TorchServe starts.
            PYTHONPATH=str(REPO_ROOT),
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self) -> None:
        for folder in ("tmp", "logs"):
            (self.base_dir / folder).mkdir(parents=True, exist_ok=True)
        self.jvm_tmp = Path(tempfile.mkdtemp(prefix="lc-ts-"))  # short: the workers' sockets live here
        self.process = subprocess.Popen(
            [str(self.python), "-m", "localcloud.modelserver"],
            cwd=self.base_dir,
            env=self._environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: the JVM and workers go with it on stop
        )
        self._pump = threading.Thread(target=self._pump_log, name=f"log-{self.name}", daemon=True)
        self._pump.start()

    def _pump_log(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with self.log_path.open("a", encoding="utf-8") as log_file:
            for raw in self.process.stdout:
                line = raw.rstrip("\n")
                log_file.write(raw)
                log_file.flush()
                logger.debug("[%s] %s", self.name, line)
                self.cloudwatch.put(line)
                with self._log_activity:
                    self._log_tail.append(line)
                    error = MODEL_ERROR_LINE.search(line)
                    if error:
                        self._model_error = error.group(1).strip()
                    if LOAD_FAILED.search(line) and self._load_failure is None:
                        self._load_failure = line
                    done = WORKER_OUTPUT_DONE.search(line)
                    if done:
                        self._worker_streams_done.add(done.group(1))
                    self._log_activity.notify_all()
        with self._log_activity:
            self._log_activity.notify_all()  # the process closed its output: let waiters look

    def log_tail(self) -> str:
        with self._log_activity:
            return "\n".join(self._log_tail)

    def model_ready(self) -> bool:
        """The model has a worker in READY state (TorchServe's describe-model API on our port).

        ``/ping`` is no readiness check: TorchServe answers it "Healthy" while every worker is dead.
        """
        try:
            status, _, body = self.request("GET", f"/models/{MODEL_NAME}", b"", {}, timeout=5.0)
        except OSError:
            return False  # not listening yet
        if status != 200:
            return False
        try:
            models = json.loads(body)
        except ValueError:
            return False
        return any(
            worker.get("status") == "READY"
            for model in (models if isinstance(models, list) else [])
            for worker in model.get("workers", [])
        )

    def wait_ready(self, timeout: float) -> None:
        """Return once the model is loaded; raise ModelServerStartError (server stopped) otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            process = self.process
            if process is None or process.poll() is not None:
                code = None if process is None else process.wait()
                if self._pump is not None:
                    self._pump.join(timeout=10)  # the log's last lines say why
                self.stop()
                raise ModelServerStartError(f"model server exited with code {code}: {self.log_tail()[-800:]}")
            with self._log_activity:
                if self._load_failure:
                    # Wait for the worker's traceback to be relayed: its last "...Error: ..." is the cause.
                    self._log_activity.wait_for(
                        lambda: len(self._worker_streams_done) == 2, timeout=CAUSE_WAIT_SECONDS
                    )
                failure, cause = self._load_failure, self._model_error
            if failure:
                self.stop()
                raise ModelServerStartError(
                    f"TorchServe could not load the model: {cause or failure}\n{self.log_tail()[-600:]}"
                )
            if self.model_ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ModelServerStartError(
                    f"model not loaded within {timeout:.0f}s: {self.log_tail()[-800:]}"
                )
            # Wake on the next log line (TorchServe logs each startup step), or re-check soon.
            with self._log_activity:
                self._log_activity.wait(timeout=0.5)

    def request(
        self, method: str, path: str, body: bytes, headers: dict[str, str], timeout: float = 60.0
    ) -> tuple[int, dict[str, str], bytes]:
        """One request over a pooled keep-alive connection (no connect per call)."""
        try:
            connection, reused = self._pool.get_nowait(), True
        except queue.Empty:
            connection, reused = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout), False
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            result = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            connection.close()
            if not reused:
                raise
            # A pooled connection the server had already closed: nothing was processed, retry fresh.
            return self.request(method, path, body, headers, timeout)
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._pool.put(connection)
        return result

    def _close_pool(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    # -- in-flight accounting for draining ---------------------------------------------------------

    def acquire(self) -> None:
        with self._idle:
            self._in_flight += 1

    def release(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def drain_and_stop(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)
        self.stop()

    def stop(self) -> None:
        """Stop the launcher, the JVM and its workers (one process group), then ``torchserve --stop``."""
        self._close_pool()
        process = self.process
        if process is None or self._stopped:
            self.cloudwatch.close()  # never started: its stream holds nothing to wait for
            return
        self._stopped = True
        pgid = process.pid  # start_new_session: the launcher leads its own group
        for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, 10.0)):
            if not live_group_members(pgid):
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while live_group_members(pgid) and time.monotonic() < deadline:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.2)  # reaps the launcher; the rest exit on their own
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logger.warning("endpoint %s: launcher %d did not exit", self.name, process.pid)
        # In the same env and TMPDIR, so torchserve finds its pid file: it stops a JVM that somehow
        # left the group and removes the stale pid file.
        try:
            subprocess.run(
                [str(self.python.parent / TORCHSERVE), "--stop"],
                env={**self._environment(), "PYTHONPATH": ""},
                cwd=self.base_dir,
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            logger.warning("endpoint %s: torchserve --stop failed: %s", self.name, error)
        if self.jvm_tmp is not None:
            shutil.rmtree(self.jvm_tmp, ignore_errors=True)
        if self._pump is not None:
            self._pump.join(timeout=10)  # the server's last lines, then the stream's last flush
        self.cloudwatch.close()


def serving_python(model_dir: Path, log_path: Path) -> Path | None:
    """The interpreter a model is served with: None (the base env) without ``code/requirements.txt``;
    with one, the cached overlay over the base that holds it.

    The inference toolkit pip-installs ``code/requirements.txt`` when the server starts
    (sagemaker_inference/model_server.py ``_install_requirements``, called from
    sagemaker_pytorch_serving_container/torchserve.py). Here the install goes into an overlay keyed by
    the requirements' content, exactly as for a training job's source dir
    (localcloud/environment/containerenv.py),
    so the base never changes; the toolkit's own pip run then finds everything satisfied. pip honours
    the file's own options, so a ``--no-index`` / ``--find-links wheels`` file (relative to the file)
    installs offline from the wheels the model ships.
    """
    requirements = model_dir / "code" / "requirements.txt"
    if not requirements.is_file():
        return None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log_file:

        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()

        try:
            python = overlay_python(requirements, base=base_python(), log=log)
        except ContainerEnvError as error:
            # Permanent for this endpoint, as in the image (the toolkit exits on a failed pip install);
            # pip has already retried transient network errors itself.
            raise ModelServerStartError(f"InstallRequirementsError: {error}") from error
    _add_torchserve_script(python)
    return python


def _add_torchserve_script(python: Path) -> None:
    """``torchserve`` in the overlay's bin, as pip writes the console script into the env it installs.

    TorchServe starts its workers with the interpreter that runs the ``torchserve`` CLI (ts/model_server.py
    passes ``--python sys.executable``); in the image that is the one env the requirements went into.
    The overlay has no console scripts of the base's packages, so without this the workers would run the
    base interpreter and miss the model's requirements.
    """
    script = python.parent / TORCHSERVE
    text = (
        f"#!{python}\nimport sys\nfrom ts.model_server import start\n\n"
        "if __name__ == '__main__':\n    sys.exit(start())\n"
    )
    if not script.is_file() or script.read_text() != text:
        temporary = script.with_name(f".{TORCHSERVE}.{os.getpid()}")
        temporary.write_text(text)
        temporary.chmod(0o755)
        temporary.replace(script)  # atomic: another endpoint may be starting from this overlay
