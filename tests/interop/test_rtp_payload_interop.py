"""RTP payload depacketizers against real senders: ffmpeg's RTP muxer and GStreamer's rtph264pay/rtph265pay.

Each test binds a UDP socket on 127.0.0.1 first (a free port, with a large receive buffer so the sender can run
flat out; `-re` is used only when the kernel refuses a large buffer), runs the sender for N frames, collects
the datagrams, parses and depacketizes them in order, and checks with PyAV that every frame decodes, that the
count equals what the sender encoded, and that keyframes fall every GOP. Parameter sets travel in-band (ffmpeg's
default, GStreamer with config-interval=-1) or, with ffmpeg's `-flags +global_header`, only in the SDP's
sprop-parameter-sets, which are then given to the depacketizer as the layer above would.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import subprocess
from pathlib import Path

import av
import pytest

from fluxkit.protocols import MediaFrame
from fluxkit.protocols.rtp._packet import RtpPacket, parse_rtp
from fluxkit.protocols.rtp.payload import H264Depacketizer, H265Depacketizer, depacketizer_for
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

FRAMES = 50
GOP = 25


class Receiver:
    """An RTP socket (and its RTCP neighbour, so senders get no ICMP errors) on 127.0.0.1."""

    def __init__(self) -> None:
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):  # Linux caps it silently at net.core.rmem_max
            self.rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.large_buffer = self.rtp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 4 << 20
        self.rtp.bind(("127.0.0.1", 0))
        self.rtcp.bind(("127.0.0.1", 0))
        self.port = self.rtp.getsockname()[1]
        self.rtcp_port = self.rtcp.getsockname()[1]

    def run(self, cmd: list[str]) -> list[RtpPacket]:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        packets = []
        self.rtp.settimeout(0.5)
        try:
            while True:
                packets.append(parse_rtp(self.rtp.recv(65536)))
        except TimeoutError:
            pass
        finally:
            self.rtp.close()
            self.rtcp.close()
        return packets


def depacketize(dep: H264Depacketizer | H265Depacketizer, packets: list[RtpPacket]) -> list[MediaFrame]:
    # Loopback keeps the order; the depacketizer's own sequence check would catch a loss anyway.
    frames: list[MediaFrame] = []
    for p in packets:
        frames += dep.feed(p)
    frames += dep.flush()
    assert dep.statistics().frames_dropped == 0
    assert dep.statistics().malformed == 0
    return frames


def decode_all(codec: str, frames: list[MediaFrame]) -> int:
    ctx = av.CodecContext.create(codec, "r")
    decoded = 0
    for f in frames:
        decoded += len(ctx.decode(av.Packet(f.data)))
    decoded += len(ctx.decode(None))
    return decoded


def check(codec: str, frames: list[MediaFrame]) -> None:
    assert len(frames) == FRAMES
    assert [i for i, f in enumerate(frames) if f.keyframe] == list(range(0, FRAMES, GOP))
    # Every keyframe is self-contained: it decodes with a fresh decoder.
    for f in frames:
        if f.keyframe:
            ctx = av.CodecContext.create(codec, "r")
            assert len(ctx.decode(av.Packet(f.data)) + ctx.decode(None)) == 1
    assert decode_all(codec, frames) == FRAMES


def sprop_sets(sdp: str) -> list[bytes]:
    """The parameter sets of an SDP's fmtp line (H.264 sprop-parameter-sets, H.265 sprop-vps/sps/pps)."""
    sets: list[bytes] = []
    for name in ("sprop-vps", "sprop-sps", "sprop-pps", "sprop-parameter-sets"):
        m = re.search(rf"{name}=([A-Za-z0-9+/=,]+)", sdp)
        if m:
            sets += [base64.b64decode(v) for v in m.group(1).split(",") if v]
    return sets


