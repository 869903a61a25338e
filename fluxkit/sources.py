"""Which engine `Source` pulls a configured stream: one place for the config file, the REST API and the CLI.

`[[video.streams]]` entries and `POST /api/video/streams` bodies name a `protocol` and a `source_url`; this maps
them to the source class that speaks it. Protocols whose source needs a running service (GB28181 needs the SIP
platform the device registered to) get it through `SourceFactory`'s keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fluxkit.errors import FluxkitError

if TYPE_CHECKING:
    from fluxkit.config import StreamSettings
    from fluxkit.engine import Source

__all__ = ["SourceFactory", "UnsupportedProtocol", "make_source_factory"]

#: Builds the engine source for one stream definition; raises `UnsupportedProtocol` for what it cannot pull.
SourceFactory = Callable[["StreamSettings"], "Source"]


class UnsupportedProtocol(FluxkitError):
    """A stream names a protocol this fluxkit cannot pull (yet, or without the service it needs)."""


def make_source_factory(*, gb28181_platform: Any = None) -> SourceFactory:
    """The factory for this process: RTSP and RTMP always; GB28181 when a platform is running."""

    def source_for(settings: StreamSettings) -> Source:
        protocol = settings.protocol
        if protocol == "rtsp":
            from fluxkit.net.rtsp_source import RtspSource

            return RtspSource(settings.source_url, transport="udp" if settings.transport == "udp" else "tcp")
        if protocol == "rtmp":
            from fluxkit.net.rtmp_source import RtmpSource

            return RtmpSource(settings.source_url)
        if protocol == "gb28181":
            if gb28181_platform is None:
                raise UnsupportedProtocol("gb28181 streams need the GB28181 platform ([video.gb28181] enabled = true)")
            from fluxkit.gb28181 import Gb28181Source

            source: Source = Gb28181Source.from_url(gb28181_platform, settings.source_url)
            return source
        raise UnsupportedProtocol(f"{protocol} sources are not implemented yet")

    return source_for
