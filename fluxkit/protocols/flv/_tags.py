"""FLV tag bodies (Adobe FLV spec v10.1 §E.4.2/§E.4.3, and Enhanced RTMP v1/v2 by Veovera), and FLV file framing.

Strategy: a tag body is parsed from its first one or two bytes with plain indexing and `int.from_bytes`; the data
after the header is one slice, never copied byte by byte. The same bodies are RTMP audio/video message payloads.

Video: legacy AVC (codec id 7) and the HEVC extension many Chinese servers and cameras use (codec id 12, same
layout as AVC): AVCPacketType 0 = sequence header (avcC/hvcC), 1 = NAL units with a signed 24-bit composition
time, 2 = end of sequence. Enhanced RTMP (the IsExHeader bit 0x80): a FourCC ("hvc1", "avc1", ...) follows, and
the packet type says SequenceStart (0), CodedFrames (1, with composition time), SequenceEnd (2), CodedFramesX
(3, composition time 0), Metadata (4). They map to `PACKET_SEQUENCE_HEADER`, `PACKET_FRAME`, `PACKET_END`.

Audio: AAC (sound format 10; AACPacketType 0 = AudioSpecificConfig, 1 = raw frame), G.711 A-law (7) and mu-law
(8); other formats are passed through with a generic codec name.
"""

from __future__ import annotations

import struct

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = [
    "FLV_HEADER_SIZE",
    "PACKET_END",
    "PACKET_FRAME",
    "PACKET_METADATA",
    "PACKET_SEQUENCE_HEADER",
    "TAG_AUDIO",
    "TAG_SCRIPT",
    "TAG_VIDEO",
    "AudioTag",
    "VideoTag",
    "build_audio_tag",
    "build_video_tag",
    "flv_header",
    "flv_tag",
    "parse_audio_tag",
    "parse_video_tag",
]

PACKET_SEQUENCE_HEADER = 0
PACKET_FRAME = 1
PACKET_END = 2
#: Enhanced RTMP metadata packets, video info/command frames (frame type 5) and other non-media packets.
PACKET_METADATA = 4

TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18
FLV_HEADER_SIZE = 9

_LEGACY_VIDEO = {7: "h264", 12: "hevc"}
_FOURCC = {b"avc1": "h264", b"hvc1": "hevc", b"av01": "av1", b"vp09": "vp9"}
_FOURCC_OF = {v: k for k, v in _FOURCC.items()}
_AUDIO_FORMATS = {10: "aac", 7: "pcm_alaw", 8: "pcm_mulaw", 2: "mp3", 11: "speex"}
_TAG_HEADER = struct.Struct(">B3s3sB3s")


@attrs.frozen(kw_only=True, slots=True)
class VideoTag:
    """A parsed VIDEODATA body.

    Attributes:
        codec: "h264", "hevc" (also "av1"/"vp9" by FourCC), or "flv_video_<id>" for other legacy codecs.
        packet_type: `PACKET_SEQUENCE_HEADER`, `PACKET_FRAME`, `PACKET_END` or `PACKET_METADATA`.
        keyframe: frame type 1 (a key frame).
        composition_time: pts - dts in milliseconds (signed).
        data: the decoder configuration record (sequence header) or the length-prefixed NAL units (frame).
        enhanced: True when it used the Enhanced RTMP header.
    """

    codec: str
    packet_type: int
    keyframe: bool
    composition_time: int
    data: bytes
    enhanced: bool = False


@attrs.frozen(kw_only=True, slots=True)
class AudioTag:
    """A parsed AUDIODATA body.

    Attributes:
        codec: "aac", "pcm_alaw", "pcm_mulaw", "mp3", or "flv_audio_<format>".
        packet_type: `PACKET_SEQUENCE_HEADER` (AAC AudioSpecificConfig) or `PACKET_FRAME`.
        sound_rate: the 2-bit rate index (0: 5.5 kHz, 1: 11 kHz, 2: 22 kHz, 3: 44 kHz); AAC and G.711 ignore it.
        stereo: the sound type bit.
        data: the AudioSpecificConfig or the raw frame.
    """

    codec: str
    packet_type: int
    sound_rate: int
    stereo: bool
    data: bytes


def _si24(raw: bytes) -> int:
    return int.from_bytes(raw, "big", signed=True)


