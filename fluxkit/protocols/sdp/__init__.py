"""SDP (RFC 8866) with the GB28181 additions (GB/T 28181-2016 Appendix F), sans-IO.

* `parse_sdp(text)` -> `SessionDescription`; `SessionDescription.serialize()` always ends with CRLF.
* GB28181: `y=` (`SessionDescription.ssrc` text and `ssrc_int`), `f=` (`MediaFormat`, empty slots kept),
  `s=Play|Playback|Download|Talk`, `u=<channel>:<type>`, `a=setup`/`a=connection`/`a=downloadspeed`/
  `a=filesize`, and the `RTP/AVP`, `TCP/RTP/AVP` and `RTP/AVP/TCP` profiles.
* `build_gb28181_offer` / `build_gb28181_answer` build the INVITE offer and the 200 OK answer.
"""

from __future__ import annotations

from ._gb28181 import DEFAULT_RTPMAPS as DEFAULT_RTPMAPS
from ._gb28181 import SessionKind as SessionKind
from ._gb28181 import Transport as Transport
from ._gb28181 import build_gb28181_answer as build_gb28181_answer
from ._gb28181 import build_gb28181_offer as build_gb28181_offer
from ._gb28181 import format_ssrc as format_ssrc
from ._sdp import DEFAULT_MAX_SDP_SIZE as DEFAULT_MAX_SDP_SIZE
from ._sdp import Attribute as Attribute
from ._sdp import Bandwidth as Bandwidth
from ._sdp import Connection as Connection
from ._sdp import Fmtp as Fmtp
from ._sdp import MediaDescription as MediaDescription
from ._sdp import MediaFormat as MediaFormat
from ._sdp import Origin as Origin
from ._sdp import RtpMap as RtpMap
from ._sdp import SessionDescription as SessionDescription
from ._sdp import Timing as Timing
from ._sdp import parse_sdp as parse_sdp

__all__ = [
    "DEFAULT_MAX_SDP_SIZE",
    "DEFAULT_RTPMAPS",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Fmtp",
    "MediaDescription",
    "MediaFormat",
    "Origin",
    "RtpMap",
    "SessionDescription",
    "SessionKind",
    "Timing",
    "Transport",
    "build_gb28181_answer",
    "build_gb28181_offer",
    "format_ssrc",
    "parse_sdp",
]
