"""Access-unit assembly shared by the H.264 and H.265 depacketizers.

Strategy: the codec classes parse the payload header inline in `feed` (the hot path: a few byte reads and one
slice per packet) and append `START_CODE`, NAL headers and payload slices to one list; this base class owns what
happens once per access unit: opening it (timestamp unwrapping, the loss rule below), finishing it (one
`b"".join`, parameter sets prepended to a keyframe that lacks them) and the counters.

An access unit ends at the marker bit (RFC 6184 §5.1, RFC 7798 §4.1) or, for senders that do not set it, when
the RTP timestamp changes. A loss (a sequence gap seen here, or `feed_gap()` from a reorder buffer) breaks the
access unit in progress, and the next one too unless its first packet provably starts it: after a gap we cannot
tell whether the missing packets were whole frames or the head of the next one. A packet proves it starts an
access unit when its first NAL unit is an access unit delimiter, a VPS or an SPS, or a kind of NAL unit that this
stream has been seen to start its access units with (learned from access units that began right after a clean
boundary), where a slice must also be its picture's first (first_mb_in_slice = 0, or
first_slice_segment_in_pic_flag = 1). Before anything is learned a first slice of a non-key picture counts, and
any other first NAL unit only when parameter sets were given to the constructor (from the SDP). So an IDR whose
in-band SPS/PPS packet was lost is dropped rather than emitted without them, while streams carrying their
parameter sets only in the SDP keep their keyframes. The very first access unit is judged the same way, since a
receiver may join a stream mid-frame. A frame's tail lost at the very end of the input shows in no sequence
number: `flush()` drops an unfinished frame when the sender has been setting marker bits.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from fluxkit.protocols._media import MediaFrame, new_media_frame
from fluxkit.protocols.nalu import split_annexb
from fluxkit.protocols.rtp._packet import RtpPacket

from ._common import START_CODE, DepacketizerStatistics

__all__ = [
    "AUD",
    "CLASS_KEY_SLICE",
    "CLASS_SLICE",
    "KEY",
    "PS_SHIFT",
    "VCL",
    "VideoDepacketizer",
    "new_frame",
    "rbsp_prefix",
    "read_ue",
]

# Bits of the per-NAL-type flag tables; parameter-set kinds take bits PS_SHIFT.. in order (VPS, SPS, PPS).
VCL = 1
KEY = 2
AUD = 4
PS_SHIFT = 3

# RFC 3550 Appendix A.1: a packet this far behind the expected one is a straggler; farther, the sender restarted.
_MAX_MISORDER = 100

# Classes of first NAL units for the learned start rule: non-VCL units are their own type; slices are these two.
CLASS_SLICE = -1
CLASS_KEY_SLICE = -2


def new_frame(codec: str, data: bytes, pts: int, keyframe: bool) -> MediaFrame:
    """A video MediaFrame with no dts, through the fast builder."""
    return new_media_frame(codec, data, pts, None, keyframe, 0)


def read_ue(rbsp: bytes, bit: int) -> tuple[int, int] | None:
    """Read one Exp-Golomb ue(v) value (H.264 / H.265 §9.2) starting at bit `bit` of `rbsp`.

    Returns:
        (value, next bit position), or None when the code runs past the data or is longer than 32 bits.
    """
    total = 8 * len(rbsp)
    left = total - bit
    if left <= 0:
        return None
    rest = int.from_bytes(rbsp, "big") & ((1 << left) - 1)
    zeros = left - rest.bit_length()
    length = 2 * zeros + 1
    if zeros > 31 or length > left:
        return None
    return (rest >> (left - length)) - 1, bit + length


def rbsp_prefix(nal: bytes, start: int, size: int) -> bytes:
    """Up to `size` bytes of a NAL unit from `start`, emulation prevention bytes removed (H.264 §7.4.1)."""
    return nal[start : start + size + size // 2].replace(b"\x00\x00\x03", b"\x00\x00")[:size]


class VideoDepacketizer(abc.ABC):
    """Base of H264Depacketizer / H265Depacketizer: access-unit state, parameter sets, loss handling, counters."""

    __slots__ = (
        "_after_gap",
        "_au_ts",
        "_broken",
        "_dropped",
        "_first",
        "_flags",
        "_frames",
        "_fu",
        "_last_raw",
        "_late",
        "_malformed",
        "_markers",
        "_max",
        "_next_seq",
        "_out_of_band",
        "_packets",
        "_parts",
        "_pts",
        "_sets",
        "_size",
        "_ssrc",
        "_start_classes",
        "_unsupported",
    )

    #: FFmpeg codec name of the frames emitted.
    CODEC: ClassVar[str] = ""
    #: Flags of each nal_unit_type (VCL, KEY, AUD, parameter-set kind bits).
    FLAGS: ClassVar[tuple[int, ...]] = ()
    #: Mask of the parameter-set kinds a self-contained keyframe holds.
    NEEDED: ClassVar[int] = 0
    #: First-NAL classes that always start an access unit (AUD, VPS, SPS).
    STRONG: ClassVar[frozenset[int]] = frozenset()

    def __init__(self, *, max_frame_size: int, parameter_sets: list[bytes] | None = None) -> None:
        self._max = max_frame_size
        self._parts: list[bytes] = []
        self._size = 0
        self._au_ts = -1  # RTP timestamp of the access unit in progress, -1 when none is
        self._pts = 0
        self._flags = 0
        self._broken = False
        self._fu = False  # a fragmented NAL unit is open
        self._after_gap = True  # we join a stream mid-way: the first access unit must prove its start too
        self._next_seq = -1
        self._markers = False  # the sender ends its access units with the marker bit
        self._ssrc = -1
        self._last_raw = -1
        self._start_classes: set[int] = set()
        self._first = b""  # first payload of the access unit in progress when it began at a clean boundary
        self._sets: tuple[dict[int, bytes], ...] = ({}, {}, {})
        self._packets = 0
        self._frames = 0
        self._dropped = 0
        self._malformed = 0
        self._unsupported = 0
        self._late = 0
        self._out_of_band = bool(parameter_sets)  # parameter sets came from the SDP, not only in-band
        for item in parameter_sets or ():
            item = bytes(item)
            self._remember(split_annexb(item) if item.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")) else [item])

    # -- codec hooks -------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def _nal_type(self, header: bytes) -> int: ...

    @abc.abstractmethod
    def _first_class(self, payload: bytes) -> tuple[int, bool] | None:
        """Class of the first NAL unit a packet carries and whether a slice is its picture's first."""

    @abc.abstractmethod
    def _set_key(self, nal_type: int, nal: bytes) -> tuple[int, int] | None:
        """(parameter-set kind 0..2, id) of a parameter set NAL unit, or None if it is not one / unreadable."""

    # -- public API --------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def feed(self, packet: RtpPacket) -> list[MediaFrame]:
        """The frames this packet completes."""

    def feed_gap(self) -> None:
        """Declare a loss before the next packet (call on a reorder buffer's `RtpGap`).

        The access unit in progress is dropped when it ends, and the next one too unless its first packet
        proves it starts it (module docstring). Harmless if the sequence check would have seen the loss anyway.
        """
        self._loss()

    def flush(self) -> list[MediaFrame]:
        """End of input: emit the access unit in progress if it can be complete.

        That is only when the sender has not been setting the marker bit: with markers in use, an access unit
        still open at the end lost its last packet (a loss at the very end shows in no sequence number).
        """
        if self._au_ts < 0:
            return []
        if self._markers:
            self._broken = True
        frame = self._finish()
        return [frame] if frame is not None else []

    def statistics(self) -> DepacketizerStatistics:
        """Counters since creation."""
        return DepacketizerStatistics(
            packets=self._packets,
            frames=self._frames,
            frames_dropped=self._dropped,
            malformed=self._malformed,
            unsupported=self._unsupported,
            late=self._late,
        )

    @property
    def parameter_sets(self) -> list[bytes]:
        """The latest parameter sets seen (or given), VPS then SPS then PPS, each kind by increasing id."""
        return [nal for kind in self._sets for _, nal in sorted(kind.items())]

    # -- per-packet helpers (called from the codecs' `feed`) ---------------------------------------------------

    def _sequence_break(self, packet: RtpPacket) -> bool:
        """Handle a sequence number that is not the expected one; True when the packet must be dropped as late."""
        ssrc = packet.ssrc
        if ssrc != self._ssrc:
            # A new source (or the first packet): its numbering and timeline start afresh. What the old source
            # left unfinished is incomplete.
            if self._ssrc >= 0:
                self._loss()
                self._last_raw = -1
                self._start_classes.clear()
            self._ssrc = ssrc
            return False
        behind = (self._next_seq - packet.sequence_number) & 0xFFFF
        if 0 < behind <= _MAX_MISORDER:
            self._late += 1
            return True
        # A forward jump is a loss; a far backward jump is a sender restart, which breaks the frame all the same.
        self._loss()
        return False

    def _loss(self) -> None:
        if self._au_ts >= 0:
            self._broken = True
        self._after_gap = True

    def _judge(self, payload: bytes) -> None:
        """Called when an access unit opens right after a loss: keep it only if `payload` proves its start."""
        self._after_gap = False
        self._first = b""  # not a clean boundary: nothing to learn from this access unit
        if not self._starts_access_unit(self._first_class(payload)):
            self._broken = True

    def _starts_access_unit(self, first: tuple[int, bool] | None) -> bool:
        if first is None:
            return False
        cls, first_slice = first
        if not first_slice:
            return False
        if cls in self.STRONG:
            return True
        if self._start_classes:
            return cls in self._start_classes
        # Nothing learned yet: a plain first slice starts a picture; anything else (a key slice, an SEI or a PPS
        # that may have had parameter sets before it) only when the SDP gave the parameter sets.
        return cls == CLASS_SLICE or self._out_of_band

    def _overflow(self) -> None:
        # Datagram stream: an oversized frame is dropped and counted, not raised. Parts are freed now, so memory
        # stays bounded while the rest of the frame goes by.
        self._parts = []
        self._broken = True

    def _finish(self) -> MediaFrame | None:
        """Close the access unit in progress; the frame, or None when it is broken or holds no picture."""
        parts = self._parts
        flags = self._flags
        first = self._first
        broken = self._broken or self._fu  # a fragmented NAL unit never ended: its tail was lost
        self._parts = []
        self._size = 0
        self._flags = 0
        self._broken = False
        self._fu = False
        self._au_ts = -1
        self._first = b""
        if broken:
            self._dropped += 1
            return None
        if first and (flags & KEY or self._frames < 32 or not self._frames & 15):
            # Learn how this stream starts its access units (module docstring), from every keyframe, the first
            # frames and a sample of the rest: classifying every access unit would cost more than it teaches.
            got = self._first_class(first)
            if got is not None and got[1]:
                self._start_classes.add(got[0])
        if flags & KEY and self.NEEDED & ~flags:
            self._prepend_sets(parts, self.NEEDED & ~flags)
        data = b"".join(parts)
        if flags & self.NEEDED:
            self._remember(split_annexb(data))
        if not flags & VCL:
            # Parameter sets or SEI sent on their own: remembered above, but not a frame.
            return None
        self._frames += 1
        return new_frame(self.CODEC, data, self._pts, bool(flags & KEY))

    def _prepend_sets(self, parts: list[bytes], missing: int) -> None:
        """Insert the cached parameter sets of the `missing` kinds just before the first slice."""
        extra: list[bytes] = []
        for kind, sets in enumerate(self._sets):
            if missing >> (PS_SHIFT + kind) & 1:
                for _, nal in sorted(sets.items()):
                    extra += (START_CODE, nal)
        if not extra:
            return
        at = 0
        for i in range(0, len(parts) - 1):
            if parts[i] is START_CODE and self.FLAGS[self._nal_type(parts[i + 1])] & VCL:
                at = i
                break
        parts[at:at] = extra

    def _remember(self, nals: list[bytes]) -> None:
        flags = self.FLAGS
        for nal in nals:
            if not nal:
                continue
            t = self._nal_type(nal)
            if flags[t] >> PS_SHIFT:
                key = self._set_key(t, nal)
                if key is not None:
                    self._sets[key[0]][key[1]] = nal