def parse_video_tag(payload: bytes) -> VideoTag:
    """Parse a VIDEODATA body (an RTMP video message payload or an FLV video tag's data).

    Raises:
        ParseError: empty or truncated body, or an Enhanced RTMP packet type fluxkit does not support
            (multitrack, ModEx).
    """
    if not payload:
        raise ParseError("empty video tag", offset=0)
    b0 = payload[0]
    frame_type = (b0 >> 4) & 0x07
    if b0 & 0x80:
        packet = b0 & 0x0F
        if len(payload) < 5:
            raise ParseError("enhanced video tag shorter than its FourCC", offset=1)
        fourcc = bytes(payload[1:5])
        codec = _FOURCC.get(fourcc) or "fourcc_" + fourcc.hex()
        if packet == 1:
            if len(payload) < 8:
                raise ParseError("enhanced CodedFrames tag without composition time", offset=5)
            return VideoTag(
                codec=codec,
                packet_type=PACKET_FRAME,
                keyframe=frame_type == 1,
                composition_time=_si24(payload[5:8]),
                data=bytes(payload[8:]),
                enhanced=True,
            )
        if packet in (0, 2, 3):
            mapped = {0: PACKET_SEQUENCE_HEADER, 2: PACKET_END, 3: PACKET_FRAME}[packet]
            return VideoTag(
                codec=codec,
                packet_type=mapped,
                keyframe=frame_type == 1,
                composition_time=0,
                data=bytes(payload[5:]),
                enhanced=True,
            )
        if packet in (4, 5):  # Metadata (HDR colour info), MPEG2TSSequenceStart: nothing for the frame path
            return VideoTag(
                codec=codec,
                packet_type=PACKET_METADATA,
                keyframe=False,
                composition_time=0,
                data=bytes(payload[5:]),
                enhanced=True,
            )
        raise ParseError(f"enhanced RTMP video packet type {packet} (multitrack/ModEx) is not supported", offset=0)
    codec_id = b0 & 0x0F
    name = _LEGACY_VIDEO.get(codec_id)
    if frame_type == 5:  # video info/command frame (§E.4.3.1): one byte, no picture
        return VideoTag(
            codec=name or f"flv_video_{codec_id}",
            packet_type=PACKET_METADATA,
            keyframe=False,
            composition_time=0,
            data=bytes(payload[1:]),
        )
    if name is None:
        return VideoTag(
            codec=f"flv_video_{codec_id}",
            packet_type=PACKET_FRAME,
            keyframe=frame_type == 1,
            composition_time=0,
            data=bytes(payload[1:]),
        )
    if len(payload) < 5:
        raise ParseError(f"{name} video tag shorter than its 5-byte header", offset=0)
    packet = payload[1]
    if packet > 2:
        raise ParseError(f"AVCPacketType {packet} is not 0, 1 or 2", offset=1)
    return VideoTag(
        codec=name,
        packet_type=packet,
        keyframe=frame_type == 1,
        composition_time=_si24(payload[2:5]),
        data=bytes(payload[5:]),
    )


def build_video_tag(
    codec: str,
    packet_type: int,
    data: bytes,
    *,
    keyframe: bool = False,
    composition_time: int = 0,
    enhanced: bool | None = None,
) -> bytes:
    """Build a VIDEODATA body.

    Args:
        codec: "h264" or "hevc".
        packet_type: `PACKET_SEQUENCE_HEADER`, `PACKET_FRAME` or `PACKET_END`.
        data: the configuration record or the length-prefixed NAL units.
        keyframe: frame type 1 (sequence headers are always marked key frames).
        composition_time: pts - dts in milliseconds (signed 24 bits).
        enhanced: use the Enhanced RTMP header; default: yes for HEVC (FourCC "hvc1"), no for H.264. False for
            HEVC gives the legacy codec id 12.

    Raises:
        LocalProtocolError: unknown codec or packet type, composition time out of range.
    """
    if packet_type not in (PACKET_SEQUENCE_HEADER, PACKET_FRAME, PACKET_END):
        raise LocalProtocolError(f"video packet type {packet_type} cannot be built")
    if not -(1 << 23) <= composition_time < (1 << 23):
        raise LocalProtocolError(f"composition time {composition_time} ms does not fit 24 bits")
    key = keyframe or packet_type == PACKET_SEQUENCE_HEADER
    frame_type = 1 if key else 2
    if enhanced is None:
        enhanced = codec == "hevc"
    if enhanced:
        fourcc = _FOURCC_OF.get(codec)
        if fourcc is None:
            raise LocalProtocolError(f"no Enhanced RTMP FourCC for codec {codec!r}")
        if packet_type == PACKET_FRAME and composition_time == 0:
            return bytes((0x80 | (frame_type << 4) | 3,)) + fourcc + data  # CodedFramesX
        head = bytes((0x80 | (frame_type << 4) | packet_type,)) + fourcc
        if packet_type == PACKET_FRAME:
            head += composition_time.to_bytes(3, "big", signed=True)
        return head + data
    codec_id = 7 if codec == "h264" else 12 if codec == "hevc" else None
    if codec_id is None:
        raise LocalProtocolError(f"no legacy FLV codec id for {codec!r}")
    return bytes(((frame_type << 4) | codec_id, packet_type)) + composition_time.to_bytes(3, "big", signed=True) + data


