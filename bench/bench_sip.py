"""SIP parsing benchmark: a typical GB28181 REGISTER (with Authorization) and a MESSAGE keepalive, us per message.

Three parsers over the same bytes, in one process:
* fluxkit `parse_message` (what the platform runs per datagram), plus the typed views a registrar reads
  (top Via branch, From tag, Call-ID, CSeq, Expires) as a second figure;
* a naive baseline: the stdlib `email.parser.BytesParser` (RFC 5322 headers, compat32 policy) after splitting
  the start line, which is what a quick SIP parser built on the standard library would do;
* a regex-per-header baseline: one `re.match` per header line and a dict of lists.
Figures are the best of many short runs (wall-clock, one core), which filters out other load on a shared
machine; compare ratios, absolute times drift.
Goal (issue 3): the REGISTER under 20 us.

Run: .venv/bin/python bench/bench_sip.py
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fluxkit.protocols.sip import parse_message  # noqa: E402

REGISTER = (
    b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK2020371513\r\n"
    b"From: <sip:34020000001320000001@3402000000>;tag=2043466181\r\n"
    b"To: <sip:34020000001320000001@3402000000>\r\n"
    b"Call-ID: 1011047669\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Contact: <sip:34020000001320000001@192.168.1.64:5060>\r\n"
    b'Authorization: Digest username="34020000001320000001", realm="3402000000", nonce="44d5d4a1b9c5ad5e", '
    b'uri="sip:34020000002000000001@3402000000", response="ba5d1e4d1ae0e7cc12a3b6a2e4bcbd9b", algorithm=MD5\r\n'
    b"Max-Forwards: 70\r\n"
    b"User-Agent: IP Camera\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)
BODY = (
    b'<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>43</SN>\r\n'
    b"<DeviceID>34020000001320000001</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n"
)
MESSAGE = (
    b"MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1893450710\r\n"
    b"From: <sip:34020000001320000001@3402000000>;tag=1210442813\r\n"
    b"To: <sip:34020000002000000001@3402000000>\r\n"
    b"Call-ID: 2080318093\r\n"
    b"CSeq: 20 MESSAGE\r\n"
    b"Content-Type: Application/MANSCDP+xml\r\n"
    b"Max-Forwards: 70\r\n"
    b"User-Agent: IP Camera\r\n" + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY
)

N = 2_000
REPEATS = 60


def fluxkit_parse(data: bytes) -> object:
    return parse_message(data)


def fluxkit_registrar_view(data: bytes) -> object:
    msg = parse_message(data)
    return (msg.via.branch, msg.from_.tag, msg.call_id, msg.cseq, msg.expires)


_EMAIL = email.parser.BytesParser(policy=email.policy.compat32)


def email_parse(data: bytes) -> object:
    start, _, rest = data.partition(b"\r\n")
    message = _EMAIL.parsebytes(rest)
    return start.split(b" ", 2), message.get_all("Via"), message.get_payload()


_LINE_RE = re.compile(rb"([^:\r\n]+?)[ \t]*:[ \t]*(.*)")


def regex_parse(data: bytes) -> object:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        m = _LINE_RE.match(line)
        if m is None:
            raise ValueError(line)
        headers.setdefault(m.group(1).decode().lower(), []).append(m.group(2).decode())
    return lines[0].split(b" ", 2), headers, body


def best_us(fn: Callable[[bytes], object], data: bytes) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(N):
            fn(data)
        best = min(best, time.perf_counter() - t0)
    return best / N * 1e6


def main() -> None:
    print(f"Python {sys.version.split()[0]}, {N} messages x best of {REPEATS}")
    for label, data in (("GB28181 REGISTER with Authorization", REGISTER), ("GB28181 MESSAGE keepalive", MESSAGE)):
        print(f"\n{label} ({len(data)} bytes)")
        flux = best_us(fluxkit_parse, data)
        view = best_us(fluxkit_registrar_view, data)
        mail = best_us(email_parse, data)
        regex = best_us(regex_parse, data)
        print(f"  fluxkit parse_message          {flux:7.2f} us/msg")
        print(f"  fluxkit parse + registrar view {view:7.2f} us/msg")
        print(f"  email.parser (naive baseline)  {mail:7.2f} us/msg   fluxkit is {mail / flux:5.1f}x faster")
        print(f"  regex per header line          {regex:7.2f} us/msg   fluxkit is {regex / flux:5.1f}x faster")
        if data is REGISTER:
            print(f"  goal < 20 us: {'met' if flux < 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
