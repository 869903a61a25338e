"""Event subscriptions of the GB28181 platform to its devices (GB/T 28181-2016 9.11, RFC 6665).

Strategy: each device has a wanted set of subscriptions, event name -> (Expires asked, MobilePosition
interval): `subscribe_events` of the settings when it first registers, then changed at run time by
`subscribe` / `unsubscribe` (the REST routes). The set lives in memory for the platform's lifetime and survives
the device's restarts. Every time a device comes online (a new generation: first registration, restart,
re-registration after being offline) one task per wanted event SUBSCRIBEs (Catalog with a Catalog query body,
Alarm with an Alarm query body for priorities 1-4 and every method, MobilePosition with its `<Interval>`) and
refreshes in the dialog at 3/4 of the granted Expires (RFC 6665 §4.1.2.2); it ends when the generation moves
(restart, offline), and the next registration starts fresh ones. A refresh the device refuses with 481 (it
forgot the dialog) starts a new subscription; 405/489/501 mean the device does not do the event (§8.3.1).

`subscribe` replaces a running task (keeping its dialog, so the new Expires goes out as an in-dialog refresh)
and waits for the device's answer to the first SUBSCRIBE; a refusal drops the event from the wanted set.
`unsubscribe` stops the task and ends the dialog with `Expires: 0` (§4.1.2.3). A NOTIFY with
`Subscription-State: terminated` from the device forgets the dialog.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

import attrs
import trio

from fluxkit.protocols.manscdp import CatalogQuery, ManscdpMessage, UnknownMessage
from fluxkit.protocols.sip import Dialog, SipRequest, SipResponse, SipUserAgent

from ._settings import Gb28181Error, SubscriptionRefusedError

if TYPE_CHECKING:
    from ._platform import Gb28181Platform
    from ._registry import DeviceRecord
    from ._transport import Addr

__all__ = ["SUBSCRIPTION_KINDS", "SubscriptionInfo", "Subscriptions"]

logger = logging.getLogger("fluxkit.gb28181")

_MANSCDP = "Application/MANSCDP+xml"

#: The subscribable events: REST kind -> GB28181 event name (the `Event` header and the query's CmdType).
SUBSCRIPTION_KINDS: dict[str, str] = {"catalog": "Catalog", "alarm": "Alarm", "mobile_position": "MobilePosition"}
_KIND_OF = {event: kind for kind, event in SUBSCRIPTION_KINDS.items()}


@attrs.frozen(kw_only=True, slots=True)
class SubscriptionInfo:
    """One subscription of a device, wanted or active.

    Attributes:
        device_id: the device.
        event: the GB28181 event name ("Catalog", "Alarm", "MobilePosition", or another from the settings).
        expires: the Expires asked for (seconds).
        interval: MobilePosition report interval asked for (seconds; None: the device's default).
        wanted: kept up by the platform (renewed after each re-registration).
        expires_at: `trio.current_time()` at which the device's grant runs out; None when not active now.
    """

    device_id: str
    event: str
    expires: int
    interval: int | None = None
    wanted: bool = True
    expires_at: float | None = None

    @property
    def kind(self) -> str:
        """The REST name ("catalog", "alarm", "mobile_position"; else the event name in lower case)."""
        return _KIND_OF.get(self.event, self.event.lower())

    @property
    def active(self) -> bool:
        """The device granted it and the grant has not run out."""
        return self.expires_at is not None

    def to_json(self, now: float) -> dict[str, object]:
        """The REST representation; `expires_in` is seconds left of the grant (None: not active)."""
        return {
            "kind": self.kind,
            "event": self.event,
            "active": self.active,
            "wanted": self.wanted,
            "expires": self.expires,
            "interval": self.interval,
            "expires_in": None if self.expires_at is None else round(max(0.0, self.expires_at - now), 3),
        }


@attrs.frozen(kw_only=True, slots=True)
class _Wanted:
    expires: int
    interval: int | None = None


class _Outcome:
    __slots__ = ("done", "status")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.status: int | None = None


def _granted_expires(response: SipResponse, asked: int) -> int:
    text = response.headers.get("Expires")
    try:
        return max(0, int(text)) if text is not None else asked
    except ValueError:
        return asked


class Subscriptions:
    """The wanted and active subscriptions of every device (see the module docstring)."""

    def __init__(self, platform: Gb28181Platform) -> None:
        self._platform = platform
        self._wanted: dict[str, dict[str, _Wanted]] = {}
        self._active: dict[tuple[str, str], tuple[Dialog, float]] = {}  # (device, event) -> dialog, expiry
        self._tasks: dict[tuple[str, str], trio.CancelScope] = {}

    # ---- state ---------------------------------------------------------------------------------------------------

    def _wanted_of(self, device_id: str) -> dict[str, _Wanted]:
        wanted = self._wanted.get(device_id)
        if wanted is None:
            s = self._platform.settings
            wanted = {name: _Wanted(expires=s.subscription_expires) for name in s.subscribe_events}
            self._wanted[device_id] = wanted
        return wanted

    def active(self, device_id: str) -> dict[str, float]:
        """The device's active subscriptions: event name -> `trio.current_time()` at which it expires."""
        return {name: until for (dev, name), (_, until) in self._active.items() if dev == device_id}

    def infos(self, device_id: str) -> list[SubscriptionInfo]:
        """Every wanted or active subscription of the device, wanted ones first in their order."""
        wanted = self._wanted.get(device_id, {})
        now = trio.current_time()
        out = []
        for name in [*wanted, *(n for (d, n) in self._active if d == device_id and n not in wanted)]:
            params = wanted.get(name)
            active = self._active.get((device_id, name))
            expires_at = active[1] if active is not None and active[1] > now else None
            out.append(
                SubscriptionInfo(
                    device_id=device_id,
                    event=name,
                    expires=params.expires if params is not None else self._platform.settings.subscription_expires,
                    interval=params.interval if params is not None else None,
                    wanted=params is not None,
                    expires_at=expires_at,
                )
            )
        return out

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    def on_online(self, device_id: str) -> None:
        """The device (re)registered with a new generation: subscribe afresh to each wanted event."""
        self.stop(device_id)
        for name, params in self._wanted_of(device_id).items():
            self._start(device_id, name, params, None)

    def stop(self, device_id: str) -> None:
        """Stop the device's subscription tasks and forget its dialogs (it restarted or went offline)."""
        for key in [k for k in self._tasks if k[0] == device_id]:
            self._tasks.pop(key).cancel()
        for key in [k for k in self._active if k[0] == device_id]:
            del self._active[key]

    def on_terminated(self, dialog: Dialog) -> None:
        """The device ended a subscription (NOTIFY with `Subscription-State: terminated`)."""
        for key, (known, _) in list(self._active.items()):
            if known.id == dialog.id:
                del self._active[key]

    def _start(self, device_id: str, name: str, params: _Wanted, outcome: _Outcome | None) -> None:
        key = (device_id, name)
        old = self._tasks.pop(key, None)
        if old is not None:
            old.cancel()
        scope = self._tasks[key] = trio.CancelScope()
        self._platform._spawn(self._run, device_id, name, params, scope, outcome)

    # ---- run-time changes ----------------------------------------------------------------------------------------

    async def subscribe(
        self, device_id: str, name: str, *, expires: int | None = None, interval: int | None = None
    ) -> SubscriptionInfo:
        """Add (or change) a wanted subscription and wait for the device's answer to its SUBSCRIBE.

        Raises:
            DeviceNotFoundError, DeviceOfflineError: the device cannot be reached.
            SubscriptionRefusedError: the device answered with an error (the event is not kept).
            Gb28181Error: no answer (the platform keeps trying, as for the settings' subscriptions).
        """
        platform = self._platform
        platform._online_device(device_id)
        params = _Wanted(expires=expires or platform.settings.subscription_expires, interval=interval)
        self._wanted_of(device_id)[name] = params
        outcome = _Outcome()
        self._start(device_id, name, params, outcome)
        await outcome.done.wait()
        if outcome.status is None:
            raise Gb28181Error(f"{name} SUBSCRIBE to {device_id}: no answer")
        if not 200 <= outcome.status < 300:
            raise SubscriptionRefusedError(f"{name} SUBSCRIBE to {device_id} refused: {outcome.status}", outcome.status)
        return next(i for i in self.infos(device_id) if i.event == name)

    async def unsubscribe(self, device_id: str, name: str) -> bool:
        """Drop a subscription: stop refreshing and end its dialog (`Expires: 0`). False when there was none."""
        platform = self._platform
        key = (device_id, name)
        had = self._wanted.get(device_id, {}).pop(name, None) is not None
        scope = self._tasks.pop(key, None)
        if scope is not None:
            scope.cancel()
        active = self._active.pop(key, None)
        if active is None:
            return had
        device = platform.registry.get(device_id)
        if device is not None and device.online:
            dialog = active[0]
            try:
                ua = platform._transport.ua_for(device.transport)
            except Gb28181Error:
                return True
            if dialog in ua.dialogs:
                build = functools.partial(self._build, device=device, name=name, dialog=dialog, body=b"", expires=0)
                event = await platform._request(device, build, platform.settings.request_timeout, dialog=dialog)
                if event is None or event.response.status_code >= 300:
                    status = "no answer" if event is None else event.response.status_code
                    logger.info("gb28181 device %s: %s unsubscribe: %s", device_id, name, status)
        return True

    # ---- the SUBSCRIBE loop --------------------------------------------------------------------------------------

    def _body(self, device: DeviceRecord, name: str, params: _Wanted) -> bytes:
        platform = self._platform
        sn = platform._queries.next_sn()
        query: ManscdpMessage
        extra: tuple[tuple[str, str], ...]
        if name == "Catalog":
            query = CatalogQuery(sn=sn, device_id=device.device_id)
        elif name == "Alarm":
            # A.2.4.6: every priority (1 highest .. 4) and every method (0 = all).
            extra = (("StartAlarmPriority", "1"), ("EndAlarmPriority", "4"), ("AlarmMethod", "0"))
            query = UnknownMessage(root="Query", cmd_type="Alarm", sn=sn, device_id=device.device_id, extra=extra)
        else:
            extra = () if params.interval is None else (("Interval", str(params.interval)),)
            query = UnknownMessage(root="Query", cmd_type=name, sn=sn, device_id=device.device_id, extra=extra)
        return query.encode(platform._charset(device))

    def _build(
        self,
        ua: SipUserAgent,
        now: float,
        addr: Addr,
        *,
        device: DeviceRecord,
        name: str,
        dialog: Dialog | None,
        body: bytes,
        expires: int,
    ) -> SipRequest:
        if dialog is None:
            target = self._platform._target(device.device_id, device)
            return ua.subscribe(target, addr, now, event=name, expires=expires, body=body, content_type=_MANSCDP)
        headers = [("Event", name), ("Expires", str(expires))]  # in the dialog (RFC 6665 §4.1.2.2)
        return ua.send_in_dialog(
            dialog, "SUBSCRIBE", now, headers=headers, body=body, content_type=_MANSCDP if body else None
        )

    async def _run(
        self, device_id: str, name: str, params: _Wanted, scope: trio.CancelScope, outcome: _Outcome | None
    ) -> None:
        """Subscribe to `name` and refresh until the device's generation moves (restart, offline)."""
        platform = self._platform
        key = (device_id, name)
        generation = platform.generation(device_id)
        try:
            with scope:
                while platform.generation(device_id) == generation:
                    device = platform.registry.get(device_id)
                    if device is None or not device.online:
                        return
                    current = self._active.get(key)
                    ua = platform._transport.ua_for(device.transport)
                    dialog = current[0] if current is not None and current[0] in ua.dialogs else None
                    body = self._body(device, name, params)
                    build = functools.partial(
                        self._build, device=device, name=name, dialog=dialog, body=body, expires=params.expires
                    )
                    event = await platform._request(device, build, platform.settings.request_timeout, dialog=dialog)
                    if platform.generation(device_id) != generation:
                        return
                    status = None if event is None else event.response.status_code
                    if event is None or not 200 <= event.response.status_code < 300:
                        logger.info(
                            "gb28181 device %s: %s subscription refused: %s", device_id, name, status or "no answer"
                        )
                        self._active.pop(key, None)  # 481 and friends: start a new subscription next time
                        if outcome is not None:
                            outcome.status = status
                            outcome.done.set()
                            if status is not None:  # refused on request: not wanted any more
                                self._wanted.get(device_id, {}).pop(name, None)
                                return
                            outcome = None
                        if status in (405, 489, 501):
                            return  # the device does not do this event (RFC 6665 §8.3.1 489 Bad Event)
                        await trio.sleep(platform.settings.request_timeout)
                        continue
                    assert event is not None
                    granted = _granted_expires(event.response, params.expires)
                    dialog = event.dialog if event.dialog is not None else dialog
                    if dialog is None or granted <= 0:
                        self._active.pop(key, None)
                        if outcome is not None:
                            outcome.status = status
                            outcome.done.set()
                            outcome = None
                        logger.info("gb28181 device %s: %s subscription not kept (Expires 0)", device_id, name)
                        return
                    self._active[key] = (dialog, trio.current_time() + granted)
                    if outcome is not None:
                        outcome.status = status
                        outcome.done.set()
                        outcome = None
                    await trio.sleep(granted * 0.75)  # refresh well before expiry (RFC 6665 §4.1.2.2)
        except Gb28181Error as exc:
            logger.info("gb28181 device %s: %s subscription stopped: %s", device_id, name, exc)
        finally:
            if outcome is not None:
                outcome.done.set()  # cancelled or stopped before an answer: "no answer"
            if self._tasks.get(key) is scope:
                del self._tasks[key]