def parse_audio_tag(payload: bytes) -> AudioTag:
    """Parse an AUDIODATA body.

    Raises:
        ParseError: empty body, or an AAC tag without its packet type byte.
    """
    if not payload:
        raise ParseError("empty audio tag", offset=0)
    b0 = payload[0]
    fmt = b0 >> 4
    codec = _AUDIO_FORMATS.get(fmt, f"flv_audio_{fmt}")
    rate = (b0 >> 2) & 3
    stereo = bool(b0 & 1)
    if fmt == 10:
        if len(payload) < 2:
            raise ParseError("AAC audio tag without AACPacketType", offset=1)
        packet = payload[1]
        if packet > 1:
            raise ParseError(f"AACPacketType {packet} is not 0 or 1", offset=1)
        return AudioTag(codec=codec, packet_type=packet, sound_rate=rate, stereo=stereo, data=bytes(payload[2:]))
    return AudioTag(codec=codec, packet_type=PACKET_FRAME, sound_rate=rate, stereo=stereo, data=bytes(payload[1:]))


def build_audio_tag(codec: str, data: bytes, *, packet_type: int = PACKET_FRAME, stereo: bool = True) -> bytes:
    """Build an AUDIODATA body for AAC (flags 0xAF/0xAE, as ffmpeg writes) or G.711 (8 kHz, mono, 16-bit flag).

    Raises:
        LocalProtocolError: codec not "aac", "pcm_alaw" or "pcm_mulaw", or a bad packet type.
    """
    if codec == "aac":
        if packet_type not in (PACKET_SEQUENCE_HEADER, PACKET_FRAME):
            raise LocalProtocolError(f"AAC packet type {packet_type} cannot be built")
        # §E.4.2.1: AAC always says 44 kHz, 16-bit; the real values are in the AudioSpecificConfig.
        return bytes((0xAE | (1 if stereo else 0), packet_type)) + data
    if codec in ("pcm_alaw", "pcm_mulaw"):
        fmt = 7 if codec == "pcm_alaw" else 8
        return bytes(((fmt << 4) | 0x02,)) + data
    raise LocalProtocolError(f"cannot build an FLV audio tag for {codec!r}")


def flv_header(*, audio: bool, video: bool) -> bytes:
    """The 9-byte FLV file header plus PreviousTagSize0 (§E.2, §E.3)."""
    flags = (4 if audio else 0) | (1 if video else 0)
    return b"FLV\x01" + bytes((flags,)) + b"\x00\x00\x00\x09" + b"\x00\x00\x00\x00"


def flv_tag(tag_type: int, timestamp: int, body: bytes) -> bytes:
    """One FLV tag (§E.4.1: 11-byte header, body, then its PreviousTagSize).

    Raises:
        LocalProtocolError: body over 16 MiB or a bad tag type.
    """
    size = len(body)
    if size > 0xFFFFFF or tag_type not in (TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT):
        raise LocalProtocolError("FLV tag body over 16 MiB, or a tag type other than 8, 9 or 18")
    ts = timestamp & 0xFFFFFFFF
    header = _TAG_HEADER.pack(
        tag_type, size.to_bytes(3, "big"), (ts & 0xFFFFFF).to_bytes(3, "big"), ts >> 24, b"\0\0\0"
    )
    return header + body + (size + 11).to_bytes(4, "big")
