"""Push time of a code-only change: how long `actk push` takes, and how many bytes it uploads,
after one line of ``agent.py`` changed and the image was rebuilt.

A fresh ``actk new --defaults`` agent (base ``BASE_IMAGE``) is built and pushed once to a local
registry (Debian's ``docker-registry`` binary, the CNCF Distribution registry, plain HTTP on
127.0.0.1, which the engine always treats as insecure), so the registry holds every layer. Then,
``BENCH_PUSH_ROUNDS`` (5) times: append a comment to ``agent.py``, ``actk build``, and time
``actk push --json`` (wall time, the command's own ``seconds``, ``bytes_uploaded`` and
``layers_uploaded``). The first push is reported separately (every layer uploaded) for scale.
Target: the code-only push uploads < 1 MB. Results in ``bench/results/push.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    REPO,
    BenchError,
    agent_repo,
    exit_status,
    machine,
    run,
    spread,
    target,
    template_state,
    verdict,
    write_results,
)

BASE_IMAGE = os.environ.get("BASE_IMAGE", "actk-base/python:bookworm")
ROUNDS = int(os.environ.get("BENCH_PUSH_ROUNDS", "5"))
REGISTRY_BINARY = Path("/usr/bin/docker-registry")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ACTK = [str(REPO / ".venv" / "bin" / "python"), "-m", "toolkit"]
RESULTS = BENCH / "results" / "push.json"
CODE_ONLY_LIMIT = 1_000_000  # bytes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_registry(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    if not REGISTRY_BINARY.exists():
        raise BenchError(f"{REGISTRY_BINARY} is missing; run scripts/registry")
    host = f"127.0.0.1:{free_port()}"
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(directory / "storage")}},
        "http": {"addr": host},
    }
    (directory / "config.yml").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    log = (directory / "registry.log").open("wb")
    process = subprocess.Popen([str(REGISTRY_BINARY), "serve", "config.yml"], cwd=directory,
                               env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1).close()
            return process, host
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise BenchError("docker-registry did not start: "
                                 + (directory / "registry.log").read_text()[-1000:]) from None
            time.sleep(0.05)


def actk(repo: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = run([*ACTK, *args], timeout=timeout, cwd=repo)
    if done.returncode != 0:
        raise BenchError(f"actk {' '.join(args)}: exit {done.returncode}\n"
                         f"{done.stdout[-1500:]}{done.stderr[-1500:]}")
    return done


def build_args() -> list[str]:
    args = ["--base-image", BASE_IMAGE]
    if CA_BUNDLE.is_file():
        args += ["--ca-bundle", str(CA_BUNDLE)]
    return args


def timed_push(repo: Path) -> dict[str, Any]:
    started = time.perf_counter()
    done = actk(repo, "push", "--json")
    wall = time.perf_counter() - started
    pushed = json.loads(done.stdout)
    return {"wall_s": wall, "seconds": pushed.get("seconds"),
            "bytes_uploaded": pushed.get("bytes_uploaded"),
            "layers_uploaded": pushed.get("layers_uploaded"),
            "layers_existing": pushed.get("layers_existing")}


def measure(tmp: Path) -> dict[str, Any]:
    import yaml

    registry, host = start_registry(tmp)
    try:
        repo = agent_repo(tmp, f"base_image={BASE_IMAGE}")
        manifest = yaml.safe_load((repo / "agent.yaml").read_text())
        manifest["image"] = {"repository": f"{host}/bench/push-agent", "tag": "latest"}
        (repo / "agent.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        actk(repo, "build", *build_args())
        first = timed_push(repo)
        agent_py = next((repo / "src").glob("*/agent.py"))
        rounds = []
        for index in range(ROUNDS):
            with agent_py.open("a") as out:
                out.write(f"\n# bench push round {index} {time.time_ns()}\n")
            started = time.perf_counter()
            actk(repo, "build", *build_args())
            build_s = time.perf_counter() - started
            rounds.append({"build_s": build_s, **timed_push(repo)})
            print(f"  round {index + 1}/{ROUNDS}: push {rounds[-1]['wall_s']:.2f} s, "
                  f"{rounds[-1]['bytes_uploaded']} bytes, build {build_s:.2f} s", flush=True)
    finally:
        registry.terminate()
        registry.wait(timeout=10)
    return {"first_push": first, "rounds": rounds}


def main() -> int:
    print(f"push of a code-only change: {ROUNDS} rounds, base {BASE_IMAGE}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="actk-bench-push-"))
    try:
        measured = measure(tmp)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        write_results(RESULTS, {"machine": machine(), "error": str(exc), "targets": []})
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rounds = measured["rounds"]
    figures = {
        "push_wall_s": spread([r["wall_s"] for r in rounds]),
        "bytes_uploaded": spread([float(r["bytes_uploaded"] or 0) for r in rounds]),
        "layers_uploaded": spread([float(r["layers_uploaded"] or 0) for r in rounds]),
        "rebuild_s": spread([r["build_s"] for r in rounds]),
    }
    median_bytes = figures["bytes_uploaded"]["median"] if figures["bytes_uploaded"] else None
    targets = [target("code-only push bytes uploaded (median)", median_bytes, "<=",
                      CODE_ONLY_LIMIT, unit="B")]
    for t in targets:
        mark, value = verdict(t)
        print(f"{mark} {t['target']}: {value} {t['op']} {t['limit']}")
    first = measured["first_push"]
    print(f"first push: {first['wall_s']:.2f} s, {first['bytes_uploaded']} bytes; code-only: "
          f"{figures['push_wall_s']['median']:.2f} s, {median_bytes:.0f} bytes")
    write_results(RESULTS, {
        "machine": machine(), "method": {"rounds": ROUNDS, "base_image": BASE_IMAGE,
                                         "registry": "docker-registry (plain HTTP, 127.0.0.1)"},
        "template": template_state(), **measured, "figures": figures, "targets": targets,
    })
    return exit_status([t["target"] for t in targets if t["pass"] is False])


if __name__ == "__main__":
    sys.exit(main())
