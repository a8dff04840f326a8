"""Requests/s, p99 latency and idle RSS of the generated agent server against two yardsticks.

    python bench/server_throughput.py

OURS      the template's server rendered fresh (``actk new --defaults``), run as the container
          runs it (``python -m <pkg>``), LOG_LEVEL=info; plus a LOG_LEVEL=warning row.
PEER      Microsoft's ``azure-ai-agentserver-responses`` host with the same echo agent
          (``bench/peer_app.py``, isolated venv ``bench/.venv-peer``): observability and access
          log off, in-memory store, served by the host's own ``app.run()`` (Hypercorn), and
          the same host under uvicorn + uvloop + httptools. Targets use the faster PEER row
          (its "fastest configuration"); both rows and their ratios are printed.
CEILING   a bare Starlette + uvicorn echo (``bench/ceiling_app.py``).

Each server is one process bound to 127.0.0.1 (pinned to CPU 0 when there are two CPUs; wrk
gets CPU 1). wrk: 32 connections, 1 thread, 1 s warm-up then 5 s measured, per mode (JSON and
SSE streaming), each mode on a freshly started process; the servers are measured in turn,
BENCH_ROUNDS (3) times over, and every figure is the median of its rounds. Targets are printed
as PASS/FAIL; the exit status is 0 unless a server fails to start or answers with errors.
Results go to ``bench/results/server_throughput.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    DEV_PY,
    PROMPT,
    REPO,
    BenchError,
    agent_repo,
    echo,
    exit_status,
    http_request,
    machine,
    ratio,
    request_body,
    run,
    target,
    template_state,
    times,
    verdict,
    write_results,
)

PEER_VENV = BENCH / ".venv-peer"
PEER_PY = PEER_VENV / "bin" / "python"
PEER_SPEC = "azure-ai-agentserver-responses>=2,<3"
RESULTS = BENCH / "results" / "server_throughput.json"

CONNECTIONS, THREADS, WARMUP_S, DURATION_S = 32, 1, 1, 5
# Servers are measured in turn, ROUNDS times over, and each figure is the median of its rounds:
# on a shared machine the interleaving spreads any slow spell over every server alike.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
START_TIMEOUT_S = 60.0
MODES = ("json", "stream")

WRK_LUA = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format(
    'BENCH {"requests":%%d,"duration_us":%%d,"non2xx":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"timeout":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass
class Server:
    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    primary: bool = True  # the OURS row the targets judge (the other OURS rows inform)
    frames: int | None = None
    rounds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # wrk's, per mode
    idle_rss_samples: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        """Per mode, the median of every figure over the rounds, plus the spread of req/s."""
        results = {}
        for mode, samples in self.rounds.items():
            merged = {key: statistics.median(r[key] for r in samples)
                      for key in samples[0] if all(isinstance(r.get(key), (int, float))
                                                   for r in samples)}
            merged["rps_min"] = min(r["rps"] for r in samples)
            merged["rps_max"] = max(r["rps"] for r in samples)
            merged["rounds"] = len(samples)
            results[mode] = merged
        return results

    @property
    def idle_rss_kib(self) -> int | None:
        return int(statistics.median(self.idle_rss_samples)) if self.idle_rss_samples else None


# --- prerequisites ---------------------------------------------------------------------------


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {package} (apt-get) ...", flush=True)
        run(["apt-get", "install", "-y", "-q", package], timeout=300)
        path = shutil.which(name)
    if path is None:
        sys.exit(f"error: '{name}' not found; install it with: apt-get install -y {package}")
    return path


def pinned_cpus() -> tuple[str, str] | None:
    """(the server's CPU, wrk's CPU) when taskset can give them one each, else None."""
    return ("0", "1") if shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2 else None


def peer_python(uvicorn_version: str) -> tuple[Path, str]:
    """The peer venv's interpreter, created and filled on first use, reused afterwards."""
    probe = ("import importlib.metadata as m, uvloop, httptools, uvicorn, "
             "azure.ai.agentserver.responses; print(m.version('azure-ai-agentserver-responses'))")
    if PEER_PY.exists():
        done = run([str(PEER_PY), "-c", probe], timeout=60)
        if done.returncode == 0:
            return PEER_PY, done.stdout.strip()
    print(f"creating {PEER_VENV.relative_to(REPO)} with {PEER_SPEC} ...", flush=True)
    steps = [
        [str(DEV_PY), "-m", "venv", "--clear", str(PEER_VENV)],
        [str(PEER_PY), "-m", "pip", "install", "-q", "--disable-pip-version-check", PEER_SPEC,
         f"uvicorn=={uvicorn_version}", "uvloop", "httptools"],
    ]
    for argv in steps:
        done = run(argv, timeout=600)
        if done.returncode != 0:
            sys.exit(f"error: {' '.join(argv)} failed:\n{done.stderr[-2000:]}\n"
                     f"fix network/pip access, or delete {PEER_VENV} and retry.")
    done = run([str(PEER_PY), "-c", probe], timeout=60)
    if done.returncode != 0:
        sys.exit(f"error: the peer venv does not import its packages:\n{done.stderr[-2000:]}")
    return PEER_PY, done.stdout.strip()


