"""SIP / GB28181 signalling in captures: transactions, INVITE sessions, MANSCDP bodies, registrations.

Strategy: the capture pipeline hands every UDP payload that `looks_like_sip` (and every TCP direction whose
first bytes do) to `SipAnalyzer`; UDP datagrams are parsed one message each (RFC 3261 §18.3) and TCP directions
through `SipStreamParser` (Content-Length framing). Each message updates running tables: transactions keyed by
(top Via branch, CSeq method) (RFC 3261 §17.1.3), sessions keyed by Call-ID (the INVITE offer, the 2xx answer,
ACK and BYE), REGISTER outcomes per device, and the MANSCDP body of MESSAGE/NOTIFY requests decoded with
`parse_manscdp`. Every table is bounded; what falls over a bound is counted, never kept. A message that does not
parse is counted ("sip_malformed") and never stops the inspection.

After the capture, `tie_streams` matches each RTP stream summary to a session: by the negotiated media endpoint
(the `c=` address and `m=` port of either side; for TCP media either end of the connection, since the
`a=setup:passive` side listens) and by the `y=` SSRC (GB/T 28181-2016 Appendix F: take it from the answer,
else the offer). Mismatches are flagged, since they are what breaks GB28181 media in the field: "ssrc-mismatch"
(Hikvision platforms and Dahua IPCs send their own SSRC or 0, gb28181.md), "ssrc-zero", "port-mismatch" (right
SSRC, unnegotiated port), "unexpected-source" (sent from a host other than the sender's `c=`),
"transport-mismatch" (UDP against TCP), "no-session"; and sessions that were answered but saw no media get
"no-media".
"""

from __future__ import annotations

import re
from typing import Any

from fluxkit.errors import ProtocolError
from fluxkit.inspect._ip import format_endpoint
from fluxkit.protocols.manscdp import CatalogResponse, DeviceControl, Keepalive, RecordInfoResponse, parse_manscdp
from fluxkit.protocols.sdp import SessionDescription, parse_sdp
from fluxkit.protocols.sip import NEED_DATA, ConnectionClosed, SipRequest, SipResponse, SipStreamParser, parse_message

__all__ = [
    "DEFAULT_MAX_SIP_MESSAGES",
    "DEFAULT_MAX_SIP_SESSIONS",
    "DEFAULT_MAX_SIP_TRANSACTIONS",
    "SIP_PORTS",
    "SipAnalyzer",
    "SipTcpFlow",
    "looks_like_sip",
]

#: Transactions kept; later ones are counted in `counters["sip_transactions_ignored"]`.
DEFAULT_MAX_SIP_TRANSACTIONS = 10_000
#: Sessions (INVITE dialogs) and registrations kept, each.
DEFAULT_MAX_SIP_SESSIONS = 1_000
#: MANSCDP bodies listed; later ones are still counted per kind (keepalives per device...).
DEFAULT_MAX_SIP_MESSAGES = 2_000
#: Warnings about bodies that do not parse, at most (the rest are counted).
MAX_SIP_WARNINGS = 50

#: Well-known SIP ports (RFC 3261 §19.1.2: 5060, 5061 for TLS, which inspect cannot read but counts).
SIP_PORTS = frozenset({5060, 5061})

# RFC 3261 §25.1: Method = token; request line "METHOD SP Request-URI SP SIP-Version". Only sip:/sips: URIs here.
_REQUEST_START = re.compile(rb"[A-Z][A-Za-z-]{1,15} sips?:")
_RESPONSE_START = b"SIP/2.0 "


def looks_like_sip(data: bytes) -> bool:
    """Whether a payload starts like a SIP message: `SIP/2.0 ` or a method token then ` sip:` / ` sips:`.

    Cheap enough for every UDP payload: RTP (first byte 0x80..0xBF) fails at the first byte test.
    """
    if not data or not 65 <= data[0] <= 90:
        return False
    return data.startswith(_RESPONSE_START) or _REQUEST_START.match(data, 0, 24) is not None


def _decode_text(body: bytes) -> str:
    # SDP is ASCII in practice; GB28181 devices may put GB2312 text in s=/i=, so fall back to GB18030.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("gb18030", "replace")


