"""`fluxkit inspect` on captures and files made by real third-party tools.

* tcpdump captures on loopback (`-i lo`: Ethernet link type, microsecond pcap; `-i any`: Linux cooked v2,
  nanosecond pcap) of RTP sent by ffmpeg (`-f rtp`, H.264 over UDP), of RFC 4571 framed RTP over a real TCP
  connection, and of GB28181-style PS over RTP over UDP with packets withheld to simulate loss.
* MPEG-PS written by ffmpeg (`-f mpeg`, no PSM, several frames per PES) and by GStreamer's `mpegpsmux` (PSM),
  with PyAV (FFmpeg) as the oracle for the keyframe count.
* The hand-built pcapng of the unit tests, read back by tcpdump (libpcap), so the test writer itself is checked.

Capture timing: tcpdump is started and the test waits for its "listening on" line before sending, and stops it
(SIGINT) a moment after the last packet; with `-U` every packet is written as it is captured.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from fluxkit.cli import main
from fluxkit.protocols.ps import PsMuxer
from fluxkit.protocols.rtp.payload import H264Packetizer, PsRtpPacketizer
from tests.conftest import require_tool
from tests.inspect import capgen, media

pytestmark = pytest.mark.interop


def inspect_json(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rc = main(["inspect", str(path), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    return lines[:-1], lines[-1]


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tcpdump(path: Path, bpf: str, *, interface: str = "lo", nano: bool = False) -> Iterator[None]:
    """Capture on a loopback interface into `path` while the block runs."""
    exe = require_tool("tcpdump")
    # -Z root: keep root so tcpdump may write into pytest's private temporary folder.
    # --immediate-mode: hand each packet over at once (TPACKET_V3 otherwise holds a block up to a second).
    # -B 32768: a 32 MiB ring; loopback TCP segments reach 64 KiB, and the default ring dropped some.
    cmd = [exe, "-Z", "root", "-i", interface, "-U", "--immediate-mode", "-B", "32768", "-n", "-w", str(path)]
    if nano:
        cmd += ["--time-stamp-precision=nano"]
    proc = subprocess.Popen([*cmd, bpf], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    while True:
        line = proc.stderr.readline()
        lines.append(line)
        if not line or "listening on" in line:
            break
    if proc.poll() is not None:
        pytest.fail(f"tcpdump did not start: {''.join(lines)}")
    try:
        yield
    finally:
        time.sleep(0.5)  # let the last packets reach the capture buffer
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=20)
    assert "0 packets dropped by kernel" in rest, rest


def test_ffmpeg_rtp_h264_over_udp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ffmpeg = require_tool("ffmpeg")
    port = free_port(socket.SOCK_DGRAM)
    pcap = tmp_path / "ffmpeg.pcap"
    # A bound (never read) socket keeps the port ours and avoids ICMP port-unreachable replies.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", port))
        with tcpdump(pcap, f"udp port {port}"):
            subprocess.run(
                [
                    ffmpeg, "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc=size=352x288:rate=25",
                    "-frames:v", "60", "-c:v", "libx264", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p",
                    "-x264-params", "scenecut=0", "-f", "rtp", f"rtp://127.0.0.1:{port}",
                ],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
    frames, summary = inspect_json(pcap, capsys)
    assert summary["format"] == "pcap"
    (s,) = summary["streams"]
    assert (s["stream"], s["codec"], s["frames"], s["width"], s["height"]) == ("video", "h264", 60, 352, 288)
    assert (s["keyframes"], s["gop"], s["lost"], s["duplicates"], s["transport"]) == (3, 25, 0, 0, "udp")
    assert s["dst"] == f"127.0.0.1:{port}"
    assert [f["frame"] for f in frames if f["keyframe"]] == [0, 25, 50]
    assert s["fps"] == pytest.approx(25)


def test_rfc4571_over_a_real_tcp_connection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packetizer = H264Packetizer(payload_type=98, ssrc=0x0BADCAFE, initial_sequence=40000)
    aus = media.access_units("h264", frames=75, gop=25)
    stream = b"".join(
        len(raw).to_bytes(2, "big") + raw
        for i, (au, _) in enumerate(aus)
        for raw in (p.serialize() for p in packetizer.packetize(au, i * 3600))
    )
    received = bytearray()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                while chunk := conn.recv(65536):
                    received.extend(chunk)

        pcap = tmp_path / "tcp.pcap"
        with tcpdump(pcap, f"tcp port {port}", interface="any", nano=True):
            thread = threading.Thread(target=serve)
            thread.start()
            with socket.create_connection(("127.0.0.1", port)) as client:
                for i in range(0, len(stream), 3000):  # frames straddle writes (and segments)
                    client.sendall(stream[i : i + 3000])
            thread.join(timeout=30)
    assert bytes(received) == stream
    frames, summary = inspect_json(pcap, capsys)
    (s,) = summary["streams"]
    assert (s["transport"], s["codec"], s["frames"], s["keyframes"], s["width"]) == ("tcp", "h264", 75, 3, 320)
    assert (s["ssrc"], s["pt"], s["lost"], s["dst"]) == (0x0BADCAFE, 98, 0, f"127.0.0.1:{port}")
    assert [f["pts"] - frames[0]["pts"] for f in frames] == [i * 3600 for i in range(75)]


def test_gb28181_ps_over_udp_with_loss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    muxer = PsMuxer("h264")
    packetizer = PsRtpPacketizer(payload_type=96, ssrc=0x3402_0001, initial_sequence=65000, mtu=300)
    aus = media.access_units("h264", frames=50, gop=25)
    per_frame = []
    for i, (au, key) in enumerate(aus):
        per_frame.append(packetizer.packetize(muxer.mux_video(au, pts=i * 3600, keyframe=key), i * 3600))
    # Withhold: all of frame 10's packets (a frame lost whole) and the middle packet of a later multi-packet frame.
    hit = next(i for i in range(30, 50) if len(per_frame[i]) >= 3)
    withheld = {id(p) for p in per_frame[10]} | {id(per_frame[hit][len(per_frame[hit]) // 2])}
    port = free_port(socket.SOCK_DGRAM)
    pcap = tmp_path / "gb.pcap"
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        sink.bind(("127.0.0.1", port))
        with tcpdump(pcap, f"udp port {port}"):
            for packets in per_frame:
                for p in packets:
                    if id(p) not in withheld:
                        tx.sendto(p.serialize(), ("127.0.0.1", port))
                time.sleep(0.002)  # pace a little so the capture keeps up
    frames, summary = inspect_json(pcap, capsys)
    (s,) = summary["streams"]
    assert (s["payload"], s["codec"], s["pt"], s["ssrc"]) == ("ps", "h264", 96, 0x3402_0001)
    assert s["lost"] == len(withheld)
    assert s["frames"] == 48
    assert {f["pts"] for f in frames} == {i * 3600 for i in range(50) if i not in (10, hit)}


def _pyav_keyframes(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    return len(packets), sum(1 for p in packets if p.is_keyframe)


def test_ffmpeg_mpeg_ps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ffmpeg = require_tool("ffmpeg")
    path = tmp_path / "ff.mpg"
    subprocess.run(
        [
            ffmpeg, "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-frames:v", "60",
            "-c:v", "libx264", "-g", "20", "-pix_fmt", "yuv420p", "-x264-params", "scenecut=0", "-f", "mpeg", str(path),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    _, summary = inspect_json(path, capsys)
    (s,) = summary["streams"]
    assert (s["codec"], s["frames"], s["width"], s["height"]) == ("h264", 60, 320, 240)
    assert s["keyframes"] == _pyav_keyframes(path)[1] == 3


def test_gstreamer_mpegpsmux(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gst = require_tool("gst-launch-1.0")
    path = tmp_path / "gst.mpg"
    subprocess.run(
        [
            gst, "-q", "videotestsrc", "num-buffers=75", "!", "video/x-raw,width=640,height=480,framerate=25/1", "!",
            "x264enc", "key-int-max=25", "!", "h264parse", "!", "mpegpsmux", "!", "filesink", f"location={path}",
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    _, summary = inspect_json(path, capsys)
    (s,) = summary["streams"]
    frames, keyframes = _pyav_keyframes(path)
    assert (s["codec"], s["frames"], s["keyframes"], s["width"], s["height"]) == ("h264", 75, keyframes, 640, 480)
    assert frames == 75


@pytest.mark.parametrize("order", ["<", ">"])
def test_tcpdump_reads_the_hand_built_pcapng(tmp_path: Path, order: str) -> None:
    exe = require_tool("tcpdump")
    packets = media.udp_frames([p.serialize() for p in media.video_rtp()])
    path = tmp_path / "hand.pcapng"
    path.write_bytes(capgen.pcapng_file(packets, 1, order=order, tsresol=9))
    done = subprocess.run(
        [exe, "-r", str(path), "-nn", "-tt", "--time-stamp-precision=nano"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == len(packets)
    assert lines[0].startswith(f"{packets[0][0]:.9f} IP 127.0.0.1.40000 > 127.0.0.1.5004: UDP")
