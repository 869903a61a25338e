"""Access-unit assembly and parameter-set tracking for H.264 and H.265.

Strategy: `AccessUnitAssembler` is a feeder of NAL units. For each NAL unit it reads one to three header bytes
and decides whether the unit opens a new access unit, by the specs' rules:

* H.264 7.4.1.2.3: an access unit delimiter always opens one; SPS, PPS, SEI and types 14..18 open one when they
  follow a VCL NAL unit of the current access unit; the first VCL NAL unit of a new primary picture opens one,
  detected (7.4.1.2.4) by first_mb_in_slice == 0, whose ue(v) is the single bit 1 right after the header.
* H.265 7.4.2.4.4: AUD, VPS, SPS, PPS, prefix SEI, 41..44 and 48..55 (nuh_layer_id 0) open one when they follow a
  VCL NAL unit of the current access unit (an AUD always); a VCL NAL unit with first_slice_segment_in_pic_flag
  (the top bit of the byte after the 2-byte header) opens one.

The assembler remembers the latest VPS/SPS/PPS per id in a `ParameterSets` store, so an IDR/IRAP access unit
that arrives without them can be emitted self-contained (parameter sets put in front, after any AUD), which is
what a recorder segment or a thumbnail decoder needs. An access unit is bounded by `max_au_size`.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from fluxkit.errors import LocalProtocolError, ProtocolError, RemoteProtocolError

from ._sps import (
    SpsInfo,
    h264_pps_ids,
    h264_sps_id,
    h265_pps_ids,
    h265_sps_id,
    h265_vps_id,
    parse_h264_sps,
    parse_h265_sps,
)

__all__ = ["DEFAULT_MAX_AU_SIZE", "AccessUnit", "AccessUnitAssembler", "ParameterSets"]

#: Largest access unit `AccessUnitAssembler` buffers, in bytes of NAL units (plus 4 per NAL unit).
DEFAULT_MAX_AU_SIZE = 32 * 1024 * 1024

_START_CODE = b"\x00\x00\x00\x01"
# Non-VCL NAL types that open an access unit when they follow its VCL NAL units (see the module docstring).
_H264_AU_FIRST = frozenset({6, 7, 8, 9, 14, 15, 16, 17, 18})
_H265_AU_FIRST = frozenset({32, 33, 34, 35, 39, 41, 42, 43, 44, 48, 49, 50, 51, 52, 53, 54, 55})


def _is_hevc(codec: str) -> bool:
    if codec == "h264":
        return False
    if codec in ("hevc", "h265"):
        return True
    raise LocalProtocolError(f"unknown codec {codec!r}: expected 'h264' or 'hevc'")


@attrs.frozen(kw_only=True, slots=True)
class AccessUnit:
    """One coded picture with its non-VCL NAL units (an H.264/H.265 access unit).

    Attributes:
        codec: "h264" or "hevc".
        nals: the NAL units, without start codes, in decoding order.
        keyframe: True when it holds an H.264 IDR slice / an H.265 IRAP picture.
        pts: the first presentation timestamp fed with its NAL units, or None.
        dts: the first decoding timestamp fed with its NAL units, or None.
    """

    codec: str
    nals: tuple[bytes, ...]
    keyframe: bool
    pts: int | None = None
    dts: int | None = None

    @property
    def annexb(self) -> bytes:
        """The access unit as Annex-B bytes, each NAL unit behind a 4-byte start code."""
        return _START_CODE + _START_CODE.join(self.nals) if self.nals else b""

    @property
    def nal_types(self) -> tuple[int, ...]:
        """nal_unit_type of each NAL unit."""
        if self.codec == "h264":
            return tuple(n[0] & 0x1F for n in self.nals)
        return tuple((n[0] >> 1) & 0x3F for n in self.nals)

    @property
    def size(self) -> int:
        """Length of `annexb`."""
        return sum(len(n) for n in self.nals) + 4 * len(self.nals)


class ParameterSets:
    """The latest VPS (H.265), SPS and PPS of a stream, by id.

    Ids are bounded by the specs (H.264: 32 SPS, 256 PPS; H.265: 16 VPS, 16 SPS, 64 PPS), so the store is
    bounded too. A parameter set whose id cannot be read is not stored (and counted in `rejected`).

    Args:
        codec: "h264" or "hevc".
    """

    __slots__ = ("_hevc", "_pps", "_sps", "_vps", "codec", "rejected")

    def __init__(self, codec: str) -> None:
        self._hevc = _is_hevc(codec)
        self.codec = "hevc" if self._hevc else "h264"
        self._vps: dict[int, bytes] = {}
        self._sps: dict[int, bytes] = {}
        self._pps: dict[int, bytes] = {}
        #: Parameter-set NAL units that could not be parsed far enough to read their id.
        self.rejected = 0

    @property
    def vps(self) -> Mapping[int, bytes]:
        """VPS NAL units by vps_video_parameter_set_id (always empty for H.264)."""
        return self._vps

    @property
    def sps(self) -> Mapping[int, bytes]:
        """SPS NAL units by seq_parameter_set_id."""
        return self._sps

    @property
    def pps(self) -> Mapping[int, bytes]:
        """PPS NAL units by pic_parameter_set_id."""
        return self._pps

    def update(self, nal: bytes) -> bool:
        """Store `nal` if it is a parameter set; return True if it was one (stored or rejected)."""
        if not nal:
            return False
        try:
            if self._hevc:
                t = (nal[0] >> 1) & 0x3F
                if t == 32:
                    self._vps[h265_vps_id(nal)] = bytes(nal)
                elif t == 33:
                    self._sps[h265_sps_id(nal)] = bytes(nal)
                elif t == 34:
                    self._pps[h265_pps_ids(nal)[0]] = bytes(nal)
                else:
                    return False
            else:
                t = nal[0] & 0x1F
                if t == 7:
                    self._sps[h264_sps_id(nal)] = bytes(nal)
                elif t == 8:
                    self._pps[h264_pps_ids(nal)[0]] = bytes(nal)
                else:
                    return False
        except ProtocolError:
            self.rejected += 1
        return True

    @property
    def complete(self) -> bool:
        """True once an SPS and a PPS (and, for H.265, a VPS) are known."""
        return bool(self._sps and self._pps and (self._vps or not self._hevc))

    def nals(self) -> list[bytes]:
        """Every stored parameter set in decoding order: VPS, then SPS, then PPS, each by increasing id."""
        return [d[k] for d in (self._vps, self._sps, self._pps) for k in sorted(d)]

    def sps_info(self) -> SpsInfo | None:
        """The parsed lowest-id SPS, or None when there is none or it does not parse."""
        if not self._sps:
            return None
        nal = self._sps[min(self._sps)]
        try:
            return parse_h265_sps(nal) if self._hevc else parse_h264_sps(nal)
        except ProtocolError:
            return None

    def clear(self) -> None:
        """Forget every parameter set."""
        self._vps.clear()
        self._sps.clear()
        self._pps.clear()


class AccessUnitAssembler:
    """Groups NAL units into access units: `feed(nal)` returns the access units it completed, `flush()` the last.

    An access unit is complete when the first NAL unit of the next one arrives. NAL units that come before the
    first VCL NAL unit and never get one (a stream that ends on parameter sets) are dropped at `flush()` and
    counted in `dropped_nals`.

    Args:
        codec: "h264" or "hevc".
        insert_parameter_sets: put the stored VPS/SPS/PPS in front of a keyframe access unit that lacks them.
        max_au_size: the largest access unit buffered; a larger one raises `RemoteProtocolError` and is dropped.
    """

    __slots__ = (
        "_dts",
        "_has_vcl",
        "_hevc",
        "_keyframe",
        "_nals",
        "_pts",
        "_size",
        "codec",
        "dropped_nals",
        "insert_parameter_sets",
        "max_au_size",
        "parameter_sets",
    )

    def __init__(
        self, codec: str, *, insert_parameter_sets: bool = True, max_au_size: int = DEFAULT_MAX_AU_SIZE
    ) -> None:
        self._hevc = _is_hevc(codec)
        self.codec = "hevc" if self._hevc else "h264"
        self.insert_parameter_sets = insert_parameter_sets
        self.max_au_size = max_au_size
        #: The latest parameter sets seen in the stream.
        self.parameter_sets = ParameterSets(self.codec)
        #: NAL units dropped: non-VCL units with no picture, and the units of over-long access units.
        self.dropped_nals = 0
        self._nals: list[bytes] = []
        self._has_vcl = False
        self._keyframe = False
        self._size = 0
        self._pts: int | None = None
        self._dts: int | None = None

    def feed(self, nal: bytes, pts: int | None = None, dts: int | None = None) -> list[AccessUnit]:
        """Add one NAL unit (no start code); return the access unit it completed, if any.

        Args:
            nal: the NAL unit, header first. Empty units are ignored.
            pts: presentation timestamp that came with it (the access unit keeps the first one given).
            dts: decoding timestamp that came with it.

        Raises:
            RemoteProtocolError: the access unit grew past `max_au_size` (it is dropped).
        """
        if not nal:
            return []
        b0 = nal[0]
        if self._hevc:
            t = (b0 >> 1) & 0x3F
            vcl = t < 32
            if vcl:
                opens = len(nal) > 2 and bool(nal[2] & 0x80) and not b0 & 1 and nal[1] < 8
                keyframe = 16 <= t <= 21
            else:
                # 7.4.2.4.4 applies to nuh_layer_id 0; other layers' NAL units belong to the current unit.
                opens = t in _H265_AU_FIRST and not b0 & 1 and len(nal) > 1 and nal[1] < 8
                keyframe = False
            is_aud = t == 35
        else:
            t = b0 & 0x1F
            vcl = 1 <= t <= 5
            if vcl:
                # Partitions B and C (3, 4) carry no first_mb_in_slice.
                opens = t != 3 and t != 4 and len(nal) > 1 and bool(nal[1] & 0x80)
                keyframe = t == 5
            else:
                opens = t in _H264_AU_FIRST
                keyframe = False
            is_aud = t == 9
        out: list[AccessUnit] = []
        if opens and self._nals and (self._has_vcl or is_aud):
            if self._has_vcl:
                out.append(self._emit())
            else:
                # An AUD after stray non-VCL units: the AUD must come first (7.4.1.2.3), so drop them.
                self.dropped_nals += len(self._nals)
            self._reset()
        if not vcl:
            self.parameter_sets.update(nal)
        self._nals.append(bytes(nal))
        self._size += len(nal) + 4
        if vcl:
            self._has_vcl = True
            self._keyframe = self._keyframe or keyframe
        if self._pts is None:
            self._pts = pts
        if self._dts is None:
            self._dts = dts
        if self._size > self.max_au_size:
            size = self._size
            self.dropped_nals += len(self._nals)
            self._reset()
            raise RemoteProtocolError(f"access unit larger than max_au_size={self.max_au_size} ({size} bytes)")
        return out

    def flush(self) -> list[AccessUnit]:
        """End of stream: return the last access unit, if it has a picture."""
        out = [self._emit()] if self._has_vcl else []
        if not self._has_vcl:
            self.dropped_nals += len(self._nals)
        self._reset()
        return out

    def _reset(self) -> None:
        self._nals = []
        self._has_vcl = False
        self._keyframe = False
        self._size = 0
        self._pts = None
        self._dts = None

    def _emit(self) -> AccessUnit:
        nals = self._nals
        if self._keyframe and self.insert_parameter_sets:
            nals = self._with_parameter_sets(nals)
        return AccessUnit(codec=self.codec, nals=tuple(nals), keyframe=self._keyframe, pts=self._pts, dts=self._dts)

    def _with_parameter_sets(self, nals: list[bytes]) -> list[bytes]:
        """`nals` with the missing kinds of parameter set taken from the store, in decoding order."""
        kinds: tuple[int, ...]
        if self._hevc:
            kinds = (32, 33, 34)
            types = [(n[0] >> 1) & 0x3F for n in nals]
            aud = 35
        else:
            kinds = (7, 8)
            types = [n[0] & 0x1F for n in nals]
            aud = 9
        present = set(types)
        if all(k in present for k in kinds):
            return nals
        ps = self.parameter_sets
        stored = {32: ps.vps, 33: ps.sps, 34: ps.pps, 7: ps.sps, 8: ps.pps}
        head: list[bytes] = []
        for kind in kinds:
            # The unit's own parameter sets of a kind win over the stored ones (they may be newer).
            own = [n for n, t in zip(nals, types, strict=True) if t == kind]
            head += own or [stored[kind][k] for k in sorted(stored[kind])]
        # An AUD stays first (H.264 7.4.1.2.3, H.265 7.4.2.4.4).
        skip = 1 if types[0] == aud else 0
        rest = [n for n, t in zip(nals[skip:], types[skip:], strict=True) if t not in kinds]
        return nals[:skip] + head + rest
