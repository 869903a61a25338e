"""aiortc glue for WHIP ingest: loopback-only ICE, offer candidate filtering, the encoded-frame tap and PLI.

Strategy: aiortc is used as shipped, with four narrow hooks, all tied to the version pinned in requirements.txt
(aiortc 1.16.0, aioice 0.13.0). `check_aiortc_internals()` verifies them at service start so a changed aiortc
fails loudly instead of decoding or leaking.

1. Host candidates. aioice gathers on `aioice.ice.get_host_addresses()`, which skips 127.0.0.1 and returns every
   other interface address. `install_host_address_hook()` wraps that module function once, process-wide, with
   one that returns the addresses in the `HOST_ADDRESSES` context variable when it is set and otherwise calls the
   original: code that does not set the variable (another aiortc user in the process) is unaffected. Gathering
   runs inside `RTCPeerConnection.setLocalDescription`, in the task that sets the variable.
2. Remote candidates. aioice sends connectivity checks to every candidate of the offer and resolves `.local`
   (mDNS) names by multicast. `filter_candidates()` removes, before aiortc sees the offer, every `a=candidate`
   line whose address is not an IP inside the allowed networks (loopback by default).
3. Encoded frames. `RTCRtpReceiver` reassembles frames in its jitter buffer (after SRTP, RTX unwrapping and NACK
   generation, all kept) and hands `(codec, JitterFrame)` to a decoder thread through the name-mangled attribute
   `_RTCRtpReceiver__decoder_queue` (a `queue.Queue`). `EncodedFrameTap` replaces that queue before `receive()`
   starts the thread: `put()` is called synchronously on the event loop with each reassembled frame (Annex-B
   H.264 with 4-byte start codes, its RTP timestamp already unwrapped to start at 0 by aiortc's TimestampMapper),
   so nothing is ever decoded; the decoder thread only parks in `get()` until aiortc puts its `None` stop
   sentinel. Audio receivers work the same way: aiortc's depayloader passes an Opus (or G.711) RTP payload through
   unchanged and its audio jitter buffer makes one frame per RTP timestamp, so each frame is one Opus packet
   exactly as sent (RFC 7587 §4.2), timestamps at 48 kHz. STUN/TURN: the peer connection is built with
   `RTCConfiguration(iceServers=[])` (the default is a public STUN server).
4. Keyframe requests. The receiver's private `_send_rtcp_pli(media_ssrc)` coroutine sends a PLI (RFC 4585
   §6.3.1). aiortc calls it itself when its video jitter buffer overflows or sees a sequence jump (packets lost
   for good: the depacketizer gave up on frames), once per such packet. `intercept_pli()` puts a gate in front of
   that call (an instance attribute shadowing the method) so these requests share fluxkit's rate limit
   (`PliGate`), and returns the ungated original for fluxkit's own requests.
"""

from __future__ import annotations

import contextvars
import ipaddress
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "AIORTC_VERSION",
    "HOST_ADDRESSES",
    "EncodedFrameTap",
    "PliGate",
    "check_aiortc_internals",
    "filter_candidates",
    "install_host_address_hook",
    "intercept_pli",
    "negotiated_codecs",
]

#: The aiortc release whose internals this module is written against (requirements.txt pins it).
AIORTC_VERSION = "1.16.0"

#: Addresses aioice gathers host candidates on while set (None: the system's, as aioice would).
HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "fluxkit_webrtc_host_addresses", default=None
)

_QUEUE_ATTRIBUTE = "_RTCRtpReceiver__decoder_queue"
_hook_lock = threading.Lock()
_system_host_addresses: Callable[..., list[str]] | None = None


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = HOST_ADDRESSES.get()
    if chosen is not None:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]
    assert _system_host_addresses is not None
    return _system_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)


def install_host_address_hook() -> None:
    """Wrap `aioice.ice.get_host_addresses` so that `HOST_ADDRESSES` decides (idempotent)."""
    global _system_host_addresses
    import aioice.ice

    with _hook_lock:
        if getattr(aioice.ice.get_host_addresses, "__fluxkit_hook__", False):
            return
        _system_host_addresses = aioice.ice.get_host_addresses
        hook: Any = _host_addresses
        hook.__fluxkit_hook__ = True
        aioice.ice.get_host_addresses = hook


