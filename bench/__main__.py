"""Every benchmark in bench/, one command:

    python -m bench                 # the full suite (about 15-25 minutes on 2 CPUs)
    python -m bench --quick         # fewer rounds of each, for a smoke test of the suite
    python -m bench --only cli_help,cli_new --quick --out /tmp/results
    python -m bench --summary-only --readme   # redraw from bench/results/, update README.md

Runs each benchmark script in its own process (they keep their own environment knobs; the
quick mode sets them low), then reads the JSON each one wrote and writes the summary:
``summary.md`` (one Markdown table: every figure as the median with its min-max spread, and the
ratios to the peer and the ceiling, all from the same run) and ``summary.json``, and draws
``peer_comparison.png`` (OURS against Microsoft's azure-ai-agentserver-responses, PEER = 1)
when matplotlib is installed. All of it lands in ``bench/results/`` (``--out`` to change).
The exit status is 1 when a benchmark failed to run or missed a target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = REPO / ".venv" / "bin" / "python"

# name -> (script, environment for the full run, environment for --quick)
BENCHES: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "cli_help": ("cli_help.py", {}, {"BENCH_HELP_RUNS": "5"}),
    "cli_new": ("cli_new.py", {}, {"BENCH_NEW_ROUNDS": "2"}),
    "server_throughput": ("server_throughput.py", {}, {"BENCH_ROUNDS": "1"}),
    "container": ("container.py", {}, {"BENCH_ROUNDS": "3", "BENCH_MEMORY_ROUNDS": "1",
                                       "BENCH_REBUILD_ROUNDS": "1", "BENCH_SETTLE_S": "1"}),
    "push": ("push.py", {}, {"BENCH_PUSH_ROUNDS": "2"}),
    "telemetry": ("telemetry.py", {}, {"BENCH_ROUNDS": "3", "BENCH_MEMORY_ROUNDS": "1",
                                       "BENCH_THROUGHPUT_ROUNDS": "1", "BENCH_SETTLE_S": "0.5"}),
}
CHEAP = ("cli_help", "cli_new")  # no engine, no wrk: what the CI smoke test runs


# --- running ----------------------------------------------------------------------------------


def run_bench(name: str, out: Path, quick: bool) -> dict[str, Any]:
    script, full_env, quick_env = BENCHES[name]
    env = {**os.environ, **(quick_env if quick else full_env), "BENCH_RESULTS_DIR": str(out)}
    print(f"== {name} ({'quick' if quick else 'full'})", flush=True)
    started = time.perf_counter()
    done = subprocess.run([str(PYTHON), str(BENCH / script)], cwd=REPO, env=env,
                          stdin=subprocess.DEVNULL)
    return {"name": name, "exit": done.returncode,
            "seconds": round(time.perf_counter() - started, 1)}


def load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


# --- the table --------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "B":
        return f"{value / 1e6:.1f} MB" if value >= 1e6 else f"{value / 1e3:.0f} kB"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "req/s":
        return f"{value:,.0f}"
    return f"{value:.2f}"


def cell(figure: dict[str, Any] | None, unit: str) -> str:
    """``median (min-max)`` of a spread, or n/a."""
    if not figure or figure.get("median") is None:
        return "n/a"
    text = fmt(figure["median"], unit)
    if figure.get("min") is not None and figure.get("max") is not None and figure.get("n", 2) > 1:
        text += f" ({fmt(figure['min'], unit)}-{fmt(figure['max'], unit)})"
    return text


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b or a.get("median") is None or not b.get("median"):
        return None
    return float(a["median"]) / float(b["median"])


def x(value: float | None) -> str:
    return "" if value is None else f"x{value:.2f}"


Row = dict[str, Any]


def throughput_rows(data: dict[str, Any]) -> list[Row]:
    servers = [s for s in data.get("servers", []) if not s.get("error")]
    ours = next((s for s in servers if s["name"].startswith("OURS") and s.get("primary")), None)
    ceiling = next((s for s in servers if s["name"].startswith("CEILING")), None)
    peers = [s for s in servers if s["name"].startswith("PEER")]
    rows = []
    for mode in ("json", "stream"):
        # the faster PEER row is judged, as server_throughput.py does
        peer = max(peers, key=lambda s: s["results"][mode]["rps"], default=None)

        def rps(server: dict[str, Any] | None, mode: str = mode) -> dict[str, Any] | None:
            if not server:
                return None
            r = server["results"][mode]
            return {"median": r["rps"], "min": r.get("rps_min"), "max": r.get("rps_max"),
                    "n": r.get("rounds", 1)}

        def p99(server: dict[str, Any] | None, mode: str = mode) -> dict[str, Any] | None:
            if not server:
                return None
            return {"median": server["results"][mode]["p99_us"] / 1000, "n": 1}

        label = "JSON" if mode == "json" else "SSE stream"
        rows.append(_row(f"Server req/s, {label} (wrk, 32 conns)", "req/s", rps(ours), rps(peer),
                         rps(ceiling)))
        rows.append(_row(f"Server p99 latency, {label}", "ms", p99(ours), p99(peer),
                         p99(ceiling)))
    return rows


def _row(figure: str, unit: str, ours: Any, peer: Any = None, ceiling: Any = None) -> Row:
    return {"figure": figure, "unit": unit, "ours": ours, "peer": peer, "ceiling": ceiling,
            "ours_to_peer": ratio(ours, peer), "ours_to_ceiling": ratio(ours, ceiling)}


def container_rows(data: dict[str, Any]) -> list[Row]:
    images = {i["name"]: i for i in data.get("images", []) if not i.get("error")}
    rows = []
    for key, figure, unit in (("cold_start_s", "Container cold start (run -> /readiness)", "s"),
                              ("idle_memory_bytes", "Container idle memory", "B")):
        rows.append(_row(figure, unit, *(images.get(n, {}).get(key)
                                         for n in ("OURS", "PEER", "CEILING"))))
    added = [images.get(n, {}).get("added_size") for n in ("OURS", "PEER", "CEILING")]
    rows.append(_row("Image size over the base", "B",
                     *({"median": a, "n": 1} if a is not None else None for a in added)))
    rebuilds = [r["seconds"] for r in data.get("warm_rebuilds", [])]
    if rebuilds:
        rows.append(_row("Warm rebuild after a code change", "s",
                         {"median": sorted(rebuilds)[len(rebuilds) // 2], "min": min(rebuilds),
                          "max": max(rebuilds), "n": len(rebuilds)}))
    return rows


def summary_rows(out: Path) -> list[Row]:
    rows: list[Row] = []
    if data := load(out, "server_throughput"):
        rows += throughput_rows(data)
    if data := load(out, "container"):
        rows += container_rows(data)
    if data := load(out, "push"):
        figures = data.get("figures", {})
        rows.append(_row("Push of a code-only change (wall)", "s", figures.get("push_wall_s")))
        rows.append(_row("  bytes uploaded by that push", "B", figures.get("bytes_uploaded")))
    if data := load(out, "cli_help"):
        timings = data.get("timings", {})

        def ms(name: str) -> dict[str, Any] | None:
            t = timings.get(name)
            return t and {"median": t["median_ms"] / 1000, "min": t["min_ms"] / 1000,
                          "max": t["max_ms"] / 1000, "n": t["runs"]}

        row = _row("`actk --help` wall time", "s", ms("actk --help"))
        row["note"] = f"python -c pass: {cell(ms('python -c pass'), 's')}"
        rows.append(row)
    if data := load(out, "cli_new"):
        row = _row("`actk new --defaults` wall time", "s", data["figures"]["actk_new_s"])
        rows.append(row)
    if data := load(out, "telemetry"):
        for t in data.get("targets", []):
            row = _row(f"Telemetry off: {t['target']}", "", None)
            row["ours_to_peer"] = None
            row["note"] = f"x{t['value']:.2f} (target {t['op']} {t['limit']})" \
                if t.get("value") is not None else "n/a"
            rows.append(row)
    return rows


def markdown(rows: list[Row], runs: list[dict[str, Any]], quick: bool) -> str:
    lines = [
        "| figure | OURS | PEER | CEILING | OURS/PEER | OURS/CEILING |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours = row.get("note") if row["ours"] is None and row.get("note") else cell(row["ours"],
                                                                                  row["unit"])
        note = row.get("note") if row["ours"] is not None and row.get("note") else ""
        lines.append(
            f"| {row['figure']} | {ours}{f' ({note})' if note else ''} | "
            f"{cell(row['peer'], row['unit']) if row['peer'] else ''} | "
            f"{cell(row['ceiling'], row['unit']) if row['ceiling'] else ''} | "
            f"{x(row['ours_to_peer'])} | {x(row['ours_to_ceiling'])} |"
        )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    failed = [r["name"] for r in runs if r["exit"] != 0]
    lines += ["", f"Summarised {when}{' in quick mode' if quick else ''} on {os.cpu_count()} CPUs; "
              "each cell is the median (min-max) of its rounds (p99: the median of the "
              "rounds' p99). "
              "PEER: Microsoft's azure-ai-agentserver-responses (for req/s, the faster of its "
              "two hostings in each mode); CEILING: bare Starlette + uvicorn."]
    if failed:
        lines.append(f"Benchmarks that failed or missed a target: {', '.join(failed)}.")
    return "\n".join(lines) + "\n"


def chart(rows: list[Row], path: Path) -> bool:
    """One bar per peer comparison: how many times better OURS is than PEER (PEER/OURS for
    times and sizes, OURS/PEER for req/s), from 1 on a log scale; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)", file=sys.stderr)
        return False
    compared = [r for r in rows if r["ours_to_peer"]]
    if not compared:
        return False
    labels = [r["figure"].replace(" (wrk, 32 conns)", "").replace("Container ", "container ")
              for r in compared]
    better = [r["ours_to_peer"] if r["unit"] == "req/s" else 1 / r["ours_to_peer"]
              for r in compared]
    fig, ax = plt.subplots(figsize=(8.5, 0.55 * len(compared) + 1.6))
    ax.barh(labels, [b - 1 for b in better], left=1,
            color=["#2a9d8f" if b >= 1 else "#e76f51" for b in better])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(min(0.5, min(better) * 0.8), max(better) * 2)
    ax.set_xlabel("times better than azure-ai-agentserver-responses (log scale; 1 = the same)")
    ax.set_title("actk generated agent vs azure-ai-agentserver-responses")
    for index, value in enumerate(better):
        ax.text(value, index, f" x{value:.1f}" if value >= 1 else f" x{value:.2f}",
                va="center")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


