"""The whole local loop on a real engine, as a user types it:
`actk new` -> `actk build` -> `actk smoke` -> `actk run` + `actk invoke --local` -> Ctrl-C,
once through each build path (BuildKit through the docker CLI, and the Engine API).
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_IMAGE, actk, build_args_for_tests, run, succeed
from tests.images import interrupt, start_actk

pytestmark = pytest.mark.docker


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("builder", ["buildkit", "api"])
def test_new_build_smoke_run_invoke(builder: str, tmp_path: Path, docker_engine: Any) -> None:
    repo = tmp_path / f"e2e-{builder}"
    succeed(actk("new", str(repo), "--defaults", "--data", f"base_image={BASE_IMAGE}"))

    built = json.loads(
        succeed(
            actk("build", str(repo), "--builder", builder, "--json", *build_args_for_tests())
        ).stdout
    )
    assert built["builder"] == builder and built["tags"][-1] == f"e2e-{builder}:latest"

    smoke = json.loads(succeed(actk("smoke", built["tags"][0], "-C", str(repo), "--json")).stdout)
    assert smoke["passed"] and {c["name"] for c in smoke["checks"]} >= {
        "stream-events",
        "sigterm",
        "malformed-json",
    }

    # `actk run` publishes runtime.port (8088) and `invoke --local` finds it there; another
    # 8088 user on the machine moves the test to a free port and --url.
    local = port_is_free(8088)
    port_flag = [] if local else ["--port", "0"]
    runner, stderr = start_actk("run", *port_flag, cwd=repo)
    try:
        url = stderr.wait_for(r"ready at (http://127\.0\.0\.1:\d+)", timeout=90).group(1)
        target = ["--local"] if local else ["--url", url]
        streamed = succeed(actk("invoke", *target, "hello from the end-to-end test", cwd=repo))
        assert streamed.stdout.strip() == "hello from the end-to-end test"
        whole = succeed(actk("invoke", *target, "--no-stream", "--json", "not streamed", cwd=repo))
        assert json.loads(whole.stdout)["output_text"] == "not streamed"
    finally:
        code = interrupt(runner, stderr, signal.SIGINT, timeout=60)
    assert code == 0, stderr.text()
    assert not docker_engine.containers.list(
        all=True, filters={"ancestor": f"e2e-{builder}:latest", "label": "dev.actk.managed=true"}
    )


def test_the_generated_container_tests_pass_on_the_built_image(
    tmp_path: Path, docker_engine: Any
) -> None:
    repo = tmp_path / "plugin-agent"
    succeed(actk("new", str(repo), "--defaults", "--data", f"base_image={BASE_IMAGE}"))
    built = json.loads(succeed(actk("build", str(repo), "--json", *build_args_for_tests())).stdout)

    tests = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-m",
            "container",
            "--agent-image",
            built["tags"][0],
        ],
        cwd=repo,
        env={"ACTK_REQUIRE_ENGINE": "1"},
    )

    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "9 passed" in tests.stdout and "skipped" not in tests.stdout
