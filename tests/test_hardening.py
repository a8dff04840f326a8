"""The rendered server under attack and load (issue 11): the generated repository's own fuzz,
hardening, load and drain (test_serve.py) tests, run here once with the toolkit's test
dependencies (hypothesis and schemathesis), at CI size, with no test skipped. No template answer
changes the server's behaviour there, so tests/test_template_matrix.py leaves them out.

FUZZ_EXAMPLES (default here 1500: about ten thousand generated requests, a minute) is passed
through; raise it for a long run.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import render, run

FUZZ_EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "1500")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("hardening") / "hardened-agent")


def run_tests(project: Path, *args: str) -> str:
    done = run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-rs", "-p", "no:cacheprovider", *args],
        cwd=project, timeout=900, env={"FUZZ_EXAMPLES": FUZZ_EXAMPLES},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert " skipped" not in output.splitlines()[-1], output[-3000:]
    return output


def test_fuzzing_the_rendered_server_finds_no_5xx_no_hang_and_only_openai_errors(project):
    output = run_tests(project, "tests/test_fuzz.py")

    requests = int(re.search(r"fuzz requests: (\d+)", output).group(1))
    print(f"fuzz requests: {requests}")
    assert requests >= 10 * int(FUZZ_EXAMPLES) // 2


def test_the_rendered_server_withstands_hostile_and_slow_clients(project):
    run_tests(project, "tests/test_hardening.py")


def test_the_rendered_server_drains_and_stops_as_documented(project):
    run_tests(project, "tests/test_serve.py")


def test_the_rendered_server_under_load_and_sigterm(project):
    output = run_tests(project, "tests/test_load.py")

    before, after = map(int, re.search(r"disconnects: tasks (\d+) -> (\d+)", output).groups())
    assert after <= before