def server_package(repo: Path) -> str:
    """The generated package, the one ``python -m`` runs."""
    return next(p.name for p in (repo / "src").iterdir() if (p / "__main__.py").exists())


def clean_env() -> dict[str, str]:
    """This environment without the bench's own Python settings and virtualenv."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}


def ours_env(repo: Path, level: str, port: int = 8088) -> dict[str, str]:
    return {**clean_env(), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(repo / "src"),
            "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": level}


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on now (a shared machine's tests take 8088+)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def wrk_scripts(tmp: Path) -> dict[str, Path]:
    """Per mode, the wrk script that posts that mode's request body."""
    scripts = {}
    for mode in MODES:
        scripts[mode] = tmp / f"{mode}.lua"
        scripts[mode].write_text(WRK_LUA % json.dumps(request_body(mode == "stream")))
    return scripts


# --- one server ------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def start(server: Server, log: Path, cpu: str | None) -> subprocess.Popen[bytes]:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 1):
        raise BenchError(f"port {server.port} is already in use; stop whatever listens there")
    argv = (["taskset", "-c", cpu] if cpu else []) + server.argv
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=server.cwd, env=server.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{server.name} exited with {proc.returncode} during start-up")
        try:
            if http_request(server.port, "POST", "/responses", request_body(False),
                            timeout=2)[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    stop(proc)
    raise BenchError(f"{server.name} did not answer 200 within {START_TIMEOUT_S:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def cpu_seconds(pid: int) -> tuple[float, float, float]:
    """(all CPUs busy, process ``pid``, finished children of this script) in CPU seconds."""
    hz = os.sysconf("SC_CLK_TCK")
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # minus idle and iowait
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (int(fields[11]) + int(fields[12])) / hz  # utime + stime
    return busy / hz, own, children.ru_utime + children.ru_stime


def wrk(pid: int, port: int, lua: Path, seconds: int, cpu: str | None) -> dict[str, Any]:
    """One wrk run against ``port``; ``other_cpu_pct`` is the CPU (% of one core) used by
    processes other than the server and wrk meanwhile: the noise on a shared machine."""
    argv = (["taskset", "-c", cpu] if cpu else []) + [
        "wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "5s",
        "-s", str(lua), f"http://127.0.0.1:{port}/responses"]
    before, began = cpu_seconds(pid), time.monotonic()
    done = run(argv, timeout=seconds + 30)
    after, elapsed = cpu_seconds(pid), time.monotonic() - began
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    stats = json.loads(line[6:])
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["errors"] = sum(stats[k] for k in ("connect", "read", "write", "timeout"))
    busy, server, load = (b - a for a, b in zip(before, after, strict=True))
    stats["server_cpu_pct"] = 100 * server / elapsed
    stats["other_cpu_pct"] = max(0.0, 100 * (busy - server - load) / elapsed)
    stats["req_per_cpu_s"] = stats["requests"] / server if server else None
    return stats


def measure(server: Server, tmp: Path, lua: dict[str, Path], cpus: tuple[str, str] | None) -> None:
    """One fresh process per mode (the peer slows down as its stores fill, so every server gets
    a clean start); idle RSS is read on the first start, after one request of each mode."""
    server_cpu, wrk_cpu = cpus or (None, None)
    log = tmp / f"{server.name.split()[0]}.log"
    try:
        for mode in MODES:
            proc = start(server, log, server_cpu)
            try:
                for probe in MODES if mode == MODES[0] else (mode,):
                    body = echo(server.port, probe == "stream", server.name)
                    if probe == "stream":
                        server.frames = body.count(b"\n\n")
                if mode == MODES[0]:
                    time.sleep(0.5)
                    server.idle_rss_samples.append(rss_kib(proc.pid))
                wrk(proc.pid, server.port, lua[mode], WARMUP_S, wrk_cpu)
                stats = wrk(proc.pid, server.port, lua[mode], DURATION_S, wrk_cpu)
                server.rounds.setdefault(mode, []).append(stats)
                if stats["non2xx"] or stats["errors"]:
                    raise BenchError(f"{server.name} {mode}: {stats['non2xx']} non-2xx responses, "
                                     f"{stats['errors']} socket errors under load")
                if proc.poll() is not None:
                    raise BenchError(f"{server.name} died under load ({proc.returncode})")
                stats["rss_after_kib"] = rss_kib(proc.pid)
            finally:
                stop(proc)
    except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
        server.error = str(exc)
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        print(f"\n!!! {server.name}: {exc}\n--- server log tail ---\n{tail}\n", flush=True)


# --- report ----------------------------------------------------------------------------------


def pick(servers: list[Server], prefix: str, key: Callable[[Server], float]) -> Server | None:
    """The row of a group that maximises ``key``."""
    rows = [s for s in servers if s.name.startswith(prefix) and not s.error]
    return max(rows, key=key) if rows else None


def figure(server: Server | None, mode: str, key: str = "rps") -> float | None:
    return server.results.get(mode, {}).get(key) if server and not server.error else None


def ratio_of(mine: Server | None, other: Server | None, mode: str, key: str) -> float | None:
    return ratio(figure(mine, mode, key), figure(other, mode, key))


def report(servers: list[Server]) -> list[dict[str, Any]]:
    mib = "{:.1f} MiB".format
    print(f"\nmedians of {ROUNDS} interleaved rounds; req/s spread is min-max over the rounds")
    print(f"{'server':<42} {'mode':<6} {'req/s':>7} {'spread':>13} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'frames':>6} "
          f"{'idle RSS':>9} {'RSS loaded':>10} {'srv CPU':>7} {'req/CPU-s':>9} {'other CPU':>9}")
    noisy = 0.0
    for s in servers:
        for mode in MODES:
            r = s.results.get(mode)
            cells = (f"{r['rps']:>7.0f} {r['rps_min']:>6.0f}-{r['rps_max']:<6.0f} "
                     f"{r['p50_us'] / 1000:>7.2f} {r['p99_us'] / 1000:>7.2f}"
                     if r else f"{'FAILED' if s.error else '-':>7} {'':>13} {'':>7} {'':>7}")
            frames = str(s.frames or "") if mode == "stream" else ""
            idle = mib(s.idle_rss_kib / 1024) if s.idle_rss_kib and mode == MODES[0] else ""
            after = mib(r["rss_after_kib"] / 1024) if r and "rss_after_kib" in r else ""
            cpu = (f"{r['server_cpu_pct']:>6.0f}% {r['req_per_cpu_s'] or 0:>9.0f} "
                   f"{r['other_cpu_pct']:>8.0f}%" if r else "")
            noisy = max(noisy, r["other_cpu_pct"] if r else 0.0)
            print(f"{s.name:<42} {mode:<6} {cells} {frames:>6} {idle:>9} {after:>10} {cpu}")
    if noisy > 15:
        print(f"WARNING: other processes used up to {noisy:.0f}% of a core during a measurement "
              "(see 'other CPU'); figures from this run are noisy, compare ratios or re-run.")

    print("\nratios (OURS row / other row):")
    for mine in (s for s in servers if s.name.startswith("OURS") and not s.error):
        for other in (s for s in servers if not s.name.startswith("OURS") and not s.error):
            cells = [f"{mode} req/s {times(ratio_of(mine, other, mode, 'rps'))} "
                     f"(per CPU-s {times(ratio_of(mine, other, mode, 'req_per_cpu_s'))})"
                     for mode in MODES]
            if mine.idle_rss_kib and other.idle_rss_kib:
                cells.append(f"idle RSS x{mine.idle_rss_kib / other.idle_rss_kib:.2f}")
            print(f"  {mine.name} / {other.name}: {', '.join(cells)}")

    ours = next((s for s in servers if s.name.startswith("OURS") and s.primary), None)
    # The judged PEER is the host's fastest configuration: of its two rows, the one with the
    # best req/s over both modes. Every PEER target (RSS too) is judged against that one row.
    def both_modes(s: Server) -> float:
        return (figure(s, "json") or 0) * (figure(s, "stream") or 0)

    peer, ceiling = pick(servers, "PEER", both_modes), pick(servers, "CEILING", both_modes)
    targets = [
        target(f"OURS req/s / {other.name.split()[0] if other else '?'} req/s ({mode})",
               ratio_of(ours, other, mode, "rps"), ">=", factor,
               basis=other.name if other else None,
               value_per_server_cpu_s=ratio_of(ours, other, mode, "req_per_cpu_s"))
        for mode in MODES for other, factor in ((peer, 10.0), (ceiling, 0.5))
    ]
    targets.append(target("OURS idle RSS / PEER idle RSS",
                          ratio(ours.idle_rss_kib if ours else None,
                                peer.idle_rss_kib if peer else None), "<=", 0.8,
                          basis=peer.name if peer else None, value_per_server_cpu_s=None))

    print(f"\ntargets ({ours.name if ours else 'OURS'} against PEER's fastest configuration and "
          "CEILING):")
    for t in targets:
        shown, value = verdict(t)
        per_cpu = t["value_per_server_cpu_s"]
        extra = f"; per server CPU-s {per_cpu:.2f}" if per_cpu else ""
        print(f"  {shown}  {t['target']:<36} = {value:>6}  (target {t['op']} {t['limit']:g}; "
              f"vs {t['basis'] or 'n/a'}{extra})")
    return targets


def main() -> int:
    need_tool("wrk", "wrk")
    if not DEV_PY.exists():
        sys.exit(f"error: {DEV_PY} missing; create the dev venv (see README) before benchmarking.")
    dev_py = str(DEV_PY)
    uvicorn_version = run([dev_py, "-c", "import uvicorn; print(uvicorn.__version__)"],
                          timeout=30).stdout.strip()
    peer_py, peer_version = peer_python(uvicorn_version)
    cpus = pinned_cpus()

    tmp = Path(tempfile.mkdtemp(prefix="actk-bench-"))
    try:
        repo = agent_repo(tmp)
        package = server_package(repo)
        lua = wrk_scripts(tmp)
        base = {**clean_env(), "PYTHONDONTWRITEBYTECODE": "1"}
        ours_port, peer_port, ceiling_port = free_ports(3)
        peer_env = {**base, "PORT": str(peer_port),
                    "AGENTSERVER_STATE_ROOT": str(tmp / "peer-state")}
        servers = [
            Server("OURS (LOG_LEVEL=info)", [dev_py, "-m", package], repo,
                   ours_env(repo, "info", ours_port), ours_port),
            Server("OURS (LOG_LEVEL=warning)", [dev_py, "-m", package], repo,
                   ours_env(repo, "warning", ours_port), ours_port, primary=False),
            Server("PEER (app.run: Hypercorn, in-memory store)", [str(peer_py),
                   str(BENCH / "peer_app.py"), "run"], tmp, peer_env, peer_port),
            Server("PEER re-hosted (uvicorn, in-memory store)", [str(peer_py),
                   str(BENCH / "peer_app.py"), "uvicorn"], tmp, peer_env, peer_port),
            Server("CEILING (Starlette + uvicorn)", [dev_py, str(BENCH / "ceiling_app.py")],
                   tmp, {**base, "PORT": str(ceiling_port)}, ceiling_port),
        ]
        print(f"wrk -t{THREADS} -c{CONNECTIONS}: {WARMUP_S} s warm-up + {DURATION_S} s per mode; "
              f"server CPU {cpus[0] if cpus else 'any'}, wrk CPU {cpus[1] if cpus else 'any'}; "
              f"peer azure-ai-agentserver-responses {peer_version}", flush=True)
        for round_number in range(1, ROUNDS + 1):
            for server in servers:
                if server.error:
                    continue
                print(f"round {round_number}/{ROUNDS}: measuring {server.name} ...", flush=True)
                measure(server, tmp, lua, cpus)
        targets = report(servers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    write_results(RESULTS, {
        "machine": machine(python=platform.python_version(), pinned_cpus=cpus),
        "load": {"tool": "wrk", "connections": CONNECTIONS, "threads": THREADS,
                 "warmup_s": WARMUP_S, "duration_s": DURATION_S, "rounds": ROUNDS,
                 "input": PROMPT},
        "peer_package": f"azure-ai-agentserver-responses=={peer_version}",
        "template": template_state(),
        "servers": [{"name": s.name, "primary": s.primary, "argv": s.argv, "error": s.error,
                     "idle_rss_kib": s.idle_rss_kib,
                     "stream_frames": s.frames, "results": s.results} for s in servers],
        "targets": targets,
    })
    return exit_status([s.name for s in servers if s.error])


if __name__ == "__main__":
    sys.exit(main())
