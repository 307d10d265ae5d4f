"""Entry point of the calibration bench's badly initialised run: train_model.py, unchanged, after
multiplying the new head's initial weights by ``head_init_scale`` (a hyperparameter, removed before
train_model.py parses the rest). Everything else is the profiled job as the toolkit runs it.

Copied next to train_model.py in the job's code folder by bench/bench_rule_calibration.py (the
toolkit runs it from there, so dogclf imports from that folder); run from bench/
(tests/training/test_rules_real_data.py) it uses the repository's training/, installed editable.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if not (HERE / "train_model.py").is_file():
    HERE = HERE.parent / "training"  # dogclf then comes from the editable install of training/

import torch  # noqa: E402
from torch import nn  # noqa: E402

from dogclf import model  # noqa: E402


def _pop_scale(argv: list[str]) -> tuple[float, list[str]]:
    """--head_init_scale (either "--head_init_scale 1000" or "--head_init_scale=1000"), the rest."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--head_init_scale", type=float, required=True)
    known, rest = parser.parse_known_args(argv)
    return known.head_init_scale, rest


def main() -> None:
    scale, rest = _pop_scale(sys.argv[1:])
    build_head = model.build_head

    def scaled_head(num_classes: int, seed: int | None = None) -> nn.Sequential:
        head = build_head(num_classes, seed)
        with torch.no_grad():
            for module in head.modules():
                if isinstance(module, nn.Linear):
                    module.weight.mul_(scale)
        print(f"calibration: head weights initialised x{scale:g}", flush=True)
        return head

    model.build_head = scaled_head  # FrozenBackboneClassifier looks it up at construction
    sys.argv = [str(HERE / "train_model.py"), *rest]
    runpy.run_path(str(HERE / "train_model.py"), run_name="__main__")


if __name__ == "__main__":
    main()
