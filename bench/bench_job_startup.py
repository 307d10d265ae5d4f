"""What a training job spends installing its requirements at start, from the package index (before)
and from the wheels shipped in its source dir (after).

Before, every job (the features job, each trial, the profiled job) shipped training/requirements.txt
and the toolkit pip-installed it from the package index at start. After, the features job and the
trials ship no requirements.txt (nothing to install), and the profiled job installs the same pins
from the wheels in its source dir with --no-index.

Both installs go into a fresh overlay venv over the container base (.venv-container), the way a job
installs into the image, in one run on this machine. "index" is this machine's configured index with
pip's cache off (every job on AWS starts on a fresh instance: nothing is cached), so it includes
downloading and compiling pyinstrument-cext from its sdist. Prints the seconds of each and their ratio.

    .venv/bin/python bench/bench_job_startup.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from localcloud.environment.containerenv import base_python, build_overlay, offline_environment
from pipeline.source_dir import PROFILED, REQUIREMENTS, pack

REPO = Path(__file__).resolve().parent.parent

# training/requirements.txt as every job shipped it before (git show 1886289:training/requirements.txt,
# pins only): the toolkit installed it from the index, pyinstrument-cext coming in as a dependency.
BEFORE_REQUIREMENTS = "smdebug==1.0.34\nprotobuf==3.20.3\nnumpy==2.2.6\npyinstrument==3.4.2\n"


def _timed_overlay(requirements: Path, env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        build_overlay(Path(scratch) / "overlay", base_python(), requirements, log=lambda _: None, env=env)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    index_env = {**os.environ, "PIP_NO_CACHE_DIR": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        before = Path(scratch) / "before" / REQUIREMENTS
        before.parent.mkdir()
        before.write_text(BEFORE_REQUIREMENTS)
        code = Path(scratch) / "profiled"
        archive, _ = pack(REPO / "training", PROFILED)
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(code, filter="data")
        index_runs, wheel_runs = [], []
        for _ in range(args.repeat):
            index_runs.append(_timed_overlay(before, index_env))
            wheel_runs.append(_timed_overlay(code / REQUIREMENTS, offline_environment()))
    index_s, wheels_s = statistics.median(index_runs), statistics.median(wheel_runs)
    print(f"profiled source dir: {len(archive) / 1e6:.1f} MB")
    print(f"before, every job: pip install from the index, no cache   {index_s:6.1f} s  {index_runs}")
    print("after, features job and trials: no requirements.txt        0.0 s")
    print(f"after, profiled job: pip install --no-index from wheels     {wheels_s:6.1f} s  {wheel_runs}")
    print(f"ratio before/after (profiled job): {index_s / wheels_s:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
