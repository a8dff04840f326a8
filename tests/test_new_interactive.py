"""`actk new` on a terminal prompts for each answer and rejects bad ones at the prompt."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import yaml

QUESTIONS_AFTER_SLUG = (
    "package name",
    "description",
    "Python version",
    "Base image",
    "Port",
    "Model provider",
    "Deploy targets",
    "Azure Monitor",
    "CI provider",
)
CLEAR_LINE = "\x15"


def spawn_new(destination: Path) -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm", "CI": ""}
    return pexpect.spawn(
        sys.executable,
        ["-m", "toolkit", "new", str(destination)],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )


def test_prompts_reject_an_invalid_slug_and_accept_a_valid_one(tmp_path: Path):
    child = spawn_new(tmp_path / "demo")
    child.expect("project name")
    child.send("\r")
    child.expect("slug")
    child.send(CLEAR_LINE + "Bad_Slug\r")
    child.expect("not a valid slug")
    child.send(CLEAR_LINE + "my-agent\r")
    for question in QUESTIONS_AFTER_SLUG:
        child.expect(question)
        child.send("\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    answers = yaml.safe_load((tmp_path / "demo" / ".copier-answers.yml").read_text())
    assert answers["slug"] == "my-agent"
    assert answers["package_name"] == "my_agent"
    assert (tmp_path / "demo" / "src" / "my_agent" / "agent.py").is_file()
