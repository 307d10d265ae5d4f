"""Narrow fixes to moto's S3 applied when the local cloud starts, so local S3 notifies as AWS does.

moto 5.2.5's ``S3Backend.complete_multipart_upload`` stores the assembled object through
``put_object(...)`` without ``disable_notification=True`` and then sends its own
``ObjectCreated:CompleteMultipartUpload``. So one multipart upload produced two notifications, a
``Put`` and a ``CompleteMultipartUpload``, where real S3 sends only the second (see
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-event-types-and-destinations.html).
Two events for one object start two ingests of the same archive (issue 9).

The fix: while ``complete_multipart_upload`` runs on a thread, the ``put_object`` it makes on that
same thread is told not to notify. Nothing else changes: a genuine PutObject (even of the same key,
even while another thread completes an upload) notifies as before, and ``CompleteMultipartUpload``
is still sent by moto itself. ``apply()`` is idempotent and refuses to patch a moto whose
``put_object`` lost the ``disable_notification`` parameter (an upgrade must be looked at, not
silently mis-patched).
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any

_state = threading.local()  # per request thread: depth of complete_multipart_upload calls
_applied = False
_lock = threading.Lock()


def apply() -> None:
    """Patch moto's S3 backend class (process-wide; ThreadedMotoServer serves from this process)."""
    global _applied
    from moto.s3.models import S3Backend

    with _lock:
        if _applied:
            return
        if "disable_notification" not in inspect.signature(S3Backend.put_object).parameters:
            raise RuntimeError(
                "moto's S3Backend.put_object has no disable_notification parameter any more: "
                "re-check localcloud/events/moto_patches.py against this moto version"
            )
        original_complete = S3Backend.complete_multipart_upload
        original_put = S3Backend.put_object

        @functools.wraps(original_complete)
        def complete_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
            _state.completing = getattr(_state, "completing", 0) + 1
            try:
                return original_complete(self, *args, **kwargs)
            finally:
                _state.completing -= 1

        @functools.wraps(original_put)
        def put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(_state, "completing", 0):
                kwargs["disable_notification"] = True  # CompleteMultipartUpload is the only event
            return original_put(self, *args, **kwargs)

        S3Backend.complete_multipart_upload = complete_multipart_upload  # type: ignore[method-assign]
        S3Backend.put_object = put_object  # type: ignore[method-assign]
        _applied = True
