"""Assembly of multi-part Catalog and RecordInfo responses (GB/T 28181-2016 Appendix N).

Strategy: parts are collected per key (CmdType, device id, SN) — every part carries the query's SN — into a dict
of item identity -> item, so duplicates (UDP retransmissions, a device resending a part) collapse and parts may
come in any order. A key completes when the distinct items reach SumNum (an empty result is SumNum 0 with no list
and completes at once). Each key has a deadline, `deadline` seconds after its first part; `handle_timer(now)`
returns what has gathered by then, marked incomplete (wvp waits 30 s, the default here). Recently completed keys
are remembered until their deadline so a late duplicate part does not open a new, never-completing entry.

Identity: a Catalog item is identified by its DeviceID (a later part's version of the same item replaces the
earlier one, which matters for subscription notifies); a record by (DeviceID, StartTime, EndTime, FilePath, Type,
RecorderID).

Bounds: at most `max_pending` keys at once and `max_items` items per key; a part that would exceed either raises
RemoteProtocolError (a device flooding us), leaving the assembler's state unchanged.
"""

from __future__ import annotations

from collections.abc import Hashable

import attrs

from fluxkit.errors import RemoteProtocolError

from ._messages import CatalogItem, CatalogResponse, RecordInfoResponse, RecordItem

__all__ = [
    "DEFAULT_ASSEMBLY_DEADLINE",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_PENDING",
    "AssembledResponse",
    "ResponseAssembler",
]

#: Seconds to wait for the remaining parts after the first one (wvp's figure).
DEFAULT_ASSEMBLY_DEADLINE = 30.0
#: Most responses assembled at once.
DEFAULT_MAX_PENDING = 1024
#: Most items in one assembled response (a large platform's catalog; Appendix N caps a *part* at 10000).
DEFAULT_MAX_ITEMS = 200_000

Key = tuple[str, str, int]


@attrs.frozen(kw_only=True, slots=True)
class AssembledResponse:
    """A whole Catalog or RecordInfo result.

    Attributes:
        cmd_type: "Catalog" or "RecordInfo".
        device_id: the responding device (Catalog) or channel (RecordInfo), as in the parts' `<DeviceID>`.
        sn: the query's SN.
        sum_num: the total announced by the parts.
        items: distinct items in order of first arrival (CatalogItem or RecordItem).
        complete: False when the deadline passed before `sum_num` items arrived.
        parts: how many parts (duplicates included) were received.
        name: the RecordInfo `<Name>` of the first part that had one.
    """

    cmd_type: str
    device_id: str
    sn: int
    sum_num: int
    items: tuple[CatalogItem | RecordItem, ...]
    complete: bool
    parts: int
    name: str | None = None


@attrs.define(slots=True)
class _Pending:
    deadline: float
    sum_num: int
    items: dict[Hashable, CatalogItem | RecordItem] = attrs.field(factory=dict)
    parts: int = 0
    name: str | None = None


class ResponseAssembler:
    """Collects the parts of Catalog / RecordInfo responses (and Catalog notifies) until SumNum items arrived.

    Use: `feed(part, now)` for each parsed part; it returns the `AssembledResponse` when that part completes its
    key, else None. Call `handle_timer(now)` when `get_timer()` is due; it returns the expired, incomplete results.
    """

    def __init__(
        self,
        *,
        deadline: float = DEFAULT_ASSEMBLY_DEADLINE,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        self._deadline = deadline
        self._max_pending = max_pending
        self._max_items = max_items
        self._pending: dict[Key, _Pending] = {}
        self._done: dict[Key, float] = {}  # completed key -> when to forget it

    @property
    def pending(self) -> int:
        """Keys still waiting for parts."""
        return len(self._pending)

    def feed(self, part: CatalogResponse | RecordInfoResponse, now: float) -> AssembledResponse | None:
        """Add one part. Returns the assembled response when this part completes it, else None.

        Late parts of an already completed key (duplicates) are ignored. Raises RemoteProtocolError when the
        part would exceed `max_pending` keys or `max_items` items.
        """
        self._forget(now)
        cmd_type = part.command_type
        key: Key = (cmd_type, part.device_id or "", part.sn)
        if key in self._done:
            return None
        entry = self._pending.get(key)
        if part.sum_num > self._max_items:
            raise RemoteProtocolError(f"{cmd_type} SumNum {part.sum_num} exceeds {self._max_items} items")
        if entry is None:
            if len(self._pending) >= self._max_pending:
                raise RemoteProtocolError(f"more than {self._max_pending} multi-part responses pending")
            entry = _Pending(deadline=now + self._deadline, sum_num=part.sum_num)
            self._pending[key] = entry
        new: dict[Hashable, CatalogItem | RecordItem] = {}
        for item in part.items:
            identity: Hashable = item.device_id if isinstance(item, CatalogItem) else item.identity
            new[identity] = item
        added = sum(1 for k in new if k not in entry.items)
        if len(entry.items) + added > self._max_items:
            raise RemoteProtocolError(f"{cmd_type} response grew past {self._max_items} items")
        entry.items.update(new)
        entry.parts += 1
        entry.sum_num = max(entry.sum_num, part.sum_num)
        if isinstance(part, RecordInfoResponse) and entry.name is None:
            entry.name = part.name
        if len(entry.items) >= entry.sum_num:
            del self._pending[key]
            self._done[key] = entry.deadline
            return self._result(key, entry, complete=True)
        return None

    def get_timer(self) -> float | None:
        """When `handle_timer` next has something to do (the earliest deadline), or None."""
        if not self._pending:
            return None
        return min(entry.deadline for entry in self._pending.values())

    def handle_timer(self, now: float) -> list[AssembledResponse]:
        """Expire keys whose deadline is at or before `now`; returns their partial results (complete=False)."""
        expired = [key for key, entry in self._pending.items() if entry.deadline <= now]
        out = []
        for key in expired:
            entry = self._pending.pop(key)
            out.append(self._result(key, entry, complete=False))
        self._forget(now)
        return out

    def _forget(self, now: float) -> None:
        if self._done:
            for key in [k for k, until in self._done.items() if until <= now]:
                del self._done[key]
            # Bounded like the pending set: drop the oldest remembered keys first (dicts keep insertion order).
            while len(self._done) > self._max_pending:
                del self._done[next(iter(self._done))]

    @staticmethod
    def _result(key: Key, entry: _Pending, *, complete: bool) -> AssembledResponse:
        return AssembledResponse(
            cmd_type=key[0],
            device_id=key[1],
            sn=key[2],
            sum_num=entry.sum_num,
            items=tuple(entry.items.values()),
            complete=complete,
            parts=entry.parts,
            name=entry.name,
        )
