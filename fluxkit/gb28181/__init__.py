"""GB/T 28181: fluxkit as the platform that cameras and NVRs register to.

* `Gb28181Platform(engine, settings, *, rng, registry_path)`: the SIP server (UDP and TCP), registration with
  Digest, the SQLite device registry, keepalive liveness, Catalog/DeviceInfo/DeviceStatus/RecordInfo queries,
  PTZ (`await platform.ptz(device_id, channel_id, command, speed=128, preset=None)`), subscriptions
  (`await platform.subscribe(device_id, "Alarm", start_alarm_priority=1, end_alarm_priority=2)`, filters per
  `subscription_filter`; `unsubscribe`, `subscription_info`), RecordInfo with Type/Secrecy/FilePath/Address/
  RecorderID (`query_records(..., record_type="alarm")`), events (also on the engine's feed).
* `Gb28181Source(platform, device_id, channel_id, transport)` / `Gb28181Source.from_url(platform, url)`: a
  channel's live video as an engine `Source`.
* `gb28181_routes(platform)`: the REST routes.
The device simulator lives in `fluxkit.gb28181.device`.
"""

from __future__ import annotations

from ._events import AlarmReceived as AlarmReceived
from ._events import CatalogUpdated as CatalogUpdated
from ._events import DeviceOffline as DeviceOffline
from ._events import DeviceOnline as DeviceOnline
from ._events import Gb28181Event as Gb28181Event
from ._events import MediaStatusReceived as MediaStatusReceived
from ._events import MobilePositionReceived as MobilePositionReceived
from ._events import ScaleMismatchDetected as ScaleMismatchDetected
from ._media import Gb28181Source as Gb28181Source
from ._media import Gb28181SourceError as Gb28181SourceError
from ._media import SharedMediaPort as SharedMediaPort
from ._platform import Gb28181Platform as Gb28181Platform
from ._ptz import PTZ_COMMANDS as PTZ_COMMANDS
from ._ptz import ptz_command as ptz_command
from ._queries import RECORD_TYPES as RECORD_TYPES
from ._queries import record_fields as record_fields
from ._registry import ChannelRecord as ChannelRecord
from ._registry import DeviceRecord as DeviceRecord
from ._registry import DeviceRegistry as DeviceRegistry
from ._routes import gb28181_routes as gb28181_routes
from ._settings import DeviceNotFoundError as DeviceNotFoundError
from ._settings import DeviceOfflineError as DeviceOfflineError
from ._settings import Gb28181Error as Gb28181Error
from ._settings import PlatformSettings as PlatformSettings
from ._settings import SubscriptionRefusedError as SubscriptionRefusedError
from ._subscriptions import SUBSCRIPTION_KINDS as SUBSCRIPTION_KINDS
from ._subscriptions import SubscriptionFilter as SubscriptionFilter
from ._subscriptions import SubscriptionInfo as SubscriptionInfo
from ._subscriptions import subscription_filter as subscription_filter

__all__ = [
    "PTZ_COMMANDS",
    "RECORD_TYPES",
    "SUBSCRIPTION_KINDS",
    "AlarmReceived",
    "CatalogUpdated",
    "ChannelRecord",
    "DeviceNotFoundError",
    "DeviceOffline",
    "DeviceOfflineError",
    "DeviceOnline",
    "DeviceRecord",
    "DeviceRegistry",
    "Gb28181Error",
    "Gb28181Event",
    "Gb28181Platform",
    "Gb28181Source",
    "Gb28181SourceError",
    "MediaStatusReceived",
    "MobilePositionReceived",
    "PlatformSettings",
    "ScaleMismatchDetected",
    "SharedMediaPort",
    "SubscriptionFilter",
    "SubscriptionInfo",
    "SubscriptionRefusedError",
    "gb28181_routes",
    "record_fields",
    "subscription_filter",
]
