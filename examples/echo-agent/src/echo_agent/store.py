"""A bounded in-memory store of responses, evicting the least recently used first."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .ids import new_id
from .objects import dumps_response, input_item_view


@dataclass(slots=True)
class StoredResponse:
    """A response in the store. ``response`` is the Response while its run may still change it;
    once it is final, :meth:`settle` keeps its JSON text instead (what every read returns,
    written once), and the dict with its dozen containers goes with the request rather than
    living on in the store, where each container costs every garbage-collector pass."""

    response: dict[str, Any] | None
    inputs: list[dict[str, Any]]  # this request's input items, as validated
    history: list[dict[str, Any]]  # earlier turns + this input + this output, for continuation
    run: Any = None  # the BackgroundRun while a background response is still going
    text: str | None = None  # the final Response as JSON, once settled
    _listed: list[dict[str, Any]] | None = None

    def json(self) -> str:
        """The Response as JSON text."""
        if self.text is not None:
            return self.text
        return dumps_response(self.response)

    def settle(self, text: str) -> None:
        """Keep ``text``, the final Response's JSON, instead of the Response."""
        self.text = text
        self.response = None

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
        entries = self._entries
        if response_id in entries:
            entries.move_to_end(response_id)
        entries[response_id] = entry  # a new id goes last
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def delete(self, response_id: str) -> bool:
        return self._entries.pop(response_id, None) is not None
