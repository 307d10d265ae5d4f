"""Shared fixtures for the training tests (helpers live in trainhelpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.sample_data import write_sample_tree


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    """4 classes, 64 px, inside one top-level folder (like the extracted zip)."""
    root = tmp_path_factory.mktemp("sample") / "dogImages"
    return write_sample_tree(
        root, num_classes=4, train_per_class=40, valid_per_class=10, test_per_class=10, image_size=64, seed=3
    )
