"""`Gb28181Platform`: fluxkit as the GB/T 28181 platform (SIP server) that cameras and NVRs register to.

Strategy: the platform is the transaction user on top of the sans-IO SIP user agents, split by concern; this
module wires the parts together, owns their shared state (settings, registry, events) and the public API:

* `_transport.py` (`SipTransport`): UDP and TCP sockets, TCP connections both ways (platform-initiated ones to
  devices whose connection has gone), the user agents, and waiting for the final response of a request.
* `_registration.py` (`Registrar`): REGISTER with Digest, liveness from keepalives, generations, offline.
* `_queries.py` (`Queries`): MANSCDP queries and PTZ out, MESSAGE/NOTIFY bodies in (catalog, alarms and their
  A.2.6 responses, positions, media status), multi-part assembly.
* `_sessions.py` (`MediaSessions`): SSRCs, the media port pool, INVITE / INFO / BYE of live and playback streams.
* `_subscriptions.py` (`Subscriptions`): Catalog, Alarm and MobilePosition subscriptions (9.11, RFC 6665).
* `_registry.py` (`DeviceRegistry`): devices and channels in memory, written to SQLite by a writer task.

One timer task sleeps until the earliest of: the user agents' transaction timers, the multi-part assembler's
deadline, and the moment a device's keepalives (interval x count, §9.6) or registration run out; anything
that may move a deadline earlier sets the transport's `wake` event. Requests to a device go to the address its
last request came from, over the transport it registered with (NAT-aware); for TCP, when that connection has
gone, over a new one the platform opens to the device's Contact (`_request`).

Live media is `Gb28181Source` (`_media.py`): it asks the platform for a port, an SSRC and an INVITE.
"""

from __future__ import annotations

import datetime
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from fluxkit.net._udp import bind_udp
from fluxkit.protocols.manscdp import DeviceInfoResponse, DeviceStatusResponse, RecordItem
from fluxkit.protocols.sip import Dialog, RequestReceived, ResponseReceived, SipRequest, SipResponse, SipUserAgent

from ._events import Gb28181Event
from ._ptz import ptz_command
from ._queries import Queries, record_fields
from ._registration import Registrar
from ._registry import ChannelRecord, DeviceRecord, DeviceRegistry
from ._sessions import MediaSessions
from ._settings import DeviceNotFoundError, DeviceOfflineError, Gb28181Error, PlatformSettings
from ._subscriptions import SubscriptionInfo, Subscriptions, subscription_filter
from ._transport import Addr, SipTransport

if TYPE_CHECKING:
    from fluxkit.engine import VideoEngine

    from ._media import SharedMediaPort

__all__ = ["Gb28181Platform"]

logger = logging.getLogger("fluxkit.gb28181")

#: Events queued per `events()` reader before it loses some.
DEFAULT_EVENT_QUEUE = 256

#: Builds a request: (user agent, now, destination address) -> the request it queued.
RequestBuilder = Callable[[SipUserAgent, float, Addr], SipRequest]


