"""The camera simulator: a generated demo clip and a file player that publishes any clip as a live stream.

* `generate_demo_clip(path=None) -> Path`: a 640x360, 25 fps, GOP 50 H.264 clip with a moving test pattern and a
  running timecode, encoded once with PyAV's libx264 and cached under `$XDG_CACHE_HOME/fluxkit` (or
  `~/.cache/fluxkit`); nothing outside the package is needed.
* `FileSource(path, *, loop=True, rng=None)`: an engine `Source` that plays an Annex-B or MP4 file at real time, in
  a loop, with continuous timestamps; `load_clip(path)` reads a clip into memory.

`fluxkit sim-camera --port N [FILE ...]` puts both behind the RTSP output (`fluxkit.net.rtsp_server`).
"""

from __future__ import annotations

from ._clip import DEMO_CLIP_NAME as DEMO_CLIP_NAME
from ._clip import DEMO_FPS as DEMO_FPS
from ._clip import DEMO_GOP as DEMO_GOP
from ._clip import DEMO_HEIGHT as DEMO_HEIGHT
from ._clip import DEMO_WIDTH as DEMO_WIDTH
from ._clip import default_cache_dir as default_cache_dir
from ._clip import generate_demo_clip as generate_demo_clip
from ._file_source import DEFAULT_FPS as DEFAULT_FPS
from ._file_source import FileSource as FileSource
from ._file_source import LoadedClip as LoadedClip
from ._file_source import load_clip as load_clip

__all__ = [
    "DEFAULT_FPS",
    "DEMO_CLIP_NAME",
    "DEMO_FPS",
    "DEMO_GOP",
    "DEMO_HEIGHT",
    "DEMO_WIDTH",
    "FileSource",
    "LoadedClip",
    "default_cache_dir",
    "generate_demo_clip",
    "load_clip",
]
