"""copier.yml validates answers, so bad ones are rejected before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import render


@pytest.mark.parametrize(
    "slug", ["Upper", "under_score", "-lead", "trail-", "a" * 64, "", "sp ace"]
)
def test_invalid_slug_is_rejected(tmp_path: Path, slug: str):
    with pytest.raises(ValueError, match="slug"):
        render(tmp_path / "x", slug=slug)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("slug", ["a", "a1", "support-agent", "x" * 63])
def test_valid_slug_is_accepted(tmp_path: Path, slug: str):
    render(tmp_path / "x", slug=slug)
    assert yaml.safe_load((tmp_path / "x" / "agent.yaml").read_text())["name"] == slug


@pytest.mark.parametrize("package", ["1abc", "Abc", "with-dash", "tests", "agent", "json"])
def test_invalid_package_name_is_rejected(tmp_path: Path, package: str):
    with pytest.raises(ValueError, match="package_name"):
        render(tmp_path / "x", package_name=package)


def test_slug_and_package_default_from_the_directory_name(tmp_path: Path):
    render(tmp_path / "Support Bot")
    answers = yaml.safe_load((tmp_path / "Support Bot" / ".copier-answers.yml").read_text())
    assert answers["project_name"] == "Support Bot"
    assert answers["slug"] == "support-bot"
    assert answers["package_name"] == "support_bot"


def test_a_slug_starting_with_a_digit_gets_a_valid_package_name(tmp_path: Path):
    render(tmp_path / "x", slug="2nd-agent")
    answers = yaml.safe_load((tmp_path / "x" / ".copier-answers.yml").read_text())
    assert answers["package_name"] == "agent_2nd_agent"


@pytest.mark.parametrize("port", [0, 65536])
def test_port_out_of_range_is_rejected(tmp_path: Path, port: int):
    with pytest.raises(ValueError, match="port"):
        render(tmp_path / "x", port=port)


def test_base_image_defaults_to_python_slim_for_the_chosen_version(tmp_path: Path):
    render(tmp_path / "x", python_version="3.11")
    manifest = yaml.safe_load((tmp_path / "x" / "agent.yaml").read_text())
    assert manifest["build"]["base_image"] == "python:3.11-slim"
    assert "ARG BASE_IMAGE=python:3.11-slim" in (tmp_path / "x" / "Dockerfile").read_text()


def test_default_answers_match_the_design(tmp_path: Path):
    render(tmp_path / "x")
    answers = yaml.safe_load((tmp_path / "x" / ".copier-answers.yml").read_text())
    assert answers["base_image"] == "python:3.12-slim"
    assert answers["port"] == 8088
    assert answers["model_provider"] == "echo"
    assert answers["deploy_targets"] == []
    assert answers["ci"] == "github"
