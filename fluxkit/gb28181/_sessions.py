"""Media sessions of the GB28181 platform: SSRCs, media ports, and the INVITE / INFO / BYE side of a stream.

Strategy: `Gb28181Source` (`_media.py`) owns a stream's sockets and its lifetime; this module gives it what the
platform holds: an SSRC per Appendix F (unique while in use), the next port of the pool (round robin), the
INVITE and its dialog, MANSRTSP INFOs (Appendix B) in a playback dialog, and the BYE. Watches tell a session
what happened on the signalling side: an event set on the device's BYE in its dialog, and events set when the
device reports MediaStatus 121 (end of a playback or download). A BYE that needs a new TCP connection (the
device's has gone) is sent from a task, so that `bye` stays synchronous for the cleanup paths that call it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import trio

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.manscdp import MediaStatus
from fluxkit.protocols.sip import Dialog, SipRequest, SipResponse, SipUserAgent

from ._settings import Gb28181Error

if TYPE_CHECKING:
    from ._platform import Gb28181Platform
    from ._registry import DeviceRecord
    from ._transport import Addr

__all__ = ["MediaSessions"]


class MediaSessions:
    """SSRC and port pools, INVITE / INFO / BYE, and the watches of live sessions (see the module docstring)."""

    def __init__(self, platform: Gb28181Platform) -> None:
        self._platform = platform
        self._ssrc_serial = platform.rng.randrange(10000)
        self._ssrcs_in_use: set[int] = set()
        self._next_port = platform.settings.media_port_range[0]
        self._dialog_watch: dict[tuple[str, str, str], trio.Event] = {}  # media dialog -> set on the device's BYE
        self._end_of_file: dict[str, set[trio.Event]] = {}  # device -> playbacks waiting for MediaStatus 121

    # ---- pools ---------------------------------------------------------------------------------------------------

    def new_ssrc(self, *, live: bool = True) -> str:
        """A fresh 10-digit SSRC (Appendix F): digit 1 is 0 live / 1 history, digits 2-6 are digits 4-8 of the
        platform's 20-digit ID (its domain), digits 7-10 a serial unique within the platform."""
        prefix = ("0" if live else "1") + self._platform.settings.server_id[3:8]
        for _ in range(10000):
            self._ssrc_serial = (self._ssrc_serial + 1) % 10000
            text = f"{prefix}{self._ssrc_serial:04d}"
            if int(text) not in self._ssrcs_in_use:
                self._ssrcs_in_use.add(int(text))
                return text
        raise Gb28181Error("no free SSRC: 10000 media sessions in use")

    def release_ssrc(self, ssrc: str) -> None:
        """Give an SSRC from `new_ssrc` back."""
        self._ssrcs_in_use.discard(int(ssrc))

    def next_media_port(self) -> int:
        """The next port of the pool to try (round robin over `media_port_range`)."""
        low, high = self._platform.settings.media_port_range
        port = self._next_port
        self._next_port = low if port >= high else port + 1
        return port

    def media_port_count(self) -> int:
        """How many ports the pool has."""
        low, high = self._platform.settings.media_port_range
        return high - low + 1

    # ---- signalling ----------------------------------------------------------------------------------------------

    async def invite(
        self, device: DeviceRecord, channel_id: str, sdp: bytes, ssrc: str
    ) -> tuple[SipResponse, Dialog | None, trio.Event]:
        """INVITE a channel with an SDP offer; the final response, its dialog (2xx), and the BYE watch."""
        platform = self._platform
        # Subject (9.2.2.1): media sender id:SSRC, receiver id:0; playback uses the history SSRC the same way.
        subject = f"{channel_id}:{ssrc},{platform.settings.server_id}:0"
        event = await platform._request(
            device,
            lambda ua, now, addr: ua.invite(
                platform._target(channel_id, device), addr, now, body=sdp, headers=[("Subject", subject)]
            ),
            platform.settings.invite_timeout,
        )
        if event is None:
            raise Gb28181Error(f"INVITE to {device.device_id}/{channel_id}: no final response")
        watch = trio.Event()
        if event.dialog is not None:
            self._dialog_watch[event.dialog.id] = watch
        return event.response, event.dialog, watch

    async def info(self, device: DeviceRecord, dialog: Dialog, body: bytes) -> int:
        """A MANSRTSP INFO in a playback dialog; the SIP status (408: no answer)."""
        platform = self._platform
        event = await platform._request(
            device, lambda ua, now, _addr: ua.info(dialog, now, body), platform.settings.request_timeout, dialog=dialog
        )
        return 408 if event is None else event.response.status_code

    def bye(self, device_id: str, dialog: Dialog) -> None:
        """End a media session (retransmitted by the transaction layer; nothing to wait for)."""
        platform = self._platform
        self._dialog_watch.pop(dialog.id, None)
        device = platform.registry.get(device_id)
        transport = platform._transport
        ua = transport.tcp_ua if device is not None and device.transport == "TCP" else transport.udp_ua
        if ua is None or dialog not in ua.dialogs:
            return
        if ua is transport.tcp_ua and device is not None and not transport.has_connection(dialog.remote_addr):
            platform._spawn(self._bye_reconnecting, device, dialog)
            return
        try:
            ua.bye(dialog, trio.current_time())
        except LocalProtocolError:
            return
        transport.flush(ua)

    async def _bye_reconnecting(self, device: DeviceRecord, dialog: Dialog) -> None:
        platform = self._platform

        def build(ua: SipUserAgent, now: float, _addr: Addr) -> SipRequest:
            return ua.bye(dialog, now)

        with contextlib.suppress(LocalProtocolError):  # the dialog ended meanwhile
            await platform._request(device, build, platform.settings.request_timeout, dialog=dialog)

    # ---- watches -------------------------------------------------------------------------------------------------

    def watch_end_of_file(self, device_id: str, event: trio.Event, *, add: bool = True) -> None:
        """Have `event` set when the device reports MediaStatus 121 (end of a playback or download)."""
        watchers = self._end_of_file.setdefault(device_id, set())
        if add:
            watchers.add(event)
        else:
            watchers.discard(event)
            if not watchers:
                del self._end_of_file[device_id]

    def on_media_status(self, device_id: str, status: MediaStatus) -> None:
        """A MediaStatus notify arrived: wake the device's playbacks at the end of file."""
        if status.end_of_file:
            for watch in self._end_of_file.get(device_id, ()):
                watch.set()

    def on_bye(self, dialog: Dialog) -> None:
        """The device sent BYE in a dialog: its session's watch fires."""
        watch = self._dialog_watch.get(dialog.id)
        if watch is not None:
            watch.set()