def ffmpeg_cmd(rx: Receiver, sdp: Path, encoder: list[str], extra: list[str]) -> list[str]:
    ffmpeg = require_tool("ffmpeg")
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    if not rx.large_buffer:
        cmd.append("-re")
    cmd += ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-frames:v", str(FRAMES), "-pix_fmt", "yuv420p"]
    cmd += encoder + extra
    cmd += ["-sdp_file", str(sdp), "-f", "rtp", f"rtp://127.0.0.1:{rx.port}?rtcpport={rx.rtcp_port}"]
    return cmd


X264 = ["-c:v", "libx264", "-preset", "veryfast", "-g", str(GOP), "-x264-params", "scenecut=0"]
X265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
        f"keyint={GOP}:min-keyint={GOP}:scenecut=0:log-level=error"]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "fragmented"),
    [([], False), (["-max_delay", "0", "-pkt_size", "600"], True), (["-flags", "+global_header"], False)],
    ids=["default", "fu-a", "sets-in-sdp"],
)
def test_ffmpeg_h264(tmp_path: Path, extra: list[str], fragmented: bool) -> None:
    rx = Receiver()
    sdp = tmp_path / "h264.sdp"
    packets = rx.run(ffmpeg_cmd(rx, sdp, X264, extra))
    kinds = {p.payload[0] & 0x1F for p in packets}
    assert 28 in kinds  # FU-A (I-frames exceed even the default 1460-byte payload)
    if fragmented:
        assert max(len(p.payload) for p in packets) <= 600
    sets = sprop_sets(sdp.read_text())
    if "+global_header" in extra:
        # The parameter sets are only in the SDP: keyframes decode alone because the depacketizer prepends them.
        assert len(sets) == 2
        assert not {7, 8} & {p.payload[0] & 0x1F for p in packets}
    dep = depacketizer_for("H264", parameter_sets=sets or None)
    assert isinstance(dep, H264Depacketizer)
    check("h264", depacketize(dep, packets))


def test_ffmpeg_h265(tmp_path: Path) -> None:
    rx = Receiver()
    sdp = tmp_path / "h265.sdp"
    packets = rx.run(ffmpeg_cmd(rx, sdp, X265, ["-pkt_size", "800"]))
    assert 49 in {(p.payload[0] >> 1) & 0x3F for p in packets}  # FU
    dep = depacketizer_for("H265", parameter_sets=sprop_sets(sdp.read_text()) or None)
    assert isinstance(dep, H265Depacketizer)
    check("hevc", depacketize(dep, packets))


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_gstreamer(codec: str) -> None:
    gst = require_tool("gst-launch-1.0")
    rx = Receiver()
    if codec == "h264":
        enc = ["x264enc", f"key-int-max={GOP}", "bframes=0", "speed-preset=veryfast", "!",
               "rtph264pay", "config-interval=-1", "aggregate-mode=zero-latency", "mtu=700"]  # fmt: skip
    else:
        enc = ["x265enc", f"key-int-max={GOP}", "speed-preset=ultrafast", "option-string=scenecut=0", "!",
               "rtph265pay", "config-interval=-1", "aggregate-mode=zero-latency", "mtu=700"]  # fmt: skip
    sync = "sync=false" if rx.large_buffer else "sync=true"
    cmd = [gst, "-q", "videotestsrc", f"num-buffers={FRAMES}", "!",
           "video/x-raw,width=320,height=240,framerate=25/1,format=I420", "!", *enc, "!",
           "udpsink", "host=127.0.0.1", f"port={rx.port}", sync]  # fmt: skip
    packets = rx.run(cmd)
    if codec == "h264":
        assert {24, 28} <= {p.payload[0] & 0x1F for p in packets}  # STAP-A and FU-A
        dep: H264Depacketizer | H265Depacketizer = H264Depacketizer()
    else:
        assert {48, 49} <= {(p.payload[0] >> 1) & 0x3F for p in packets}  # AP and FU
        dep = H265Depacketizer()
    check(codec, depacketize(dep, packets))
