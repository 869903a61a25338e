"""The DESCRIBE answer of the RTSP output: an SDP built from an engine stream's tracks, and their RTP payload types.

Strategy: one `m=` section per track, in track order, controlled by `a=control:trackID=<index>` under an aggregate
`a=control:*`, so that the SETUP URL names the stream and the track (`rtsp://host/<stream_id>/trackID=<n>`).
Codec parameters come from the track: H.264 `profile-level-id` and `sprop-parameter-sets` (RFC 6184 §8.1),
H.265 `sprop-vps/sps/pps` (RFC 7798 §7.1), AAC as `mpeg4-generic` AAC-hbr with the AudioSpecificConfig in
`config` (RFC 3640 §3.3.6), G.711 as the static payload types 0 and 8 (RFC 3551 §6).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import attrs

from fluxkit.engine import Track

__all__ = ["AAC_SAMPLE_RATES", "TrackFormat", "aac_config", "build_sdp", "track_format"]

#: sampling_frequency_index -> rate (ISO/IEC 14496-3 §1.6.3.4).
AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


@attrs.frozen(kw_only=True, slots=True)
class TrackFormat:
    """How one track goes over RTP.

    Attributes:
        payload_type: the RTP payload type.
        encoding: the rtpmap encoding name.
        clock_rate: the RTP clock rate.
        channels: the rtpmap channel count (audio), or None.
        fmtp: the fmtp parameters, or "" for none.
    """

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None
    fmtp: str = ""


def _b64(nal: bytes) -> str:
    return base64.b64encode(nal).decode("ascii")


def aac_config(track: Track) -> bytes:
    """The AudioSpecificConfig of an AAC track: its extradata, else AAC-LC built from sample rate and channels."""
    if track.extradata:
        return track.extradata
    rate = track.sample_rate or track.clock_rate
    index = AAC_SAMPLE_RATES.index(rate) if rate in AAC_SAMPLE_RATES else 0xF
    channels = track.channels or 1
    # audioObjectType (5 bits) = 2 (LC), samplingFrequencyIndex (4), channelConfiguration (4), 3 zero bits.
    value = (2 << 11) | (index << 7) | ((channels & 0xF) << 3)
    if index == 0xF:  # explicit 24-bit frequency after the escape index (ISO/IEC 14496-3 §1.6.2.1)
        value = (2 << 35) | (0xF << 31) | ((rate & 0xFFFFFF) << 7) | ((channels & 0xF) << 3)
        return value.to_bytes(5, "big")
    return value.to_bytes(2, "big")


def track_format(track: Track, index: int) -> TrackFormat | None:
    """The RTP format of a track, or None when the RTSP output cannot carry its codec."""
    codec = track.codec
    sets = track.parameter_sets
    if codec == "h264":
        params = ["packetization-mode=1"]
        sps = [n for n in sets if n and n[0] & 0x1F == 7]
        pps = [n for n in sets if n and n[0] & 0x1F == 8]
        if sps and len(sps[0]) >= 4:
            params.append(f"profile-level-id={sps[0][1:4].hex().upper()}")
        if sps and pps:
            params.append("sprop-parameter-sets=" + ",".join(_b64(n) for n in (*sps, *pps)))
        return TrackFormat(payload_type=96 + index, encoding="H264", clock_rate=90000, fmtp=";".join(params))
    if codec == "hevc":
        params = []
        for name, kind in (("vps", 32), ("sps", 33), ("pps", 34)):
            nals = [n for n in sets if n and (n[0] >> 1) & 0x3F == kind]
            if nals:
                params.append(f"sprop-{name}=" + ",".join(_b64(n) for n in nals))
        return TrackFormat(payload_type=96 + index, encoding="H265", clock_rate=90000, fmtp=";".join(params))
    if codec in ("pcm_alaw", "pcm_mulaw"):
        rate = track.sample_rate or 8000
        channels = track.channels or 1
        static = rate == 8000 and channels == 1
        pt = (8 if codec == "pcm_alaw" else 0) if static else 96 + index
        name = "PCMA" if codec == "pcm_alaw" else "PCMU"
        return TrackFormat(payload_type=pt, encoding=name, clock_rate=rate, channels=channels)
    if codec == "aac":
        rate = track.sample_rate or track.clock_rate
        channels = track.channels or 1
        fmtp = (
            "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;"
            f"config={aac_config(track).hex().upper()}"
        )
        return TrackFormat(
            payload_type=96 + index, encoding="MPEG4-GENERIC", clock_rate=rate, channels=channels, fmtp=fmtp
        )
    return None


def build_sdp(
    tracks: Sequence[Track], *, stream_id: str, host: str, session_id: int
) -> tuple[str, list[TrackFormat | None]]:
    """The SDP text for a stream and the format of each track (None for a track that is left out).

    Args:
        tracks: the stream's tracks; track `i` is controlled by `trackID=i`.
        stream_id: the stream, for the session name.
        host: the server address for the origin line.
        session_id: the origin's session id (any number; from the server's rng).
    """
    family = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN {family} {host}",
        f"s={stream_id.replace(chr(13), '').replace(chr(10), '') or '-'}",
        f"c=IN {family} {'::' if family == 'IP6' else '0.0.0.0'}",
        "t=0 0",
        "a=tool:fluxkit",
        "a=range:npt=now-",
        "a=control:*",
    ]
    formats: list[TrackFormat | None] = []
    for index, track in enumerate(tracks):
        fmt = track_format(track, index)
        formats.append(fmt)
        if fmt is None:
            continue
        kind = "audio" if track.kind == "audio" else "video"
        lines.append(f"m={kind} 0 RTP/AVP {fmt.payload_type}")
        rtpmap = f"a=rtpmap:{fmt.payload_type} {fmt.encoding}/{fmt.clock_rate}"
        if fmt.channels is not None:
            rtpmap += f"/{fmt.channels}"
        lines.append(rtpmap)
        if fmt.fmtp:
            lines.append(f"a=fmtp:{fmt.payload_type} {fmt.fmtp}")
        if kind == "video" and track.fps:
            lines.append(f"a=framerate:{track.fps:g}")
        if track.width and track.height:
            lines.append(f"a=x-dimensions:{track.width},{track.height}")
        lines.append(f"a=control:trackID={index}")
    return "\r\n".join(lines) + "\r\n", formats
