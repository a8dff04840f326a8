"""A bounded in-memory store of responses, evicting the least recently used first."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .ids import new_id
from .objects import input_item_view


@dataclass(slots=True)
class StoredResponse:
    response: dict[str, Any]
    inputs: list[dict[str, Any]]  # this request's input items, as validated
    history: list[dict[str, Any]]  # earlier turns + this input + this output, for continuation
    run: Any = None  # the BackgroundRun while a background response is still going
    _listed: list[dict[str, Any]] | None = None

    @property
    def input_items(self) -> list[dict[str, Any]]:
        """The input as ``/input_items`` lists it. Ids are given on the first listing and kept,
        so requests that never list their input do not pay for them."""
        if self._listed is None:
            self._listed = [input_item_view(item, new_id("msg")) for item in self.inputs]
        return self._listed


class ResponseStore:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, response_id: str) -> bool:
        return response_id in self._entries

    def get(self, response_id: str) -> StoredResponse | None:
        entry = self._entries.get(response_id)
        if entry is not None:
            self._entries.move_to_end(response_id)
        return entry

    def put(self, response_id: str, entry: StoredResponse) -> None:
        if self.max_entries <= 0:
            return
        self._entries[response_id] = entry
        self._entries.move_to_end(response_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def delete(self, response_id: str) -> bool:
        return self._entries.pop(response_id, None) is not None
