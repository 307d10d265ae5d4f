"""Hyperparameter-tuning entry point: fine-tune the head of a frozen ResNet18 (SageMaker script mode).

Two ways to get the backbone's features:
- a ``features`` channel (SM_CHANNEL_FEATURES, or ``--features_dir``): the model.tar.gz of the
  pipeline's features job (features.py). The trial then trains the head alone and never builds the
  backbone (dogclf/head_trial.py): seconds per trial. ``--augment true`` needs the image channels.
- image channels only: the backbone runs once per split inside the trial (--feature_cache true, the
  default; dogclf/engine.py), or every epoch with --augment true.
Both print the same metric lines and write the same metrics.json.

Run by hand: ``python hpo.py --data_dir <dataset> --weights none --epochs 3 --image_size 64``, or
``python hpo.py --features_dir <features model.tar.gz> --weights none --image_size 64``.
``--dataset_manifest`` (the dataset's manifest.json S3 URI, a static hyperparameter of the pipeline's
tuning job) is accepted and logged.
"""

from __future__ import annotations

import sys

from dogclf import engine, flags, head_trial
from dogclf.failure import run_main


def main(argv: list[str] | None = None) -> int:
    parser = flags.get_args_parser("Train the dog-breed head (one tuning trial).")
    args = flags.parse_args(parser, argv)
    location = head_trial.features_source(args, lambda line: print(line, flush=True))
    if location is None:
        engine.main(args, entry_point="hpo.py")
    else:
        head_trial.run(args, location, entry_point="hpo.py")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
