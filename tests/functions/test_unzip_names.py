"""Member-name checks of the ingest (pipeline.ingest.unzip.unsafe_path_reason), one case per rule."""

from __future__ import annotations

import pytest

from pipeline.ingest.unzip import unsafe_path_reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("dogImages/train/001.Breed_1/a.jpg", None),
        ("dogImages/train/001.Breed_1/a..b.jpg", None),  # dots inside a name are fine
        ("dogImages/train/001.Breed_1/ümlaut é.jpg", None),
        ("/etc/train/001.Breed_1/a.jpg", "unsafe path (absolute)"),
        ("C:/train/001.Breed_1/a.jpg", "unsafe path (absolute)"),
        ("\\train\\001.Breed_1\\a.jpg", "unsafe path (absolute)"),
        ("dogImages/../train/001.Breed_1/a.jpg", "unsafe path (parent traversal)"),
        ("dogImages\\..\\train\\a.jpg", "unsafe path (parent traversal)"),
        ("dogImages/train/001.Breed_1/a\n.jpg", "unsafe path (control character)"),
        ("dogImages/train/001.Breed_1/a\x00.jpg", "unsafe path (control character)"),
        ("dogImages/train/001.Breed_1/a\x1f.jpg", "unsafe path (control character)"),
        ("dogImages/train/001.Breed_1/a\x7f.jpg", None),  # DEL is not below 32, as before
    ],
)
def test_unsafe_path_reason(name: str, reason: str | None) -> None:
    assert unsafe_path_reason(name) == reason
