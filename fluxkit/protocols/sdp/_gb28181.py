"""Builders for the GB28181 INVITE offer and answer SDP (GB/T 28181-2016 Appendix F, 9.2 and 9.8).

Strategy: plain functions returning `SessionDescription` records, so the result can be inspected or tweaked with
`attrs.evolve` before `serialize()`. The shapes follow what platforms and devices exchange in the field:

    offer (platform -> device)                 answer (device -> platform)
    v=0                                        v=0
    o=<platform id> 0 0 IN IP4 <ip>            o=<channel id> 0 0 IN IP4 <device ip>
    s=Play|Playback|Download|Talk              s=<same>
    u=<channel id>:0        (playback only)    c=IN IP4 <device ip>
    c=IN IP4 <ip>                              t=<same>
    t=0 0 | t=<start> <end>                    m=video <port> <same proto> 96
    m=video <port> RTP/AVP 96 98 97            a=sendonly
    a=recvonly                                 a=rtpmap:96 PS/90000
    a=rtpmap:96 PS/90000 ...                   a=setup:<complement> a=connection:new   (TCP)
    a=setup:passive a=connection:new (TCP)     a=filesize:<bytes>                      (Download)
    a=downloadspeed:4       (Download only)    y=<ssrc>
    y=<ssrc>                                   f=
    f=

For TCP (RFC 4571 framing, RFC 4145 setup) the offerer says who listens: `passive` (the platform listens and the
device connects, the usual mode) or `active`; the answerer takes the complement.
"""

from __future__ import annotations

from typing import Literal

import attrs

from fluxkit.errors import LocalProtocolError

from ._sdp import Attribute, Connection, MediaDescription, MediaFormat, Origin, SessionDescription, Timing

__all__ = ["DEFAULT_RTPMAPS", "SessionKind", "Transport", "build_gb28181_answer", "build_gb28181_offer", "format_ssrc"]

SessionKind = Literal["Play", "Playback", "Download", "Talk"]
#: "udp": RTP/AVP; "tcp-passive": TCP/RTP/AVP and the offerer listens; "tcp-active": the offerer connects.
Transport = Literal["udp", "tcp-passive", "tcp-active"]

#: The payload types a platform offers for video (C.1 and the Appendix F example): PS 96, H.264 98, MPEG-4 97.
DEFAULT_RTPMAPS: tuple[tuple[int, str], ...] = ((96, "PS/90000"), (98, "H264/90000"), (97, "MPEG4/90000"))


def format_ssrc(ssrc: int | str) -> str:
    """The 10-digit `y=` text for an SSRC given as an int or digit string (leading zeros kept or added)."""
    text = str(ssrc) if isinstance(ssrc, int) else ssrc
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) >= 1 << 32:
        raise LocalProtocolError(f"GB28181 SSRC {ssrc!r} must be a number below 2**32 (10 digits, Appendix F)")
    return text.zfill(10)


def _transport_lines(transport: Transport) -> tuple[str, list[Attribute]]:
    if transport == "udp":
        return "RTP/AVP", []
    if transport not in ("tcp-passive", "tcp-active"):
        raise LocalProtocolError(f"unknown GB28181 transport {transport!r}")
    setup = "passive" if transport == "tcp-passive" else "active"
    return "TCP/RTP/AVP", [Attribute(name="setup", value=setup), Attribute(name="connection", value="new")]


