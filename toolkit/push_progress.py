"""Per-layer progress of an Engine API push: rich bars for people, status lines in CI."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from toolkit.console import Console


class LayerSink(Protocol):
    def __call__(self, event: Mapping[str, Any]) -> None: ...


@dataclass
class LayerTally:
    """What happened to each layer: uploaded (with bytes) or already in the registry."""

    uploaded: dict[str, int] = field(default_factory=dict)
    existing: set[str] = field(default_factory=set)

    def record(self, event: Mapping[str, Any]) -> None:
        layer, status = event.get("id"), str(event.get("status", ""))
        if not layer or not isinstance(layer, str):
            return
        detail = event.get("progressDetail") or {}
        if status == "Pushing" and isinstance(detail, dict):
            current = detail.get("total") or detail.get("current") or 0
            self.uploaded[layer] = max(self.uploaded.get(layer, 0), int(current))
        elif status == "Pushed":
            self.uploaded.setdefault(layer, 0)
        elif status == "Layer already exists" or status.startswith("Mounted from"):
            self.existing.add(layer)

    @property
    def bytes_uploaded(self) -> int:
        return sum(self.uploaded.values())


@contextmanager
def layer_progress(console: Console, title: str) -> Iterator[LayerSink]:
    """A sink for push events: a bar per layer on a terminal, a line per change in CI."""
    if console.as_json:
        yield lambda event: None
        return
    if console.plain:
        console.step(title)
        last: dict[str, str] = {}

        def line(event: Mapping[str, Any]) -> None:
            layer, status = event.get("id"), str(event.get("status", ""))
            if layer and status and last.get(layer) != status:
                last[layer] = status
                console.detail(f"{layer}: {status}")
            elif not layer and status:
                console.detail(status)

        yield line
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        progress.console.print(f"==> {title}", style="bold", highlight=False)
        tasks: dict[str, Any] = {}

        def bar(event: Mapping[str, Any]) -> None:
            layer, status = event.get("id"), str(event.get("status", ""))
            if not layer or not status or ":" in str(layer):
                return
            if layer not in tasks:
                tasks[layer] = progress.add_task(f"{layer} {status}", total=None)
            task = tasks[layer]
            detail = event.get("progressDetail") or {}
            if isinstance(detail, dict) and detail.get("total"):
                progress.update(
                    task, total=detail["total"], completed=detail.get("current", 0),
                    description=f"{layer} {status}",
                )
            elif status in ("Pushed", "Layer already exists") or status.startswith("Mounted"):
                total = progress.tasks[task].total or 1
                progress.update(task, total=total, completed=total,
                                description=f"{layer} {status}")
            else:
                progress.update(task, description=f"{layer} {status}")

        yield bar
