"""Cold start, idle memory, size and warm rebuild of the generated agent's image, against two
yardsticks built on the same base image.

    python bench/container.py

OURS      ``actk new --defaults --data base_image=$BASE_IMAGE`` rendered fresh into a temporary
          directory and built by the docker CLI (BuildKit), as a user does.
PEER      Microsoft's ``azure-ai-agentserver-responses`` host serving the echo agent of
          ``bench/peer_app.py`` (``bench/images/peer/``). It runs the host's own entrypoint,
          ``app.run()`` (Hypercorn): that is what the host ships, and uvicorn is not among its
          dependencies. Fastest configuration: no observability, no access log, in-memory store.
CEILING   the bare Starlette + uvicorn echo of ``bench/ceiling_app.py`` plus ``/readiness``
          (``bench/images/ceiling/``): the floor.

PEER and CEILING are built from one Dockerfile (``bench/images/Dockerfile``) with the same
hygiene as OURS (multi-stage venv, pip and setuptools removed, bytecode precompiled, non-root),
so the comparison measures the stacks.

Measured in ROUNDS interleaved rounds after one discarded warm-up run of each image (the order
rotates every round); medians reported with their min-max spread:

cold start   wall time from launching ``docker run -d -p 127.0.0.1:PORT:8088 IMAGE`` to the first
             ``GET /readiness`` 200, polled every 5 ms through the published port once the CLI
             has returned. Also shown: when the ``docker run`` CLI returned (the engine's share),
             the rest (the server's share), and the CPU the container's cgroup used until ready
             (the steadiest figure on a shared machine). Every run also checks one JSON and one
             streamed ``POST /responses`` echo.
idle memory  in the first MEMORY_ROUNDS rounds: engine stats of the container as ``docker stats``
             computes it (usage minus inactive_file), SETTLE_S seconds after readiness with no
             traffic; and again SETTLE_S after the two requests. Containers run with
             ``--no-healthcheck`` so no probe process is ever counted.
size         image size minus the base image's (``docker image inspect``, MB = 10^6 bytes).
rebuild      OURS only: append a comment to ``agent.py`` and rebuild, REBUILD_ROUNDS times;
             wall time of the build, the Dockerfile steps that were not CACHED, and how many of
             the final image's layers changed (only the code layer may).

Environment: BASE_IMAGE (default actk-base/python:bookworm, made by scripts/base-image),
BENCH_ROUNDS (15), BENCH_MEMORY_ROUNDS (5), BENCH_SETTLE_S (3), BENCH_REBUILD_ROUNDS (3),
BENCH_CA (CA bundle passed to the builds as the BuildKit secret ``ca``; default SSL_CERT_FILE
or the system bundle).
Targets are printed as PASS/FAIL; results go to ``bench/results/container.json``; the exit
status is 0 unless an image fails to build, start or answer.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    PROMPT,
    BenchError,
    agent_repo,
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

RESULTS = BENCH / "results" / "container.json"
BASE_IMAGE = os.environ.get("BASE_IMAGE", "actk-base/python:bookworm")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
MEMORY_ROUNDS = int(os.environ.get("BENCH_MEMORY_ROUNDS", "5"))
SETTLE_S = float(os.environ.get("BENCH_SETTLE_S", "3"))
REBUILD_ROUNDS = int(os.environ.get("BENCH_REBUILD_ROUNDS", "3"))
START_TIMEOUT_S = 60.0
POLL_S = 0.005
CONTAINER_PORT = 8088
DOCKER_SOCKET = "/var/run/docker.sock"
MB = 1e6
MIB = 1024 * 1024


@dataclass
class Image:
    name: str  # OURS, PEER, CEILING
    tag: str
    size: int | None = None
    build_s: float | None = None
    warmup: dict[str, Any] | None = None
    ready_s: list[float] = field(default_factory=list)
    run_cli_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    idle_mem: list[int] = field(default_factory=list)
    served_mem: list[int] = field(default_factory=list)
    error: str | None = None
    log_tail: str = ""


# --- prerequisites ---------------------------------------------------------------------------


def docker_cli() -> str:
    """Debian's client has BuildKit built in (DOCKER_BUILDKIT=1); a client first on PATH may
    lack buildx."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("error: no docker CLI found; install Debian's docker.io (scripts/engine).")


DOCKER = docker_cli()
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "1"}


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    done = run([DOCKER, *args], timeout=timeout, env=DOCKER_ENV)
    if check and done.returncode != 0:
        raise BenchError(f"docker {' '.join(args[:3])} failed: {done.stderr.strip()[-1500:]}")
    return done.stdout.strip()