class Gb28181Platform:
    """The GB28181 platform: SIP server, device registry, queries, PTZ, subscriptions, and the INVITE side of
    live streams.

    Args:
        engine: the engine that `Gb28181Source` streams publish into (used by callers; kept for them).
        settings: see `PlatformSettings`.
        rng: source of tags, nonces, SSRC serials and SNs.
        registry_path: the SQLite file of the device registry (":memory:" keeps nothing across restarts).

    Use `await nursery.start(platform.serve)`; everything else needs the server running.
    """

    def __init__(
        self,
        engine: VideoEngine | None,
        settings: PlatformSettings,
        *,
        rng: random.Random,
        registry_path: str | Path = ":memory:",
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.rng = rng
        self.registry = DeviceRegistry(registry_path)
        self.media_host = settings.media_host or settings.host
        self.shared_media: SharedMediaPort | None = None
        self._transport = SipTransport(settings, rng, on_request=self._on_request)
        self._registrar = Registrar(self)
        self._queries = Queries(self)
        self._sessions = MediaSessions(self)
        self._subs = Subscriptions(self)
        self._listeners: list[trio.MemorySendChannel[Gb28181Event]] = []
        self._nursery: trio.Nursery | None = None

    # ---- public API: state ---------------------------------------------------------------------------------------

    @property
    def sip_port(self) -> int:
        """The SIP port (UDP and TCP); the bound one once serving."""
        return self._transport.port

    @property
    def malformed(self) -> int:
        """Messages and bodies dropped as unreadable."""
        return self._transport.malformed + self._queries.malformed

    @property
    def tcp_connections_opened(self) -> int:
        """TCP connections the platform opened to devices (their own had gone)."""
        return self._transport.connections_opened

    def devices(self) -> list[DeviceRecord]:
        """Every known device with its channels (for the REST layer)."""
        return self.registry.all()

    def device(self, device_id: str) -> DeviceRecord | None:
        """One device, or None."""
        return self.registry.get(device_id)

    def events(self, *, buffer_size: int = DEFAULT_EVENT_QUEUE) -> trio.MemoryReceiveChannel[Gb28181Event]:
        """A channel of platform events from now on (a slow reader loses events rather than blocking the server).

        The same events also go to the engine's feed (`VideoEngine.events()`) when the platform has an engine."""
        send, receive = trio.open_memory_channel[Gb28181Event](buffer_size)
        self._listeners.append(send)
        return receive

    def generation(self, device_id: str) -> int:
        """A counter bumped whenever the device restarts, re-registers after being offline, or goes offline."""
        return self._registrar.generation(device_id)

    # ---- public API: queries and control -------------------------------------------------------------------------

    async def ptz(
        self,
        device_id: str,
        channel_id: str,
        command: str,
        speed: int = 128,
        preset: int | None = None,
        *,
        group: int | None = None,
        switch: int | None = None,
        value: int | None = None,
    ) -> int:
        """Send a PTZ command (DeviceControl/PTZCmd, A.3) to a channel; returns the SIP status (408 on timeout).

        `command` and the parameters are those of `ptz_command` (moves, presets, cruise, scan, aux switches).

        Raises:
            LocalProtocolError: unknown command name, or a bad or missing parameter.
            DeviceNotFoundError, DeviceOfflineError: the device cannot be reached.
        """
        cmd = ptz_command(command, speed=speed, preset=preset, group=group, switch=switch, value=value)
        return await self._queries.ptz(self._online_device(device_id), channel_id, cmd)

    async def query_catalog(self, device_id: str) -> tuple[ChannelRecord, ...]:
        """Ask for the catalog and wait for all its parts (or the assembly deadline); returns the channels.

        Raises:
            DeviceNotFoundError, DeviceOfflineError; Gb28181Error when the device refuses or never answers.
        """
        return await self._queries.catalog(self._online_device(device_id))

    async def query_device_info(self, device_id: str) -> DeviceInfoResponse:
        """DeviceInfo query (A.2.4.5); the manufacturer, model and firmware are stored in the registry."""
        answer = await self._queries.device_info(self._online_device(device_id))
        current = self.registry.get(device_id)
        if current is not None:
            self.registry.put(
                attrs.evolve(
                    current,
                    name=answer.device_name,
                    manufacturer=answer.manufacturer,
                    model=answer.model,
                    firmware=answer.firmware,
                )
            )
        return answer

    async def query_device_status(self, device_id: str) -> DeviceStatusResponse:
        """DeviceStatus query (A.2.4.6)."""
        return await self._queries.device_status(self._online_device(device_id))

    async def query_records(
        self,
        device_id: str,
        channel_id: str,
        start_time: str,
        end_time: str,
        *,
        record_type: str | None = None,
        secrecy: int | None = None,
        file_path: str | None = None,
        address: str | None = None,
        recorder_id: str | None = None,
    ) -> tuple[RecordItem, ...]:
        """RecordInfo query (A.2.4.7) for a channel between two local ISO times ("2024-01-01T00:00:00");
        multi-part answers are assembled. Returns the records (partial after the assembly deadline).

        Args:
            record_type: `Type`: "all" (the default), "time", "alarm" or "manual".
            secrecy: `Secrecy`: 0 (the default: recordings that are not secret) or 1.
            file_path: `FilePath`: one file's path on the device.
            address: `Address`: where it was recorded (devices may match a part of it).
            recorder_id: `RecorderID`: who triggered the recording.

        Raises:
            LocalProtocolError: a bad filter value (checked before anything is sent; see `record_fields`).
            DeviceNotFoundError, DeviceOfflineError; Gb28181Error when the device refuses or never answers.
        """
        fields = record_fields(
            record_type=record_type, secrecy=secrecy, file_path=file_path, address=address, recorder_id=recorder_id
        )
        device = self._online_device(device_id)
        return await self._queries.records(device, channel_id, start_time, end_time, fields)

    # ---- public API: subscriptions -------------------------------------------------------------------------------

    def subscriptions(self, device_id: str) -> dict[str, float]:
        """The device's active subscriptions: event name -> `trio.current_time()` at which it expires."""
        return self._subs.active(device_id)

    def subscription_info(self, device_id: str) -> list[SubscriptionInfo]:
        """Every wanted or active subscription of the device."""
        return self._subs.infos(device_id)

    async def subscribe(
        self,
        device_id: str,
        event: str,
        *,
        expires: int | None = None,
        interval: int | None = None,
        channel_id: str | None = None,
        start_alarm_priority: int | None = None,
        end_alarm_priority: int | None = None,
        alarm_method: str | int | None = None,
        alarm_type: str | int | None = None,
        start_time: str | datetime.datetime | None = None,
        end_time: str | datetime.datetime | None = None,
    ) -> SubscriptionInfo:
        """Subscribe the device to `event` ("Catalog", "Alarm", "MobilePosition"), kept up from now on (refreshed,
        renewed after re-registrations); waits for the device's answer to the first SUBSCRIBE. Subscribing again
        to the same event replaces its Expires, interval and filters.

        Args:
            expires: the Expires to ask for (default `subscription_expires`).
            interval: MobilePosition: seconds between reports (`<Interval>`; None: the device's default).
            channel_id: Alarm, Catalog: only this channel's alarms or catalog changes (A.2.4 `<DeviceID>`).
            start_alarm_priority, end_alarm_priority: Alarm: priorities 1 (highest) .. 4 (A.2.4.6).
            alarm_method: Alarm: method digits 1-7, combined ("25": device or video alarms; "0": all).
            alarm_type: Alarm: the `<AlarmType>` asked for.
            start_time, end_time: Alarm: when the alarm happened; Catalog: when a change is notified. ISO 8601
                strings (zone-less: local) or datetimes.

        Raises:
            LocalProtocolError: a bad filter, or one the event does not take (see `subscription_filter`).
            DeviceNotFoundError, DeviceOfflineError; SubscriptionRefusedError when the device refuses;
            Gb28181Error when it does not answer.
        """
        filters = subscription_filter(
            event,
            channel_id=channel_id,
            start_alarm_priority=start_alarm_priority,
            end_alarm_priority=end_alarm_priority,
            alarm_method=alarm_method,
            alarm_type=alarm_type,
            start_time=start_time,
            end_time=end_time,
        )
        return await self._subs.subscribe(device_id, event, expires=expires, interval=interval, filters=filters)

    async def unsubscribe(self, device_id: str, event: str) -> bool:
        """Stop a subscription (SUBSCRIBE with `Expires: 0` in its dialog); False when there was none."""
        return await self._subs.unsubscribe(device_id, event)

    # ---- public API: media sessions (used by Gb28181Source) ------------------------------------------------------

    def new_ssrc(self, *, live: bool = True) -> str:
        """A fresh 10-digit SSRC (Appendix F); see `MediaSessions.new_ssrc`."""
        return self._sessions.new_ssrc(live=live)

    def release_ssrc(self, ssrc: str) -> None:
        """Give an SSRC from `new_ssrc` back."""
        self._sessions.release_ssrc(ssrc)

    def next_media_port(self) -> int:
        """The next port of the pool to try (round robin over `media_port_range`)."""
        return self._sessions.next_media_port()

    def media_port_count(self) -> int:
        """How many ports the pool has."""
        return self._sessions.media_port_count()

    async def invite(
        self, device_id: str, channel_id: str, sdp: bytes, ssrc: str
    ) -> tuple[SipResponse, Dialog | None, trio.Event]:
        """Send an INVITE for a channel with an SDP offer and wait for the final response.

        Returns the response, the dialog (2xx only; the ACK went out already) and an event set when the device
        sends BYE in that dialog.

        Raises:
            DeviceNotFoundError, DeviceOfflineError; Gb28181Error on timeout (100 Trying alone included).
        """
        return await self._sessions.invite(self._online_device(device_id), channel_id, sdp, ssrc)

    def watch_end_of_file(self, device_id: str, event: trio.Event, *, add: bool = True) -> None:
        """Have `event` set when the device reports MediaStatus 121 (end of a playback or download)."""
        self._sessions.watch_end_of_file(device_id, event, add=add)

    async def info(self, device_id: str, dialog: Dialog, body: bytes) -> int:
        """Send a MANSRTSP INFO (Appendix B) in a playback dialog; returns the SIP status (408: no answer)."""
        return await self._sessions.info(self._online_device(device_id), dialog, body)

    def bye(self, device_id: str, dialog: Dialog) -> None:
        """End a media session (the BYE is retransmitted by the transaction layer; no need to wait)."""
        self._sessions.bye(device_id, dialog)

    # ---- serving -------------------------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[Gb28181Platform] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the SIP server (UDP and TCP on `sip_port`) until cancelled; `started` gives the platform."""
        s = self.settings
        await self._transport.bind()
        self._registrar.restore(trio.current_time())
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if s.shared_media_port is not None:
                    from ._media import SharedMediaPort

                    self.shared_media = SharedMediaPort(bind_udp(self.media_host, s.shared_media_port))
                    nursery.start_soon(self.shared_media.run)
                await nursery.start(self._transport.run)
                nursery.start_soon(self.registry.run_writer)
                nursery.start_soon(self._timer_loop)
                logger.info("gb28181 platform %s listening on %s:%d (UDP+TCP)", s.server_id, s.host, self.sip_port)
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._nursery = None
            if self.shared_media is not None:
                self.shared_media.close()
            for send in self._listeners:
                send.close()
            with trio.CancelScope(shield=True):
                await self.registry.flush()

    def close(self) -> None:
        """Write what the registry still has pending and close it (after `serve` ended)."""
        self.registry.close()

    async def _timer_loop(self) -> None:
        transport = self._transport
        while True:
            deadlines = [self._registrar.liveness_deadline()]
            if (t := transport.next_timer()) is not None:
                deadlines.append(t)
            if (t := self._queries.next_timer()) is not None:
                deadlines.append(t)
            with trio.move_on_at(min(deadlines)):
                await transport.wake.wait()
            transport.wake = trio.Event()
            now = trio.current_time()
            transport.handle_timers(now)
            self._queries.handle_timer(now)
            self._registrar.check_liveness(now)

    def _wake_timer(self) -> None:
        self._transport.wake.set()

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a background task in the server's nursery (dropped when not serving)."""
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    def _emit(self, event: Gb28181Event) -> None:
        """Hand an event to `events()` listeners and to the engine's event feed (`_events.py`)."""
        for send in list(self._listeners):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                pass  # a slow listener loses events; the server never waits for it
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._listeners.remove(send)
        if self.engine is not None:
            self.engine.publish_event(event)

    # ---- incoming requests ---------------------------------------------------------------------------------------

    def _on_request(self, ua: SipUserAgent, event: RequestReceived, now: float) -> None:
        request = event.request
        method = request.method
        if method == "REGISTER":
            self._registrar.on_register(ua, event, now)
        elif method in ("MESSAGE", "NOTIFY"):
            state = request.headers.get("Subscription-State") or ""
            if method == "NOTIFY" and event.dialog is not None and state.lower().startswith("terminated"):
                self._subs.on_terminated(event.dialog)
            self._queries.on_message(ua, event, now)
        elif method == "BYE":
            ua.respond(request, 200, now)
            if event.dialog is not None:
                self._sessions.on_bye(event.dialog)
        elif method in ("OPTIONS", "INFO"):
            ua.respond(request, 200, now)
        elif method == "INVITE":
            ua.respond(request, 603, now)  # talk/cascade INVITEs from devices are not served
        else:
            ua.respond(request, 405, now, headers=[("Allow", "REGISTER, MESSAGE, NOTIFY, BYE, OPTIONS, INFO")])

    def _device_online(self, device_id: str) -> None:
        """A device registered with a new generation: its catalog and subscriptions start afresh."""
        if self.settings.catalog_on_register:
            self._spawn(self._catalog_after_register, device_id)
        self._subs.on_online(device_id)

    async def _catalog_after_register(self, device_id: str) -> None:
        try:
            await self.query_catalog(device_id)
        except Gb28181Error as exc:
            logger.info("gb28181 device %s: catalog query failed: %s", device_id, exc)

    # ---- requests to devices -------------------------------------------------------------------------------------

    def _charset(self, device: DeviceRecord) -> str:
        return self.settings.charsets.get(device.device_id) or (
            "UTF-8" if (device.charset or "").replace("-", "").upper() == "UTF8" else "GB2312"
        )

    def _online_device(self, device_id: str) -> DeviceRecord:
        device = self.registry.get(device_id)
        if device is None:
            raise DeviceNotFoundError(f"no GB28181 device {device_id}")
        if not device.online:
            raise DeviceOfflineError(f"GB28181 device {device_id} is offline")
        return device

    def _target(self, target_id: str, device: DeviceRecord) -> str:
        return f"sip:{target_id}@{device.device_id[:10]}"

    async def _destination(self, device: DeviceRecord) -> Addr | None:
        """Where requests to the device go: its last address; over TCP, a connection to it (opened when its own
        has gone: to its Contact, else the address it registered from). None: no connection could be opened."""
        if device.transport != "TCP" or self._transport.has_connection(device.address):
            return device.address
        candidates = [device.address] if device.contact is None else [device.contact, device.address]
        addr = await self._transport.connect(list(dict.fromkeys(candidates)))
        if addr is None:
            return None
        current = self.registry.get(device.device_id)
        if current is not None and current.address != addr:
            self.registry.put(attrs.evolve(current, address=addr))  # the device's requests will come from here too
        return addr

    async def _request(
        self, device: DeviceRecord, build: RequestBuilder, wait: float, *, dialog: Dialog | None = None
    ) -> ResponseReceived | None:
        """Send the request `build(ua, now, addr)` makes to the device and wait for its final response (None: timed
        out, or no TCP connection could be opened). In-dialog requests pass their `dialog`: over TCP it is
        pointed at the connection in use."""
        ua = self._transport.ua_for(device.transport)
        addr = await self._destination(device)
        if addr is None:
            return None
        if dialog is not None and device.transport == "TCP" and not self._transport.has_connection(dialog.remote_addr):
            dialog.remote_addr = addr  # the dialog's connection has gone: send on the new one (RFC 3261 §18.1.1)
        return await self._transport.request(ua, lambda ua, now: build(ua, now, addr), wait)
