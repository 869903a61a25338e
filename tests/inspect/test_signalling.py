"""`fluxkit inspect` on captures with SIP: transactions, GB28181 sessions, MANSCDP bodies, RTP flows tied to sessions.

The capture is built by hand (capgen): a device registering with digest (401 then 200), keepalives, a Catalog
query and response, three INVITE sessions (one with PS-over-RTP media on the negotiated port with the y= SSRC,
one whose device sends another SSRC, one answered but never sending), a flow with the right SSRC on a port
nobody negotiated, a PTZ DeviceControl, a body that does not parse, and BYE. Then SIP over TCP, SIP only,
and garbage that looks like SIP.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxkit.cli import main
from fluxkit.errors import ProtocolError
from fluxkit.inspect import inspect_file
from fluxkit.inspect._sip import looks_like_sip
from tests.inspect import capgen, media

PLATFORM = bytes([10, 0, 0, 1])
DEVICE = bytes([10, 0, 0, 2])
PLATFORM_ID = "34020000002000000001"
DEVICE_ID = "34020000001320000001"
CHANNEL = "34020000001310000001"


def sip(
    start: str, call_id: str, cseq: str, branch: str, *, extra: str = "", body: bytes = b"", ctype: str = ""
) -> bytes:
    head = (
        f"{start}\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.9:5060;rport;branch={branch}\r\n"
        f"From: <sip:{DEVICE_ID}@3402000000>;tag=f1\r\n"
        f"To: <sip:{CHANNEL}@3402000000>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq}\r\n"
        f"Max-Forwards: 70\r\n"
        f"{extra}"
    )
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def request(method: str, call_id: str, seq: int, branch: str, **kw: Any) -> bytes:
    uri = f"sip:{CHANNEL}@3402000000" if method != "REGISTER" else f"sip:{PLATFORM_ID}@3402000000"
    return sip(f"{method} {uri} SIP/2.0", call_id, f"{seq} {method}", branch, **kw)


def response(status: str, method: str, call_id: str, seq: int, branch: str, **kw: Any) -> bytes:
    return sip(f"SIP/2.0 {status}", call_id, f"{seq} {method}", branch, **kw)


def manscdp(xml: str) -> bytes:
    return b'<?xml version="1.0" encoding="GB2312"?>\r\n' + xml.encode()


def sdp(addr: str, port: int, y: str, *, name: str = "Play", proto: str = "RTP/AVP", extra: str = "") -> bytes:
    return (
        f"v=0\r\no=x 0 0 IN IP4 {addr}\r\ns={name}\r\nc=IN IP4 {addr}\r\nt=0 0\r\n"
        f"m=video {port} {proto} 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n{extra}y={y}\r\n"
    ).encode()


MSG = "Application/MANSCDP+xml"
SDP = "application/sdp"


def frame(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    return capgen.ethernet(capgen.ETH_IPV4, capgen.ipv4(17, capgen.udp(sport, dport, payload), src=src, dst=dst))


class Capture:
    def __init__(self) -> None:
        self.t = 1000.0
        self.packets: list[tuple[float, bytes]] = []

    def add(self, src: bytes, dst: bytes, payload: bytes, sport: int = 5060, dport: int = 5060) -> None:
        self.t += 0.01
        self.packets.append((self.t, frame(src, dst, sport, dport, payload)))

    def up(self, payload: bytes) -> None:  # device -> platform
        self.add(DEVICE, PLATFORM, payload)

    def down(self, payload: bytes) -> None:  # platform -> device
        self.add(PLATFORM, DEVICE, payload)

    def rtp(self, ssrc: int, dport: int, *, src: bytes = DEVICE, sport: int = 15060, frames: int = 10) -> None:
        packets, _ = media.ps_rtp(frames=frames, gop=5, ssrc=ssrc)
        for p in packets:
            self.add(src, PLATFORM, p.serialize(), sport, dport)

    def pcap(self) -> bytes:
        return capgen.pcap_file(self.packets, 1)


def gb28181_flow() -> bytes:
    c = Capture()
    # REGISTER with digest: 401, then 200 (a retransmitted 401 too).
    c.up(request("REGISTER", "reg-1", 1, "z9hG4bKr1", extra="Expires: 3600\r\n"))
    c.down(
        response(
            "401 Unauthorized",
            "REGISTER",
            "reg-1",
            1,
            "z9hG4bKr1",
            extra='WWW-Authenticate: Digest realm="3402000000", nonce="n"\r\n',
        )
    )
    c.down(response("401 Unauthorized", "REGISTER", "reg-1", 1, "z9hG4bKr1"))
    auth = 'Authorization: Digest username="x", realm="3402000000", nonce="n", uri="sip:x", response="00"\r\n'
    c.up(request("REGISTER", "reg-1", 2, "z9hG4bKr2", extra="Expires: 3600\r\n" + auth))
    c.down(response("200 OK", "REGISTER", "reg-1", 2, "z9hG4bKr2", extra="Date: 2024-01-01T12:00:00.000\r\n"))
    # Keepalives (one retransmitted: counted once).
    for i in range(3):
        body = manscdp(
            f"<Notify><CmdType>Keepalive</CmdType><SN>{i + 1}</SN><DeviceID>{DEVICE_ID}</DeviceID>"
            "<Status>OK</Status></Notify>"
        )
        msg = request("MESSAGE", f"ka-{i}", 20 + i, f"z9hG4bKk{i}", body=body, ctype=MSG)
        c.up(msg)
        if i == 1:
            c.up(msg)
        c.down(response("200 OK", "MESSAGE", f"ka-{i}", 20 + i, f"z9hG4bKk{i}"))
    # Catalog query and a two-item response.
    query = manscdp(f"<Query><CmdType>Catalog</CmdType><SN>7</SN><DeviceID>{DEVICE_ID}</DeviceID></Query>")
    c.down(request("MESSAGE", "cat-q", 1, "z9hG4bKc1", ctype=MSG, body=query))
    c.up(response("200 OK", "MESSAGE", "cat-q", 1, "z9hG4bKc1"))
    items = "".join(
        f"<Item><DeviceID>3402000000131000000{n}</DeviceID><Name>cam {n}</Name><Status>ON</Status></Item>"
        for n in (1, 2)
    )
    c.up(request("MESSAGE", "cat-r", 1, "z9hG4bKc2", ctype=MSG, body=manscdp(
        f"<Response><CmdType>Catalog</CmdType><SN>7</SN><DeviceID>{DEVICE_ID}</DeviceID><SumNum>2</SumNum>"
        f'<DeviceList Num="2">{items}</DeviceList></Response>')))  # fmt: skip
    c.down(response("200 OK", "MESSAGE", "cat-r", 1, "z9hG4bKc2"))
    # Session 1: live Play over UDP; y= offered and answered 0100000001.
    subject = f"Subject: {CHANNEL}:0100000001,{PLATFORM_ID}:0\r\n"
    c.down(
        request("INVITE", "call-1", 1, "z9hG4bKi1", extra=subject, ctype=SDP, body=sdp("10.0.0.1", 30000, "0100000001"))
    )
    c.up(response("100 Trying", "INVITE", "call-1", 1, "z9hG4bKi1"))
    answer = sdp("10.0.0.2", 15060, "0100000001").replace(b"recvonly", b"sendonly")
    c.up(response("200 OK", "INVITE", "call-1", 1, "z9hG4bKi1", ctype=SDP, body=answer))
    c.down(request("ACK", "call-1", 1, "z9hG4bKa1"))
    # Session 2: the device answers y=0100000002 but sends SSRC 0x1234.
    c.down(request("INVITE", "call-2", 1, "z9hG4bKi2", ctype=SDP, body=sdp("10.0.0.1", 30002, "0100000002")))
    c.up(response("200 OK", "INVITE", "call-2", 1, "z9hG4bKi2", ctype=SDP, body=sdp("10.0.0.2", 15062, "0100000002")))
    c.down(request("ACK", "call-2", 1, "z9hG4bKa2"))
    # Session 3: a Playback over TCP (passive), answered, never any media.
    playback = sdp(
        "10.0.0.1", 30004, "1100000003", name="Playback", proto="TCP/RTP/AVP", extra="a=setup:passive\r\n"
    ).replace(b"t=0 0", b"u=34020000001310000001:0\r\nt=1704067200 1704070800")
    c.down(request("INVITE", "call-3", 1, "z9hG4bKi3", ctype=SDP, body=playback))
    c.up(response("200 OK", "INVITE", "call-3", 1, "z9hG4bKi3", ctype=SDP, body=sdp(
        "10.0.0.2", 15064, "1100000003", proto="TCP/RTP/AVP", extra="a=setup:active\r\n")))  # fmt: skip
    c.down(request("ACK", "call-3", 1, "z9hG4bKa3"))
    # Media: the right flow, the wrong SSRC, and the right SSRC on a port nobody negotiated.
    c.rtp(100000001, 30000)
    c.rtp(0x1234, 30002, sport=15062)
    c.rtp(100000001, 30010, sport=15070)
    # PTZ: right, pan speed 0x80.
    ptz = manscdp(
        f"<Control><CmdType>DeviceControl</CmdType><SN>11</SN><DeviceID>{CHANNEL}</DeviceID>"
        "<PTZCmd>A50F010180000036</PTZCmd><Info><ControlPriority>5</ControlPriority></Info></Control>"
    )
    c.down(request("MESSAGE", "ptz-1", 1, "z9hG4bKp1", ctype=MSG, body=ptz))
    c.up(response("200 OK", "MESSAGE", "ptz-1", 1, "z9hG4bKp1"))
    # A body that does not parse: a warning, not a failure.
    c.up(request("MESSAGE", "bad-1", 1, "z9hG4bKb1", ctype=MSG, body=b"<Notify><CmdType>Keep"))
    # BYE for session 1.
    c.down(request("BYE", "call-1", 2, "z9hG4bKy1"))
    c.up(response("200 OK", "BYE", "call-1", 2, "z9hG4bKy1"))
    return c.pcap()


def inspect_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> dict[str, Any]:
    path = tmp_path / "sip.pcap"
    path.write_bytes(data)
    rc = main(["inspect", str(path), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary: dict[str, Any] = json.loads(out.splitlines()[-1])
    assert summary["type"] == "summary"
    return summary


@pytest.fixture(scope="module")
def flow() -> bytes:
    return gb28181_flow()


def test_transactions(tmp_path: Path, capsys: pytest.CaptureFixture[str], flow: bytes) -> None:
    summary = inspect_json(tmp_path, capsys, flow)
    txs = summary["sip"]["transactions"]
    by = {(t["call_id"], t["cseq"], t["method"]): t for t in txs}
    reg1 = by[("reg-1", 1, "REGISTER")]
    assert [r["status"] for r in reg1["responses"]] == [401]
    assert reg1["final"] == 401
    assert reg1["retransmissions"] == 1
    assert (reg1["src"], reg1["dst"], reg1["transport"]) == ("10.0.0.2:5060", "10.0.0.1:5060", "udp")
    assert reg1["duration"] == pytest.approx(0.01)
    assert by[("reg-1", 2, "REGISTER")]["final"] == 200
    invite = by[("call-1", 1, "INVITE")]
    assert [r["status"] for r in invite["responses"]] == [100, 200]
    assert by[("call-1", 1, "ACK")]["responses"] == []
    assert by[("call-1", 2, "BYE")]["final"] == 200
    assert by[("ka-1", 21, "MESSAGE")]["retransmissions"] == 1
    assert by[("bad-1", 1, "MESSAGE")]["final"] is None
    assert summary["counters"]["sip_messages"] > 30


def test_registrations(tmp_path: Path, capsys: pytest.CaptureFixture[str], flow: bytes) -> None:
    (reg,) = inspect_json(tmp_path, capsys, flow)["sip"]["registrations"]
    assert reg["device"] == DEVICE_ID
    assert reg["statuses"] == [401, 200]
    assert reg["outcome"] == "registered"
    assert (reg["attempts"], reg["authorized"]) == (2, True)
    assert reg["expires"] == 3600
    assert reg["date"] == "2024-01-01T12:00:00.000"


def test_sessions_and_media(tmp_path: Path, capsys: pytest.CaptureFixture[str], flow: bytes) -> None:
    summary = inspect_json(tmp_path, capsys, flow)
    sessions = {s["call_id"]: s for s in summary["sip"]["sessions"]}
    assert set(sessions) == {"call-1", "call-2", "call-3"}
    one = sessions["call-1"]
    assert (one["status"], one["ack"], one["bye"]["status"]) == (200, True, 200)
    assert (one["caller"], one["channel"]) == ("10.0.0.1:5060", CHANNEL)
    assert one["subject"].startswith(CHANNEL)
    offer, answer = one["offer"], one["answer"]
    assert (offer["side"], offer["session_name"], offer["ssrc"], offer["ssrc_int"]) == (
        "caller",
        "Play",
        "0100000001",
        100000001,
    )
    (m,) = offer["media"]
    assert (m["address"], m["port"], m["transport"], m["direction"], m["formats"]) == (
        "10.0.0.1",
        30000,
        "udp",
        "recvonly",
        ["96 PS/90000"],
    )
    assert (answer["side"], answer["media"][0]["port"]) == ("callee", 15060)
    three = sessions["call-3"]
    assert three["offer"]["session_name"] == "Playback"
    assert three["offer"]["uri"] == f"{CHANNEL}:0"
    assert three["offer"]["timing"] == [1704067200, 1704070800]
    assert (three["offer"]["media"][0]["transport"], three["offer"]["media"][0]["setup"]) == ("tcp", "passive")
    assert three["answer"]["media"][0]["setup"] == "active"
    assert (three["flags"], three["streams"]) == (["no-media"], [])

    rtp = {(s["ssrc"], s["dst"]): s for s in summary["streams"]}
    good = rtp[(100000001, "10.0.0.1:30000")]
    assert (good["session"], good["flags"], good["payload"], good["codec"]) == ("call-1", [], "ps", "h264")
    assert good["frames"] == 10
    wrong = rtp[(0x1234, "10.0.0.1:30002")]
    assert (wrong["session"], wrong["flags"]) == ("call-2", ["ssrc-mismatch"])
    moved = rtp[(100000001, "10.0.0.1:30010")]
    assert (moved["session"], moved["flags"]) == ("call-1", ["port-mismatch"])
    assert sorted(one["streams"]) == sorted([good["index"], moved["index"]])
    assert (sessions["call-2"]["streams"], sessions["call-2"]["flags"]) == ([wrong["index"]], [])


def test_manscdp_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str], flow: bytes) -> None:
    summary = inspect_json(tmp_path, capsys, flow)
    sipj = summary["sip"]
    assert sipj["keepalives"] == {DEVICE_ID: 3}
    msgs = sipj["messages"]
    assert [m["cmd_type"] for m in msgs] == ["Keepalive"] * 3 + ["Catalog", "Catalog", "DeviceControl"]
    cat = msgs[4]
    assert (cat["root"], cat["sn"], cat["device_id"], cat["sum_num"], cat["items"]) == ("Response", 7, DEVICE_ID, 2, 2)
    ptz = msgs[5]
    assert ptz["ptz_cmd"] == "A50F010180000036"
    assert ptz["ptz"] == "move right pan=128 tilt=0 zoom=0"
    assert ptz["device_id"] == CHANNEL
    assert any("MANSCDP body does not parse" in w for w in summary["warnings"])
    assert summary["counters"]["manscdp_malformed"] == 1


def test_human_output(tmp_path: Path, capsys: pytest.CaptureFixture[str], flow: bytes) -> None:
    path = tmp_path / "sip.pcap"
    path.write_bytes(flow)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    sig = lines.index("  Signalling (SIP):")
    assert all("Stream #" not in line for line in lines[sig:])
    assert f"REGISTER {DEVICE_ID}: 401 -> 200 (registered, 2 requests)" in out
    assert "PTZ move right pan=128 tilt=0 zoom=0 (A50F010180000036)" in out
    for flag in ("[ssrc-mismatch]", "[port-mismatch]", "[no-media]"):
        assert flag in out
    assert "y=0100000001 (0x05f5e101)" in out
    assert f"Keepalive: {DEVICE_ID} x 3" in out
    assert "2 items of 2" in out


def test_sip_only_capture_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = Capture()
    c.up(request("REGISTER", "r", 1, "z9hG4bK1"))
    c.down(response("403 Forbidden", "REGISTER", "r", 1, "z9hG4bK1"))
    summary = inspect_json(tmp_path, capsys, c.pcap())
    assert summary["streams"] == []
    (reg,) = summary["sip"]["registrations"]
    assert (reg["statuses"], reg["outcome"]) == ([403], "forbidden")
    path = tmp_path / "sip.pcap"
    assert main(["inspect", str(path)]) == 0
    assert "403 (forbidden" in capsys.readouterr().out


def test_sip_on_another_port_and_no_sip_anywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = Capture()
    c.add(DEVICE, PLATFORM, request("MESSAGE", "m", 1, "z9hG4bKx"), 15000, 16000)
    summary = inspect_json(tmp_path, capsys, c.pcap())
    assert [t["method"] for t in summary["sip"]["transactions"]] == ["MESSAGE"]
    # A capture with neither media nor SIP is still refused.
    c = Capture()
    c.add(DEVICE, PLATFORM, b"hello, not SIP", 1, 2)
    path = tmp_path / "none.pcap"
    path.write_bytes(c.pcap())
    assert main(["inspect", str(path)]) == 2
    capsys.readouterr()


def test_rtp_without_sip_has_no_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = Capture()
    c.rtp(5, 30000)
    summary = inspect_json(tmp_path, capsys, c.pcap())
    (s,) = summary["streams"]
    assert (s["session"], s["flags"]) == (None, [])
    assert summary["sip"]["sessions"] == []


def tcp_sip(
    messages: list[tuple[float, bytes]], sport: int, dport: int, src: bytes, dst: bytes
) -> list[tuple[float, bytes]]:
    """One TCP direction carrying `messages` (each at its time), cut in 50-byte segments across message ends."""
    out = []
    seq = 1000
    for t, message in messages:
        for i in range(0, len(message), 50):
            piece = message[i : i + 50]
            seg = capgen.tcp(sport, dport, seq, piece)
            out.append((t + i * 1e-6, capgen.ethernet(capgen.ETH_IPV4, capgen.ipv4(6, seg, src=src, dst=dst))))
            seq += len(piece)
    return out


def test_sip_over_tcp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    offer = sdp("127.0.0.1", 6000, "0100000009", proto="TCP/RTP/AVP", extra="a=setup:passive\r\n")
    answer = sdp("10.0.0.2", 9, "0100000009", proto="TCP/RTP/AVP", extra="a=setup:active\r\n")
    down = [
        (10.0, request("INVITE", "tcp-1", 1, "z9hG4bKt1", ctype=SDP, body=offer)),
        (12.0, request("ACK", "tcp-1", 1, "z9hG4bKt2")),
    ]
    up = [
        (11.0, response("100 Trying", "INVITE", "tcp-1", 1, "z9hG4bKt1")),
        (11.5, response("200 OK", "INVITE", "tcp-1", 1, "z9hG4bKt1", ctype=SDP, body=answer)),
    ]
    packets = tcp_sip(down, 40000, 5060, PLATFORM, DEVICE) + tcp_sip(up, 5060, 40000, DEVICE, PLATFORM)
    # TCP media: the device connects (active) to the platform's passive port and sends RFC 4571 framed PS
    # (media.tcp_frames sends 127.0.0.1:41000 -> 127.0.0.1:6000).
    rtp_packets, _ = media.ps_rtp(frames=5, gop=5, ssrc=100000009)
    packets += media.tcp_frames(media.rfc4571(rtp_packets), sport=41000, dport=6000, start=20.0)
    packets.sort(key=lambda p: p[0])
    summary = inspect_json(tmp_path, capsys, capgen.pcap_file(packets, 1))
    txs = summary["sip"]["transactions"]
    assert [(t["method"], t["transport"], [r["status"] for r in t["responses"]]) for t in txs] == [
        ("INVITE", "tcp", [100, 200]),
        ("ACK", "tcp", []),
    ]
    (session,) = summary["sip"]["sessions"]
    assert session["offer"]["media"][0]["setup"] == "passive"
    assert session["answer"]["media"][0]["transport"] == "tcp"
    (s,) = summary["streams"]
    assert (s["transport"], s["session"], s["flags"]) == ("tcp", "tcp-1", [])


def test_sip_over_tcp_broken_stream_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
    c = Capture()
    c.up(request("REGISTER", "r", 1, "z9hG4bK1"))
    packets = tcp_sip([(1.0, bad)], 40000, 5060, PLATFORM, DEVICE)  # no Content-Length on a stream
    summary = inspect_json(tmp_path, capsys, capgen.pcap_file(packets + c.packets, 1))
    assert any("SIP over TCP" in w for w in summary["warnings"])
    assert summary["counters"]["sip_malformed"] == 1


def test_looks_like_sip() -> None:
    assert looks_like_sip(b"SIP/2.0 200 OK\r\n")
    assert looks_like_sip(b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n")
    assert looks_like_sip(b"MESSAGE sips:a@b SIP/2.0")
    assert not looks_like_sip(b"GET / HTTP/1.1\r\n")
    assert not looks_like_sip(b"\x80\x60\x00\x01")
    assert not looks_like_sip(b"")


_SIP_LIKE = st.one_of(
    st.binary(max_size=300).map(lambda b: b"SIP/2.0 " + b),
    st.binary(max_size=300).map(lambda b: b"MESSAGE sip:" + b),
    st.binary(max_size=300).map(
        lambda b: b"INVITE sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP h;branch=b\r\n" + b
    ),
    st.binary(max_size=300),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_SIP_LIKE, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_garbage_sip_never_crashes(
    tmp_path_factory: pytest.TempPathFactory, payloads: list[bytes], rnd: random.Random
) -> None:
    c = Capture()
    for p in payloads:
        c.add(DEVICE, PLATFORM, p, 5060, 5060 if rnd.random() < 0.5 else 5070)
    packets = c.packets + tcp_sip([(2000.0 + i, p) for i, p in enumerate(payloads)], 40000, 5060, PLATFORM, DEVICE)
    path = tmp_path_factory.mktemp("g") / "g.pcap"
    path.write_bytes(capgen.pcap_file(packets, 1))
    try:
        report = inspect_file(path)
    except ProtocolError:
        return
    json.dumps(report.to_json())
    from fluxkit.inspect import format_human

    format_human(report)
