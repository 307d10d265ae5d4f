"""The one place Logger, Tracer and Metrics are created (service name from POWERTOOLS_SERVICE_NAME).

The Tracer gets a provider that imports the X-Ray SDK on first use: ``Tracer()`` with its default
provider imports ``aws_xray_sdk.core`` at once (~100-300 ms, and outside Lambda its sampler creates
a botocore client), which would land in every function's cold start although the first trace
segment is only opened when the handler is called.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.tracing.base import BaseProvider

# The only library the functions call that X-Ray can trace: every AWS API call goes through botocore.
# (patch_all would also wrap http.client, sqlite3, ... and import their patchers on the first call.)
TRACED_MODULES = ("botocore",)


class DeferredXRayProvider(BaseProvider):
    """X-Ray's ``xray_recorder`` behind Powertools' provider interface, imported on first use.

    Patches asked for before that (Tracer does it in its constructor) are applied when the recorder
    is loaded, which is before the handler's first AWS call: capture_lambda_handler opens the
    handler's subsegment first. X-Ray's botocore patch wraps the client class, so clients created
    earlier are traced too.
    """

    def __init__(self) -> None:
        self._recorder: Any = None
        self._pending_patches: list[str] = []
        self._patch_all_pending = False
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._recorder is not None

    def recorder(self) -> Any:
        if self._recorder is None:
            with self._lock:
                if self._recorder is None:
                    self._recorder = self._load()
        return self._recorder

    def _load(self) -> Any:
        import aws_xray_sdk
        from aws_xray_sdk.core import patch, xray_recorder

        if aws_xray_sdk.global_sdk_config.sdk_enabled():
            # What Tracer does for its default X-Ray provider: send subsegments one by one.
            xray_recorder.configure(streaming_threshold=0)
        if self._patch_all_pending:
            from aws_xray_sdk.core import patch_all

            patch_all()
        elif self._pending_patches:
            patch(self._pending_patches)
        return xray_recorder

    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Any:
        return self.recorder().in_subsegment(name=name, **kwargs)

    def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> Any:
        return self.recorder().in_subsegment_async(name=name, **kwargs)

    def put_annotation(self, key: str, value: Any) -> None:
        self.recorder().put_annotation(key=key, value=value)

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.recorder().put_metadata(key=key, value=value, namespace=namespace)

    def patch(self, modules: Sequence[str]) -> None:
        with self._lock:
            if self._recorder is None:
                self._pending_patches.extend(modules)
                return
        from aws_xray_sdk.core import patch

        patch(list(modules))

    def patch_all(self) -> None:
        with self._lock:
            if self._recorder is None:
                self._patch_all_pending = True
                return
        from aws_xray_sdk.core import patch_all

        patch_all()


logger = Logger()
xray_provider = DeferredXRayProvider()
tracer = Tracer(provider=xray_provider, patch_modules=TRACED_MODULES)
# The template sets POWERTOOLS_METRICS_NAMESPACE; the fallback keeps a bare import (tools, tests) working.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DogBreedPipeline"))
