"""A narrow fix to moto's CloudWatch Logs, applied when the local cloud starts: FilterLogEvents'
``logStreamNamePrefix``.

AWS: "logStreamNamePrefix: Filters the results to include only events from log streams that have
names starting with this prefix. If you specify a value for both logStreamNamePrefix and
logStreamNames, the action returns an InvalidParameterException error." (FilterLogEvents API
reference, https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html).
moto 5.2.5's ``LogsResponse.filter_log_events`` never reads the parameter, so a prefix returned
every stream's events: ``aws logs filter-log-events --log-stream-name-prefix <job>/`` (and
``aws logs tail``'s) showed other jobs' lines. The fix resolves the prefix to the group's matching
stream names and lets moto filter by those; no match returns no events (an empty name list means
"all streams" to moto). ``apply()`` is idempotent.
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

_applied = False
_lock = threading.Lock()


def apply() -> None:
    """Patch moto's Logs response class (process-wide; ThreadedMotoServer serves from this process)."""
    global _applied
    from moto.logs.exceptions import InvalidParameterException, ResourceNotFoundException
    from moto.logs.responses import LogsResponse

    with _lock:
        if _applied:
            return
        original = LogsResponse.filter_log_events

        @functools.wraps(original)
        def filter_log_events(self: Any) -> str:
            prefix = self._get_param("logStreamNamePrefix")
            if not prefix:
                return str(original(self))
            if self._get_param("logStreamNames"):
                raise InvalidParameterException(
                    "logStreamNamePrefix and logStreamNames cannot both be specified"
                )
            group = self.logs_backend.groups.get(self._get_param("logGroupName"))
            if group is None:
                raise ResourceNotFoundException()
            names = [name for name in group.streams if name.startswith(prefix)]
            if not names:
                return json.dumps({"events": [], "searchedLogStreams": []})
            read = self._get_param
            self._get_param = lambda key, default=None: (
                names if key == "logStreamNames" else read(key, default)
            )
            return str(original(self))

        LogsResponse.filter_log_events = filter_log_events  # type: ignore[method-assign]
        _applied = True
