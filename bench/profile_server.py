"""Where the generated server spends its time under wrk load (py-spy, a few seconds per mode).

    python bench/profile_server.py [--seconds 8] [--log-level info]

Renders the template like ``server_throughput.py``, runs OURS pinned to CPU 0, loads it with the
same wrk script, and samples it with py-spy (installed into ``bench/.venv-tools`` on first use).
Prints the top functions by own time and the generated package's functions by inclusive time.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from common import BENCH, DEV_PY, agent_repo, run
from server_throughput import (
    CONNECTIONS,
    MODES,
    Server,
    need_tool,
    ours_env,
    pinned_cpus,
    server_package,
    start,
    stop,
    wrk,
    wrk_scripts,
)

TOOLS = BENCH / ".venv-tools"
PY_SPY = TOOLS / "bin" / "py-spy"
FRAME = re.compile(r"(?P<func>.*) \((?P<file>.*?):\d+\)$")


def py_spy() -> Path:
    if not PY_SPY.exists():
        print(f"installing py-spy into {TOOLS} ...", flush=True)
        for argv in ([str(DEV_PY), "-m", "venv", str(TOOLS)],
                     [str(TOOLS / "bin" / "pip"), "install", "-q", "py-spy"]):
            if run(argv, timeout=300).returncode != 0:
                sys.exit(f"error: {' '.join(argv)} failed; install py-spy there by hand.")
    return PY_SPY


def name(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match["file"].split("site-packages/")[-1].split("/src/")[-1]
    return f"{path}:{match['func']}"


def summarize(folded: Path, package: str, top: int = 15) -> None:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [name(f) for f in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    print(f"  own time (top {top} of {total} samples):")
    for frame, n in own.most_common(top):
        print(f"    {100 * n / total:5.1f}%  {frame}")
    print(f"  inclusive time in {package}/, logging and json (>= 2%):")
    for frame, n in inclusive.most_common():
        if (frame.startswith((f"{package}/", "logging/__init__.py:Logger.", "json/__init__"))
                and n / total >= 0.02 and "__main__" not in frame):
            print(f"    {100 * n / total:5.1f}%  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    need_tool("wrk", "wrk")
    spy = py_spy()
    cpus = pinned_cpus()
    tmp = Path(tempfile.mkdtemp(prefix="actk-profile-"))
    try:
        repo = agent_repo(tmp)
        package = server_package(repo)
        server = Server("OURS", [str(DEV_PY), "-m", package], repo,
                        ours_env(repo, args.log_level), 8088)
        lua = wrk_scripts(tmp)
        for mode in MODES:
            proc = start(server, tmp / "server.log", cpus[0] if cpus else None)
            try:
                load = threading.Thread(target=wrk, args=(
                    proc.pid, server.port, lua[mode], args.seconds + 3, cpus[1] if cpus else None))
                load.start()
                folded = tmp / f"{mode}.folded"
                subprocess.run([str(spy), "record", "-p", str(proc.pid), "-d", str(args.seconds),
                                "-r", "250", "-f", "raw", "-o", str(folded)],
                               capture_output=True, timeout=args.seconds + 30, check=True)
                load.join(timeout=args.seconds + 40)
            finally:
                stop(proc)
            print(f"\n{mode} (wrk -c{CONNECTIONS}, LOG_LEVEL={args.log_level}, "
                  f"{args.seconds} s of py-spy samples):")
            summarize(folded, package)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
