"""Zero-decode keyframe extraction: IDR/IRAP access units located from NAL headers, made self-contained.

Strategy: `KeyframeExtractor.feed` looks only at the one or two header bytes after each start code
(`fluxkit.protocols.nalu.nal_types`, `bytes.find` underneath), so a P-frame costs a few microseconds and nothing
is ever decoded. Parameter sets seen in-band (and those announced with the track) are kept in a
`ParameterSets` store; a keyframe access unit that lacks some kind of them gets the stored ones put in front
(after any AUD, H.264 7.4.1.2.3 / H.265 7.4.2.4.4), so every emitted unit decodes alone. A keyframe for which no
parameter sets are known yet cannot be made self-contained: it is skipped and counted.

This module deliberately imports nothing that decodes (no PyAV) and no clock: time comes in as `now`. It uses
absolute imports only, so a test can load it on its own with PyAV blocked.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from fluxkit.errors import LocalProtocolError, ProtocolError
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import ParameterSets, nal_types, parse_sps, split_annexb

__all__ = ["DEFAULT_MAX_KEYFRAME_SIZE", "Keyframe", "KeyframeExtractor"]

#: Largest keyframe access unit the extractor emits, in bytes; larger ones are dropped and counted.
DEFAULT_MAX_KEYFRAME_SIZE = 16 * 1024 * 1024

_START_CODE = b"\x00\x00\x00\x01"
# Per codec: the parameter-set NAL types in decoding order, the AUD type, and the keyframe test.
_H264_PS = (7, 8)
_H265_PS = (32, 33, 34)
_H264_AUD = 9
_H265_AUD = 35
_H264_KEY = frozenset({5})  # IDR (H.264 Table 7-1)
_H265_KEY = frozenset(range(16, 22))  # IRAP: BLA, IDR, CRA (H.265 Table 7-1)
_H264_SPS = 7
_H265_SPS = 33


@attrs.frozen(kw_only=True, slots=True)
class Keyframe:
    """One self-contained keyframe access unit.

    Attributes:
        codec: "h264" or "hevc".
        data: Annex-B bytes: parameter sets (VPS/SPS/PPS) first (after any AUD), then the IDR/IRAP picture;
            decodes alone with a fresh decoder.
        pts: presentation time of the frame, in 90 kHz ticks, or None.
        dts: decoding time, or None.
        wall_time: the `now` the frame was fed with (seconds; wall-clock time in `SnapshotService`).
        width: picture width from the SPS (after cropping), or None when the SPS does not parse.
        height: picture height from the SPS, or None.
        sequence: how many keyframes the extractor had seen before this one (0 for the first), emitted or not.
    """

    codec: str
    data: bytes
    pts: int | None
    dts: int | None
    wall_time: float
    width: int | None
    height: int | None
    sequence: int

    @property
    def size(self) -> int:
        """Length of `data` in bytes."""
        return len(self.data)


class KeyframeExtractor:
    """Finds keyframes in a frame stream without decoding and emits one at most every `interval_seconds`.

    Feed it every frame of one stream (`feed(frame, now)`); audio frames are ignored. Usable on any source of
    `MediaFrame`s: the engine's subscriptions, a demuxer, a file.

    Args:
        interval_seconds: minimum time between two emitted keyframes (0 emits every keyframe).
        parameter_sets: SPS/PPS (and VPS) NAL units known out of band (a track's `parameter_sets`, without start
            codes); in-band ones replace them as they arrive.
        codec: the video codec, when known in advance ("h264" or "hevc"); otherwise taken from the first video
            frame. A change of codec clears the stored parameter sets.
        max_keyframe_size: keyframes larger than this many bytes are dropped and counted in `oversized`.
    """

    __slots__ = (
        "_aud",
        "_codec",
        "_key_types",
        "_last_emit",
        "_ps_kinds",
        "_ps_types",
        "_size_cache",
        "_sps_type",
        "emitted",
        "incomplete",
        "interval_seconds",
        "keyframes_seen",
        "latest",
        "max_keyframe_size",
        "oversized",
        "parameter_sets",
    )

    def __init__(
        self,
        interval_seconds: float = 10.0,
        *,
        parameter_sets: Iterable[bytes] = (),
        codec: str | None = None,
        max_keyframe_size: int = DEFAULT_MAX_KEYFRAME_SIZE,
    ) -> None:
        if not interval_seconds >= 0:
            raise LocalProtocolError(f"interval_seconds must be >= 0, not {interval_seconds!r}")
        if max_keyframe_size < 1:
            raise LocalProtocolError(f"max_keyframe_size must be >= 1, not {max_keyframe_size!r}")
        self.interval_seconds = float(interval_seconds)
        self.max_keyframe_size = max_keyframe_size
        #: Keyframes found (emitted or not).
        self.keyframes_seen = 0
        #: Keyframes returned by `feed`.
        self.emitted = 0
        #: Keyframes skipped because no parameter sets were known for them yet.
        self.incomplete = 0
        #: Keyframes dropped for being larger than `max_keyframe_size`.
        self.oversized = 0
        #: The most recent self-contained keyframe, updated on every keyframe whatever the interval.
        self.latest: Keyframe | None = None
        self._last_emit: float | None = None
        self._size_cache: tuple[bytes, int | None, int | None] = (b"", None, None)
        self._codec = ""
        self.parameter_sets: ParameterSets | None = None
        self._ps_kinds: tuple[int, ...] = ()
        self._ps_types: frozenset[int] = frozenset()
        self._key_types: frozenset[int] = frozenset()
        self._aud = -1
        self._sps_type = -1
        if codec is not None:
            self._set_codec(codec)
        parameter_sets = tuple(parameter_sets)
        if parameter_sets:
            store = self._store()
            for nal in parameter_sets:
                store.update(nal)

    def _store(self) -> ParameterSets:
        store = self.parameter_sets
        if store is None:
            raise LocalProtocolError("parameter_sets given without a codec")
        return store

    @property
    def codec(self) -> str | None:
        """The video codec being followed, or None before the first video frame."""
        return self._codec or None

    def _set_codec(self, codec: str) -> None:
        if codec == "h264":
            self._ps_kinds, self._key_types, self._aud, self._sps_type = _H264_PS, _H264_KEY, _H264_AUD, _H264_SPS
        elif codec in ("hevc", "h265"):
            codec = "hevc"
            self._ps_kinds, self._key_types, self._aud, self._sps_type = _H265_PS, _H265_KEY, _H265_AUD, _H265_SPS
        else:
            raise LocalProtocolError(f"unknown codec {codec!r}: expected 'h264' or 'hevc'")
        self._codec = codec
        self._ps_types = frozenset(self._ps_kinds)
        self.parameter_sets = ParameterSets(codec)
        self._size_cache = (b"", None, None)

    def feed(self, frame: MediaFrame, now: float) -> Keyframe | None:
        """Look at one frame; return a self-contained keyframe when it is one and the interval has passed.

        Args:
            frame: one access unit (Annex-B) of the stream; audio and other codecs are ignored.
            now: the current time in seconds (wall-clock time for stored keyframes).

        Returns:
            The keyframe to store, or None.
        """
        codec = frame.codec
        if codec != self._codec:
            if codec not in ("h264", "hevc", "h265"):
                return None
            if codec != "h265" or self._codec != "hevc":
                self._set_codec(codec)
        data = frame.data
        types = nal_types(self._codec, data)
        ps_types = self._ps_types
        if not ps_types.isdisjoint(types):
            store = self._store()
            for nal in split_annexb(data):
                store.update(nal)  # ignores the units that are not parameter sets
        if self._key_types.isdisjoint(types):
            return None
        return self._keyframe(frame, data, types, now)

    def _keyframe(self, frame: MediaFrame, data: bytes, types: list[int], now: float) -> Keyframe | None:
        sequence = self.keyframes_seen
        self.keyframes_seen += 1
        whole = self._self_contained(data, types)
        if whole is None:
            self.incomplete += 1
            return None
        if len(whole) > self.max_keyframe_size:
            self.oversized += 1
            return None
        width, height = self._size()
        keyframe = Keyframe(
            codec=self._codec,
            data=whole,
            pts=frame.pts,
            dts=frame.dts,
            wall_time=now,
            width=width,
            height=height,
            sequence=sequence,
        )
        self.latest = keyframe
        last = self._last_emit
        # A clock that stepped back (now < last) must not silence the stream for the size of the step.
        if last is not None and last <= now < last + self.interval_seconds:
            return None
        self._last_emit = now
        self.emitted += 1
        return keyframe

    def _self_contained(self, data: bytes, types: list[int]) -> bytes | None:
        """`data` with the missing kinds of parameter set put in front; None when some kind is unknown."""
        kinds = self._ps_kinds
        present = set(types)
        if all(k in present for k in kinds):
            return data  # already self-contained: no copy
        store = self._store()
        by_kind = dict(zip(kinds, (store.vps, store.sps, store.pps)[-len(kinds) :], strict=True))
        nals = split_annexb(data)
        head: list[bytes] = []
        for kind in kinds:
            own = [n for n, t in zip(nals, types, strict=True) if t == kind]
            if own:
                head += own
            else:
                stored = by_kind[kind]
                if not stored:
                    return None
                head += [stored[k] for k in sorted(stored)]
        skip = 1 if types and types[0] == self._aud else 0
        rest = [n for n, t in zip(nals[skip:], types[skip:], strict=True) if t not in kinds]
        return _START_CODE + _START_CODE.join(nals[:skip] + head + rest)

    def _size(self) -> tuple[int | None, int | None]:
        """Picture size from the lowest-id stored SPS, parsed once per distinct SPS."""
        store = self.parameter_sets
        if store is None or not store.sps:
            return None, None
        sps = store.sps[min(store.sps)]
        cached, width, height = self._size_cache
        if sps != cached:
            try:
                info = parse_sps(self._codec, sps)
                width, height = info.width, info.height
            except ProtocolError:
                width = height = None
            self._size_cache = (sps, width, height)
        return width, height