README = REPO / "README.md"
START, END = "<!-- bench:table -->", "<!-- /bench:table -->"


def update_readme(summary: Path) -> None:
    """Replace what README.md holds between the bench markers with ``summary``."""
    text = README.read_text()
    if START not in text or END not in text:
        print(f"README.md has no {START} ... {END} markers: not updated", file=sys.stderr)
        return
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{summary.read_text()}{END}{tail}")
    print("updated the table in README.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke test)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {list(BENCHES)}")
    parser.add_argument("--cheap", action="store_true",
                        help=f"only the benches that need no engine or wrk: {', '.join(CHEAP)}")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="results directory")
    parser.add_argument("--summary-only", action="store_true",
                        help="rebuild the table and chart from the results already in --out")
    parser.add_argument("--readme", action="store_true",
                        help="also put the table into README.md (between the bench markers)")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or (list(CHEAP) if args.cheap
                                                         else list(BENCHES))
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs = [] if args.summary_only else [run_bench(name, out, args.quick) for name in names]
    previous = load(out, "summary")
    if previous:  # keep how the benchmarks not run now last went
        ran = {r["name"] for r in runs}
        runs = [r for r in previous.get("runs", []) if r["name"] not in ran] + runs
    rows = summary_rows(out)
    (out / "summary.md").write_text(markdown(rows, runs, args.quick))
    (out / "summary.json").write_text(json.dumps(
        {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": args.quick,
         "runs": runs, "rows": rows}, indent=2) + "\n")
    drawn = chart(rows, out / "peer_comparison.png")
    print(f"wrote {out / 'summary.md'}, summary.json{', peer_comparison.png' if drawn else ''}")
    print((out / "summary.md").read_text())
    if args.readme:
        update_readme(out / "summary.md")
    return 1 if any(r["exit"] != 0 for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
