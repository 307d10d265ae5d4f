"""Keep a profiled job alive under any ProfilerConfig: switch smdebug's framework profiling off.

A job's ProfilerConfig reaches smdebug as ``ProfilingParameters`` in the file named by env
``SMPROFILER_CONFIG_PATH`` (default ``/opt/ml/input/config/profilerconfig.json``; smdebug 1.0.34,
smdebug/profiler/profiler_constants.py). The SageMaker Python SDK's
``FrameworkProfile(num_steps=10)`` fills five of them (Detailed, Dataloader, Python, Horovod and
SMDataParallel ``*ProfilingConfig``). On this image's stack (CPython 3.12, torch 2.6, smdebug 1.0.34):

- ``PythonProfilingConfig`` makes smdebug start cProfile from the hook's forward pre-hook at each
  profiled step (smdebug/profiler/python_profiler.py ``_enable_profiler``). That crashes the process:
  SIGSEGV (exit -11) at the first profiled step, the native stack in ``pymalloc_alloc`` of another
  thread (heap corruption) right after ``cProfile.Profile.enable()``; without it the same job completes.
- ``DetailedProfilingConfig``: smdebug's autograd-profiler path knows torch 1.5-1.8 only and logs
  "not supported for torch version 2.6" at every step (smdebug/pytorch/hook.py).
- The SDK itself warns that framework profiling is deprecated from PyTorch 2.0
  (sagemaker/debugger/profiler_config.py, SDK v2.257).

So all five are dropped before smdebug first reads the file: a copy without them is written and
``SMPROFILER_CONFIG_PATH`` points at it, with one log line saying why. The rest of the config
(system monitoring interval, trace-file settings) stays, and so do the in-script system monitor
(sampler.py), the Debugger hook and the in-script rules. Stdlib only: it runs before smdebug is imported.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

CONFIG_PATH_ENV = "SMPROFILER_CONFIG_PATH"
DEFAULT_CONFIG_PATH = "/opt/ml/input/config/profilerconfig.json"
# ProfilingParameters keys that ask smdebug for framework profiling (smdebug matches them case-blind).
FRAMEWORK_PROFILING_KEYS = (
    "DetailedProfilingConfig",
    "DataloaderProfilingConfig",
    "PythonProfilingConfig",
    "HorovodProfilingConfig",
    "SMDataParallelProfilingConfig",
)
_FRAMEWORK_KEYS_LOWER = {key.lower() for key in FRAMEWORK_PROFILING_KEYS}
REASON = (
    "smdebug 1.0.34's Python profiler (cProfile) crashes CPython 3.12 with a segfault and its detailed "
    "profiler does not support torch 2.x; the SageMaker SDK deprecates framework profiling from PyTorch 2.0"
)


def switch_off_framework_profiling(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Drop the framework-profiling parameters from the job's profiler config, if it has any.

    Returns the log line (also printed) when something was switched off, else None. A missing or
    unreadable config is left to smdebug, which then profiles nothing.
    """
    env = os.environ if environ is None else environ
    path = Path(env.get(CONFIG_PATH_ENV, DEFAULT_CONFIG_PATH))
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    params_key = next((key for key in config if key.lower() == "profilingparameters"), None)
    parameters = config.get(params_key) if params_key else None
    if not isinstance(parameters, dict):
        return None
    dropped = sorted(key for key in parameters if key.lower() in _FRAMEWORK_KEYS_LOWER)
    if not dropped:
        return None
    kept = {key: value for key, value in parameters.items() if key.lower() not in _FRAMEWORK_KEYS_LOWER}
    # A private copy: the job's own config file is the platform's, left as SageMaker wrote it.
    folder = Path(tempfile.mkdtemp(prefix="profilerconfig-"))
    copy = folder / "profilerconfig.json"
    copy.write_text(json.dumps({**config, params_key: kept}, indent=2))
    env[CONFIG_PATH_ENV] = str(copy)
    line = (
        f"framework profiling off ({', '.join(dropped)} dropped from {path}): {REASON}. "
        "System monitoring, the Debugger hook and the in-script rules go on."
    )
    print(line, flush=True)
    return line
