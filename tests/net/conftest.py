"""Peers for the Trio network tests: GStreamer's RTSP server as a subprocess, and a scriptable fake camera.

`GstRtspServer` runs tests/interop/rtsp_server.py (Debian's /usr/bin/python3 with `gi`) and can be killed and
started again on the same port, as a camera reboot. `FakeCamera` is an in-process Trio RTSP server of a dozen
lines of protocol: it answers OPTIONS/DESCRIBE/SETUP/PLAY/GET_PARAMETER/TEARDOWN from templates and then streams
pre-packetized H.264 RTP over TCP interleaved, paced at real time or as fast as asked; `mode` makes it misbehave
("garbage": answers with bytes that are not RTSP; "stall": plays but sends no media; "refuse": 401 to everything).
It records the methods it received and the RTCP packets the client sent, for assertions. The ingest benchmark
reuses it.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import pytest
import trio

from fluxkit.protocols.nalu import AccessUnitAssembler, split_annexb
from fluxkit.protocols.rtp.payload import H264Packetizer
from tests.peers import GstRtspServer, require_gst_rtsp_server


@pytest.fixture
def gst_server() -> Iterator[GstRtspServer]:
    require_gst_rtsp_server()
    server = GstRtspServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def gst_auth_server() -> Iterator[GstRtspServer]:
    require_gst_rtsp_server()
    server = GstRtspServer("admin", "secret")
    server.start()
    try:
        yield server
    finally:
        server.kill()


# -- the fake camera ---------------------------------------------------------------------------------------------


def h264_access_units(annexb: bytes) -> list[list[bytes]]:
    """The NAL units of each access unit, as fluxkit's own assembler splits them (multi-slice pictures included)."""
    assembler = AccessUnitAssembler("h264", insert_parameter_sets=False)
    units = [au for nal in split_annexb(annexb) for au in assembler.feed(nal)] + assembler.flush()
    return [list(au.nals) for au in units]


def packetize_h264(annexb: bytes, *, fps: int = 25, ssrc: int = 0x1234, mtu: int = 1400) -> list[list[bytes]]:
    """Serialized RTP packets of each access unit (90 kHz timestamps at `fps`)."""
    packetizer = H264Packetizer(ssrc=ssrc, mtu=mtu, initial_sequence=1000)
    step = 90000 // fps
    return [
        [p.serialize() for p in packetizer.packetize(au, 5000 + i * step)]
        for i, au in enumerate(h264_access_units(annexb))
    ]


def sprop(annexb: bytes) -> str:
    sets = [n for n in split_annexb(annexb) if n[0] & 0x1F in (7, 8)][:2]
    return ",".join(base64.b64encode(n).decode() for n in sets)


class FakeCamera:
    """A Trio RTSP server for one H.264 stream over TCP interleaved (see the module docstring).

    Args:
        frames: RTP packets per access unit (from `packetize_h264`), sent in a loop.
        sprop: the sprop-parameter-sets value for the SDP.
        mode: "ok", "garbage", "stall" or "refuse".
        fps: pacing; None sends as fast as the socket takes it.
        loops: times the frames are sent (None: forever).
    """

    def __init__(
        self,
        frames: list[list[bytes]],
        sprop: str,
        *,
        mode: str = "ok",
        fps: float | None = 25.0,
        loops: int | None = None,
    ) -> None:
        self.frames = frames
        self.sprop = sprop
        self.mode = mode
        self.fps = fps
        self.loops = loops
        self.port = 0
        self.connections = 0
        self.methods: list[str] = []
        self.rtcp: list[bytes] = []
        self.sent_frames = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    def url(self, path: str = "/cam") -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        buf = b""
        async with stream, trio.open_nursery() as nursery:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not data:
                    break
                buf += data
                while True:
                    if buf[:1] == b"$":
                        if len(buf) < 4:
                            break
                        size = int.from_bytes(buf[2:4], "big")
                        if len(buf) < 4 + size:
                            break
                        self.rtcp.append(buf[4 : 4 + size])
                        buf = buf[4 + size :]
                        continue
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buf = buf[:end].decode(), buf[end + 4 :]
                    reply = self._reply(head)
                    if reply is None:
                        continue
                    await stream.send_all(reply)
                    if self.methods[-1] == "PLAY" and self.mode == "ok":
                        nursery.start_soon(self._stream_media, stream)
                    if self.methods[-1] == "TEARDOWN":
                        nursery.cancel_scope.cancel()
                        return
            nursery.cancel_scope.cancel()

    def _reply(self, head: str) -> bytes | None:
        lines = head.split("\r\n")
        method, uri = lines[0].split(" ")[:2]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        self.methods.append(method)
        cseq = headers.get("cseq", "0")
        if self.mode == "garbage":
            return b"\x17\x03\x01 this is not RTSP at all \x00\xff\r\n\r\n" * 4
        if self.mode == "refuse":
            return (
                f'RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Basic realm="cam"\r\n\r\n'
            ).encode()
        extra = ""
        body = ""
        if method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n"
        elif method == "DESCRIBE":
            body = (
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n"
                "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={self.sprop}\r\na=control:trackID=0\r\n"
            )
            extra = f"Content-Base: {uri}/\r\nContent-Type: application/sdp\r\nContent-Length: {len(body)}\r\n"
        elif method == "SETUP":
            extra = f"Transport: {headers.get('transport', '')}\r\nSession: 4242;timeout=60\r\n"
        elif method in ("PLAY", "GET_PARAMETER", "TEARDOWN"):
            extra = "Session: 4242\r\n"
        return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n{body}".encode()

    async def _stream_media(self, stream: trio.SocketStream) -> None:
        start = trio.current_time()
        n = 0
        loop = 0
        total = sum(len(f) for f in self.frames)
        span = (int.from_bytes(self.frames[1][0][4:8], "big") - int.from_bytes(self.frames[0][0][4:8], "big")) * len(
            self.frames
        )
        while self.loops is None or loop < self.loops:
            for packets in self.frames:
                if self.fps is not None:
                    await trio.sleep_until(start + n / self.fps)
                if loop:
                    packets = [_shift(p, loop * total, loop * span) for p in packets]
                await stream.send_all(b"".join(b"$\x00" + len(p).to_bytes(2, "big") + p for p in packets))
                n += 1
                self.sent_frames += 1
            loop += 1
        await trio.sleep_forever()


def _shift(packet: bytes, seq: int, ts: int) -> bytes:
    """The packet with its sequence number and timestamp moved on (a looped clip continues its numbering)."""
    out = bytearray(packet)
    struct.pack_into(
        "!HI",
        out,
        2,
        (int.from_bytes(packet[2:4], "big") + seq) & 0xFFFF,
        (int.from_bytes(packet[4:8], "big") + ts) & 0xFFFFFFFF,
    )
    return bytes(out)
