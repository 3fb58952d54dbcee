"""The emulated conversation: its items in order, each with what the service shows and what the emulator knows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Item:
    """One conversation item.

    ``wire`` is the item as the service shows it (``id``, ``type``, ``role``, ``status``, ``content``…);
    the other fields are what the emulator knows about it and never sends.
    """

    wire: dict[str, Any]
    """The item as events carry it."""
    audio_ms: float = 0.0
    """A user audio turn: its length in ms."""
    text: str = ""
    """The text of its content parts (for the token estimate)."""
    words: list[tuple[float, str]] = field(default_factory=list)
    """An assistant audio reply: ``(offset ms in the audio, word)`` per spoken word."""
    audio_bytes: int = 0
    """An assistant audio reply: bytes of audio sent (after a truncation: kept)."""
    heard: str | None = None
    """A user audio turn without transcription: the words the emulator's model heard (never sent)."""

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any], **known: Any) -> Item:
        """An item from its wire form (a copy), with what the emulator knows about it."""
        return cls(dict(wire), **known)

    @property
    def id(self) -> str:
        """The item's id."""
        return str(self.wire["id"])

    @property
    def type(self) -> str | None:
        """``message``, ``function_call`` or ``function_call_output``."""
        return self.wire.get("type")

    @property
    def role(self) -> str | None:
        """``user``, ``assistant`` or ``system`` (messages)."""
        return self.wire.get("role")

    def public(self) -> dict[str, Any]:
        """A copy of the item as the service shows it."""
        return dict(self.wire)

    def truncate(self, audio_end_ms: int, bytes_per_ms: float) -> None:
        """Keep the first ``audio_end_ms`` of an assistant reply and the words spoken in it."""
        heard = [text for offset, text in self.words if offset < audio_end_ms]
        self.wire["content"] = [{"type": "audio", "transcript": " ".join(heard)}]
        self.audio_bytes = int(audio_end_ms * bytes_per_ms)


class Conversation:
    """The items of one session, in order."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}

    def __iter__(self) -> Iterator[Item]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def get(self, item_id: str) -> Item | None:
        """The item with this id, if any."""
        return self._items.get(item_id)

    def add(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Append ``item``, or insert it after ``previous_item_id`` (``"root"``: first); returns the id it follows."""
        ids = list(self._items)
        last = ids[-1] if ids else None
        if previous_item_id is None or previous_item_id == last:
            self._items[item.id] = item
            return last
        pos = 0 if previous_item_id == "root" else ids.index(previous_item_id) + 1
        ordered = [(k, self._items[k]) for k in ids]
        ordered.insert(pos, (item.id, item))
        self._items = dict(ordered)
        return ids[pos - 1] if pos else None

    def delete(self, item_id: str) -> None:
        """Remove an item."""
        del self._items[item_id]
