"""What the deploy tests of every target share: an agent repository on disk, a fake clock and
the runtime section their manifests start from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from toolkit.deploy.core import Clock

RUNTIME: dict[str, Any] = {
    "port": 8088,
    "cpu": "1",
    "memory": "2Gi",
    "env": {"LOG_LEVEL": "info"},
    "secrets": ["OPENAI_API_KEY"],
}


def write_repo(root: Path, data: dict[str, Any], *, pushed: str | None,
               platform: str | None = None) -> Path:
    """agent.yaml from ``data`` and, when ``pushed``, the digest `actk push` records."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "agent.yaml").write_text(yaml.safe_dump(data))
    if pushed:
        image = {"reference": pushed, **({"platform": platform} if platform else {})}
        (root / ".actk").mkdir(exist_ok=True)
        (root / ".actk" / "state.json").write_text(json.dumps({"image": image}))
    return root


def deep_update(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``data`` with the dotted ``path`` (``runtime.cpu``) set to ``value``."""
    node = data
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return data


class FakeClock:
    """A :class:`Clock` whose sleep only moves its own time forward."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    @property
    def clock(self) -> Clock:
        return Clock(sleep=self.sleep, now=self.now)
