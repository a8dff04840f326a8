"""What telemetry costs the generated server: nothing when it is off.

    python bench/telemetry.py

BEFORE  the template as it was before telemetry existed (``BENCH_BASELINE_REF``; default: the
        parent of the commit that added ``telemetry/__init__.py`` to the template, or HEAD
        while that is not committed yet), extracted with ``git archive`` and rendered with
        ``--defaults``.
OFF     the template now, ``--defaults``: the OpenTelemetry packages installed (they are in
        requirements.txt), no exporter configured, so none of them is imported.
ON      the same with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set to a local sink that answers 200 to
        every export (informative: the cost when telemetry is on; no target).

Each runs as the container runs it (``python -m <pkg>``, LOG_LEVEL=info) on 127.0.0.1, pinned
to CPU 0 when there are two CPUs (wrk and the probes get CPU 1). Measured:

cold start   wall time from spawning the process to the first ``/readiness`` 200 (polled every
             5 ms), and the CPU the process used until then (the steadiest figure); ROUNDS
             interleaved rounds, medians.
idle memory  VmRSS SETTLE_S seconds after readiness (after the server's start-up GC freeze),
             and again after one JSON and one streamed request; the first MEMORY_ROUNDS rounds.
throughput   ``server_throughput.py``'s wrk run (32 connections, 1 s warm-up + 5 s, JSON and SSE
             streaming, a fresh process per mode), THROUGHPUT_ROUNDS interleaved rounds, medians.

Targets (OFF against BEFORE, the issue's "within 5%"): cold start and its CPU <= 1.05x, idle
memory <= 1.05x, req/s >= 0.95x in both modes. Environment: BENCH_ROUNDS (20),
BENCH_MEMORY_ROUNDS (5), BENCH_THROUGHPUT_ROUNDS (3), BENCH_SETTLE_S (1.5),
BENCH_BASELINE_REF. Results go to ``bench/results/telemetry.json``; the exit status is 0 unless
a server fails to start or answer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    REPO,
    BenchError,
    echo,
    exit_status,
    http_request,
    machine,
    median,
    ratio,
    run,
    spread,
    target,
    template_state,
    times,
    verdict,
    write_results,
)
from server_throughput import (
    MODES,
    Server,
    measure,
    need_tool,
    ours_env,
    pinned_cpus,
    rss_kib,
    server_package,
    stop,
    wrk_scripts,
)

RESULTS = BENCH / "results" / "telemetry.json"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
MEMORY_ROUNDS = int(os.environ.get("BENCH_MEMORY_ROUNDS", "5"))
THROUGHPUT_ROUNDS = int(os.environ.get("BENCH_THROUGHPUT_ROUNDS", "3"))
SETTLE_S = float(os.environ.get("BENCH_SETTLE_S", "1.5"))
TELEMETRY_INIT = "templates/agent/template/src/{{package_name}}/telemetry/__init__.py"
START_TIMEOUT_S = 30.0
POLL_S = 0.005

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PORT = free_port()  # not 8088: another server on this machine may have it
MIB = 1024


@dataclass
class Variant:
    name: str  # BEFORE, OFF, ON
    repo: Path
    env: dict[str, str]
    ready_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    idle_kib: list[int] = field(default_factory=list)
    served_kib: list[int] = field(default_factory=list)
    server: Server | None = None  # the throughput rows
    error: str | None = None


# --- the renders -----------------------------------------------------------------------------


def baseline_ref() -> str:
    if os.environ.get("BENCH_BASELINE_REF"):
        return os.environ["BENCH_BASELINE_REF"]
    added = run(["git", "-C", str(REPO), "log", "-1", "--format=%H", "--diff-filter=A", "--",
                 TELEMETRY_INIT], timeout=30).stdout.strip()
    return f"{added}^" if added else "HEAD"


def render(template: Path, destination: Path) -> Path:
    import copier

    copier.run_copy(str(template), str(destination), defaults=True, unsafe=False, quiet=True)
    return destination


def baseline_template(ref: str, tmp: Path) -> Path:
    """``templates/agent`` as it was at ``ref``, extracted from git (the work tree is not
    touched)."""
    out = tmp / "baseline"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "templates/agent"],
                             capture_output=True, timeout=60)
    if archive.returncode != 0:
        sys.exit(f"error: git archive {ref} failed: {archive.stderr.decode()[-500:]}")
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True, timeout=60)
    return out / "templates" / "agent"


class Sink:
    """An OTLP endpoint that accepts everything (for ON)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- cold start and memory -------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """CPU the process has used, in seconds: its threads' ``schedstat`` (nanoseconds; /proc's
    ``stat`` counts 10 ms ticks, too coarse for a start-up of a tenth of a second)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def cold_start(variant: Variant, cpu: str | None, memory: bool) -> None:
    argv = (["taskset", "-c", cpu] if cpu else []) + [
        sys.executable, "-m", server_package(variant.repo)]
    began = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=variant.repo, env=variant.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            with contextlib.suppress(OSError):
                if http_request(PORT, "GET", "/readiness", timeout=2.0)[0] == 200:
                    break
            if proc.poll() is not None or time.perf_counter() - began > START_TIMEOUT_S:
                raise BenchError(f"{variant.name} did not start (exit {proc.poll()})")
            time.sleep(POLL_S)
        variant.ready_s.append(time.perf_counter() - began)
        variant.cpu_s.append(process_cpu_s(proc.pid))
        if memory:
            time.sleep(SETTLE_S)
            variant.idle_kib.append(rss_kib(proc.pid))
            for stream in (False, True):
                echo(PORT, stream, variant.name)
            time.sleep(SETTLE_S)
            variant.served_kib.append(rss_kib(proc.pid))
    finally:
        stop(proc)


# --- report ----------------------------------------------------------------------------------


def report(variants: dict[str, Variant]) -> list[dict[str, Any]]:
    def cell(values: list[float], scale: float, fmt: str) -> str:
        s = spread(values)
        if not s:
            return f"{'-':>22}"
        return (f"{fmt.format(s['median'] / scale)} ({fmt.format(s['min'] / scale)}-"
                f"{fmt.format(s['max'] / scale)})").rjust(22)

    print(f"\ncold start and memory: medians of {ROUNDS} interleaved rounds (min-max); memory "
          f"in the first {MEMORY_ROUNDS}, {SETTLE_S:g} s after readiness / after one JSON + one "
          "streamed request")
    print(f"{'server':<8} {'cold start ms':>22} {'CPU to ready ms':>22} {'idle RSS MiB':>22} "
          f"{'after requests MiB':>22}")
    for v in variants.values():
        print(f"{v.name:<8} {cell(v.ready_s, 1e-3, '{:.1f}')} {cell(v.cpu_s, 1e-3, '{:.1f}')} "
              f"{cell(v.idle_kib, MIB, '{:.2f}')} {cell(v.served_kib, MIB, '{:.2f}')}")

    print(f"\nthroughput: medians of {THROUGHPUT_ROUNDS} rounds (wrk, 32 connections, 5 s)")
    print(f"{'server':<8} {'mode':<7} {'req/s':>9} {'(min-max)':>17} {'p99 ms':>8} "
          f"{'req/CPU-s':>10} {'other CPU %':>12}")
    for v in variants.values():
        results = v.server.results if v.server and not v.server.error else {}
        for mode in MODES:
            r = results.get(mode)
            if not r:
                continue
            span = f"({r['rps_min']:.0f}-{r['rps_max']:.0f})"
            print(f"{v.name:<8} {mode:<7} {r['rps']:>9.0f} {span:>17} {r['p99_us'] / 1000:>8.2f} "
                  f"{r.get('req_per_cpu_s') or 0:>10.0f} {r['other_cpu_pct']:>12.1f}")

    def rps(v: Variant, mode: str, key: str = "rps") -> float | None:
        if not v.server or v.server.error or mode not in v.server.results:
            return None
        return v.server.results[mode].get(key)

    off, before, on = variants["OFF"], variants["BEFORE"], variants["ON"]
    print("\nratios (OFF / BEFORE, ON / BEFORE):")
    for other in (off, on):
        cells = [f"cold start {times(ratio(median(other.ready_s), median(before.ready_s)))}",
                 f"CPU to ready {times(ratio(median(other.cpu_s), median(before.cpu_s)))}",
                 f"idle RSS {times(ratio(median(other.idle_kib), median(before.idle_kib)))}",
                 f"RSS after requests "
                 f"{times(ratio(median(other.served_kib), median(before.served_kib)))}"]
        cells += [f"{mode} req/s {times(ratio(rps(other, mode), rps(before, mode)))}"
                  for mode in MODES]
        print(f"  {other.name}: {', '.join(cells)}")

    targets = [
        target("OFF cold start / BEFORE", ratio(median(off.ready_s), median(before.ready_s)),
               "<=", 1.05, unit=""),
        target("OFF CPU to ready / BEFORE", ratio(median(off.cpu_s), median(before.cpu_s)),
               "<=", 1.05, unit=""),
        target("OFF idle memory / BEFORE", ratio(median(off.idle_kib), median(before.idle_kib)),
               "<=", 1.05, unit=""),
        *[target(f"OFF {mode} req/s / BEFORE", ratio(rps(off, mode), rps(before, mode)),
                 ">=", 0.95, unit="") for mode in MODES],
    ]
    print("\ntargets:")
    for t in targets:
        shown, value = verdict(t)
        print(f"  {shown}  {t['target']:<32} = {value:>6} (target {t['op']} {t['limit']:g})")
    return targets


def main() -> int:
    need_tool("wrk", "wrk")
    cpus = pinned_cpus()
    ref = baseline_ref()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="actk-bench-telemetry-"))
    sink = Sink()
    try:
        current = render(REPO / "templates" / "agent", tmp / "now" / "echo-agent")
        baseline = render(baseline_template(ref, tmp), tmp / "before" / "echo-agent")
        if (baseline / "src" / server_package(baseline) / "telemetry").exists():
            print(f"warning: the baseline {ref} already has telemetry; set BENCH_BASELINE_REF",
                  flush=True)
        otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_SERVICE_NAME": "bench"}
        variants = {
            "BEFORE": Variant("BEFORE", baseline, ours_env(baseline, "info")),
            "OFF": Variant("OFF", current, ours_env(current, "info")),
            "ON": Variant("ON", current, {**ours_env(current, "info"), **otlp}),
        }
        for v in variants.values():  # no OTEL_* of this shell in BEFORE or OFF
            v.env["PORT"] = str(PORT)
            if v.name != "ON":
                v.env = {k: val for k, val in v.env.items()
                         if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}
        server_cpu = cpus[0] if cpus else None
        live = list(variants.values())
        for v in live:  # warm-up: bytecode and the page cache
            cold_start(v, server_cpu, memory=False)
        for n in range(ROUNDS):
            order = live[n % len(live):] + live[:n % len(live)]
            print(f"cold start round {n + 1}/{ROUNDS}", flush=True)
            for v in order:
                try:
                    cold_start(v, server_cpu, memory=n < MEMORY_ROUNDS)
                except (BenchError, OSError) as exc:
                    v.error = str(exc)
                    print(f"!!! {v.name}: {exc}", flush=True)
        lua = wrk_scripts(tmp)
        for v in live:
            v.server = Server(v.name, [sys.executable, "-m", server_package(v.repo)], v.repo,
                              v.env, PORT)
        for n in range(THROUGHPUT_ROUNDS):
            order = live[n % len(live):] + live[:n % len(live)]
            print(f"throughput round {n + 1}/{THROUGHPUT_ROUNDS}: "
                  + ", ".join(v.name for v in order), flush=True)
            for v in order:
                if not v.server.error:
                    measure(v.server, tmp, lua, cpus)
        targets = report(variants)
    finally:
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"({os.cpu_count()} CPUs); on a busy machine compare CPU to ready and req/CPU-s.")
    write_results(RESULTS, {
        "machine": machine(load_average_before_after=[load_before[0], load_after[0]]),
        "method": {"rounds": ROUNDS, "memory_rounds": MEMORY_ROUNDS,
                   "throughput_rounds": THROUGHPUT_ROUNDS, "settle_s": SETTLE_S,
                   "poll_s": POLL_S, "baseline_ref": ref,
                   "baseline_commit": run(["git", "-C", str(REPO), "rev-parse", ref],
                                          timeout=30).stdout.strip()},
        "template": template_state(),
        "variants": [{
            "name": v.name, "error": v.error or (v.server.error if v.server else None),
            "cold_start_s": spread(v.ready_s), "cpu_to_ready_s": spread(v.cpu_s),
            "idle_rss_kib": spread(v.idle_kib), "served_rss_kib": spread(v.served_kib),
            "throughput": v.server.results if v.server and not v.server.error else None,
        } for v in variants.values()],
        "targets": targets,
    })
    failed = [v.name for v in variants.values()
              if v.error or (v.server is not None and v.server.error)]
    return exit_status(failed)


if __name__ == "__main__":
    sys.exit(main())
