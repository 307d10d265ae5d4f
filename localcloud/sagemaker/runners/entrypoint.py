"""A training job that brings its own command: ``AlgorithmSpecification.ContainerEntrypoint`` and
``ContainerArguments``.

SageMaker runs them in place of the image's own entry ("The entrypoint script for a Docker container
used to run a training job", https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AlgorithmSpecification.html),
with the job's files at ``/opt/ml``. The SageMaker Python SDK v3's ``ModelTrainer`` sends one for every
job with a ``SourceCode``: ``/bin/bash -c ".../sm_drivers/sm_train.sh"``, whose drivers read and write
``/opt/ml`` by absolute path (sagemaker/train/templates.py, container_drivers/). The toolkit path of
runners/training.py maps ``/opt/ml`` through ``SAGEMAKER_BASE_DIR``; a command of the user's cannot be
told that, so the job's base dir is bind-mounted at ``/opt/ml`` in a mount namespace of its own
(``unshare --mount --map-root-user``: no privilege needed, nothing changes outside the job's process
tree, jobs run side by side). Where the host has no ``/opt/ml`` to mount on, ``/opt`` is covered by a
tmpfs holding ``ml`` and bind mounts of the host's ``/opt`` entries, so interpreters there keep working.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from localcloud.sagemaker.runners.job_files import JobSetupError

# $1: the job's base dir; the rest: the command. Run as root of a fresh user and mount namespace.
MOUNT_OPT_ML = r"""
set -e
base="$1"; shift
if [ ! -d /opt/ml ]; then
    hold="$(mktemp -d)"
    mount --rbind /opt "$hold"
    mount -t tmpfs localcloud-opt /opt
    for entry in "$hold"/* "$hold"/.[!.]*; do
        [ -e "$entry" ] || continue
        target="/opt/${entry##*/}"
        if [ -d "$entry" ]; then mkdir "$target"; else touch "$target"; fi
        mount --rbind "$entry" "$target"
    done
    umount -l "$hold" && rmdir "$hold"  # the entries' own mounts stay
    mkdir /opt/ml
fi
mount --bind "$base" /opt/ml
exec "$@"
"""


def container_command(desc: dict[str, Any]) -> list[str] | None:
    """The job's own command (ContainerEntrypoint + ContainerArguments), or None for the image's."""
    spec = desc.get("AlgorithmSpecification") or {}
    entrypoint = list(spec.get("ContainerEntrypoint") or [])
    if not entrypoint:
        return None
    return entrypoint + list(spec.get("ContainerArguments") or [])


def namespaced_command(command: list[str], base_dir: Path) -> list[str]:
    """`command` with the job's base dir at /opt/ml; JobSetupError where the host cannot do that."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise JobSetupError(
            "ContainerEntrypoint needs /opt/ml: the local emulator mounts the job's directory there with "
            "util-linux's unshare, which is not installed"
        )
    namespace = [unshare, "--mount", "--map-root-user", "--propagation", "private"]
    return [
        *namespace,
        "/bin/sh",
        "-c",
        MOUNT_OPT_ML,
        "sh",
        str(base_dir),
        *command,
    ]


def image_path(env: dict[str, str], python: Path) -> dict[str, str]:
    """The image's interpreter first on PATH, as `python3` is in the container (sm_train.sh looks it up
    with `command -v python3`); the rest of PATH as the emulator has it."""
    return {**env, "PATH": os.pathsep.join([str(python.parent), env.get("PATH", os.defpath)])}
