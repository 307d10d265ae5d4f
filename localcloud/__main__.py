"""Start the local cloud alone and keep it running: ``python -m localcloud [--param KEY=VALUE ...]``.

Prints the endpoints and the variables to export, writes .localcloud/state.json for the CLI, and
serves until Ctrl-C. Upload a zip with ``python -m cli --local upload path/to/data.zip``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from localcloud.cloud import LocalCloud, LocalCloudConfig
from localcloud.demo.run import DemoSettings
from localcloud.demo.summary import Progress
from localcloud.state import StateDirError, keep_running, prepare_state_dir, write_state_file


def main(argv: list[str] | None = None) -> int:
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=defaults.template)
    parser.add_argument(
        "--state-dir", type=Path, default=defaults.state_dir, help="local cloud state (wiped)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter override (on top of the demo's local defaults)",
    )
    args = parser.parse_args(argv)
    overrides = defaults.parameter_overrides()
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param {item!r}: expected KEY=VALUE")
        overrides[key] = value
    state_dir = args.state_dir.resolve()
    try:
        prepare_state_dir(state_dir)
    except StateDirError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    progress = Progress()
    cloud = LocalCloud(
        LocalCloudConfig(template=args.template, state_dir=state_dir, parameter_overrides=overrides),
        on_record=progress.on_record,
    )
    cloud.start()
    try:
        print(f"state file: {write_state_file(cloud, state_dir)}")
        for name, value in cloud.outputs().items():
            print(f"  {name}: {value}")
        keep_running(cloud)
    finally:
        cloud.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
