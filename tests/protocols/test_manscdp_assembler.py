"""Multi-part Catalog/RecordInfo assembly (GB/T 28181-2016 Appendix N) under a fake `now`: completion at SumNum,
duplicates, any order, the deadline and its partial result, bounds, and a Hypothesis check that any shuffle of any
duplicated split of a result assembles to the same items."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import RemoteProtocolError
from fluxkit.protocols.manscdp import (
    CatalogItem,
    CatalogNotify,
    CatalogResponse,
    RecordInfoResponse,
    RecordItem,
    ResponseAssembler,
    parse_manscdp,
)

ITEMS = tuple(CatalogItem(device_id=f"3402000000132000{i:04d}", name=f"cam {i}") for i in range(5))


def part(items: tuple[CatalogItem, ...], *, sn: int = 1, sum_num: int = 5, device: str = "dev") -> CatalogResponse:
    return CatalogResponse(sn=sn, device_id=device, sum_num=sum_num, items=items)


def test_single_part_completes_at_once() -> None:
    asm = ResponseAssembler()
    result = asm.feed(part(ITEMS), now=0.0)
    assert result is not None
    assert result.complete
    assert result.items == ITEMS
    assert (result.cmd_type, result.device_id, result.sn, result.sum_num, result.parts) == ("Catalog", "dev", 1, 5, 1)
    assert asm.pending == 0
    assert asm.get_timer() is None


def test_parts_out_of_order_with_duplicates() -> None:
    asm = ResponseAssembler(deadline=30.0)
    assert asm.feed(part(ITEMS[3:5]), now=0.0) is None
    assert asm.get_timer() == 30.0
    assert asm.feed(part(ITEMS[3:5]), now=1.0) is None  # UDP duplicate
    assert asm.feed(part(ITEMS[0:2]), now=2.0) is None
    result = asm.feed(part(ITEMS[1:3]), now=3.0)  # overlaps the previous part
    assert result is not None
    assert result.complete
    assert sorted(i.device_id for i in result.items) == [i.device_id for i in ITEMS]
    assert len(result.items) == 5
    assert result.parts == 4
    # A late duplicate of a completed key is ignored, not the start of a new, never-completing entry.
    assert asm.feed(part(ITEMS[0:1]), now=4.0) is None
    assert asm.pending == 0


def test_completed_key_is_forgotten_after_its_deadline() -> None:
    asm = ResponseAssembler(deadline=10.0)
    assert asm.feed(part(ITEMS, sum_num=5), now=0.0) is not None
    # After the deadline the same (device, SN) is a new query (SNs wrap or get reused).
    again = asm.feed(part(ITEMS, sum_num=5), now=11.0)
    assert again is not None
    assert again.complete


def test_deadline_returns_partial_result() -> None:
    asm = ResponseAssembler(deadline=30.0)
    asm.feed(part(ITEMS[:2]), now=5.0)
    asm.feed(part(ITEMS[:1], sn=2, sum_num=3), now=10.0)
    assert asm.get_timer() == 35.0
    assert asm.handle_timer(34.9) == []
    expired = asm.handle_timer(35.0)
    assert len(expired) == 1
    assert not expired[0].complete
    assert expired[0].items == ITEMS[:2]
    assert expired[0].sn == 1
    assert asm.get_timer() == 40.0
    (second,) = asm.handle_timer(100.0)
    assert second.sn == 2
    assert asm.get_timer() is None


def test_keys_are_separate_per_device_sn_and_type() -> None:
    asm = ResponseAssembler()
    records = RecordInfoResponse(
        sn=1, device_id="dev", name="Cam", sum_num=2, items=(RecordItem(device_id="dev", start_time="a", end_time="b"),)
    )
    assert asm.feed(records, now=0.0) is None
    assert asm.feed(part(ITEMS[:1], device="other"), now=0.0) is None
    assert asm.feed(part(ITEMS[:1], sn=9), now=0.0) is None
    assert asm.pending == 3
    done = asm.feed(
        RecordInfoResponse(
            sn=1, device_id="dev", sum_num=2, items=(RecordItem(device_id="dev", start_time="b", end_time="c"),)
        ),
        now=1.0,
    )
    assert done is not None
    assert done.cmd_type == "RecordInfo"
    assert done.name == "Cam"
    assert [i.start_time for i in done.items] == ["a", "b"]  # type: ignore[union-attr]


def test_record_duplicates_by_identity() -> None:
    asm = ResponseAssembler()
    item = RecordItem(device_id="dev", start_time="a", end_time="b", file_path="/x")
    partial = RecordInfoResponse(sn=1, device_id="dev", sum_num=2, items=(item, item))
    assert asm.feed(partial, now=0.0) is None
    (expired,) = asm.handle_timer(1e9)
    assert expired.items == (item,)


def test_empty_result_completes() -> None:
    asm = ResponseAssembler()
    result = asm.feed(CatalogResponse(sn=3, device_id="dev", sum_num=0), now=0.0)
    assert result is not None
    assert result.complete
    assert result.items == ()


def test_catalog_notify_and_updated_item() -> None:
    asm = ResponseAssembler()
    old = CatalogItem(device_id="a", event="ADD", status="ON")
    new = CatalogItem(device_id="a", event="UPDATE", status="OFF")
    assert asm.feed(CatalogNotify(sn=1, device_id="dev", sum_num=2, items=(old,)), now=0.0) is None
    assert asm.feed(CatalogNotify(sn=1, device_id="dev", sum_num=2, items=(new,)), now=0.0) is None
    done = asm.feed(CatalogNotify(sn=1, device_id="dev", sum_num=2, items=(CatalogItem(device_id="b"),)), now=0.0)
    assert done is not None
    assert done.items[0] == new  # the later version of the same DeviceID wins, keeping its first position


def test_bounds() -> None:
    asm = ResponseAssembler(max_pending=2, max_items=4)
    asm.feed(part(ITEMS[:1], sn=1, sum_num=4), now=0.0)
    asm.feed(part(ITEMS[:1], sn=2, sum_num=4), now=0.0)
    with pytest.raises(RemoteProtocolError):
        asm.feed(part(ITEMS[:1], sn=3, sum_num=4), now=0.0)
    with pytest.raises(RemoteProtocolError):
        asm.feed(part(ITEMS, sn=1, sum_num=5), now=0.0)  # SumNum over max_items
    assert asm.pending == 2
    tricky = ResponseAssembler(max_items=3)
    tricky.feed(part(ITEMS[:2], sum_num=3), now=0.0)
    with pytest.raises(RemoteProtocolError):
        tricky.feed(part(ITEMS[2:5], sum_num=3), now=0.0)  # more distinct items than SumNum and max_items
    assert tricky.pending == 1


def test_from_parsed_bodies() -> None:
    asm = ResponseAssembler()
    bodies = [part(ITEMS[i : i + 2], sn=77).encode() for i in (4, 2, 0)]
    results = [asm.feed(parse_manscdp(b), now=0.0) for b in bodies]  # type: ignore[arg-type]
    assert results[:2] == [None, None]
    assert results[2] is not None
    assert {i.device_id for i in results[2].items} == {i.device_id for i in ITEMS}


@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 5)), min_size=1, max_size=20),
        )
    ),
    st.randoms(use_true_random=False),
)
def test_any_split_any_order(spec: tuple[int, list[tuple[int, int]]], rng: object) -> None:
    n, cuts = spec
    items = tuple(CatalogItem(device_id=str(i)) for i in range(n))
    parts = [part(items[start : start + size], sum_num=n) for start, size in cuts]
    parts += [part(items[i : i + 3], sum_num=n) for i in range(0, n, 3)]  # make sure everything arrives
    parts = parts + parts[: len(parts) // 2]  # duplicates
    rng.shuffle(parts)  # type: ignore[attr-defined]
    asm = ResponseAssembler()
    results = [asm.feed(p, now=0.0) for p in parts]
    done = [r for r in results if r is not None]
    assert len(done) == 1
    assert sorted(done[0].items, key=lambda i: int(i.device_id)) == list(items)
    assert asm.pending == 0