def ca_bundle() -> Path | None:
    for candidate in (os.environ.get("BENCH_CA"), os.environ.get("SSL_CERT_FILE"),
                      "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def check_engine() -> None:
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=30)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        sys.exit(f"error: the Docker engine does not answer ({exc}); start it (scripts/engine).")
    if run([DOCKER, "image", "inspect", BASE_IMAGE], timeout=30).returncode != 0:
        sys.exit(f"error: base image {BASE_IMAGE} is missing; make it with scripts/base-image.")


def image_size(tag: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag))


def image_layers(tag: str) -> list[str]:
    return json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", tag))


# --- building --------------------------------------------------------------------------------


def build(context: Path, tag: str, ca: Path | None) -> tuple[float, str]:
    """``docker build`` with BuildKit's plain progress; (wall seconds, progress output)."""
    argv = [DOCKER, "build", "--progress=plain", "-t", tag, "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}"]
    if ca:
        argv += ["--secret", f"id=ca,src={ca}"]
    began = time.perf_counter()
    done = run([*argv, str(context)], timeout=1800, env=DOCKER_ENV)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise BenchError(f"building {tag} failed:\n{done.stderr[-3000:]}")
    return elapsed, done.stderr


def yardstick_context(tmp: Path, name: str, app: str) -> Path:
    """One build context: the shared ``bench/images/Dockerfile``, ``bench/images/<name>/``
    (entrypoint and pinned requirements) and the app module it serves."""
    context = tmp / f"context-{name}"
    shutil.copytree(BENCH / "images" / name, context)
    shutil.copy2(BENCH / "images" / "Dockerfile", context / "Dockerfile")
    shutil.copy2(BENCH / app, context / app)
    return context


def peer_version() -> str:
    pinned = (BENCH / "images" / "peer" / "requirements.txt").read_text()
    found = re.search(r"^azure-ai-agentserver-responses==(\S+)", pinned, re.M)
    return found.group(1) if found else "?"


STEP = re.compile(r"^#(\d+) (\[[^\]]+\] .*)$")
STEP_STATE = re.compile(r"^#(\d+) (CACHED|DONE [\d.]+s)$")


def rebuilt_steps(progress: str) -> list[str]:
    """The Dockerfile steps (``[stage n/m] INSTRUCTION``) BuildKit ran instead of reusing."""
    names: dict[str, str] = {}
    cached: set[str] = set()
    done: set[str] = set()
    for line in progress.splitlines():
        if match := STEP.match(line):
            names.setdefault(match.group(1), match.group(2))
        elif match := STEP_STATE.match(line):
            (cached if match.group(2) == "CACHED" else done).add(match.group(1))
    return [names[n] for n in sorted(done - cached, key=int) if n in names
            and not names[n].startswith("[internal]")
            and " FROM " not in names[n]]  # FROM only resolves the base image's metadata


def warm_rebuilds(repo: Path, tag: str, ca: Path | None) -> list[dict[str, Any]]:
    """Edit only ``agent.py`` (a comment with a fresh nonce) and rebuild, REBUILD_ROUNDS times."""
    agent = next((repo / "src").glob("*/agent.py"))
    results = []
    for _ in range(REBUILD_ROUNDS):
        before = image_layers(tag)
        with agent.open("a") as out:
            out.write(f"# bench edit {uuid.uuid4().hex}\n")
        seconds, progress = build(repo, tag, ca)
        after = image_layers(tag)
        changed = [i for i in range(max(len(before), len(after)))
                   if i >= len(before) or i >= len(after) or before[i] != after[i]]
        results.append({"seconds": seconds, "rebuilt_steps": rebuilt_steps(progress),
                        "layers": len(after), "changed_layers": changed,
                        "only_top_layer_changed": changed == [len(after) - 1]})
    return results


