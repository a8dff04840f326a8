"""What the benchmark scripts share: paths, the echo request, the freshly rendered agent,
medians and ratios, target verdicts and the results file. Not a benchmark itself."""

from __future__ import annotations

import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEV_PY = REPO / ".venv" / "bin" / "python"
PROMPT = "hello world from the benchmark"


class BenchError(Exception):
    """A server or image that did not build, start or answer; the message says which."""


def run(argv: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)


# --- the agent and its echo -------------------------------------------------------------------


def agent_repo(tmp: Path, *data: str) -> Path:
    """A fresh ``actk new --defaults`` rendering (plus ``--data`` answers): what the template
    generates now."""
    target = tmp / "echo-agent"
    actk = REPO / ".venv" / "bin" / "actk"
    argv = [str(actk)] if actk.exists() else [str(DEV_PY), "-m", "toolkit"]
    answers = [arg for answer in data for arg in ("--data", answer)]
    done = run([*argv, "new", str(target), "--defaults", *answers], timeout=120, cwd=tmp)
    if done.returncode != 0:
        sys.exit(f"error: actk new failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return target


def request_body(stream: bool) -> dict[str, Any]:
    """The ``POST /responses`` body every server is sent: the prompt, streamed or not."""
    return {"input": PROMPT, **({"stream": True} if stream else {})}


def http_request(port: int, method: str, path: str, body: dict[str, Any] | None = None,
                 timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = json.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, payload, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def echo(port: int, stream: bool, who: str) -> bytes:
    """One ``POST /responses``; raises unless it answers 200 with the prompt echoed."""
    status, body = http_request(port, "POST", "/responses", request_body(stream))
    if status != 200 or PROMPT.split()[-1].encode() not in body:
        mode = "stream" if stream else "json"
        raise BenchError(f"{who} {mode}: HTTP {status}: {body[:300]!r}")
    return body


# --- figures ----------------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def times(value: float | None) -> str:
    """A ratio as printed: ``x1.23``, or ``n/a``."""
    return "n/a" if value is None else f"x{value:.2f}"


def target(name: str, value: float | None, op: str, limit: float, **extra: Any) -> dict[str, Any]:
    """A target as the results file records it; ``pass`` is None when there is no value."""
    ok = None if value is None else (value >= limit if op == ">=" else value <= limit)
    return {"target": name, "value": value, "op": op, "limit": limit, **extra, "pass": ok}


def verdict(t: dict[str, Any]) -> tuple[str, str]:
    """(PASS, FAIL or N/A, the value with two decimals) for a target's printed line."""
    return ({True: "PASS", False: "FAIL", None: "N/A "}[t["pass"]],
            "n/a" if t["value"] is None else f"{t['value']:.2f}")


# --- results ----------------------------------------------------------------------------------


def machine(**extra: Any) -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), **extra}


def template_state() -> dict[str, Any]:
    """The commit the template was rendered from, and whether it had uncommitted changes."""
    head = run(["git", "-C", str(REPO), "rev-parse", "HEAD"], timeout=30).stdout.strip()
    dirty = run(["git", "-C", str(REPO), "status", "--porcelain", "templates/agent"], timeout=30)
    return {"commit": head or None, "dirty": bool(dirty.stdout.strip())}


def write_results(path: Path, results: dict[str, Any]) -> None:
    """``results`` as indented JSON at ``path``, stamped with when it was measured. With
    ``BENCH_RESULTS_DIR`` set (``python -m bench --out``), the file goes there instead."""
    if os.environ.get("BENCH_RESULTS_DIR"):
        path = Path(os.environ["BENCH_RESULTS_DIR"]) / path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **results}
    path.write_text(json.dumps(stamped, indent=2) + "\n")
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def exit_status(failed: list[str]) -> int:
    """0, or 1 after naming what failed."""
    if failed:
        print(f"ERROR: {', '.join(failed)} failed; see above.", file=sys.stderr)
        return 1
    return 0
