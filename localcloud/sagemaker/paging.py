"""List* filtering and paging as SageMaker does it: NameContains, StatusEquals, time bounds, SortBy,
SortOrder, MaxResults and an opaque NextToken (here: the next row's index)."""

from __future__ import annotations

import copy
from typing import Any

from localcloud.sagemaker.exceptions import ValidationException


def filter_rows(
    rows: list[dict[str, Any]], params: dict[str, Any], name_key: str, status_key: str
) -> list[dict[str, Any]]:
    if params.get("NameContains"):
        rows = [row for row in rows if params["NameContains"].lower() in row[name_key].lower()]
    if params.get("StatusEquals"):
        rows = [row for row in rows if row[status_key] == params["StatusEquals"]]
    for key, compare in (
        ("CreationTimeAfter", lambda row, t: row["CreationTime"] > t),
        ("CreationTimeBefore", lambda row, t: row["CreationTime"] < t),
        ("LastModifiedTimeAfter", lambda row, t: row.get("LastModifiedTime", 0) > t),
        ("LastModifiedTimeBefore", lambda row, t: row.get("LastModifiedTime", 0) < t),
    ):
        if params.get(key) is not None:
            moment = float(params[key])
            rows = [row for row in rows if compare(row, moment)]
    return rows


def page(
    rows: list[dict[str, Any]],
    params: dict[str, Any],
    sort_keys: dict[str, str],
    default_sort: str = "CreationTime",
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    sort_by = params.get("SortBy", default_sort)
    if sort_by:
        key = sort_keys.get(sort_by)
        if key is None:
            raise ValidationException(
                f"Value '{sort_by}' at 'sortBy' failed to satisfy constraint: "
                f"Member must be one of {sorted(sort_keys)}"
            )
        rows = sorted(
            rows,
            key=lambda row: row.get(key) or 0,
            reverse=params.get("SortOrder", "Descending") == "Descending",
        )
    try:
        start = int(params.get("NextToken") or 0)
    except ValueError as error:
        raise ValidationException("Invalid pagination token.") from error
    size = int(params.get("MaxResults") or 100)
    rows_page = rows[start : start + size]
    token = {"NextToken": str(start + size)} if start + size < len(rows) else {}
    return copy.deepcopy(rows_page), token
