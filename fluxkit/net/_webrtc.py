"""aiortc glue for WHIP ingest: loopback-only ICE, offer candidate filtering, and the encoded-frame tap.

Strategy: aiortc is used as shipped, with three narrow hooks, all tied to the version pinned in requirements.txt
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
   sentinel. STUN/TURN: the peer connection is built with `RTCConfiguration(iceServers=[])` (the default is a
   public STUN server).

The receiver's private `_send_rtcp_pli(media_ssrc)` coroutine is used to ask for a keyframe (RFC 4585 §6.3.1).
"""

from __future__ import annotations

import contextvars
import ipaddress
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "HOST_ADDRESSES",
    "EncodedFrameTap",
    "check_aiortc_internals",
    "filter_candidates",
    "install_host_address_hook",
]

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
    """Raise RuntimeError when the aiortc in use lacks the internals this module relies on."""
    import aiortc
    from aiortc import RTCRtpReceiver

    missing = [
        name
        for name, present in (
            ("RTCRtpReceiver._send_rtcp_pli", hasattr(RTCRtpReceiver, "_send_rtcp_pli")),
            ("RTCRtpReceiver.receive", hasattr(RTCRtpReceiver, "receive")),
            ("aioice.ice.get_host_addresses", _has_host_addresses()),
        )
        if not present
    ]
    # The decoder queue is an instance attribute: look for its assignment in the constructor's code.
    names = RTCRtpReceiver.__init__.__code__.co_names
    if _QUEUE_ATTRIBUTE not in names:
        missing.append(f"RTCRtpReceiver.{_QUEUE_ATTRIBUTE}")
    if missing:
        raise RuntimeError(
            f"aiortc {aiortc.__version__} lacks {', '.join(missing)}; fluxkit's WHIP ingest needs aiortc 1.16.0"
        )


def _has_host_addresses() -> bool:
    import aioice.ice

    return callable(getattr(aioice.ice, "get_host_addresses", None))


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


class EncodedFrameTap:
    """Stands in for an `RTCRtpReceiver`'s decoder queue: reassembled frames go to `on_frame`, never to a decoder.

    Args:
        on_frame: called on the event loop with (data, timestamp) for every frame the jitter buffer completes.
        on_stop: called on the event loop when aiortc stops the receiver (RTCP BYE, close).
    """

    def __init__(self, on_frame: Callable[[bytes, int], None], on_stop: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_stop = on_stop
        self._stopped = threading.Event()

    @classmethod
    def install(cls, receiver: Any, on_frame: Callable[[bytes, int], None], on_stop: Callable[[], None]) -> Any:
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
        _codec, frame = item
        self._on_frame(frame.data, frame.timestamp)

    def get(self) -> None:
        # Runs on aiortc's decoder thread: park it until the stop sentinel, then let it end.
        self._stopped.wait()
