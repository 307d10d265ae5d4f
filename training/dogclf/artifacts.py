"""Packaging for serving: the model directory (model.tar.gz) the PyTorch serving container loads
as is: model.pth, classes.json, model_meta.json and code/ (inference.py and dogclf/)."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch

from dogclf import presets
from dogclf.flags import hyperparameters
from dogclf.model import ARCH, FrozenBackboneClassifier

PACKAGE_DIR = Path(__file__).resolve().parent
TRAINING_DIR = PACKAGE_DIR.parent


def save_artifacts(
    model: FrozenBackboneClassifier,
    classes: list[str],
    class_dirs: list[str],
    args: argparse.Namespace,
    model_dir: Path,
) -> None:
    """model.pth + classes.json + model_meta.json + code/ (inference.py and dogclf/), which is what
    the PyTorch serving container needs to load model.tar.gz as is."""
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), model_dir / "model.pth")
    (model_dir / "classes.json").write_text(json.dumps(classes, indent=2))
    meta = {
        "arch": ARCH,
        "image_size": args.image_size,
        "resize_size": presets.resize_size_for(args.image_size),
        "num_classes": len(classes),
        "class_dirs": class_dirs,
        "hyperparameters": hyperparameters(args),
    }
    (model_dir / "model_meta.json").write_text(json.dumps(meta, indent=2))
    copy_serving_code(model_dir / "code")


def copy_serving_code(code_dir: Path, files: Iterable[str] = ("inference.py",)) -> None:
    code_dir.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy2(TRAINING_DIR / name, code_dir / name)
    target = code_dir / "dogclf"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(PACKAGE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