def check_aiortc_internals() -> None:
    """Verify that the installed aiortc has every internal this module relies on; raise RuntimeError if not.

    fluxkit's WHIP ingest requires **aiortc 1.16.0** (with aioice 0.13.0), the versions pinned in requirements.txt:
    the hooks below reach into private parts of exactly that release, which aiortc may rename or change in any
    version. Called by `open_whip_service` before anything is set up, so a different aiortc fails at start with
    one line per broken hook, not later by decoding every frame, leaking a decoder thread or sending no PLI.

    Checked: `RTCRtpReceiver.__init__` assigns `_RTCRtpReceiver__decoder_queue` (replaced by the tap), the decoder
    thread reads it with `get()`, `RTCRtpReceiver.receive` exists, `RTCRtpReceiver._send_rtcp_pli(media_ssrc)` is a
    coroutine function (PLI), `getSynchronizationSources()` exists (the SSRC a PLI names), aiortc's `JitterFrame`
    has `data` and `timestamp`, its depayloader passes Opus payloads through unchanged, and
    `aioice.ice.get_host_addresses(use_ipv4, use_ipv6)` exists (loopback gathering).

    Raises:
        RuntimeError: naming the installed version, its location, each missing or changed internal and what it
            is used for, and the fix (install aiortc==1.16.0).
    """
    import aiortc

    problems = _internals_problems()
    if problems:
        version = getattr(aiortc, "__version__", "unknown")
        where = getattr(aiortc, "__file__", "?")
        lines = "\n".join(f"  - {p}" for p in problems)
        raise RuntimeError(
            f"fluxkit's WHIP ingest needs aiortc {AIORTC_VERSION} (pinned in requirements.txt), found aiortc "
            f"{version} at {where}; these internals it relies on are missing or changed:\n{lines}\n"
            f"Install aiortc=={AIORTC_VERSION} (pip install 'aiortc=={AIORTC_VERSION}'), or port "
            "fluxkit/net/_webrtc.py to the new aiortc."
        )


def _internals_problems() -> list[str]:
    import inspect

    from aiortc import RTCRtpCodecParameters, RTCRtpReceiver
    from aiortc import rtcrtpreceiver as receiver_module

    problems: list[str] = []
    # The decoder queue is an instance attribute: look for its assignment in the constructor's code.
    if _QUEUE_ATTRIBUTE not in RTCRtpReceiver.__init__.__code__.co_names:
        problems.append(
            f"RTCRtpReceiver.__init__ no longer assigns self.{_QUEUE_ATTRIBUTE} (the encoded-frame tap replaces "
            "that queue so frames are taken before decoding)"
        )
    worker = getattr(receiver_module, "decoder_worker", None)
    if worker is None or "get" not in worker.__code__.co_names:
        problems.append(
            "aiortc.rtcrtpreceiver.decoder_worker is missing or no longer calls input_q.get() (the tap parks the "
            "decoder thread there)"
        )
    if not callable(getattr(RTCRtpReceiver, "receive", None)):
        problems.append("RTCRtpReceiver.receive is missing (the tap must be installed before it runs)")
    pli = getattr(RTCRtpReceiver, "_send_rtcp_pli", None)
    if not inspect.iscoroutinefunction(pli) or list(inspect.signature(pli).parameters) != ["self", "media_ssrc"]:
        problems.append(
            "RTCRtpReceiver._send_rtcp_pli(self, media_ssrc) is missing, not a coroutine function or has another "
            "signature (keyframe requests: RTCP PLI, and the gate on aiortc's own loss PLIs)"
        )
    if not callable(getattr(RTCRtpReceiver, "getSynchronizationSources", None)):
        problems.append("RTCRtpReceiver.getSynchronizationSources is missing (the media SSRC a PLI names)")
    try:
        from aiortc.jitterbuffer import JitterFrame

        frame = JitterFrame(data=b"x", timestamp=1)
        if (frame.data, frame.timestamp) != (b"x", 1):
            raise TypeError("fields changed")
    except (ImportError, TypeError) as exc:
        problems.append(f"aiortc.jitterbuffer.JitterFrame(data, timestamp) changed ({exc}): the tap reads both")
    try:
        from aiortc.codecs import depayload

        opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
        if depayload(opus, b"\x78\x01\x02") != b"\x78\x01\x02":
            raise ValueError("payload altered")
    except (ImportError, TypeError, ValueError) as exc:
        problems.append(f"aiortc.codecs.depayload no longer passes Opus payloads through ({exc}): Opus passthrough")
    if not _has_host_addresses():
        problems.append(
            "aioice.ice.get_host_addresses(use_ipv4, use_ipv6) is missing or has another signature (loopback-only "
            "host candidates; aioice 0.13.0 expected)"
        )
    return problems


def _has_host_addresses() -> bool:
    import inspect

    import aioice.ice

    function = getattr(aioice.ice, "get_host_addresses", None)
    if getattr(function, "__fluxkit_hook__", False):
        return True  # ours, wrapping the original that was there when it was installed
    if not callable(function):
        return False
    try:
        return list(inspect.signature(function).parameters)[:2] == ["use_ipv4", "use_ipv6"]
    except (TypeError, ValueError):
        return False


