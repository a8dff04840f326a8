"""Wall time of ``actk --help`` against the interpreter's floor, and what ``toolkit.cli`` imports.

    python bench/cli_help.py

Times ``actk --help``, ``python -c pass`` (the floor) and ``python -c "import click"`` (the one
dependency the CLI needs at start-up) in the same run: hyperfine when installed
(``apt-get install -y hyperfine``), else a subprocess loop. Then lists the packages and the
slowest imports under ``import toolkit.cli`` (``-X importtime``) and checks that no heavy module
(docker, copier, httpx, rich, pydantic, yaml) is loaded after ``actk --help``.
Results go to ``bench/results/cli_help.json``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH, DEV_PY, REPO, write_results

PY = DEV_PY
ACTK = REPO / ".venv" / "bin" / "actk"
RESULTS = BENCH / "results" / "cli_help.json"
RUNS, WARMUP = int(os.environ.get("BENCH_HELP_RUNS", "20")), 3
HEAVY = ("docker", "copier", "httpx", "rich", "pydantic", "yaml")

AFTER_HELP = """
import json, sys
sys.argv = ["actk", "--help"]
from toolkit.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def commands() -> dict[str, list[str]]:
    return {
        "python -c pass": [str(PY), "-c", "pass"],
        "python -c 'import click'": [str(PY), "-c", "import click"],
        "actk --help": [str(ACTK), "--help"],
    }


def with_hyperfine(cmds: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hyperfine.json"
        argv = ["hyperfine", "-N", "--warmup", str(WARMUP), "--runs", str(RUNS), "--style", "none",
                "--export-json", str(out)]
        for name, cmd in cmds.items():
            argv += ["-n", name, shlex.join(cmd)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            sys.exit(f"error: hyperfine failed:\n{done.stderr[-2000:]}")
        data = json.loads(out.read_text())["results"]
    return {r["command"]: summary([t * 1000 for t in r["times"]]) for r in data}


def with_loop(cmds: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    results = {}
    for name, cmd in cmds.items():
        times = []
        for i in range(WARMUP + RUNS):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            if i >= WARMUP:
                times.append((time.perf_counter() - start) * 1000)
        results[name] = summary(times)
    return results


def summary(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=4)
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
            "iqr_ms": q[2] - q[0], "stdev_ms": statistics.stdev(ms), "runs": len(ms)}


def import_profile() -> tuple[list[str], list[tuple[str, int]]]:
    """Non-stdlib top-level packages that ``import toolkit.cli`` adds to ``sys.modules``, and its
    slowest direct imports (cumulative microseconds, ``-X importtime``)."""
    code = ("import sys; before = set(sys.modules); import toolkit.cli; import json; "
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    done = subprocess.run([str(PY), "-X", "importtime", "-c", code], capture_output=True,
                          text=True, check=True, timeout=60)
    added = {name.split(".")[0] for name in json.loads(done.stdout)}
    third_party = sorted(added - set(sys.stdlib_module_names) - {"toolkit"})
    subtree: list[tuple[str, int]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        if depth == 0 and name.strip() == "toolkit.cli":
            subtree.append(("toolkit.cli (total)", int(cumulative)))
            break
        if depth == 0:
            subtree = []
        elif depth == 1:
            subtree.append((name.strip(), int(cumulative)))
    return third_party, sorted(subtree, key=lambda row: -row[1])[:8]


def main() -> int:
    for path in (PY, ACTK):
        if not path.exists():
            sys.exit(f"error: {path} missing; create the dev venv and `pip install -e .` first.")
    cmds = commands()
    tool = "hyperfine" if shutil.which("hyperfine") else "subprocess loop"
    if tool != "hyperfine":
        print("hyperfine not found (apt-get install -y hyperfine); timing with a subprocess loop")
    timings = with_hyperfine(cmds) if tool == "hyperfine" else with_loop(cmds)

    floor = timings["python -c pass"]["median_ms"]
    print(f"\n{RUNS} runs each ({tool}, {WARMUP} warm-up)\n")
    print(f"{'command':<26} {'median':>9} {'min':>8} {'max':>8} {'IQR':>7} {'over floor':>11}")
    for name, t in timings.items():
        print(f"{name:<26} {t['median_ms']:>7.1f}ms {t['min_ms']:>6.1f}ms {t['max_ms']:>6.1f}ms "
              f"{t['iqr_ms']:>5.1f}ms {t['median_ms'] - floor:>+9.1f}ms")

    third_party, slowest = import_profile()
    names = ", ".join(third_party) or "none"
    print(f"\nthird-party packages loaded by `import toolkit.cli`: {names}")
    print("slowest direct imports of toolkit.cli (cumulative, -X importtime, one run):")
    for name, us in slowest:
        print(f"  {us / 1000:>7.1f} ms  {name}")

    done = subprocess.run([str(PY), "-c", AFTER_HELP], capture_output=True, text=True, check=True,
                          timeout=60)
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    present = sorted({m.split(".")[0] for m in loaded} & set(HEAVY))
    verdict = "FAIL" if present else "PASS"
    print(f"\n{verdict}  heavy modules after `actk --help`: {', '.join(present) or 'none'} "
          f"(checked: {', '.join(HEAVY)}); {len(loaded)} modules in sys.modules")

    write_results(RESULTS, {
        "tool": tool, "runs": RUNS, "warmup": WARMUP, "timings": timings,
        "actk_over_floor_ms": timings["actk --help"]["median_ms"] - floor,
        "third_party_imported": third_party,
        "slowest_imports_us": dict(slowest),
        "heavy_checked": list(HEAVY), "heavy_present": present, "modules_loaded": len(loaded),
        "pass": not present,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