# --- running ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EngineSocket(http.client.HTTPConnection):
    """The Engine API over its unix socket (only for the stats the CLI rounds away)."""

    def __init__(self, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(DOCKER_SOCKET)


def memory_bytes(container: str) -> int:
    """Memory as ``docker stats`` shows it: usage minus inactive_file (cgroup v1: the total_
    variant), read once through the Engine API (one-shot), or from the CLI if that fails."""
    with contextlib.suppress(OSError, ValueError, KeyError, http.client.HTTPException):
        conn = EngineSocket()
        try:
            conn.request("GET", f"/containers/{container}/stats?stream=false&one-shot=true")
            response = conn.getresponse()
            stats = json.loads(response.read())["memory_stats"]
        finally:
            conn.close()
        usage, extra = stats["usage"], stats.get("stats", {})
        for key in ("total_inactive_file", "inactive_file"):
            if key in extra and extra[key] < usage:
                return usage - extra[key]
        return usage
    text = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", container)
    number, unit = re.match(r"([\d.]+)\s*([KMG]i?B)", text).groups()  # type: ignore[union-attr]
    scale = {"KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
    return int(float(number) * scale)


def container_cpu_s(container_id: str) -> float | None:
    """CPU the container's processes have used so far (its cgroup), or None where unknown."""
    v1 = ("/sys/fs/cgroup/cpuacct/docker/{}/cpuacct.usage",
          "/sys/fs/cgroup/cpu,cpuacct/docker/{}/cpuacct.usage",
          "/sys/fs/cgroup/cpuacct/system.slice/docker-{}.scope/cpuacct.usage")
    v2 = ("/sys/fs/cgroup/system.slice/docker-{}.scope/cpu.stat",
          "/sys/fs/cgroup/docker/{}/cpu.stat")
    with contextlib.suppress(OSError, ValueError):
        for pattern in v1:
            path = Path(pattern.format(container_id))
            if path.exists():
                return int(path.read_text()) / 1e9
        for pattern in v2:
            path = Path(pattern.format(container_id))
            if path.exists():
                usage = re.search(r"^usage_usec (\d+)", path.read_text(), re.M)
                return int(usage.group(1)) / 1e6 if usage else None
    return None


def cold_start(image: Image) -> tuple[str, int, float, float, float | None]:
    """Launch the container and poll ``/readiness``: (name, port, ready s, docker-run CLI s,
    CPU s the container used until then).

    Polling starts when ``docker run -d`` returns (the container is started, its network up):
    a probe sent earlier can reach docker-proxy before the container's interface answers ARP,
    and then waits for the kernel's ARP retry (1 s) instead of measuring the server."""
    name = f"actk-bench-{image.name.lower()}-{uuid.uuid4().hex[:8]}"
    port = free_port()
    argv = [DOCKER, "run", "-d", "--name", name, "--no-healthcheck",
            "-p", f"127.0.0.1:{port}:{CONTAINER_PORT}", "-e", f"PORT={CONTAINER_PORT}", image.tag]
    began = time.perf_counter()
    done = run(argv, timeout=START_TIMEOUT_S, env=DOCKER_ENV)
    cli_s = time.perf_counter() - began
    if done.returncode != 0:
        remove(name)
        raise BenchError(f"docker run {image.tag} failed: {done.stderr.strip()}")
    container_id = done.stdout.strip()
    while True:
        try:
            if http_request(port, "GET", "/readiness", timeout=2.0)[0] == 200:
                ready = time.perf_counter() - began
                return name, port, ready, cli_s, container_cpu_s(container_id)
        except (OSError, http.client.HTTPException):
            pass
        if time.perf_counter() - began > START_TIMEOUT_S:
            image.log_tail = docker("logs", "--tail", "30", name, check=False)
            remove(name)
            raise BenchError(f"{image.name} was not ready within {START_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def remove(name: str) -> None:
    docker("rm", "-f", name, timeout=60, check=False)


def measure(image: Image, record: bool, memory: bool) -> dict[str, Any]:
    """One cold start; with ``memory``, the idle and after-requests memory of that container."""
    name, port, ready, cli_s, cpu_s = cold_start(image)
    idle = served = None
    try:
        if memory:
            time.sleep(SETTLE_S)
            idle = memory_bytes(name)
        for stream in (False, True):  # one JSON and one streamed echo
            echo(port, stream, image.name)
        if memory:
            time.sleep(SETTLE_S)
            served = memory_bytes(name)
    except BaseException:
        image.log_tail = docker("logs", "--tail", "30", name, check=False)
        raise
    finally:
        remove(name)
    if record:
        image.ready_s.append(ready)
        image.run_cli_s.append(cli_s)
        if cpu_s is not None:
            image.cpu_s.append(cpu_s)
        if idle is not None and served is not None:
            image.idle_mem.append(idle)
            image.served_mem.append(served)
    return {"ready_s": ready, "run_cli_s": cli_s, "cpu_to_ready_s": cpu_s, "idle_mem": idle,
            "served_mem": served}


# --- report ----------------------------------------------------------------------------------


def after_cli(image: Image) -> list[float]:
    """Per run, how long after ``docker run`` returned the server answered: its own share."""
    return [ready - cli for ready, cli in zip(image.ready_s, image.run_cli_s, strict=True)]


def report(images: dict[str, Image], base_size: int, rebuilds: list[dict[str, Any]]
           ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Print the tables, ratios and target verdicts; return (targets, ratios)."""
    def cell(values: list[float], scale: float, fmt: str) -> str:
        s = spread(values)
        if not s:
            return f"{'-':>22}"
        return (f"{fmt.format(s['median'] / scale):>8} "
                f"({fmt.format(s['min'] / scale)}-{fmt.format(s['max'] / scale)})").rjust(22)

    print(f"\ncold start: medians of {ROUNDS} interleaved rounds (min-max); 'ready after CLI' is "
          "the server's own share, 'container CPU' the CPU its processes used until ready")
    print(f"{'image':<8} {'cold start s':>22} {'docker run CLI s':>22} {'ready after CLI s':>22} "
          f"{'container CPU s':>22}")
    for image in images.values():
        print(f"{image.name:<8} {cell(image.ready_s, 1, '{:.3f}')} "
              f"{cell(image.run_cli_s, 1, '{:.3f}')} {cell(after_cli(image), 1, '{:.3f}')} "
              f"{cell(image.cpu_s, 1, '{:.3f}')}")
    print(f"\nmemory: medians of the first {MEMORY_ROUNDS} rounds (min-max), {SETTLE_S:g} s after "
          f"readiness and again {SETTLE_S:g} s after one JSON + one streamed request; size "
          f"over the base image {BASE_IMAGE} ({base_size / MB:.1f} MB)")
    print(f"{'image':<8} {'idle MiB':>22} {'after requests MiB':>22} {'added MB':>9}")
    for image in images.values():
        added = f"{(image.size - base_size) / MB:>9.1f}" if image.size else f"{'-':>9}"
        print(f"{image.name:<8} {cell(image.idle_mem, MIB, '{:.1f}')} "
              f"{cell(image.served_mem, MIB, '{:.1f}')} {added}")
    if rebuilds:
        print(f"\nwarm rebuild of OURS after editing only agent.py ({len(rebuilds)} rounds): "
              + ", ".join(f"{r['seconds']:.2f} s" for r in rebuilds))
        first = rebuilds[0]
        print("  rebuilt steps: " + ("; ".join(first["rebuilt_steps"]) or "none"))
        print(f"  changed layers of the final image: {first['changed_layers']} of "
              f"{first['layers']}")

    ours, peer, ceiling = images["OURS"], images["PEER"], images["CEILING"]

    def paired(mine: list[float], theirs: list[float]) -> float | None:
        """Rounds measure the images back to back: their per-round ratio cancels slow drifts
        of the machine's load."""
        return median([a / b for a, b in zip(mine, theirs, strict=False) if b])

    added = {k: (v.size - base_size if v.size else None) for k, v in images.items()}
    print("\nratios (OURS / other):")
    ratios: dict[str, dict[str, float | None]] = {}
    for other in (peer, ceiling):
        ratios[other.name] = {
            "cold_start": ratio(median(ours.ready_s), median(other.ready_s)),
            "cold_start_per_round_median": paired(ours.ready_s, other.ready_s),
            "ready_after_cli": ratio(median(after_cli(ours)), median(after_cli(other))),
            "container_cpu_to_ready": ratio(median(ours.cpu_s), median(other.cpu_s)),
            "idle_memory": ratio(median(ours.idle_mem), median(other.idle_mem)),
            "served_memory": ratio(median(ours.served_mem), median(other.served_mem)),
            "added_size": ratio(added["OURS"], added[other.name]),
        }
        r = {key: times(value) for key, value in ratios[other.name].items()}
        cells = [f"cold start {r['cold_start']} (median of per-round ratios "
                 f"{r['cold_start_per_round_median']})",
                 f"ready after CLI {r['ready_after_cli']}",
                 f"container CPU {r['container_cpu_to_ready']}",
                 f"idle memory {r['idle_memory']}",
                 f"memory after requests {r['served_memory']}",
                 f"added size {r['added_size']}"]
        print(f"  OURS / {other.name}: {', '.join(cells)}")

    targets = [
        target("OURS cold start / PEER cold start",
               ratio(median(ours.ready_s), median(peer.ready_s)), "<=", 0.8, unit=""),
        target("OURS idle memory / PEER idle memory",
               ratio(median(ours.idle_mem), median(peer.idle_mem)), "<=", 0.8, unit=""),
        target("  same, after one JSON + one stream",
               ratio(median(ours.served_mem), median(peer.served_mem)), "<=", 0.8, unit=""),
        target("OURS added size / PEER added size",
               ratio(added["OURS"], added["PEER"]), "<=", 0.5, unit=""),
        target("OURS warm rebuild (median s)",
               median([r["seconds"] for r in rebuilds]), "<=", 5.0, unit="s"),
        target("rounds that changed a layer other than code",
               sum(not r["only_top_layer_changed"] for r in rebuilds) if rebuilds else None,
               "<=", 0, unit=""),
    ]
    print("\ntargets:")
    for t in targets:
        shown, value = verdict(t)
        print(f"  {shown}  {t['target']:<44} = {value:>6}{t['unit']:<2} "
              f"(target <= {t['limit']:g}{t['unit']})")
    return targets, ratios


def main() -> int:
    check_engine()
    ca = ca_bundle()
    base_size = image_size(BASE_IMAGE)
    images = {name: Image(name, f"actk-bench/{name.lower()}:latest")
              for name in ("OURS", "PEER", "CEILING")}
    rebuilds: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="actk-bench-container-"))
    try:
        repo = agent_repo(tmp, f"base_image={BASE_IMAGE}")
        contexts = {"OURS": repo,
                    "PEER": yardstick_context(tmp, "peer", "peer_app.py"),
                    "CEILING": yardstick_context(tmp, "ceiling", "ceiling_app.py")}
        for name, image in images.items():
            print(f"building {name} ({image.tag}) ...", flush=True)
            try:
                image.build_s, _ = build(contexts[name], image.tag, ca)
                image.size = image_size(image.tag)
            except (BenchError, subprocess.TimeoutExpired) as exc:
                image.error = str(exc)
                print(f"!!! {name}: {exc}", flush=True)
        if not images["OURS"].error:
            print("rebuilding OURS after editing agent.py ...", flush=True)
            rebuilds = warm_rebuilds(repo, images["OURS"].tag, ca)
        live = [image for image in images.values() if not image.error]
        for image in live:
            print(f"warm-up run of {image.name} ...", flush=True)
            try:
                image.warmup = measure(image, record=False, memory=False)
            except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
                image.error = str(exc)
                print(f"!!! {image.name}: {exc}\n{image.log_tail}", flush=True)
        for round_number in range(ROUNDS):
            order = [i for i in live if not i.error]
            if not order:
                break
            order = order[round_number % len(order):] + order[:round_number % len(order)]
            print(f"round {round_number + 1}/{ROUNDS}: "
                  + ", ".join(i.name for i in order), flush=True)
            for image in order:
                try:
                    measure(image, record=True, memory=round_number < MEMORY_ROUNDS)
                except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
                    image.error = str(exc)
                    print(f"!!! {image.name}: {exc}\n{image.log_tail}", flush=True)
        targets, ratios = report(images, base_size, rebuilds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"({os.cpu_count()} CPUs); figures on a busy machine are noisy, compare ratios.")

    write_results(RESULTS, {
        "machine": machine(
            docker=docker("version", "--format", "{{.Server.Version}}", check=False),
            load_average_before_after=[load_before[0], load_after[0]]),
        "method": {"rounds": ROUNDS, "memory_rounds": MEMORY_ROUNDS, "settle_s": SETTLE_S,
                   "rebuild_rounds": REBUILD_ROUNDS,
                   "poll_s": POLL_S, "input": PROMPT, "healthcheck": "disabled (--no-healthcheck)",
                   "memory": "usage - inactive_file (docker stats)"},
        "base_image": {"tag": BASE_IMAGE, "size": base_size},
        "peer_package": f"azure-ai-agentserver-responses=={peer_version()}",
        "peer_entrypoint": "ResponsesAgentServerHost.run() (Hypercorn), the host's default",
        "template": template_state(),
        "images": [{
            "name": i.name, "tag": i.tag, "error": i.error, "size": i.size,
            "added_size": i.size - base_size if i.size else None, "build_s": i.build_s,
            "warmup": i.warmup,
            "cold_start_s": spread(i.ready_s), "docker_run_cli_s": spread(i.run_cli_s),
            "ready_after_cli_s": spread(after_cli(i)), "container_cpu_to_ready_s": spread(i.cpu_s),
            "idle_memory_bytes": spread(i.idle_mem), "served_memory_bytes": spread(i.served_mem),
            "samples": {"cold_start_s": i.ready_s, "docker_run_cli_s": i.run_cli_s,
                        "container_cpu_to_ready_s": i.cpu_s,
                        "idle_memory_bytes": i.idle_mem, "served_memory_bytes": i.served_mem},
        } for i in images.values()],
        "warm_rebuilds": rebuilds,
        "ratios_ours_to": ratios,
        "targets": targets,
    })
    return exit_status([i.name for i in images.values() if i.error])


if __name__ == "__main__":
    sys.exit(main())
