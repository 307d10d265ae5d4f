"""The command line of the training entry points, as torchvision's reference script has it
(get_args_parser): hyperparameter flags spelled exactly like the hyperparameter names (the toolkit
passes ``--<name> <value>``), paths defaulting to the SageMaker environment, and the hyperparameters
every output records (metrics.json, model_meta.json)."""

from __future__ import annotations

import argparse
from typing import Any

from dogclf import sm_env
from dogclf.contract import FEATURES_CHANNEL


def get_args_parser(description: str) -> argparse.ArgumentParser:
    """Hyperparameter flags are spelled exactly like the hyperparameter names (the toolkit passes
    ``--<name> <value>``); paths default to the SageMaker environment variables."""
    parser = argparse.ArgumentParser(description=description)
    hp = parser.add_argument_group("hyperparameters")
    hp.add_argument("--learning_rate", type=float, default=1e-3)
    hp.add_argument("--batch_size", type=int, default=64)
    hp.add_argument("--epochs", type=int, default=5)
    hp.add_argument("--weights", default="imagenet", help="imagenet | none (random init) | <state_dict path>")
    hp.add_argument(
        "--augment", type=sm_env.str2bool, default=False, help="true: random crops/flips, no cache"
    )
    hp.add_argument(
        "--feature_cache",
        type=sm_env.str2bool,
        default=True,
        help="compute frozen-backbone features once per split (ignored with --augment true)",
    )
    hp.add_argument("--image_size", type=int, default=224)
    hp.add_argument("--num_workers", type=int, default=min(4, max(0, sm_env.num_cpus() - 1)))
    hp.add_argument("--seed", type=int, default=0)
    hp.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    hp.add_argument("--momentum", type=float, default=0.9, help="sgd only")
    hp.add_argument("--weight_decay", type=float, default=0.0)
    hp.add_argument("--max_bad_image_fraction", type=float, default=0.01)
    hp.add_argument(
        "--dataset_manifest",
        default="",
        help="S3 URI of the dataset's manifest.json (the pipeline passes it so later stages find the "
        "dataset; logged only)",
    )
    paths = parser.add_argument_group("paths (default: SageMaker environment)")
    paths.add_argument("--model_dir", default=sm_env.model_dir())
    paths.add_argument("--output_data_dir", default=sm_env.output_data_dir())
    add_image_channels(paths)
    paths.add_argument(
        "--features_dir",
        default=sm_env.channel(FEATURES_CHANNEL),
        help="backbone features written by features.py (its model.tar.gz, or the folder it unpacks to): "
        "hpo.py then trains the head only (see dogclf/head_trial.py)",
    )
    return parser


def add_image_channels(group: argparse._ArgumentGroup) -> None:
    """--data_dir (one ``training`` channel) or --train_dir/--valid_dir/--test_dir (one per split)."""
    group.add_argument(
        "--data_dir", default=sm_env.channel("training"), help="folder holding train/valid/test"
    )
    group.add_argument("--train_dir", default=sm_env.channel("train"))
    group.add_argument("--valid_dir", default=sm_env.channel("valid"))
    group.add_argument("--test_dir", default=sm_env.channel("test"))


def has_image_channels(args: argparse.Namespace) -> bool:
    return any((args.data_dir, args.train_dir, args.valid_dir, args.test_dir))


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, ignoring hyperparameters we do not know: tuning jobs add ``_tuning_objective_metric``
    and users may pass extras; failing the job on them would waste it."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"ignoring unknown arguments: {' '.join(unknown)}", flush=True)
    return args


HYPERPARAMETER_KEYS: tuple[str, ...] = (
    "learning_rate",
    "batch_size",
    "epochs",
    "weights",
    "augment",
    "feature_cache",
    "image_size",
    "seed",
    "optimizer",
    "momentum",
    "weight_decay",
    "num_workers",
)


def hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(args, key) for key in HYPERPARAMETER_KEYS}