def _sdp_summary(sdp: SessionDescription, side: str) -> dict[str, Any]:
    """The fields that decide where GB28181 media goes (gb28181.md, Appendix F)."""
    media = []
    for m in sdp.media:
        conn = sdp.connection_for(m)
        media.append(
            {
                "media": m.media,
                "address": conn.address if conn is not None else None,
                "port": m.port,
                "proto": m.proto,
                "transport": "tcp" if m.is_tcp else "udp",
                "setup": m.setup,
                "direction": m.direction,
                "formats": [
                    f"{pt} {rm.encoding}/{rm.clock_rate}" if (rm := m.rtpmaps.get(int(pt))) else pt
                    for pt in m.formats
                    if pt.isascii() and pt.isdigit()
                ],
                "ssrc": m.ssrc,
            }
        )
    timing = sdp.timing
    return {
        "side": side,
        "origin": sdp.origin.username if sdp.origin is not None else None,
        "session_name": sdp.session_name,
        "uri": sdp.uri,
        "timing": [timing.start, timing.stop] if timing is not None else None,
        "ssrc": sdp.ssrc,
        "ssrc_int": sdp.ssrc_int,
        "media": media,
    }


def _split_endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else -1


def _user(uri: str) -> str:
    """The user part of a sip: URI (the GB28181 20-digit id), else the whole URI."""
    rest = uri.partition(":")[2] or uri
    user, at, _ = rest.partition("@")
    return user if at else rest


