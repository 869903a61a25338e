"""fluxkit: the video side of an IoT platform, on Trio."""

from __future__ import annotations

from .errors import (
    ConfigError as ConfigError,
)
from .errors import (
    FluxkitError as FluxkitError,
)
from .errors import (
    LocalProtocolError as LocalProtocolError,
)
from .errors import (
    ParseError as ParseError,
)
from .errors import (
    ProtocolError as ProtocolError,
)
from .errors import (
    RemoteProtocolError as RemoteProtocolError,
)

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "FluxkitError",
    "LocalProtocolError",
    "ParseError",
    "ProtocolError",
    "RemoteProtocolError",
    "__version__",
]
