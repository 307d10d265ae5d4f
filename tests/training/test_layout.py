"""The layout rule (stdlib-only module shared with the ingest Lambda)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from trainhelpers import TRAINING_DIR

from dogclf.layout import DatasetLayoutError, Member, class_name, locate, summarize


def _listing(
    root: str = "dogImages", classes=("001.Affenpinscher", "002.Afghan_hound"), per_split=2
) -> list[str]:
    prefix = f"{root}/" if root else ""
    return [
        f"{prefix}{split}/{class_dir}/img_{index}.jpg"
        for split in ("train", "valid", "test")
        for class_dir in classes
        for index in range(per_split)
    ]


def test_class_name_strips_the_number_prefix_only():
    assert class_name("001.Affenpinscher") == "Affenpinscher"
    assert class_name("133.Yorkshire_terrier") == "Yorkshire_terrier"
    assert class_name("Beagle") == "Beagle"
    assert class_name("001.St.Bernard") == "St.Bernard"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("dogImages/train/001.A/x.jpg", Member("train", "001.A", "x.jpg", "dogImages")),
        ("train/001.A/x.JPEG", Member("train", "001.A", "x.JPEG", "")),
        ("valid\\002.B\\y.png", Member("valid", "002.B", "y.png", "")),
        ("dogImages/train/001.A/", None),
        ("__MACOSX/dogImages/train/001.A/._x.jpg", None),
        ("dogImages/train/001.A/.DS_Store", None),
        ("dogImages/train/001.A/notes.txt", None),
        ("dogImages/extra/001.A/x.jpg", None),
        ("a/b/train/001.A/x.jpg", None),
        ("train/x.jpg", None),
    ],
)
def test_locate(path, expected):
    assert locate(path) == expected


def test_summarize_valid_listing_with_junk():
    paths = [
        *_listing(),
        "dogImages/",
        "dogImages/train/",
        "__MACOSX/dogImages/train/001.Affenpinscher/._a.jpg",
    ]
    summary = summarize(paths)
    assert summary.root == "dogImages"
    assert summary.class_dirs == ["001.Affenpinscher", "002.Afghan_hound"]
    assert summary.classes == ["Affenpinscher", "Afghan_hound"]
    assert summary.counts["valid"] == {"001.Affenpinscher": 2, "002.Afghan_hound": 2}
    assert summary.to_dict()["images"] == {"train": 4, "valid": 4, "test": 4}


def test_summarize_without_top_folder():
    assert summarize(_listing(root="")).root == ""


def test_class_order_is_by_folder_name_not_listing_order():
    summary = summarize(list(reversed(_listing(classes=("010.Z", "002.B", "001.Y")))))
    assert summary.class_dirs == ["001.Y", "002.B", "010.Z"]


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        ([], "no images found"),
        (["readme.txt", "dogImages/train/"], "no images found"),
        ([p for p in _listing() if "/test/" not in p], "missing split(s) test"),
        ([*_listing(), "dogImages/train/003.Airedale/"], "empty class folder(s) in train: 003.Airedale"),
        (
            [*_listing(), "dogImages/valid/003.Airedale/a.jpg"],
            "class folders differ between train and valid (not in train: 003.Airedale)",
        ),
        (
            [p for p in _listing() if not p.startswith("dogImages/test/002")],
            "class folders differ between train and test (missing from test: 002.Afghan_hound)",
        ),
        ([*_listing(), "other/train/001.Affenpinscher/a.jpg"], "more than one top-level folder"),
        (_listing(classes=("001.Beagle", "002.Beagle")), "same class name: Beagle"),
    ],
)
def test_summarize_errors_are_clear(paths, message):
    with pytest.raises(DatasetLayoutError) as error:
        summarize(paths)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("module", "cwd"),
    [
        ("dogclf.layout", TRAINING_DIR),
        ("dogclf.contract", TRAINING_DIR),
        ("dogclf.debugger.hook_config", TRAINING_DIR),
        ("tools.sample_data", TRAINING_DIR.parent),
    ],
)
def test_lambda_side_modules_do_not_import_torch(module, cwd):
    code = (
        f"import sys; import {module}; "
        "bad = [m for m in ('torch', 'torchvision', 'numpy', 'smdebug') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_layout_imports_only_the_standard_library():
    code = "import sys; import dogclf.layout; print('PIL' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=TRAINING_DIR, capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == "False"
