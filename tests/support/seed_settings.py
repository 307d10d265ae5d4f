"""The seed notebook's SageMaker settings as the SageMaker Python SDK v2 sends them, written out once.

``SEED_PROFILER_CONFIG`` is the CreateTrainingJob ``ProfilerConfig`` that sagemaker 2.257.7 builds
(``ProfilerConfig._to_request_dict()``) from ``ProfilerConfig(system_monitor_interval_millis=500,
framework_profile_params=FrameworkProfile(num_steps=10))``. tests/training use it without the SDK
(their interpreter has none); tests/sdk check it against the SDK itself, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

SEED_PROFILER_CONFIG: dict[str, Any] = {
    "DisableProfiler": False,
    "ProfilingIntervalInMilliseconds": 500,
    "ProfilingParameters": {
        "LocalPath": "/opt/ml/output/profiler",
        "RotateMaxFileSizeInBytes": "10485760",
        "RotateFileCloseIntervalInSeconds": "60",
        "FileOpenFailThreshold": "50",
        # The SDK writes these as Python-dict-like strings with a trailing comma; smdebug eval()s them.
        "DetailedProfilingConfig": '{"StartStep": 0, "NumSteps": 10, }',
        "DataloaderProfilingConfig": '{"StartStep": 0, "NumSteps": 10, "MetricsRegex": ".*", }',
        "PythonProfilingConfig": (
            '{"StartStep": 0, "NumSteps": 10, "ProfilerName": "cprofile", "cProfileTimer": "total_time", }'
        ),
        "HorovodProfilingConfig": '{"StartStep": 0, "NumSteps": 10, }',
        "SMDataParallelProfilingConfig": '{"StartStep": 0, "NumSteps": 10, }',
    },
}
