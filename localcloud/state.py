"""The local cloud's state directory, shared by ``python -m localcloud``, the demo and the CLI.

The directory holds the cloud's logs, job files and ``state.json``: the endpoints and environment
the CLI (``python -m cli --local``) needs to reach a running local cloud. A directory we did not
create (no marker file) is never wiped.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

STATE_MARKER = ".localcloud-state"
STATE_FILE = "state.json"
DEFAULT_STATE_FILE = Path(".localcloud") / STATE_FILE  # relative to the working directory (the CLI's default)


class StateDirError(RuntimeError):
    """The state directory cannot be used (it exists and is not ours)."""


# -- state dir --------------------------------------------------------------------------------------
def prepare_state_dir(state_dir: Path) -> None:
    """Start from a clean state dir, but never wipe a folder we did not create."""
    if state_dir.exists() and any(state_dir.iterdir()):
        if not (state_dir / STATE_MARKER).exists():
            raise StateDirError(f"{state_dir} exists and is not a local cloud state dir; pick another")
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_MARKER).write_text("created by localcloud; safe to delete\n")


def write_state_file(cloud: LocalCloud, state_dir: Path) -> Path:
    """What the CLI needs to talk to this local cloud (``python -m cli --local ...``)."""
    path = state_dir / STATE_FILE
    document = {
        "region": cloud.config.region,
        "stack_name": cloud.config.stack_name,
        "environment": cloud.environment(),
        "endpoints": cloud.endpoints,
        "outputs": cloud.outputs(),
        # Logical id -> function name: what `python -m cli logs --function <logical id>` resolves
        # (on AWS the stack's resources say it).
        "functions": cloud.function_names(),
    }
    path.write_text(json.dumps(document, indent=2))
    return path


def read_state_file(path: Path) -> dict[str, Any]:
    """The document ``write_state_file`` wrote: region, stack_name, environment, endpoints, outputs,
    functions."""
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def keep_running(cloud: LocalCloud) -> None:
    """Print how to reach the cloud, then serve until Ctrl-C or SIGTERM."""
    print("\nThe local cloud keeps running. In another shell:")
    for name, value in sorted(cloud.environment().items()):
        print(f"  export {name}={value}")
    print(f"  .venv/bin/python -m cli --local --state-file {cloud.state_dir / STATE_FILE} status")
    print("Press Ctrl-C to stop.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
