"""Just enough ISO BMFF (ISO/IEC 14496-12) reading to recover and index fragmented MP4 segments.

Strategy: only box headers are read (8 or 16 bytes each, §4.2), never sample data, so scanning a 150 MB segment
costs a few hundred small reads. A fragmented file is `ftyp moov (moof mdat)* [mfra]`; after a crash the tail
may hold a half-written `moof`/`mdat`, which `complete_length` finds so the file can be cut back to its last
complete fragment (a "part") and still play. Pure functions over a binary file object: no paths, no clocks.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import attrs

__all__ = [
    "Box",
    "Fragment",
    "complete_length",
    "fragments",
    "keyframe_fragments",
    "scan_boxes",
    "track_defaults",
    "track_timescales",
]

_HEADER = struct.Struct(">I4s")
_LARGE = struct.Struct(">Q")


@attrs.frozen(kw_only=True, slots=True)
class Box:
    """A top-level box: its four-character `type`, byte `offset` and total `size` (header included)."""

    type: bytes
    offset: int
    size: int


@attrs.frozen(kw_only=True, slots=True)
class Fragment:
    """One `moof`: its byte `offset`, each track's `baseMediaDecodeTime` (tfdt, §8.8.12) by track id, and the
    sample flags (§8.8.3.1) of each track's first sample where the fragment states them (tfhd default or trun)."""

    offset: int
    base_times: dict[int, int]
    first_flags: dict[int, int] = attrs.field(factory=dict)


#: sample_is_non_sync_sample in the 32-bit sample flags (§8.8.3.1): clear on a sync sample (a keyframe).
NON_SYNC = 0x00010000
_U32 = struct.Struct(">I")


def scan_boxes(f: BinaryIO, file_size: int) -> list[Box]:
    """Top-level boxes of `f` in order; a box whose header or body runs past `file_size` ends the list
    (it is returned, so the caller sees the truncation)."""
    boxes: list[Box] = []
    offset = 0
    while offset + 8 <= file_size:
        f.seek(offset)
        head = f.read(16)
        if len(head) < 8:
            break
        size, kind = _HEADER.unpack_from(head)
        if size == 1:  # 64-bit largesize follows (§4.2)
            if len(head) < 16:
                break
            (size,) = _LARGE.unpack_from(head, 8)
            if size < 16:
                break
        elif size == 0:  # box extends to the end of the file
            size = file_size - offset
        elif size < 8:
            break
        boxes.append(Box(type=kind, offset=offset, size=size))
        offset += size
    return boxes


def complete_length(boxes: list[Box], file_size: int) -> int:
    """Length of the longest playable prefix: `ftyp`+`moov` and every complete `moof`+`mdat` pair after them.

    Returns 0 when even the header (ftyp+moov) is incomplete: the file holds nothing playable.
    """
    end = 0
    have_moov = False
    i = 0
    n = len(boxes)
    while i < n:
        box = boxes[i]
        box_end = box.offset + box.size
        if box_end > file_size:
            break
        if box.type in (b"ftyp", b"free", b"skip", b"styp"):
            if have_moov:
                end = box_end
        elif box.type == b"moov":
            have_moov = True
            end = box_end
        elif box.type == b"moof":
            if not have_moov or i + 1 >= n:
                break
            mdat = boxes[i + 1]
            if mdat.type != b"mdat" or mdat.offset + mdat.size > file_size:
                break
            end = mdat.offset + mdat.size
            i += 1
        elif box.type == b"mfra":
            if have_moov:
                end = box_end
        else:
            break
        i += 1
    return end if have_moov else 0


def _children(data: bytes, start: int, stop: int) -> list[tuple[bytes, int, int]]:
    out = []
    pos = start
    while pos + 8 <= stop:
        size, kind = _HEADER.unpack_from(data, pos)
        if size < 8 or pos + size > stop:
            break
        out.append((kind, pos + 8, pos + size))
        pos += size
    return out


def _tfhd_default_flags(data: bytes, start: int, stop: int) -> int | None:
    """default_sample_flags of a tfhd (§8.8.7), or None when the box does not carry them."""
    flags = int.from_bytes(data[start + 1 : start + 4], "big")
    if not flags & 0x20:
        return None
    pos = start + 8 + (8 if flags & 0x01 else 0) + sum(4 for bit in (0x02, 0x08, 0x10) if flags & bit)
    return _U32.unpack_from(data, pos)[0] if pos + 4 <= stop else None


def _trun_first_flags(data: bytes, start: int, stop: int) -> int | None:
    """Flags of a trun's first sample (§8.8.8): first_sample_flags, else its own per-sample flags, else None."""
    if stop - start < 8:
        return None
    flags = int.from_bytes(data[start + 1 : start + 4], "big")
    count = _U32.unpack_from(data, start + 4)[0]
    pos = start + 8 + (4 if flags & 0x001 else 0)
    if flags & 0x004:
        return _U32.unpack_from(data, pos)[0] if pos + 4 <= stop else None
    if not flags & 0x400 or not count:
        return None
    pos += sum(4 for bit in (0x100, 0x200) if flags & bit)
    return _U32.unpack_from(data, pos)[0] if pos + 4 <= stop else None


