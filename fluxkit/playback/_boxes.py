"""ISO BMFF (ISO/IEC 14496-12) box writers for a one-track fragmented MP4: init segment and `moof`+`mdat` pairs.

Strategy: every box is built with `struct.pack` and `bytes.join` from its children; nothing walks sample bytes in
Python. The init segment is `ftyp moov` with empty sample tables (stts/stsc/stsz/stco, §8.6/§8.7) and an `mvex`
(§8.8.1) so that all samples live in fragments; a fragment is `moof(mfhd, traf(tfhd, tfdt, trun)) mdat` with
`default-base-is-moof` (§8.8.7) so the data offset in `trun` counts from the `moof` start, as Media Source
Extensions' byte-stream format requires (W3C "ISO BMFF Byte Stream Format" §3). Sample entries are `avc1` + `avcC`
(ISO/IEC 14496-15 §5.3.3) and `hvc1` + `hvcC` (§8.3.3).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.nalu import unescape_rbsp

__all__ = ["avcc", "box", "full_box", "hvcc", "init_segment", "media_fragment"]

_U32 = struct.Struct(">I")
# Unity transformation matrix (§8.2.2.3), shared by mvhd and tkhd.
_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
# Sample flags (§8.8.3.1): sync samples depend on nothing (depends_on=2); others depend on a reference picture
# (depends_on=1) and are marked sample_is_non_sync_sample.
SYNC_FLAGS = 0x02000000
NON_SYNC_FLAGS = 0x01010000
# trun flags (§8.8.8.1): data-offset, sample-duration, sample-size, sample-flags, composition-time-offset present.
_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800
_TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
# The largest 32-bit box body; a fragment over it would need a 64-bit `largesize`, which we never produce.
_MAX_BOX = 0xFFFFFFFF - 16


def box(kind: bytes, *payload: bytes) -> bytes:
    """A box (§4.2): 32-bit size, four-character type, then the payload pieces."""
    size = 8 + sum(len(p) for p in payload)
    if size > _MAX_BOX:
        raise LocalProtocolError(f"box {kind!r} of {size} bytes is too large for a 32-bit size")
    return b"".join((_U32.pack(size), kind, *payload))


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    """A FullBox (§4.2): a box whose payload starts with version (8 bits) and flags (24 bits)."""
    return box(kind, _U32.pack((version << 24) | flags), *payload)


def _nal_array(nals: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack(">H", len(n)) + n for n in nals)


def avcc(sps: Sequence[bytes], pps: Sequence[bytes], *, chroma_format: int = 1, bit_depth_luma: int = 8,
         bit_depth_chroma: int = 8) -> bytes:  # fmt: skip
    """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) with 4-byte NAL lengths.

    Raises:
        LocalProtocolError: no SPS or no PPS, or an SPS too short to carry profile and level.
    """
    if not sps or not pps or len(sps[0]) < 4:
        raise LocalProtocolError("avcC needs at least one SPS (4+ bytes) and one PPS")
    first = sps[0]
    record = [
        bytes([1, first[1], first[2], first[3], 0xFC | 3, 0xE0 | len(sps)]),
        _nal_array(sps),
        bytes([len(pps)]),
        _nal_array(pps),
    ]
    if first[1] in (100, 110, 122, 144):
        # High profiles carry chroma format and bit depths, and a (here empty) SPS-extension list (§5.3.3.1.2).
        record.append(bytes([0xFC | chroma_format, 0xF8 | (bit_depth_luma - 8), 0xF8 | (bit_depth_chroma - 8), 0]))
    return box(b"avcC", *record)


def hvcc(vps: Sequence[bytes], sps: Sequence[bytes], pps: Sequence[bytes], *, chroma_format: int = 1,
         bit_depth_luma: int = 8, bit_depth_chroma: int = 8) -> bytes:  # fmt: skip
    """HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1) with 4-byte NAL lengths.

    The 12 bytes of general profile/tier/level are copied from the SPS's profile_tier_level (H.265 7.3.3), which
    starts at RBSP byte 1 after the 2-byte NAL header.

    Raises:
        LocalProtocolError: a parameter set is missing, or the SPS is too short.
    """
    if not vps or not sps or not pps:
        raise LocalProtocolError("hvcC needs a VPS, an SPS and a PPS")
    rbsp = unescape_rbsp(sps[0][2:18])
    if len(rbsp) < 13:
        raise LocalProtocolError("H.265 SPS too short for hvcC")
    max_sub_layers_minus1 = (rbsp[0] >> 1) & 7
    temporal_id_nested = rbsp[0] & 1
    ptl = rbsp[1:13]  # profile_space..general_level_idc: 2+1+5+32+48+8 bits
    head = ptl[:12] + struct.pack(
        ">HBBBBHB",
        0xF000,  # reserved 1111 + min_spatial_segmentation_idc 0
        0xFC,  # reserved 111111 + parallelismType 0 (unknown)
        0xFC | chroma_format,
        0xF8 | (bit_depth_luma - 8),
        0xF8 | (bit_depth_chroma - 8),
        0,  # avgFrameRate unspecified
        # constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3
        ((max_sub_layers_minus1 + 1) << 3) | (temporal_id_nested << 2) | 3,
    )
    arrays = [bytes([3])]
    for nal_type, nals in ((32, vps), (33, sps), (34, pps)):
        # array_completeness 1 (all parameter sets of the type are here, as `hvc1` requires), NAL_unit_type.
        arrays.append(bytes([0x80 | nal_type]) + struct.pack(">H", len(nals)) + _nal_array(nals))
    return box(b"hvcC", bytes([1]), head, *arrays)


def init_segment(*, codec: str, config: bytes, width: int, height: int, timescale: int, track_id: int = 1) -> bytes:
    """`ftyp` + `moov` for one video track whose samples are all in fragments.

    Args:
        codec: "h264" (sample entry `avc1`) or "hevc" (`hvc1`).
        config: the `avcC` / `hvcC` box.
        width: picture width.
        height: picture height.
        timescale: ticks per second of the media timeline (mdhd).
        track_id: the track's id (tkhd, trex, and tfhd in every fragment).
    """
    entry_type = b"avc1" if codec == "h264" else b"hvc1"
    ftyp = box(b"ftyp", b"iso5", _U32.pack(512), b"iso5", b"iso6", b"mp41", entry_type)
    mvhd = full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, 1000, 0),  # creation, modification, timescale, duration (unknown: fragmented)
        struct.pack(">IH", 0x00010000, 0x0100), bytes(10), _MATRIX, bytes(24), _U32.pack(track_id + 1),
    )  # fmt: skip
    tkhd = full_box(
        b"tkhd", 0, 0x3,  # track_enabled | track_in_movie
        struct.pack(">IIIII", 0, 0, track_id, 0, 0), bytes(8),
        struct.pack(">hhhH", 0, 0, 0, 0), _MATRIX, struct.pack(">II", width << 16, height << 16),
    )  # fmt: skip
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, 0x55C4, 0))  # language "und"
    hdlr = full_box(b"hdlr", 0, 0, _U32.pack(0), b"vide", bytes(12), b"VideoHandler\x00")
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, _U32.pack(1), full_box(b"url ", 0, 1)))
    sample_entry = box(
        entry_type,
        bytes(6), struct.pack(">H", 1),  # reserved, data_reference_index
        bytes(16), struct.pack(">HH", width, height),
        struct.pack(">IIIH", 0x00480000, 0x00480000, 0, 1),  # 72 dpi, reserved, frame_count
        bytes(32), struct.pack(">Hh", 0x0018, -1),  # compressorname, depth, pre_defined
        config,
    )  # fmt: skip
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, _U32.pack(1), sample_entry),
        full_box(b"stts", 0, 0, _U32.pack(0)),
        full_box(b"stsc", 0, 0, _U32.pack(0)),
        full_box(b"stsz", 0, 0, _U32.pack(0), _U32.pack(0)),
        full_box(b"stco", 0, 0, _U32.pack(0)),
    )
    trak = box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", vmhd, dinf, stbl)))
    mvex = box(b"mvex", full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0)))
    return ftyp + box(b"moov", mvhd, trak, mvex)


def media_fragment(
    *,
    sequence: int,
    track_id: int,
    base_time: int,
    samples: Sequence[tuple[int, int, int, int]],
    data: Sequence[bytes],
) -> bytes:
    """One `moof` + `mdat` pair.

    Args:
        sequence: mfhd sequence_number (§8.8.5), 1 for the first fragment, increasing.
        track_id: the track.
        base_time: baseMediaDecodeTime (tfdt, §8.8.12) of the first sample, in the track's timescale.
        samples: per sample (duration, size, flags, composition offset), in decode order.
        data: the sample payloads (length-prefixed NAL units), in the same order; their sizes are `samples`' sizes.
    """
    count = len(samples)
    # trun version 1: signed composition offsets (§8.8.8), so a frame shown before its decode time is expressible.
    entries = b"".join(struct.pack(">IIIi", *s) for s in samples)
    trun_size = 12 + 8 + len(entries)
    traf_size = 8 + 16 + 20 + trun_size  # tfhd (16), tfdt v1 (20)
    moof_size = 8 + 16 + traf_size  # mfhd (16)
    data_offset = moof_size + 8  # first sample byte, from the moof start (default-base-is-moof)
    moof = box(
        b"moof",
        full_box(b"mfhd", 0, 0, _U32.pack(sequence)),
        box(
            b"traf",
            full_box(b"tfhd", 0, _TFHD_DEFAULT_BASE_IS_MOOF, _U32.pack(track_id)),
            full_box(b"tfdt", 1, 0, struct.pack(">Q", base_time)),
            full_box(b"trun", 1, _TRUN_FLAGS, struct.pack(">Ii", count, data_offset), entries),
        ),
    )
    return moof + box(b"mdat", *data)
