"""`fluxkit inspect` end to end, in-process: every input format, the JSON lines, the summary, and bad input.

The inputs are made in the test (mediagen streams, fluxkit's PS muxer and RTP packetizers, capture files built
by capgen), so the expected frame counts, keyframes and losses are known exactly.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fluxkit.cli import main
from fluxkit.errors import ProtocolError
from fluxkit.inspect import FrameInfo, inspect_file
from fluxkit.protocols.rtp import RtpPacket
from tests.inspect import capgen, media


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["inspect", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rc, out, err = run(capsys, str(path), "--json")
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1]["type"] == "summary"
    assert all(o["type"] == "frame" for o in lines[:-1])
    return lines[:-1], lines[-1]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- raw Annex-B --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "name"), [("h264", "clip.h264"), ("hevc", "clip.h265"), ("h264", "clip.bin"), ("hevc", "clip.bin")]
)
def test_annexb(tmp_path: Path, capsys: pytest.CaptureFixture[str], codec: str, name: str) -> None:
    from tests.mediagen import encode_annexb

    path = write(tmp_path, name, encode_annexb(codec, width=320, height=240, frames=50, gop=10))
    frames, summary = run_json(capsys, path)
    assert summary["format"] == codec
    (s,) = summary["streams"]
    assert (s["codec"], s["frames"], s["keyframes"], s["width"], s["height"]) == (codec, 50, 5, 320, 240)
    assert s["timestamps"] == "assumed"
    assert s["gop"] == 10
    assert s["gop_max"] == 10
    assert s["fps"] == 25
    assert "ssrc" not in s
    assert [f["pts"] for f in frames] == [i * 3600 for i in range(50)]
    assert [f["frame"] for f in frames] == list(range(50))
    assert sum(f["keyframe"] for f in frames) == 5
    key = frames[0]["nal_types"]
    assert (5 in key and 7 in key) if codec == "h264" else ((33 in key and 19 in key) or 20 in key)
    assert all(f["stream"] == "video" and f["codec"] == codec and f["index"] == 0 for f in frames)
    rc, out, _ = run(capsys, str(path))
    assert rc == 0
    assert "320x240" in out
    assert "50 frames" in out
    assert "(assumed)" in out


@pytest.mark.media
@pytest.mark.parametrize(("name", "codec", "keyframes"), [("avatar.h264", "h264", 13), ("avatar.h265", "hevc", 8)])
def test_shared_clips(
    shared_media: Path, capsys: pytest.CaptureFixture[str], name: str, codec: str, keyframes: int
) -> None:
    frames, summary = run_json(capsys, shared_media / name)
    (s,) = summary["streams"]
    assert (s["codec"], s["frames"], s["keyframes"], s["width"], s["height"]) == (codec, 308, keyframes, 768, 320)
    assert len(frames) == 308
    assert s["duration"] == pytest.approx(308 / 25)


# -- MPEG-PS ------------------------------------------------------------------------------------------------------


def test_ps_video_and_audio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "gb.ps", media.ps_file(audio=True))
    frames, summary = run_json(capsys, path)
    assert summary["format"] == "mpeg-ps"
    video, audio = sorted(summary["streams"], key=lambda s: s["stream"], reverse=True)
    assert (video["stream"], video["codec"], video["frames"], video["keyframes"], video["width"]) == (
        "video",
        "h264",
        50,
        2,
        320,
    )
    assert (audio["stream"], audio["codec"], audio["frames"]) == ("audio", "pcm_alaw", 50)
    assert video["fps"] == 25
    assert video["duration"] == pytest.approx(2.0)
    assert audio["gop"] is None
    vf = [f for f in frames if f["stream"] == "video"]
    assert [f["pts"] for f in vf] == [i * 3600 + 9000 for i in range(50)]
    af = [f for f in frames if f["stream"] == "audio"]
    assert all(f["nal_types"] == [] and f["size"] == 320 and f["index"] == audio["index"] for f in af)


# -- RTP dump (RFC 4571) ------------------------------------------------------------------------------------------


def test_rtp_dump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packets = media.video_rtp("hevc", pt=99)
    path = write(tmp_path, "dump.rtp", media.rfc4571(packets))
    frames, summary = run_json(capsys, path)
    assert summary["format"] == "rtp"
    (s,) = summary["streams"]
    assert (s["codec"], s["frames"], s["keyframes"], s["ssrc"], s["pt"], s["packets"], s["lost"]) == (
        "hevc",
        50,
        2,
        0x1234ABCD,
        99,
        len(packets),
        0,
    )
    assert s["transport"] == "file"
    assert all(f["ssrc"] == 0x1234ABCD for f in frames)
    # The RTP timestamp wrapped inside the stream: the depacketizer's unwrapped PTS keeps going up.
    pts = [f["pts"] for f in frames]
    assert pts == sorted(pts)
    assert pts[-1] - pts[0] == 49 * 3600


# -- pcap / pcapng: UDP -------------------------------------------------------------------------------------------


def noise() -> list[bytes]:
    """UDP payloads that are not RTP: DNS, SIP, RTCP (SR), random bytes, a lone RTP-looking packet."""
    rtcp_sr = bytes([0x80, 200, 0, 6]) + bytes(24)
    return [
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01",
        b"REGISTER sip:3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060\r\n\r\n",
        rtcp_sr,
        random.Random(1).randbytes(300),
        capgen.rtp(1, 2, 0xDEAD, b"lonely"),
    ]


def mixed_udp(packets: list[RtpPacket], *, linktype: int = 1) -> list[tuple[float, bytes]]:
    frames = media.udp_frames([p.serialize() for p in packets], linktype=linktype)
    junk = media.udp_frames(noise(), sport=53, dport=53, start=1000.005, linktype=linktype)
    rtcp = media.udp_frames(
        [bytes([0x81, 201, 0, 7]) + bytes(28)] * 3, sport=40001, dport=5005, start=1000.2, linktype=linktype
    )
    return sorted(frames + junk + rtcp, key=lambda f: f[0])


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("order", ["<", ">"])
def test_capture_udp_h264(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, order: str) -> None:
    packets = media.video_rtp("h264", pt=98)
    frames_in = mixed_udp(packets)
    data = (
        capgen.pcap_file(frames_in, 1, order=order) if fmt == "pcap" else capgen.pcapng_file(frames_in, 1, order=order)
    )
    path = write(tmp_path, f"cap.{fmt}", data)
    frames, summary = run_json(capsys, path)
    assert summary["format"] == fmt
    (s,) = summary["streams"]
    assert (s["codec"], s["frames"], s["keyframes"], s["width"], s["height"]) == ("h264", 50, 2, 320, 240)
    assert (s["ssrc"], s["pt"], s["packets"], s["lost"], s["duplicates"], s["reordered"]) == (
        0x1234ABCD,
        98,
        len(packets),
        0,
        0,
        0,
    )
    assert (s["src"], s["dst"], s["transport"], s["payload"]) == ("127.0.0.1:40000", "127.0.0.1:5004", "udp", "h264")
    assert s["gop"] == 25
    assert len(frames) == 50
    assert frames[0]["keyframe"]
    assert frames[25]["keyframe"]
    assert summary["counters"]["rtcp"] >= 3
    rc, out, _ = run(capsys, str(path))
    assert rc == 0
    assert "ssrc 0x1234abcd pt 98" in out
    assert "0 lost" in out


def test_capture_sll2_loss_duplicates_reordering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packets = media.video_rtp("h264", mtu=300)
    assert len(packets) > 100
    # Lose a whole P frame's packets and one fragment of another; duplicate two; swap two neighbours.
    ts = list(dict.fromkeys(p.timestamp for p in packets))  # frame order (the timestamps wrap)
    whole = [p for p in packets if p.timestamp == ts[10]]
    hit = [p for p in packets if p.timestamp == ts[30]]
    assert len(hit) >= 2
    lost = {id(p) for p in whole} | {id(hit[1])}
    sent = [p for p in packets if id(p) not in lost]
    sent.insert(5, sent[4])
    sent.insert(60, sent[59])
    sent[80], sent[81] = sent[81], sent[80]
    path = write(
        tmp_path, "loss.pcap", capgen.pcap_file(media.udp_frames([p.serialize() for p in sent], linktype=276), 276)
    )
    frames, summary = run_json(capsys, path)
    (s,) = summary["streams"]
    assert s["lost"] == len(lost)
    assert s["duplicates"] == 2
    assert s["reordered"] == 1
    assert s["frames"] == 48  # frame 10 lost whole, frame 30 dropped by the depacketizer
    assert s["dropped_frames"] >= 1
    assert sorted({f["pts"] - frames[0]["pts"] for f in frames}) == [i * 3600 for i in range(50) if i not in (10, 30)]


def test_capture_ps_over_udp_with_loss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packets, groups = media.ps_rtp()
    lost_frames = {7, 20}
    lost = {groups[7][0], groups[20][-1]}
    sent = [p.serialize() for i, p in enumerate(packets) if i not in lost]
    path = write(tmp_path, "gb.pcap", capgen.pcap_file(media.udp_frames(sent), 1))
    frames, summary = run_json(capsys, path)
    (s,) = summary["streams"]
    assert (s["codec"], s["payload"], s["lost"], s["width"]) == ("h264", "ps", 2, 320)
    assert s["frames"] == 50 - len(lost_frames)
    assert {f["pts"] for f in frames} == {i * 3600 for i in range(50) if i not in lost_frames}


def test_capture_g711_and_video_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = media.udp_frames([p.serialize() for p in media.video_rtp()], sport=40000, dport=5004)
    audio = media.udp_frames(
        [p.serialize() for p in media.g711_rtp()], sport=40002, dport=5006, start=1000.001, step=0.02
    )
    path = write(tmp_path, "av.pcapng", capgen.pcapng_file(sorted(video + audio), 1))
    frames, summary = run_json(capsys, path)
    by_codec = {s["codec"]: s for s in summary["streams"]}
    assert set(by_codec) == {"h264", "pcm_alaw"}
    a = by_codec["pcm_alaw"]
    assert (a["stream"], a["frames"], a["pt"], a["ssrc"], a["lost"]) == ("audio", 50, 8, 0xA1A1, 0)
    assert a["duration"] == pytest.approx(50 * 160 / 8000)
    assert a["bitrate"] == 64000
    assert a["jitter"] == pytest.approx(0, abs=1e-6)
    af = [f for f in frames if f["codec"] == "pcm_alaw"]
    assert all(f["stream"] == "audio" and f["nal_types"] == [] and f["keyframe"] for f in af)


def test_capture_ipv6(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packets = media.video_rtp()
    frames = [(1.0 + i / 100, capgen.ipv6(17, capgen.udp(7000, 7002, p.serialize()))) for i, p in enumerate(packets)]
    _, summary = run_json(capsys, write(tmp_path, "v6.pcap", capgen.pcap_file(frames, 229)))
    (s,) = summary["streams"]
    assert (s["frames"], s["src"], s["dst"]) == (50, "[::1]:7000", "[::1]:7002")


def test_capture_fragments_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packets = media.video_rtp()
    frames = media.udp_frames([p.serialize() for p in packets], linktype=101)
    frag = capgen.ipv4(17, b"\x00" * 64, frag=0x0020)
    frames.append((2000.0, frag))
    _, summary = run_json(capsys, write(tmp_path, "frag.pcap", capgen.pcap_file(frames, 101)))
    assert summary["counters"]["ip-fragment"] == 1


# -- pcap: TCP ----------------------------------------------------------------------------------------------------


def test_capture_tcp_rfc4571_out_of_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packets = media.video_rtp("h264", ssrc=0x55)
    stream = media.rfc4571(packets)
    frames_in = media.tcp_frames(stream, mss=700, shuffle=random.Random(3), retransmit=[2, 9])
    http = media.tcp_frames(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50, sport=40100, dport=80, start=1999.0)
    path = write(tmp_path, "tcp.pcap", capgen.pcap_file(sorted(frames_in + http), 1))
    _, summary = run_json(capsys, path)
    (s,) = summary["streams"]
    assert (s["transport"], s["codec"], s["frames"], s["keyframes"], s["ssrc"], s["lost"]) == (
        "tcp",
        "h264",
        50,
        2,
        0x55,
        0,
    )
    assert (s["src"], s["dst"]) == ("127.0.0.1:40001", "127.0.0.1:6000")


def test_capture_tcp_interleaved_with_rtsp_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packets = media.video_rtp("hevc", ssrc=0x66)
    reply = b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: 1234\r\nRange: npt=0.000-\r\n\r\n"
    rtcp = b"$\x01\x00\x1c" + bytes([0x80, 200, 0, 6]) + bytes(24)
    half = len(packets) // 2
    stream = reply + media.interleaved(packets[:half]) + rtcp + media.interleaved(packets[half:])
    path = write(
        tmp_path, "rtsp.pcap", capgen.pcap_file(media.tcp_frames(stream, sport=554, dport=40200, syn=False), 1)
    )
    _, summary = run_json(capsys, path)
    (s,) = summary["streams"]
    assert (s["transport"], s["codec"], s["frames"], s["lost"]) == ("tcp", "hevc", 50, 0)


# -- JSON, summary and API details --------------------------------------------------------------------------------


def test_on_frame_callback_and_report(tmp_path: Path) -> None:
    path = write(tmp_path, "gb.ps", media.ps_file())
    seen: list[FrameInfo] = []
    report = inspect_file(path, on_frame=seen.append, chunk_size=1000)
    assert len(seen) == 50
    assert report.streams[0]["frames"] == 50
    assert report.to_json()["type"] == "summary"


def test_small_chunks_same_result(tmp_path: Path) -> None:
    data = capgen.pcapng_file(mixed_udp(media.video_rtp()), 1)
    path = write(tmp_path, "x.pcapng", data)
    a = inspect_file(path)
    b = inspect_file(path, chunk_size=333)
    assert a.streams == b.streams


# -- bad input ----------------------------------------------------------------------------------------------------


def check_error(capsys: pytest.CaptureFixture[str], path: Path | str, rc_expected: int, text: str) -> None:
    rc, out, err = run(capsys, str(path))
    assert rc == rc_expected
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"fluxkit inspect: {path}: ")
    assert text in err
    assert "Traceback" not in err


def test_random_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_error(capsys, write(tmp_path, "r.bin", random.Random(7).randbytes(100_000)), 2, "not a recognised media file")


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_error(capsys, write(tmp_path, "e.h264", b""), 2, "empty")


def test_text_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_error(capsys, write(tmp_path, "notes.txt", b"hello, this is text\n" * 100), 2, "not a recognised media file")


def test_truncated_pcap_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_error(capsys, write(tmp_path, "t.pcap", capgen.pcap_file([], 1)[:10]), 2, "truncated")


def test_pcap_without_media(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = capgen.pcap_file(media.udp_frames(noise(), sport=53, dport=53), 1)
    check_error(capsys, write(tmp_path, "dns.pcap", data), 2, "no media")


def test_truncated_pcap_after_media_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = capgen.pcap_file(media.udp_frames([p.serialize() for p in media.video_rtp()]), 1)
    path = write(tmp_path, "cut.pcap", data[:-100])
    rc, out, err = run(capsys, str(path))
    assert rc == 0
    assert err == ""
    assert "warning: stopped at damage" in out
    assert "truncated" in out
    _, summary = run_json(capsys, path)
    assert summary["streams"][0]["frames"] >= 48


def test_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_error(capsys, tmp_path, 1, "cannot read")


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_error(capsys, tmp_path / "nope.pcap", 1, "No such file")


def test_big_zero_file_ends_with_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "zeros.bin"
    with path.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB of zeros without writing them
    check_error(capsys, path, 2, "not a recognised media file")


def test_huge_non_media_capture_stops_at_probe_limit(tmp_path: Path) -> None:
    frames = media.udp_frames([b"\x00" * 1000] * 3000, sport=53, dport=53)
    path = write(tmp_path, "big.pcap", capgen.pcap_file(frames, 1))
    with pytest.raises(ProtocolError, match="no media found in the first"):
        inspect_file(path, chunk_size=64 * 1024, probe_limit=256 * 1024)


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["inspect"]) == 2
    assert main(["inspect", "--help"]) == 0
    capsys.readouterr()


def test_python_dash_m(tmp_path: Path) -> None:
    path = write(tmp_path, "gb.ps", media.ps_file(frames=10, gop=5))
    done = subprocess.run(
        [sys.executable, "-m", "fluxkit", "inspect", str(path), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 11
    assert lines[-1]["streams"][0]["keyframes"] == 2
    bad = subprocess.run(
        [sys.executable, "-m", "fluxkit", "inspect", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("fluxkit inspect: ")
    assert "Traceback" not in bad.stderr


def test_unclassified_payload_is_reported_without_frames(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rnd = random.Random(11)
    raw = [capgen.rtp(i, i * 3000, 0x77, rnd.randbytes(200), pt=101) for i in range(300)]
    _, summary = run_json(capsys, write(tmp_path, "odd.pcap", capgen.pcap_file(media.udp_frames(raw), 1)))
    (s,) = summary["streams"]
    assert (s["stream"], s["codec"], s["frames"]) == ("data", "unknown", 0)
    assert (s["packets"], s["pt"], s["lost"]) == (300, 101, 0)
    rc, out, _ = run(capsys, str(tmp_path / "odd.pcap"))
    assert rc == 0
    assert "unknown" in out


def test_capture_starting_mid_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The capture begins inside a PS frame: the partial frame is dropped, the rest is read.
    packets, groups = media.ps_rtp(frames=30, gop=10)
    start = groups[3][1] if len(groups[3]) > 1 else groups[4][0]
    sent = [p.serialize() for p in packets[start:]]
    _, summary = run_json(capsys, write(tmp_path, "mid.pcap", capgen.pcap_file(media.udp_frames(sent), 1)))
    (s,) = summary["streams"]
    assert s["payload"] == "ps"
    assert s["lost"] == 0
    assert s["frames"] == 26
