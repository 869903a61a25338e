"""A simulated GB28181 device (IPC or NVR) for tests, demos and users checking their own platforms.

* `SimulatedDevice(settings, *, rng=None, report=None)` with `async run(task_status=...)`: registers with Digest
  (refresh before expiry, back-off and a clear report on a wrong password), keeps alive, answers Catalog
  (multi-part), DeviceInfo, DeviceStatus, RecordInfo and PTZ DeviceControl (applied to a simulated head,
  logged in `ptz_log`), and answers live/playback INVITEs with real GB28181 PS over RTP (UDP, TCP passive,
  TCP active) from a clip at real time, honouring MANSRTSP speed, pause and seek, with MediaStatus 121 at the
  end of a playback.
* `DeviceSettings`: what the device is; `KNOWN_QUIRKS`: vendor quirks it can imitate.
* `PtzHead`, `PtzPosition`, `PtzLogEntry`: the PTZ simulation; `MediaSession`, `PlaybackControl`: the media side.

`fluxkit sim-device --server HOST:PORT --device-id ID --password PW --channels N` runs one from the shell.
"""

from __future__ import annotations

from ._device import SimulatedDevice as SimulatedDevice
from ._media import MediaSession as MediaSession
from ._media import MediaStatistics as MediaStatistics
from ._media import PlaybackControl as PlaybackControl
from ._media import hik_ps as hik_ps
from ._ptz import PtzHead as PtzHead
from ._ptz import PtzLogEntry as PtzLogEntry
from ._ptz import PtzPosition as PtzPosition
from ._settings import DEFAULT_CATALOG_PAGE_SIZE as DEFAULT_CATALOG_PAGE_SIZE
from ._settings import KNOWN_QUIRKS as KNOWN_QUIRKS
from ._settings import DeviceSettings as DeviceSettings

__all__ = [
    "DEFAULT_CATALOG_PAGE_SIZE",
    "KNOWN_QUIRKS",
    "DeviceSettings",
    "MediaSession",
    "MediaStatistics",
    "PlaybackControl",
    "PtzHead",
    "PtzLogEntry",
    "PtzPosition",
    "SimulatedDevice",
    "hik_ps",
]