def build_gb28181_offer(
    *,
    kind: SessionKind,
    origin_id: str,
    address: str,
    port: int,
    ssrc: int | str,
    transport: Transport = "udp",
    channel_id: str | None = None,
    record_type: int = 0,
    start: int = 0,
    end: int = 0,
    download_speed: int | None = None,
    rtpmaps: tuple[tuple[int, str], ...] = DEFAULT_RTPMAPS,
    media: str = "video",
    extra_attributes: tuple[Attribute, ...] = (),
    media_format: MediaFormat | None = None,
) -> SessionDescription:
    """The platform's INVITE offer for live view, playback, download or talk.

    Args:
        kind: the `s=` line.
        origin_id: the requester's 20-digit ID (`o=` username).
        address: the IP the media should go to (`o=` and `c=`).
        port: the receiving (or, for tcp-active, the connecting) media port.
        ssrc: the `y=` SSRC (digit 1: 0 live, 1 history; Appendix F).
        transport: see `Transport`.
        channel_id: the channel for `u=<channel id>:<record_type>`; required for Playback and Download.
        start, end: Unix seconds of the recording for Playback/Download (`t=`); 0 0 for live.
        download_speed: `a=downloadspeed` (Download only).
        rtpmaps: payload types and encodings offered, in preference order.
        extra_attributes: e.g. vendor stream selection `Attribute(name="streamnumber", value="1")`.
        media_format: an `f=` to send; an empty `f=` is sent when None.
    """
    if kind in ("Playback", "Download") and channel_id is None:
        raise LocalProtocolError(f"a GB28181 {kind} offer needs channel_id for u=")
    if not 0 <= port <= 65535:
        raise LocalProtocolError(f"port {port} is out of range")
    proto, tcp_attrs = _transport_lines(transport)
    attributes = [Attribute(name="sendrecv" if kind == "Talk" else "recvonly")]
    attributes += [Attribute(name="rtpmap", value=f"{pt} {enc}") for pt, enc in rtpmaps]
    attributes += tcp_attrs
    if download_speed is not None:
        attributes.append(Attribute(name="downloadspeed", value=str(download_speed)))
    attributes += extra_attributes
    return SessionDescription(
        origin=Origin(username=origin_id, address=address),
        session_name=kind,
        uri=None if kind in ("Play", "Talk") or channel_id is None else f"{channel_id}:{record_type}",
        connection=Connection(address=address),
        times=(Timing(start=start, stop=end),),
        media=(
            MediaDescription(
                media=media,
                port=port,
                proto=proto,
                formats=tuple(str(pt) for pt, _ in rtpmaps),
                attributes=tuple(attributes),
                y=format_ssrc(ssrc),
                f=media_format if media_format is not None else MediaFormat(),
            ),
        ),
    )


def build_gb28181_answer(
    offer: SessionDescription,
    *,
    origin_id: str,
    address: str,
    port: int,
    ssrc: int | str | None = None,
    payload_type: int | None = None,
    file_size: int | None = None,
    media_format: MediaFormat | None = None,
) -> SessionDescription:
    """The device's 200 OK answer to `offer`.

    Args:
        offer: the parsed INVITE offer.
        origin_id: the answering channel's ID.
        address, port: where the device sends from (UDP, tcp-active offers) or listens (tcp-passive offers).
        ssrc: the SSRC the device will use; defaults to the offered one (Appendix F note 4 lets a device in
            another domain pick its own, so platforms must always read `y=` from the answer).
        payload_type: the chosen payload type; defaults to the first offered (PS 96).
        file_size: `a=filesize` for a Download answer.
        media_format: an `f=` describing the stream; empty `f=` when None.
    """
    if not offer.media:
        raise LocalProtocolError("the offer has no m= line to answer")
    offered = offer.media[0]
    if payload_type is not None:
        chosen = payload_type
    else:
        numeric = [int(f) for f in offered.formats if f.isascii() and f.isdigit()]
        chosen = numeric[0] if numeric else 96
    rtpmap = offered.rtpmaps.get(chosen)
    attributes = [Attribute(name="sendrecv" if offer.session_name == "Talk" else "sendonly")]
    if rtpmap is not None:
        attributes.append(Attribute(name="rtpmap", value=rtpmap.serialize()))
    setup = offered.setup
    if offered.is_tcp:
        answer_setup = {"passive": "active", "active": "passive"}.get(setup or "passive", "active")
        attributes += [Attribute(name="setup", value=answer_setup), Attribute(name="connection", value="new")]
    if file_size is not None:
        attributes.append(Attribute(name="filesize", value=str(file_size)))
    y = format_ssrc(ssrc) if ssrc is not None else offer.ssrc
    return SessionDescription(
        origin=Origin(username=origin_id, address=address),
        session_name=offer.session_name,
        connection=Connection(address=address),
        times=offer.times or (Timing(),),
        media=(
            attrs.evolve(
                offered,
                port=port,
                formats=(str(chosen),),
                port_count=None,
                information=None,
                connections=(),
                bandwidths=(),
                key=None,
                attributes=tuple(attributes),
                other_lines=(),
                y=y,
                f=media_format if media_format is not None else MediaFormat(),
            ),
        ),
    )
