"""`python -m bench`, the one command behind every benchmark, smoke-tested in its quick mode on
the cheap benches (no engine, no wrk: `actk --help` and `actk new` wall times), and its summary
(Markdown table, JSON, the peer-comparison chart) rebuilt from the committed full results.
The figures themselves are not judged here: a shared CI runner is too noisy for that."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_the_quick_mode_of_the_cheap_benches_writes_a_table_and_json(tmp_path: Path) -> None:
    done = bench("--quick", "--cheap", "--out", str(tmp_path), timeout=90)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {p.name for p in tmp_path.iterdir()} >= {
        "cli_help.json", "cli_new.json", "summary.md", "summary.json"}
    table = (tmp_path / "summary.md").read_text()
    assert "| `actk --help` wall time | " in table
    assert "| `actk new --defaults` wall time | " in table
    assert "quick mode" in table
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["name"] for r in summary["runs"]] == ["cli_help", "cli_new"]
    for row in summary["rows"]:
        assert row["ours"]["median"] > 0 and row["ours"]["min"] <= row["ours"]["max"]


def test_the_summary_of_the_committed_results_has_every_figure_and_a_chart(
    tmp_path: Path,
) -> None:
    for path in (REPO / "bench" / "results").glob("*.json"):
        if not path.name.startswith("summary"):
            shutil.copy(path, tmp_path)
    done = bench("--summary-only", "--out", str(tmp_path), timeout=60)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (tmp_path / "summary.md").read_text()
    for figure in ("Server req/s, JSON", "Server p99 latency, SSE stream", "cold start",
                   "idle memory", "Image size over the base", "Warm rebuild",
                   "Push of a code-only change", "bytes uploaded", "`actk --help`",
                   "`actk new"):
        assert figure in table, figure
    assert (tmp_path / "peer_comparison.png").stat().st_size > 10_000
