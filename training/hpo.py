"""Hyperparameter-tuning entry point: fine-tune the head of a frozen ResNet18 (SageMaker script mode).

Run by hand: ``python hpo.py --data_dir <dataset> --weights none --epochs 3 --image_size 64``.
Trials keep the feature cache (--feature_cache true by default): the backbone runs once per split.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # dogclf/ sits next to this script

from dogclf import engine
from dogclf.failure import run_main


def main(argv: list[str] | None = None) -> int:
    parser = engine.get_args_parser("Train the dog-breed head (one tuning trial).")
    args = engine.parse_args(parser, argv)
    engine.main(args, entry_point="hpo.py")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
