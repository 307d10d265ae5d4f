"""Wall time of the local demo, split by stage (one run; shares of the total measured in that run).

    .venv/bin/python bench/bench_demo.py [demo flags, e.g. --image-size 32 --trials 4]

Prints the stage table and one JSON line (stage -> seconds, plus the share of the total).
"""

from __future__ import annotations

import json
import os
import sys
import time

from localcloud.demo.main import parse_args, run_demo


def main() -> int:
    settings = parse_args(sys.argv[1:])
    started = time.monotonic()
    result = run_demo(settings)
    total = time.monotonic() - started
    print(f"\nbench_demo: cpus={os.cpu_count()} exit={result.exit_code}")
    print(f"{'stage':<20} {'seconds':>8} {'share':>7}")
    for stage, seconds in result.stage_seconds.items():
        print(f"{stage:<20} {seconds:8.1f} {seconds / total:7.1%}")
    print(f"{'total':<20} {total:8.1f}")
    print(
        json.dumps(
            {
                "total_s": round(total, 1),
                "stages_s": {k: round(v, 1) for k, v in result.stage_seconds.items()},
            }
        )
    )
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
