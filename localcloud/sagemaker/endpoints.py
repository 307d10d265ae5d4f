"""One endpoint = one model server process (localcloud.modelserver) in the training interpreter.

The emulator proxies InvokeEndpoint to the endpoint's current ``ModelServerProcess``. Requests hold a
lease (``acquire``/``release``) so an update can switch to a new server atomically and stop the old
one only after its in-flight requests have finished (no dropped requests).
"""

from __future__ import annotations

import http.client
import logging
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

logger = logging.getLogger("localcloud.sagemaker.endpoints")

REPO_ROOT = Path(__file__).resolve().parents[2]
DRAIN_TIMEOUT_SECONDS = 60.0


class ModelServerStartError(Exception):
    """The model server died or never answered /ping; the message carries its log tail."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ModelServerProcess:
    def __init__(
        self,
        name: str,
        model_dir: Path,
        training_python: Path,
        environment: dict[str, str],
        log_path: Path,
    ) -> None:
        self.name = name
        self.model_dir = model_dir
        self.training_python = training_python
        self.environment = environment
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self._in_flight = 0
        self._idle = threading.Condition()
        self._log_tail: deque[str] = deque(maxlen=30)
        self._pool: queue.SimpleQueue[http.client.HTTPConnection] = queue.SimpleQueue()

    def start(self) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("SM_")}
        env.update(self.environment)
        code_dir = self.model_dir / "code"
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(code_dir)])
        env["PYTHONUNBUFFERED"] = "1"
        command = [
            str(self.training_python),
            "-m",
            "localcloud.modelserver",
            "--model-dir",
            str(self.model_dir),
            "--port",
            str(self.port),
            "--entry-point",
            env.get("SAGEMAKER_PROGRAM", "inference.py"),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=self.model_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        threading.Thread(target=self._pump_log, name=f"log-{self.name}", daemon=True).start()

    def _pump_log(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with self.log_path.open("a", encoding="utf-8") as log_file:
            for line in self.process.stdout:
                log_file.write(line)
                log_file.flush()
                self._log_tail.append(line.rstrip("\n"))
                logger.debug("[%s] %s", self.name, line.rstrip("\n"))

    def log_tail(self) -> str:
        return "\n".join(self._log_tail)

    def wait_ready(self, timeout: float) -> None:
        """Poll /ping until 200; raise ModelServerStartError if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                time.sleep(0.2)  # let the log pump catch the last lines
                code = None if self.process is None else self.process.returncode
                raise ModelServerStartError(f"model server exited with code {code}: {self.log_tail()[-800:]}")
            try:
                status = self._ping()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise ModelServerStartError(
            f"model server did not pass /ping within {timeout:.0f}s: {self.log_tail()[-800:]}"
        )

    def _ping(self) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
        try:
            connection.request("GET", "/ping")
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def request(
        self, method: str, path: str, body: bytes, headers: dict[str, str], timeout: float = 60.0
    ) -> tuple[int, dict[str, str], bytes]:
        """One request over a pooled keep-alive connection (no connect or server thread per call)."""
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
        self._close_pool()
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass
