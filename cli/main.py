"""Command line for the pipeline's users, against AWS or the local cloud alike.

Where things are:
  --stack NAME       read bucket and endpoint names from the CloudFormation stack's outputs (AWS);
  --local            the local cloud (its state file, --state-file, default .localcloud/state.json, is
                     written by `python -m localcloud.demo --keep-running` or `python -m localcloud`):
                     its endpoints and dummy credentials are used, so nothing reaches AWS;
  --bucket/--inference-bucket/--artifacts-bucket/--endpoint   explicit names (override the above).
Without --local, boto3's usual configuration decides (AWS_PROFILE, AWS_ENDPOINT_URL_*...).
"""

from __future__ import annotations

import argparse
import sys

from cli import datasets, endpoint, logs, redrive, status
from cli.target import CliError, add_location_arguments, resolve_target

# Every command, in --help's order; each module adds its own subcommand and flags.
COMMANDS = (
    datasets.add_upload,
    status.add_status,
    endpoint.add_classify,
    status.add_report,
    datasets.add_import_url,
    endpoint.add_teardown,
    redrive.add_redrive,
    logs.add_logs,
)


def build_parser() -> argparse.ArgumentParser:
    """Every command and flag (long only because it lists them)."""
    parser = argparse.ArgumentParser(
        prog="python -m cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_location_arguments(parser, default=None)
    # The same options after the command; SUPPRESS keeps an absent one from hiding the top-level value.
    common = argparse.ArgumentParser(add_help=False)
    add_location_arguments(common, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, resolve_target(args)))
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # botocore errors: say what failed, without a traceback
        if type(error).__module__.startswith("botocore"):
            print(f"error: {error}", file=sys.stderr)
            return 1
        raise
