"""Wall time of `actk new <dir> --defaults` (render the template into a fresh directory, no git
init prompts), ``BENCH_NEW_ROUNDS`` (7) times after one warm-up, against ``python -c pass`` as
the floor. Target: median <= 3 s. Results in ``bench/results/cli_new.json``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH, DEV_PY, exit_status, machine, run, spread, target, verdict, write_results

ROUNDS = int(os.environ.get("BENCH_NEW_ROUNDS", "7"))
RESULTS = BENCH / "results" / "cli_new.json"
LIMIT_S = 3.0


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = run(argv, timeout=120, cwd=cwd)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(argv)} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return elapsed


def main() -> int:
    print(f"actk new --defaults: {ROUNDS} rounds after a warm-up", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="actk-bench-new-"))
    new, floor = [], []
    try:
        for index in range(ROUNDS + 1):
            target_dir = tmp / f"agent-{index}"
            elapsed = timed([str(DEV_PY), "-m", "toolkit", "new", str(target_dir), "--defaults"],
                            tmp)
            base = timed([str(DEV_PY), "-c", "pass"], tmp)
            if index:  # the first round warms the page cache
                new.append(elapsed)
                floor.append(base)
            shutil.rmtree(target_dir, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {"actk_new_s": spread(new), "python_pass_s": spread(floor)}
    targets = [target("actk new --defaults (median s)", figures["actk_new_s"]["median"], "<=",
                      LIMIT_S, unit="s")]
    for t in targets:
        mark, value = verdict(t)
        print(f"{mark} {t['target']}: {value} {t['op']} {t['limit']}")
    write_results(RESULTS, {"machine": machine(), "method": {"rounds": ROUNDS, "warmup": 1},
                            "figures": figures, "samples": {"actk_new_s": new}, "targets": targets})
    return exit_status([t["target"] for t in targets if t["pass"] is False])


if __name__ == "__main__":
    sys.exit(main())
