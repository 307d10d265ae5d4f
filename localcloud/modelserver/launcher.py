"""Start AWS's serving stack for one model, as the SageMaker PyTorch inference image's entrypoint does.

Runs in the base interpreter (``localcloud.environment.containerenv.base_python()``, which plays the inference
image) as ``python -m localcloud.modelserver``. It calls the toolkit's own
``sagemaker_pytorch_serving_container.serving.main()``: the toolkit writes TorchServe's config, starts
``torchserve --start`` with sagemaker-inference's handler service, and waits on the JVM. TorchServe
serves ``/ping`` and ``/invocations`` itself.

The environment the image gets from SageMaker comes from the caller: ``SAGEMAKER_BASE_DIR`` (the
model is unpacked in ``<base>/model``; ``/opt/ml`` in the image), ``SAGEMAKER_PROGRAM``,
``SAGEMAKER_BIND_TO_PORT``, ``TEMP``/``TMPDIR`` (``TEMP`` becomes the JVM's ``-Djava.io.tmpdir``,
``TMPDIR`` holds ``torchserve``'s pid file), ``LOG_LOCATION``/``METRICS_LOCATION`` (log4j2 files).
The working directory is the base dir: the toolkit puts its model store in ``<cwd>/.sagemaker``.

What is overridden in-process, only where the image's paths or its one-server-per-machine
assumption are hard-coded (nothing else of the toolkit is replaced):
- ``torchserve.TS_CONFIG_FILE`` (``/etc/sagemaker-ts.properties`` in the image) -> ``<base>/``;
- the generated config: addresses bound to 127.0.0.1 instead of 0.0.0.0, free ports for TorchServe's
  metrics and gRPC servers (8082/7070/7071 by default) so two endpoints can run side by side (an
  update starts the new server before the old one stops), and the missing newline fix (below);
- ``torchserve._retrieve_ts_server_process``, which refuses to run when it sees more than one
  TorchServe JVM on the machine; ours picks the JVM started with this config file;
- ``model_server._install_requirements``: the toolkit's own pip install of ``code/requirements.txt``
  runs only in an overlay (localcloud/environment/containerenv.py; the emulator starts the launcher
  in the overlay
  that holds the requirements, so pip finds them satisfied). In the base interpreter it is refused:
  the shared base environment must never change.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from localcloud.environment.containerenv import COMPLETE_MARKER
from localcloud.shared import free_port

CONFIG_FILE_NAME = "sagemaker-ts.properties"
TS_NAMESPACE = "org.pytorch.serve.ModelServer"  # the JVM's main class, as the toolkit looks for it
FIND_JVM_TIMEOUT_SECONDS = 30.0


class LauncherError(RuntimeError):
    """The serving stack cannot start as configured (a setup problem; not retried)."""


def fix_generated_config(text: str, default_config: str, ports: dict[str, int]) -> str:
    """The toolkit's TorchServe config, made fit to run next to other endpoints on 127.0.0.1.

    The toolkit's ``etc/default-ts.properties`` has no trailing newline, so the first generated line is
    glued to its last one (``enable_model_api=truedefault_response_timeout=60``): the model API is
    then off and the response timeout stays at TorchServe's 120 s. The real inference image has the
    same bug; the line break restored here is what the toolkit means to write.
    """
    if default_config and not default_config.endswith("\n") and text.startswith(default_config):
        text = default_config + "\n" + text[len(default_config) :]
    # The image listens on all interfaces; here only loopback is allowed.
    text = text.replace("http://0.0.0.0:", "http://127.0.0.1:")
    if not text.endswith("\n"):
        text += "\n"
    # Java properties: a later key overrides an earlier one.
    text += (
        "# localcloud: ports TorchServe otherwise fixes (8082, 7070, 7071), so endpoints can coexist\n"
        f"metrics_address=http://127.0.0.1:{ports['metrics']}\n"
        "grpc_inference_address=127.0.0.1\n"
        f"grpc_inference_port={ports['grpc_inference']}\n"
        "grpc_management_address=127.0.0.1\n"
        f"grpc_management_port={ports['grpc_management']}\n"
    )
    return text


def _ts_jvms(config_file: str) -> list[Any]:
    import psutil  # in the image (the toolkit depends on it)

    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = process.cmdline()
        except psutil.Error:
            continue
        if TS_NAMESPACE in cmdline and config_file in cmdline:
            found.append(process)
    return found


def install_overrides(base_dir: Path) -> Path:
    """Patch the toolkit's hard-coded paths and single-server assumption; returns the config path."""
    from sagemaker_inference import model_server, utils
    from sagemaker_pytorch_serving_container import torchserve

    config_file = str(base_dir / CONFIG_FILE_NAME)
    torchserve.TS_CONFIG_FILE = config_file
    # torchserve's CLI prefers $TS_CONFIG_FILE over --ts-config: keep the two the same file.
    os.environ["TS_CONFIG_FILE"] = config_file
    ports = {"metrics": free_port(), "grpc_inference": free_port(), "grpc_management": free_port()}
    generate = torchserve._generate_ts_config_properties

    def generate_config(handler_service: str) -> str:
        default = utils.read_file(torchserve.DEFAULT_TS_CONFIG_FILE)
        return fix_generated_config(generate(handler_service), default, ports)

    def retrieve_ts_server_process() -> Any:
        # The toolkit's version looks at every process and refuses when two TorchServe JVMs run;
        # during an endpoint update two do. Same polling contract: wait until ours is up.
        deadline = time.monotonic() + FIND_JVM_TIMEOUT_SECONDS
        while True:
            found = _ts_jvms(config_file)
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise LauncherError(f"{len(found)} TorchServe JVMs use {config_file}")
            if time.monotonic() > deadline:
                raise LauncherError("TorchServe model server was unsuccessfully started")
            time.sleep(0.1)  # polling another process's start: no event to wait on

    install_requirements = model_server._install_requirements

    def install_requirements_in_overlay() -> None:
        if not (Path(sys.prefix) / COMPLETE_MARKER).is_file():
            raise LauncherError(
                f"{model_server.REQUIREMENTS_PATH} found but this server runs in the base environment "
                f"({sys.prefix}), which is never pip-installed into; start it in an overlay "
                "(localcloud.environment.containerenv.overlay_python)"
            )
        install_requirements()

    torchserve._generate_ts_config_properties = generate_config
    torchserve._retrieve_ts_server_process = retrieve_ts_server_process
    model_server._install_requirements = install_requirements_in_overlay
    return Path(config_file)


def main() -> None:
    base = os.environ.get("SAGEMAKER_BASE_DIR")
    if not base or not (Path(base) / "model").is_dir():
        raise SystemExit(f"SAGEMAKER_BASE_DIR must name a directory holding model/ (got {base!r})")
    if not os.environ.get("SAGEMAKER_BIND_TO_PORT"):
        raise SystemExit("SAGEMAKER_BIND_TO_PORT is required (the image's 8080 is not free here)")
    base_dir = Path(base).resolve()
    # The caller put the repo on PYTHONPATH only to import this module; the model's code must not see it.
    own_root = Path(__file__).resolve().parents[2]
    kept = [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != own_root
    ]
    if kept:
        os.environ["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        os.environ.pop("PYTHONPATH", None)
    os.chdir(base_dir)  # the toolkit's model store is <cwd>/.sagemaker/ts/models
    config_file = install_overrides(base_dir)
    print(f"localcloud.modelserver: TorchServe config {config_file}", flush=True)

    from sagemaker_pytorch_serving_container import serving

    serving.main()  # returns when the JVM exits


if __name__ == "__main__":
    main()
