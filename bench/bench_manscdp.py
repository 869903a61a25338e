"""MANSCDP benchmark: parsing a GB28181 Catalog response with 100 items, microseconds per message.

fluxkit's `parse_manscdp` (charset detection, safety checks, expat via xml.etree, typed `CatalogItem` records) is
timed against a naive baseline that builds the same records with xml.dom.minidom (a pure-Python DOM over expat),
the way a quick implementation would. A well-formed body is the common case; a body carrying the Hikvision quirks
(bare `&`, `<` inside `<Address>`), which takes fluxkit's repair-and-retry path, is timed too. PTZCmd decode and
a Catalog encode are listed for scale. Figures are the best of several runs (one core, wall clock); compare the
ratio, absolute times drift on shared machines.

Run: .venv/bin/python bench/bench_manscdp.py
"""

from __future__ import annotations

import sys
import time
import xml.dom.minidom
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fluxkit.protocols.manscdp import CatalogItem, CatalogResponse, PtzCommand, parse_manscdp  # noqa: E402

REPEATS = 7


def make_catalog(n: int = 100) -> CatalogResponse:
    items = tuple(
        CatalogItem(
            device_id=f"3402000000132{i:07d}",
            name=f"大门摄像机{i:03d}",
            manufacturer="Hikvision",
            model="DS-2CD2T45FWD-I5",
            owner="Owner",
            civil_code="3402000000",
            address=f"安徽省合肥市{i}号",
            parental="0",
            parent_id="34020000001110000001",
            safety_way="0",
            register_way="1",
            secrecy="0",
            ip_address=f"192.168.1.{i % 250}",
            port="5060",
            status="ON",
            longitude="117.2272",
            latitude="31.8206",
            info=(("PTZType", "1"), ("Resolution", "6/4/2")),
        )
        for i in range(n)
    )
    return CatalogResponse(sn=17430, device_id="34020000001110000001", sum_num=n, items=items)


_FIELD_MAP = dict(CatalogItem._FIELDS)


def naive_parse(data: bytes) -> CatalogResponse:
    """minidom DOM, then the same typed records (GB18030 decode done by hand as minidom would choke on GB2312)."""
    text = data.decode("gb18030")
    text = text[text.index("?>") + 2 :]
    doc = xml.dom.minidom.parseString(text.encode("utf-8"))
    root = doc.documentElement

    def text_of(node: xml.dom.minidom.Element) -> str:
        return "".join(c.data for c in node.childNodes if c.nodeType == c.TEXT_NODE).strip()

    sn = sum_num = 0
    device_id = None
    items = []
    for child in root.childNodes:
        if child.nodeType != child.ELEMENT_NODE:
            continue
        if child.tagName == "SN":
            sn = int(text_of(child))
        elif child.tagName == "DeviceID":
            device_id = text_of(child)
        elif child.tagName == "SumNum":
            sum_num = int(text_of(child))
        elif child.tagName == "DeviceList":
            for item in child.getElementsByTagName("Item"):
                kwargs: dict[str, object] = {}
                info = []
                for field in item.childNodes:
                    if field.nodeType != field.ELEMENT_NODE:
                        continue
                    if field.tagName == "Info":
                        info += [(f.tagName, text_of(f)) for f in field.childNodes if f.nodeType == f.ELEMENT_NODE]
                    elif field.tagName in _FIELD_MAP:
                        kwargs[_FIELD_MAP[field.tagName]] = text_of(field)
                items.append(CatalogItem(info=tuple(info), **kwargs))  # type: ignore[arg-type]
    doc.unlink()
    return CatalogResponse(sn=sn, device_id=device_id, sum_num=sum_num, items=tuple(items))


def best_us(fn: Callable[[], object], loops: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - start) / loops)
    return best * 1e6


def main() -> None:
    message = make_catalog(100)
    data = message.encode("GB18030").replace(b"GB18030", b"GB2312")
    quirky = data.replace("安徽省合肥市1号".encode("gb18030"), "安徽省<合肥市>1号&".encode("gb18030"))
    assert parse_manscdp(data) == message
    assert naive_parse(data) == message
    assert parse_manscdp(quirky).items[1].address == "安徽省<合肥市>1号&"  # type: ignore[attr-defined]

    fluxkit_us = best_us(lambda: parse_manscdp(data), 200)
    naive_us = best_us(lambda: naive_parse(data), 20)
    quirky_us = best_us(lambda: parse_manscdp(quirky), 100)
    encode_us = best_us(lambda: message.encode("GB18030"), 200)
    ptz_us = best_us(lambda: PtzCommand.decode("A50F0105808000BA"), 20000)

    print(f"Catalog response, 100 items, {len(data)} bytes (GB2312 declaration, Chinese names)")
    print(f"  {'fluxkit parse_manscdp':<36} {fluxkit_us:9.1f} us/message")
    print(f"  {'naive xml.dom.minidom -> records':<36} {naive_us:9.1f} us/message")
    print(f"  {'ratio (naive / fluxkit)':<36} {naive_us / fluxkit_us:9.1f} x")
    print(f"  {'fluxkit, Hikvision quirks (repair)':<36} {quirky_us:9.1f} us/message")
    print(f"  {'fluxkit encode (100 items)':<36} {encode_us:9.1f} us/message")
    print(f"PTZCmd decode: {ptz_us:.2f} us")


if __name__ == "__main__":
    main()