def fragments(f: BinaryIO, boxes: list[Box]) -> list[Fragment]:
    """Every `moof` with the tfdt of each of its track fragments (tfhd track_ID, §8.8.7)."""
    result: list[Fragment] = []
    for box in boxes:
        if box.type != b"moof" or box.size > 1 << 24:
            continue
        f.seek(box.offset)
        data = f.read(box.size)
        base_times: dict[int, int] = {}
        first_flags: dict[int, int] = {}
        for kind, start, stop in _children(data, 8, len(data)):
            if kind != b"traf":
                continue
            track_id = None
            base = None
            default_flags = None
            first = None
            for child, cstart, cstop in _children(data, start, stop):
                if child == b"tfhd" and cstop - cstart >= 8:
                    (track_id,) = struct.unpack_from(">I", data, cstart + 4)
                    default_flags = _tfhd_default_flags(data, cstart, cstop)
                elif child == b"tfdt" and cstop - cstart >= 8:
                    version = data[cstart]
                    if version == 1 and cstop - cstart >= 12:
                        (base,) = struct.unpack_from(">Q", data, cstart + 4)
                    else:
                        (base,) = struct.unpack_from(">I", data, cstart + 4)
                elif child == b"trun" and first is None:  # the first trun holds the fragment's first sample
                    first = _trun_first_flags(data, cstart, cstop)
            if track_id is not None and base is not None:
                base_times[track_id] = base
            flags = first if first is not None else default_flags
            if track_id is not None and flags is not None:
                first_flags[track_id] = flags
        result.append(Fragment(offset=box.offset, base_times=base_times, first_flags=first_flags))
    return result


def track_timescales(f: BinaryIO, boxes: list[Box]) -> dict[int, int]:
    """{track_ID: mdhd timescale} from the `moov` (§8.3.2 tkhd, §8.4.2 mdhd)."""
    scales: dict[int, int] = {}
    for box in boxes:
        if box.type != b"moov" or box.size > 1 << 24:
            continue
        f.seek(box.offset)
        data = f.read(box.size)
        for kind, start, stop in _children(data, 8, len(data)):
            if kind != b"trak":
                continue
            track_id = None
            scale = None
            for child, cstart, cstop in _children(data, start, stop):
                if child == b"tkhd" and cstop - cstart >= 24:
                    version = data[cstart]
                    (track_id,) = struct.unpack_from(">I", data, cstart + (20 if version == 1 else 12))
                elif child == b"mdia":
                    for sub, sstart, sstop in _children(data, cstart, cstop):
                        if sub == b"mdhd" and sstop - sstart >= 24:
                            version = data[sstart]
                            (scale,) = struct.unpack_from(">I", data, sstart + (20 if version == 1 else 12))
            if track_id is not None and scale:
                scales[track_id] = scale
    return scales


def _moov(f: BinaryIO, boxes: list[Box]) -> bytes | None:
    for box in boxes:
        if box.type == b"moov" and box.size <= 1 << 24:
            f.seek(box.offset)
            return f.read(box.size)
    return None


def track_defaults(f: BinaryIO, boxes: list[Box]) -> dict[int, int]:
    """{track_ID: default_sample_flags} from the `moov`'s `mvex/trex` boxes (§8.8.3)."""
    data = _moov(f, boxes)
    out: dict[int, int] = {}
    if data is None:
        return out
    for kind, start, stop in _children(data, 8, len(data)):
        if kind != b"mvex":
            continue
        for child, cstart, cstop in _children(data, start, stop):
            if child == b"trex" and cstop - cstart >= 24:
                track_id, *_rest, flags = struct.unpack_from(">5I", data, cstart + 4)
                out[track_id] = flags
    return out


def keyframe_fragments(f: BinaryIO, file_size: int, track_id: int = 1) -> list[tuple[float, int]]:
    """(seconds from the track's time zero, moof byte offset) of every fragment whose first sample of `track_id`
    is a sync sample: the keyframe list a segment written with `frag_keyframe` had when it was recorded, read back
    from the file alone (sample flags from trun, else tfhd, else trex; §8.8.3.1 sample_is_non_sync_sample).

    The time is the fragment's tfdt over the track's mdhd timescale. A fragment whose flags say nothing (no
    trun, tfhd or trex flags at all) counts as a keyframe fragment, as `frag_keyframe` makes every fragment one.
    """
    boxes = scan_boxes(f, file_size)
    scale = track_timescales(f, boxes).get(track_id)
    if not scale:
        return []
    fallback = track_defaults(f, boxes).get(track_id)
    keys: list[tuple[float, int]] = []
    for fragment in fragments(f, boxes):
        base = fragment.base_times.get(track_id)
        if base is None:
            continue
        flags = fragment.first_flags.get(track_id, fallback)
        if flags is not None and flags & NON_SYNC:
            continue
        keys.append((base / scale, fragment.offset))
    return keys
