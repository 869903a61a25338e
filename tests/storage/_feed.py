"""Helpers: split mediagen Annex-B into access units and publish them into an engine with synthetic timestamps."""

from __future__ import annotations

import io

import av

from fluxkit.engine import Track
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import split_annexb
from tests.mediagen import encode_annexb, encode_audio


def access_units(codec: str, frames: int, gop: int) -> list[tuple[bytes, bool]]:
    es = encode_annexb(codec, frames=frames, gop=gop)
    fmt = "h264" if codec == "h264" else "hevc"
    with av.open(io.BytesIO(es), format=fmt) as container:
        return [(bytes(p), bool(p.is_keyframe)) for p in container.demux() if p.size]


def parameter_sets(codec: str, au: bytes) -> tuple[bytes, ...]:
    if codec == "h264":
        return tuple(n for n in split_annexb(au) if n[0] & 31 in (7, 8))
    return tuple(n for n in split_annexb(au) if (n[0] >> 1) & 0x3F in (32, 33, 34))


def build(codec: str = "h264", *, frames: int = 150, gop: int = 25, audio: str | None = None, fps: int = 25):
    """(tracks, frames in send order) with 90 kHz video timestamps starting at a 32-bit-wrapping base."""
    aus = access_units(codec, frames, gop)
    tracks = [Track(codec=codec, clock_rate=90000, fps=fps, parameter_sets=parameter_sets(codec, aus[0][0]))]
    out: list[MediaFrame] = []
    base = 0xFFFF0000  # wraps during the recording
    audio_packets = encode_audio(audio, seconds=frames / fps + 1, rate=8000) if audio else []
    if audio:
        tracks.append(Track(codec=audio, clock_rate=8000, sample_rate=8000, channels=1))
    samples = 320 if audio != "aac" else 1024
    ai = 0
    for i, (data, key) in enumerate(aus):
        ts = (base + i * (90000 // fps)) & 0xFFFFFFFF
        out.append(MediaFrame(codec=codec, data=data, pts=ts, dts=ts, keyframe=key))
        while audio and ai < len(audio_packets) and ai * samples / 8000 <= i / fps:
            ats = (1000 + ai * samples) & 0xFFFFFFFF
            out.append(MediaFrame(codec=audio, data=audio_packets[ai], pts=ats, dts=ats, keyframe=True))
            ai += 1
    return tracks, out