def _allowed(address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # an mDNS ".local" name or garbage: resolving it would leave the allowed networks
    return any(ip.version == net.version and ip in net for net in networks)


def filter_candidates(sdp: str, networks: Iterable[str]) -> tuple[str, int, int]:
    """Drop the `a=candidate` lines (RFC 8839 §5.1) whose connection address is outside `networks`.

    Args:
        sdp: the offer.
        networks: CIDR strings ("127.0.0.0/8").

    Returns:
        (the filtered SDP, candidates kept, candidates dropped).
    """
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    kept = dropped = 0
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            # candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
            fields = line.split()
            if len(fields) >= 8 and _allowed(fields[4], nets):
                kept += 1
            else:
                dropped += 1
                continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n", kept, dropped


def negotiated_codecs(sdp: str) -> dict[str, tuple[str, int, int]]:
    """The codec each accepted media section of an SDP answer names first: `{mid: (name, clock rate, channels)}`.

    The first payload type of an answer's m= line is the one the sender is expected to use (RFC 3264 §6.1);
    `name` is the rtpmap encoding name as written ("H264", "opus", "PCMU"). Rejected sections (port 0) and
    sections without a mid or an rtpmap for their first payload type are left out.
    """
    out: dict[str, tuple[str, int, int]] = {}
    for section in sdp.replace("\r\n", "\n").split("\nm=")[1:]:
        lines = section.split("\n")
        fields = lines[0].split()
        if len(fields) < 4 or fields[1] == "0":
            continue
        first = fields[3]
        mid = None
        codec = None
        for line in lines[1:]:
            if line.startswith("a=mid:"):
                mid = line[6:].strip()
            elif line.startswith(f"a=rtpmap:{first} "):
                # a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>] (RFC 8866 §6.6)
                parts = line.split(" ", 1)[1].strip().split("/")
                if len(parts) >= 2 and parts[1].isdigit():
                    channels = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
                    codec = (parts[0], int(parts[1]), channels)
        if mid is not None and codec is not None:
            out[mid] = codec
    return out


class PliGate:
    """Rate limit of keyframe requests to one sender: at most one PLI per `interval` seconds.

    A PLI makes the sender encode an intra frame, several times the size of a predicted one (RFC 4585 §6.3.1
    leaves the pacing to the receiver), and the requests come from several places at once (no IDR yet, a waiting
    subscriber or segment, aiortc's loss detection), often once per frame: the first in each interval is sent.

    Args:
        interval: seconds between two PLIs.
    """

    __slots__ = ("_last", "interval", "sent", "suppressed")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: float | None = None
        #: PLIs allowed so far.
        self.sent = 0
        #: Requests refused by the limit.
        self.suppressed = 0

    def allow(self, now: float) -> bool:
        """True (and counted as sent) when a PLI may go out at `now` (seconds, any monotonic clock)."""
        if self._last is not None and now - self._last < self.interval:
            self.suppressed += 1
            return False
        self._last = now
        self.sent += 1
        return True


def intercept_pli(receiver: Any, gate: Callable[[int], bool]) -> Callable[[int], Awaitable[None]]:
    """Route aiortc's own PLIs of `receiver` through `gate(media_ssrc)`; returns the ungated PLI sender.

    aiortc's receiver awaits `self._send_rtcp_pli(ssrc)` when its jitter buffer loses packets for good; the
    instance attribute set here shadows that method, so such a PLI is sent only when `gate` returns True.
    """
    original: Callable[[int], Awaitable[None]] = receiver._send_rtcp_pli

    async def gated(media_ssrc: int) -> None:
        if gate(media_ssrc):
            await original(media_ssrc)

    receiver._send_rtcp_pli = gated
    return original


class EncodedFrameTap:
    """Stands in for an `RTCRtpReceiver`'s decoder queue: reassembled frames go to `on_frame`, never to a decoder.

    Args:
        on_frame: called on the event loop with (data, timestamp, codec) for every frame the jitter buffer
            completes; `codec` is the payload type's encoding name as negotiated ("H264", "opus", "PCMU").
        on_stop: called on the event loop when aiortc stops the receiver (RTCP BYE, close).
    """

    def __init__(self, on_frame: Callable[[bytes, int, str], None], on_stop: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_stop = on_stop
        self._stopped = threading.Event()

    @classmethod
    def install(
        cls, receiver: Any, on_frame: Callable[[bytes, int, str], None], on_stop: Callable[[], None]
    ) -> EncodedFrameTap:
        """Put a tap in `receiver` (before its `receive()` runs) and return it."""
        if not hasattr(receiver, _QUEUE_ATTRIBUTE):
            raise RuntimeError("this aiortc RTCRtpReceiver has no decoder queue to tap")
        tap = cls(on_frame, on_stop)
        setattr(receiver, _QUEUE_ATTRIBUTE, tap)
        return tap

    def put(self, item: Any) -> None:
        if item is None:
            if not self._stopped.is_set():
                self._stopped.set()
                self._on_stop()
            return
        codec, frame = item
        self._on_frame(frame.data, frame.timestamp, codec.name)

    def get(self) -> None:
        # Runs on aiortc's decoder thread: park it until the stop sentinel, then let it end.
        self._stopped.wait()