class SipAnalyzer:
    """Running tables of the SIP seen in a capture (see the module docstring).

    Attributes:
        counters: "sip_messages", "sip_malformed", "sip_transactions_ignored", ...
        warnings: notes for the report (bodies that do not parse, TCP directions that broke).
    """

    def __init__(
        self,
        *,
        max_transactions: int = DEFAULT_MAX_SIP_TRANSACTIONS,
        max_sessions: int = DEFAULT_MAX_SIP_SESSIONS,
        max_messages: int = DEFAULT_MAX_SIP_MESSAGES,
    ) -> None:
        self._max_transactions = max_transactions
        self._max_sessions = max_sessions
        self._max_messages = max_messages
        self._transactions: dict[tuple[str, str], dict[str, Any]] = {}
        self._sessions: dict[str, dict[str, Any]] = {}
        self._registrations: dict[str, dict[str, Any]] = {}
        self._messages: list[dict[str, Any]] = []
        self._bodies: dict[tuple[str, str], dict[str, Any]] = {}  # (call_id, cseq) -> message entry (dedup)
        self.keepalives: dict[str, int] = {}
        self.counters: dict[str, int] = {}
        self.warnings: list[str] = []
        self._start: float | None = None

    @property
    def seen(self) -> bool:
        """Whether any SIP message was read."""
        return bool(self.counters.get("sip_messages"))

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def warn(self, text: str) -> None:
        if len(self.warnings) < MAX_SIP_WARNINGS:
            self.warnings.append(text)
        else:
            self.count("sip_warnings_dropped")

    # -- input -------------------------------------------------------------------------------------------------

    def datagram(self, src: bytes, sport: int, dst: bytes, dport: int, data: bytes, now: float) -> None:
        """One UDP payload that `looks_like_sip` (or arrived on a SIP port)."""
        if not data.strip(b"\r\n\x00 "):
            self.count("sip_keepalives")  # RFC 5626 §3.5.1 CRLF keepalive
            return
        try:
            message = parse_message(data)
        except ProtocolError:
            self.count("sip_malformed")
            return
        self.message(message, "udp", format_endpoint(src, sport), format_endpoint(dst, dport), now)

    def message(self, message: SipRequest | SipResponse, transport: str, src: str, dst: str, now: float) -> None:
        """One parsed SIP message from `src` to `dst` ("ip:port") at capture time `now`."""
        try:
            call_id = message.call_id
            cseq = message.cseq
            branch = message.via.branch or ""
        except ProtocolError:
            self.count("sip_malformed")
            return
        self.count("sip_messages")
        if self._start is None:
            self._start = now
        if isinstance(message, SipRequest):
            self._request(message, call_id, cseq.seq, cseq.method.upper(), branch, transport, src, dst, now)
        else:
            self._response(message, call_id, cseq.seq, cseq.method.upper(), branch, now)

    def _time(self, now: float) -> float:
        return round(now - (self._start or 0.0), 6)

    def _request(
        self,
        req: SipRequest,
        call_id: str,
        seq: int,
        method: str,
        branch: str,
        transport: str,
        src: str,
        dst: str,
        now: float,
    ) -> None:
        # ACK for a non-2xx final shares the INVITE's branch (RFC 3261 §17.1.1.3): keyed apart by its method.
        key = (branch or f"{call_id}/{seq}", method)
        tx = self._transactions.get(key)
        if tx is not None:
            tx["retransmissions"] += 1
            return
        if len(self._transactions) >= self._max_transactions:
            self.count("sip_transactions_ignored")
            return
        self._transactions[key] = tx = {
            "method": req.method,
            "branch": branch,
            "call_id": call_id,
            "cseq": seq,
            "transport": transport,
            "src": src,
            "dst": dst,
            "time": self._time(now),
            "responses": [],
            "final": None,
            "duration": None,
            "retransmissions": 0,
            "_t0": now,
        }
        if method == "INVITE":
            self._invite(req, call_id, src, dst, now)
        elif method in ("ACK", "BYE", "CANCEL"):
            session = self._sessions.get(call_id)
            if session is not None:
                if method == "ACK":
                    session["ack"] = True
                    if req.body and session["offer"] is not None and session["answer"] is None:
                        session["answer"] = self._sdp(req.body, "caller", call_id)  # late offer: answer in ACK
                else:
                    session[method.lower()] = {"from": src, "time": self._time(now), "status": None}
        elif method == "REGISTER":
            self._register(req, call_id, now)
        if req.body and method in ("MESSAGE", "NOTIFY"):
            ctype = (req.content_type or "").lower()
            if "manscdp" in ctype or req.body.lstrip()[:5] == b"<?xml":
                self._manscdp(req, call_id, seq, src, dst, now)

    def _response(self, resp: SipResponse, call_id: str, seq: int, method: str, branch: str, now: float) -> None:
        tx = self._transactions.get((branch or f"{call_id}/{seq}", method))
        status = resp.status_code
        if tx is None:
            self.count("sip_responses_unmatched")
        else:
            responses = tx["responses"]
            if any(r["status"] == status for r in responses):
                tx["retransmissions"] += 1
                return
            responses.append({"status": status, "reason": resp.reason, "time": self._time(now)})
            if status >= 200 and tx["final"] is None:
                tx["final"] = status
                tx["duration"] = round(now - tx["_t0"], 6)
        if method == "INVITE":
            session = self._sessions.get(call_id)
            if session is not None and status >= 200 and session["status"] is None:
                session["status"] = status
                if 200 <= status < 300 and resp.body:
                    sdp = self._sdp(resp.body, "callee", call_id)
                    if session["offer"] is None:
                        session["offer"] = sdp  # delayed offer: the 2xx carries the offer
                    else:
                        session["answer"] = sdp
        elif method in ("BYE", "CANCEL"):
            session = self._sessions.get(call_id)
            if session is not None and session.get(method.lower()) and status >= 200:
                session[method.lower()]["status"] = status
        elif method == "REGISTER":
            reg = self._registrations.get(call_id)
            if reg is not None:
                reg["statuses"].append(status)
                if status >= 200:
                    reg["outcome"] = _register_outcome(status, reg["expires"])
                    if 200 <= status < 300:
                        reg["date"] = resp.headers.get("Date")

    def _invite(self, req: SipRequest, call_id: str, src: str, dst: str, now: float) -> None:
        session = self._sessions.get(call_id)
        if session is not None:
            session["reinvites"] += 1
            return
        if len(self._sessions) >= self._max_sessions:
            self.count("sip_sessions_ignored")
            return
        try:
            channel = _user(req.to.uri)
        except ProtocolError:
            channel = None
        self._sessions[call_id] = {
            "call_id": call_id,
            "caller": src,
            "callee": dst,
            "channel": channel,
            "subject": req.headers.get("Subject"),
            "time": self._time(now),
            "offer": self._sdp(req.body, "caller", call_id) if req.body else None,
            "answer": None,
            "status": None,
            "ack": False,
            "bye": None,
            "cancel": None,
            "streams": [],
            "flags": [],
        }

    def _sdp(self, body: bytes, side: str, call_id: str) -> dict[str, Any] | None:
        try:
            return _sdp_summary(parse_sdp(_decode_text(body)), side)
        except ProtocolError as exc:
            self.count("sdp_malformed")
            self.warn(f"SIP {call_id}: SDP of the {side} does not parse: {exc}")
            return None

    def _register(self, req: SipRequest, call_id: str, now: float) -> None:
        reg = self._registrations.get(call_id)
        if reg is not None:
            reg["attempts"] += 1
            reg["authorized"] = reg["authorized"] or "Authorization" in req.headers
            return
        if len(self._registrations) >= self._max_sessions:
            self.count("sip_registrations_ignored")
            return
        try:
            device = _user(req.from_.uri)
            expires = req.expires
        except ProtocolError:
            device, expires = "", None
        self._registrations[call_id] = {
            "device": device,
            "call_id": call_id,
            "time": self._time(now),
            "expires": expires,
            "attempts": 1,
            "authorized": "Authorization" in req.headers,
            "statuses": [],
            "outcome": "no-response",
            "date": None,
        }

    def _manscdp(self, req: SipRequest, call_id: str, seq: int, src: str, dst: str, now: float) -> None:
        key = (call_id, f"{seq}")
        if key in self._bodies:
            return  # a retransmission under UDP
        self.count("manscdp_messages")
        try:
            record = parse_manscdp(req.body)
        except ProtocolError as exc:
            self.count("manscdp_malformed")
            self.warn(f"SIP {req.method} {call_id}: MANSCDP body does not parse: {exc}")
            return
        entry: dict[str, Any] = {
            "time": self._time(now),
            "method": req.method,
            "call_id": call_id,
            "src": src,
            "dst": dst,
            "root": record.root_tag,
            "cmd_type": record.command_type,
            "sn": record.sn,
            "device_id": record.device_id,
        }
        if isinstance(record, Keepalive):
            device = record.device_id or "?"
            self.keepalives[device] = self.keepalives.get(device, 0) + 1
            entry["status"] = record.status
        elif isinstance(record, (CatalogResponse, RecordInfoResponse)):
            entry["sum_num"] = record.sum_num
            entry["items"] = len(record.items)
        elif isinstance(record, DeviceControl):
            if record.ptz_cmd is not None:
                entry["ptz_cmd"] = record.ptz_cmd
                try:
                    command = record.ptz_command
                    entry["ptz"] = command.describe() if command is not None else None
                except ProtocolError as exc:
                    entry["ptz"] = None
                    self.warn(f"SIP MESSAGE {call_id}: PTZCmd {record.ptz_cmd!r} does not decode: {exc}")
            for name in ("tele_boot", "record_cmd", "guard_cmd", "alarm_cmd", "iframe_cmd"):
                value = getattr(record, name)
                if value is not None:
                    entry[name] = value
        if len(self._messages) >= self._max_messages:
            self.count("manscdp_messages_not_listed")
            return
        self._bodies[key] = entry
        self._messages.append(entry)

    # -- results -----------------------------------------------------------------------------------------------

    def tie_streams(self, streams: list[dict[str, Any]]) -> None:
        """Add `"session"` (a Call-ID or None) and `"flags"` to each RTP stream summary, and flag the sessions.

        Streams of one RTP source (PS video + audio) share the verdict. Non-RTP streams are left alone.
        """
        for s in streams:
            if "ssrc" not in s:
                continue
            session, flags = self._match(s)
            s["session"] = session["call_id"] if session is not None else None
            s["flags"] = flags
            if session is not None and s["index"] not in session["streams"]:
                session["streams"].append(s["index"])
        for session in self._sessions.values():
            status = session["status"]
            negotiated = session["offer"] is not None and status is not None and 200 <= status < 300
            if negotiated and not session["streams"] and "no-media" not in session["flags"]:
                session["flags"].append("no-media")

    def _match(self, s: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
        if not self._sessions:
            return None, []
        transport = s["transport"]
        ssrc = s["ssrc"]
        src = _split_endpoint(s["src"]) if s.get("src") else ("", -1)
        dst = _split_endpoint(s["dst"]) if s.get("dst") else ("", -1)
        best: tuple[int, dict[str, Any], dict[str, Any], dict[str, Any] | None] | None = None
        for session in self._sessions.values():
            offer, answer = session["offer"], session["answer"]
            for sdp, other in ((offer, answer), (answer, offer)):
                if sdp is None:
                    continue
                for m in sdp["media"]:
                    endpoint = (m["address"], m["port"])
                    # UDP: the receiver's c=/m=. TCP: the passive side listens there, and media may flow either
                    # way over that connection (GB28181 active mode: the platform connects, the device sends).
                    hit = endpoint == dst or (transport == "tcp" and endpoint == src)
                    score = 2 if hit else 0
                    want = _expected_ssrc(session)
                    if want is not None and want == ssrc:
                        score += 1
                    if score and (best is None or score > best[0]):
                        best = (score, session, m, other)
        if best is None:
            return None, ["no-session"]
        score, session, media, other = best
        flags: list[str] = []
        if score < 2:
            flags.append("port-mismatch")
        want = _expected_ssrc(session)
        if want is not None and want != ssrc:
            flags.append("ssrc-zero" if ssrc == 0 else "ssrc-mismatch")
        if media["transport"] != transport:
            flags.append("transport-mismatch")
        if transport == "udp" and score >= 2 and other is not None:
            # The sender is the other side of the negotiation: its c= should be where the packets come from.
            senders = {m["address"] for m in other["media"] if m["address"]}
            if senders and src[0] not in senders and "0.0.0.0" not in senders:
                flags.append("unexpected-source")
        return session, flags

    def summary(self) -> dict[str, Any]:
        """The `"sip"` object of the JSON summary."""
        transactions = [{k: v for k, v in tx.items() if not k.startswith("_")} for tx in self._transactions.values()]
        return {
            "transactions": transactions,
            "sessions": list(self._sessions.values()),
            "messages": self._messages,
            "registrations": list(self._registrations.values()),
            "keepalives": dict(self.keepalives),
        }


def _expected_ssrc(session: dict[str, Any]) -> int | None:
    # Appendix F note 4: the answer's y= wins (a device of another domain picks the SSRC).
    for sdp in (session["answer"], session["offer"]):
        if sdp is not None and sdp["ssrc_int"] is not None:
            return int(sdp["ssrc_int"])
    return None


def _register_outcome(status: int, expires: int | None) -> str:
    if 200 <= status < 300:
        return "unregistered" if expires == 0 else "registered"
    if status in (401, 407):
        return "challenged"
    if status == 403:
        return "forbidden"
    return f"failed {status}"


class SipTcpFlow:
    """One TCP direction carrying SIP: the stream parser and where its messages come from.

    After a hole in the capture the framing is lost: bytes are skipped until a chunk starts like a SIP message.
    """

    __slots__ = ("dst", "parser", "src")

    def __init__(self, src: str, dst: str) -> None:
        self.src = src
        self.dst = dst
        self.parser: SipStreamParser | None = SipStreamParser()

    def gap(self) -> None:
        """Bytes are missing from the stream here."""
        self.parser = None

    def feed(self, analyzer: SipAnalyzer, data: bytes, now: float) -> bool:
        """Add reassembled bytes; False once the stream is broken (stop following it)."""
        parser = self.parser
        if parser is None:
            if not looks_like_sip(data):
                analyzer.count("sip_tcp_skipped_bytes", len(data))
                return True
            parser = self.parser = SipStreamParser()
        try:
            parser.receive_data(data)
            while True:
                event = parser.next_event()
                if isinstance(event, (SipRequest, SipResponse)):
                    analyzer.message(event, "tcp", self.src, self.dst, now)
                elif event is NEED_DATA or isinstance(event, ConnectionClosed):
                    return True
        except ProtocolError as exc:
            analyzer.count("sip_malformed")
            analyzer.warn(f"SIP over TCP {self.src} -> {self.dst}: stopped reading: {exc}")
            return False
