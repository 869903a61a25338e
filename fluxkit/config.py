"""fluxkit's TOML configuration: attrs classes, loaded strictly with cattrs, every mistake reported at once.

Strategy: the file is parsed with the standard library's `tomllib` and structured by a cattrs converter built with
`cattrs.preconf.tomllib.make_converter(forbid_extra_keys=True)`, with strict hooks for `str`, `int`, `float` and
`bool` (cattrs would otherwise turn `8080` into `"8080"` or `"8080"` into `8080`). Field checks are ordinary attrs
validators, so `Config(...)` built in Python is checked too. While loading, the converter structures each class
with validators switched off and then runs *all* of that class's validators itself, collecting every failure;
cattrs already collects errors across fields and list items. The resulting exception tree is flattened into one
`ConfigError` whose messages read `message @ $.video.streams[1].source_url`.

Every field has a default, so `Config()` (no file at all) is a working setup: data under ./fluxkit-data and every
listener on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import re
import sys
import tomllib
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn
from cattrs.preconf.tomllib import TomllibConverter, make_converter

from fluxkit.errors import ConfigError

__all__ = [
    "PROTOCOLS",
    "ApiSettings",
    "Config",
    "GB28181Settings",
    "KeyframeSettings",
    "ProtocolSettings",
    "RecordingSettings",
    "StorageSettings",
    "StreamSettings",
    "VideoSettings",
    "load_config",
    "parse_config",
    "validate_main",
]

#: The stream protocols a `[[video.streams]]` entry may name, and the URL schemes each accepts.
PROTOCOLS: dict[str, frozenset[str]] = {
    "rtsp": frozenset({"rtsp", "rtsps"}),
    "gb28181": frozenset({"gb28181"}),
    "rtmp": frozenset({"rtmp", "rtmps"}),
    "webrtc": frozenset({"http", "https"}),  # a WHEP endpoint
}

_STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


class _Problem(ValueError):
    """A validator failure that points below the field it was raised for (`subpath`, e.g. "[2].stream_id")."""

    def __init__(self, message: str, *, subpath: str = "") -> None:
        super().__init__(message)
        self.subpath = subpath


# -- validators ------------------------------------------------------------------------------------------------


def _port(_inst: object, _attr: attrs.Attribute[Any], value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValueError(f"port must be between 1 and 65535, not {value}")


def _optional_port(inst: object, attr: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None:
        _port(inst, attr, value)


_LISTENER_PORTS = ("api_port", "rtsp_port", "rtmp_port", "sip_port")


def _distinct_ports(inst: Any, attr: attrs.Attribute[Any], value: int) -> None:
    _port(inst, attr, value)
    for other in _LISTENER_PORTS[: _LISTENER_PORTS.index(attr.name)]:
        if getattr(inst, other, None) == value:
            raise ValueError(f"port {value} is already used by {other}")


def _host(_inst: object, _attr: attrs.Attribute[Any], value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise ValueError(f"not an IP address or host name: {value!r}") from None


def _non_empty(_inst: object, _attr: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise ValueError("must not be empty")


def _positive(_inst: object, _attr: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"must be greater than 0, not {value}")


def _non_negative(_inst: object, _attr: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"must not be negative, not {value}")


def _digits(count: int) -> Callable[[object, attrs.Attribute[Any], str], None]:
    def check(_inst: object, _attr: attrs.Attribute[Any], value: str) -> None:
        if len(value) != count or not value.isdigit():
            raise ValueError(f"must be {count} decimal digits, not {value!r}")

    return check


def _one_of(*choices: str) -> Callable[[object, attrs.Attribute[Any], str | None], None]:
    def check(_inst: object, _attr: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and value not in choices:
            raise ValueError(f"must be one of {', '.join(map(repr, choices))}, not {value!r}")

    return check


def _between(low: int, high: int) -> Callable[[object, attrs.Attribute[Any], int], None]:
    def check(_inst: object, _attr: attrs.Attribute[Any], value: int) -> None:
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, not {value}")

    return check


def _port_range(_inst: object, _attr: attrs.Attribute[Any], value: tuple[int, int]) -> None:
    low, high = value
    for i, port in enumerate(value):
        if not 1 <= port <= 65535:
            raise _Problem(f"port must be between 1 and 65535, not {port}", subpath=f"[{i}]")
    if low > high:
        raise ValueError(f"the range is empty: {low} > {high}")


def _part_duration(inst: Any, attr: attrs.Attribute[Any], value: float) -> None:
    _positive(inst, attr, value)
    segment = getattr(inst, "segment_duration", None)
    if isinstance(segment, int | float) and 0 < segment < value:  # a bad segment_duration is reported itself
        raise ValueError(f"must not be longer than segment_duration ({segment}), not {value}")


def _token(_inst: object, _attr: attrs.Attribute[Any], value: str | None) -> None:
    # It travels in an HTTP header (`Authorization: Bearer <token>`): printable ASCII without spaces only.
    if value is not None and (not value or not all("!" <= c <= "~" for c in value)):
        raise ValueError("must be a non-empty string of printable ASCII characters without spaces")


def _stream_id(_inst: object, _attr: attrs.Attribute[Any], value: str) -> None:
    # It becomes a URL path segment (rtsp://host/<stream_id>) and a directory name.
    if not _STREAM_ID.fullmatch(value):
        raise ValueError(
            f"must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit, not {value!r}"
        )


def _source_url(inst: Any, _attr: attrs.Attribute[Any], value: str) -> None:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc}): {_redact(value)!r}") from None
    schemes = PROTOCOLS.get(inst.protocol)
    if schemes is None:
        return  # the protocol itself is reported
    if parts.scheme.lower() not in schemes:
        wanted = " or ".join(f"{s}://" for s in sorted(schemes))
        raise ValueError(f"a {inst.protocol} stream needs a {wanted} URL, not {_redact(value)!r}")
    if not parts.hostname:
        raise ValueError(f"the URL has no host: {_redact(value)!r}")
    if port == 0:
        raise ValueError(f"the URL's port must be between 1 and 65535: {_redact(value)!r}")


def _redact(url: str) -> str:
    """The URL without its password, for messages (credentials in rtsp:// URLs are allowed, not printed)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, _, hostport = authority.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostport}{slash}{tail}" if ":" in userinfo else url


def _transport(inst: Any, _attr: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    _one_of("tcp", "udp")(inst, _attr, value)
    if inst.protocol != "rtsp":
        raise ValueError(f"transport applies to rtsp streams only (a {inst.protocol} stream sets it in its URL)")


def _unique_stream_ids(_inst: object, _attr: attrs.Attribute[Any], value: tuple[StreamSettings, ...]) -> None:
    problems = _duplicate_ids([stream.stream_id for stream in value])
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ExceptionGroup("duplicate stream ids", problems)


def _duplicate_ids(ids: Sequence[str | None]) -> list[Exception]:
    first: dict[str, int] = {}
    problems: list[Exception] = []
    for i, stream_id in enumerate(ids):
        if stream_id is None:
            continue
        if stream_id in first:
            problems.append(
                _Problem(
                    f"duplicate stream_id {stream_id!r} (first used by streams[{first[stream_id]}])",
                    subpath=f"[{i}].stream_id",
                )
            )
        else:
            first[stream_id] = i
    return problems


# -- the configuration classes ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProtocolSettings:
    """`[video.protocols]`: where fluxkit listens."""

    host: str = attrs.field(default="127.0.0.1", validator=_host)
    """Address every listener binds to. Keep 127.0.0.1 unless the ports are meant to be reachable from outside."""
    api_port: int = attrs.field(default=8080, validator=_distinct_ports)
    """TCP port of the REST API (`--api-port`)."""
    rtsp_port: int = attrs.field(default=8554, validator=_distinct_ports)
    """TCP port of the RTSP server that re-streams every stream at rtsp://HOST:PORT/<stream_id> (`--rtsp-port`)."""
    rtmp_port: int = attrs.field(default=1935, validator=_distinct_ports)
    """TCP port of the RTMP server (`--rtmp-port`)."""
    sip_port: int = attrs.field(default=5060, validator=_distinct_ports)
    """UDP and TCP port of the GB28181 SIP server (`--sip-port`); `[video.gb28181] sip_port` overrides it."""


BACKEND_TYPES = ("local", "nas", "nvr", "s3")
STORAGE_POLICIES = ("primary_backup", "multi_replica", "tiered")
# Fields each backend type needs (`base_path` of a local backend defaults to the recordings directory).
_BACKEND_REQUIRED = {"local": (), "nas": ("mount_point",), "nvr": ("nvr_url",),
                     "s3": ("endpoint", "bucket", "access_key", "secret_key")}  # fmt: skip
# Backends each policy takes: (fewest, most).
_POLICY_BACKENDS = {"primary_backup": (2, 2), "multi_replica": (2, 64), "tiered": (2, 3)}


def _http_url(_inst: object, _attr: attrs.Attribute[Any], value: str) -> None:
    if value and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError(f"must be an http:// or https:// URL, not {value!r}")


def _backends(inst: Any, _attr: attrs.Attribute[Any], value: tuple[StorageBackendSettings, ...]) -> None:
    problems: list[Exception] = []
    first: dict[str, int] = {}
    for i, backend in enumerate(value):
        for name in _BACKEND_REQUIRED.get(backend.type, ()):
            if not getattr(backend, name):
                problems.append(_Problem(f"required for {backend.type} backends", subpath=f"[{i}].{name}"))
        if backend.name in first:
            problems.append(_Problem(f"duplicate backend name {backend.name!r} (first used by backends"
                                     f"[{first[backend.name]}])", subpath=f"[{i}].name"))  # fmt: skip
        else:
            first[backend.name] = i
    policy = getattr(inst, "policy", None)
    if policy in _POLICY_BACKENDS:
        low, high = _POLICY_BACKENDS[policy]
        if not low <= len(value) <= high:
            wanted = f"{low}" if low == high else f"{low} to {high}"
            problems.append(ValueError(f"policy {policy!r} needs {wanted} backends, not {len(value)}"))
    elif value and policy is None:
        problems.append(ValueError("backends are used only with a policy (set video.storage.policy)"))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ExceptionGroup("invalid backends", problems)


def _warm_days(inst: Any, attr: attrs.Attribute[Any], value: float) -> None:
    _non_negative(inst, attr, value)
    hot = getattr(inst, "hot_days", None)
    if isinstance(hot, int | float) and hot >= 0 and value < hot:
        raise ValueError(f"must not be less than hot_days ({hot}), not {value}")


def _quorum(inst: Any, _attr: attrs.Attribute[Any], value: int | None) -> None:
    if value is None:
        return
    backends = getattr(inst, "backends", ())
    if getattr(inst, "policy", None) != "multi_replica":
        raise ValueError("quorum applies to the multi_replica policy only")
    if not 1 <= value <= max(1, len(backends)):
        raise ValueError(f"must be between 1 and the number of backends ({len(backends)}), not {value}")


@attrs.frozen(kw_only=True)
class StorageBackendSettings:
    """One `[[video.storage.backends]]` entry: a place recordings are kept; which keys apply depends on `type`."""

    type: str = attrs.field(validator=_one_of(*BACKEND_TYPES))
    """"local" (a directory), "nas" (a mounted share), "nvr" (an NVR or a central fluxkit over HTTP), "s3"."""
    name: str = attrs.field(validator=_non_empty)
    """Unique name; the storage index records every copy by it."""
    base_path: str = ""
    """local: the directory (default: the recordings directory); nas: the directory under `mount_point`."""
    mount_point: str = ""
    """nas: where the share is mounted (writes are refused while it is not mounted)."""
    nvr_url: str = attrs.field(default="", validator=_http_url)
    """nvr: base URL, e.g. http://nvr.example:8080."""
    auth_token: str = ""
    """nvr: the NVR's bearer token."""
    endpoint: str = attrs.field(default="", validator=_http_url)
    """s3: endpoint URL (AWS, Aliyun OSS, Tencent COS, MinIO, ...)."""
    bucket: str = ""
    """s3: bucket."""
    region: str = "us-east-1"
    """s3: region."""
    access_key: str = ""
    """s3: access key id."""
    secret_key: str = ""
    """s3: secret key."""
    prefix: str = ""
    """s3: key prefix."""
    addressing_style: str = attrs.field(default="path", validator=_one_of("path", "virtual"))
    """s3: "path" (MinIO, SeaweedFS) or "virtual" (bucket in the host name: AWS, OSS, COS)."""
    retention_days: float | None = attrs.field(default=None, validator=_non_negative)
    """Delete this backend's copies of segments older than this many days (fractions allowed); when it is a
    segment's last copy the segment goes. None: no age limit."""
    max_size_gb: float | None = attrs.field(default=None, validator=_positive)
    """Keep at most this many GB on this backend, deleting its oldest copies first; None: no size limit."""
    min_free_gb: float | None = attrs.field(default=None, validator=_non_negative)
    """Delete this backend's oldest copies while its file system has less than this many GB free (local and nas
    backends; s3 and nvr cannot tell their free space); None: no free-space limit."""


@attrs.frozen(kw_only=True)
class StorageSettings:
    """`[video.storage]`: where and how long recordings are kept."""

    path: str | None = attrs.field(default=None, validator=attrs.validators.optional(_non_empty))
    """Directory of the recordings; default `<data_dir>/recordings`."""
    retention_days: float | None = attrs.field(default=None, validator=_non_negative)
    """Delete recordings older than this many days (fractions allowed); None keeps them until space runs out."""
    max_size_gb: float | None = attrs.field(default=None, validator=_positive)
    """Delete the oldest recordings when they take more than this many GB; None for no size limit."""
    min_free_gb: float | None = attrs.field(default=None, validator=_non_negative)
    """Delete the oldest recordings while the recordings' file system has less than this many GB free; None for
    no free-space limit. (With a `policy`, limits per backend go in `[[video.storage.backends]]`.)"""
    policy: str | None = attrs.field(default=None, validator=_one_of(*STORAGE_POLICIES))
    """How recordings are spread over `backends`: "primary_backup", "multi_replica" or "tiered" (hot -> warm ->
    cold by age); unset: local storage only."""
    backends: tuple[StorageBackendSettings, ...] = attrs.field(default=(), validator=_backends)
    """The backends of the policy, in order (primary_backup: primary, backup; tiered: hot, [warm,] cold)."""
    hot_days: float = attrs.field(default=7.0, validator=_non_negative)
    """tiered: days (fractions allowed; 0 moves every closed segment) a segment stays on the hot tier."""
    warm_days: float = attrs.field(default=30.0, validator=_warm_days)
    """tiered: days after which a segment moves on to the cold tier (not less than `hot_days`)."""
    quorum: int | None = attrs.field(default=None, validator=_quorum)
    """multi_replica: copies a write needs to succeed (default: a majority of the backends)."""
    serve_nvr: bool = False
    """Act as the NVR of other fluxkits: serve the NVR protocol (`/api/v1/recordings`) on the REST API, storing
    what edge fluxkits upload (with their `type = "nvr"` backend) in this fluxkit's storage."""
    nvr_upload_max_age_hours: float = attrs.field(default=24.0, validator=_positive)
    """With `serve_nvr`: hours after its last received byte that an unfinished upload is abandoned and its partial
    file removed (at start and hourly); a client that comes back later sends the segment again (fractions allowed)."""


@attrs.frozen(kw_only=True)
class KeyframeSettings:
    """`[video.keyframe]`: keyframes kept as snapshots (located from NAL headers, never by decoding)."""

    enabled: bool = True
    """Extract keyframes at all."""
    interval_seconds: float = attrs.field(default=10.0, validator=_positive)
    """Keep at most one keyframe per stream every this many seconds."""
    thumbnail_width: int = attrs.field(default=320, validator=_between(16, 7680))
    """Width in pixels of the JPEG thumbnail stored beside each keyframe (height follows the aspect ratio)."""
    jpeg_quality: int = attrs.field(default=80, validator=_between(1, 100))
    """JPEG quality of thumbnails and snapshots, 1 to 100."""


@attrs.frozen(kw_only=True)
class RecordingSettings:
    """`[video.recording]`: how streams are recorded (crash-safe fragmented MP4 segments)."""

    enabled: bool = True
    """Record every stream."""
    segment_duration: float = attrs.field(default=300.0, validator=_positive)
    """Seconds of media per segment file; a segment is cut at the first keyframe past it."""
    part_duration: float = attrs.field(default=1.0, validator=_part_duration)
    """Seconds per flushed fMP4 fragment: the most a crash or power loss can lose."""


@attrs.frozen(kw_only=True)
class ApiSettings:
    """`[video.api]`: the REST API (served on `[video.protocols] host:api_port`)."""

    enabled: bool = True
    """Serve the REST API."""
    token: str | None = attrs.field(default=None, validator=_token)
    """Bearer token every request must carry (`Authorization: Bearer <token>`); None generates one on first run,
    stored in `<data_dir>/api-token`."""


@attrs.frozen(kw_only=True)
class GB28181Settings:
    """`[video.gb28181]`: fluxkit as a GB/T 28181 platform that cameras and NVRs register to."""

    enabled: bool = False
    """Start the SIP server."""
    server_id: str = attrs.field(default="34020000002000000001", validator=_digits(20))
    """The platform's 20-digit SIP id (GB/T 28181 appendix D coding)."""
    domain: str = attrs.field(default="3402000000", validator=_digits(10))
    """The 10-digit SIP domain (the first 10 digits of the id, by convention)."""
    password: str | None = None
    """Default Digest password for registering devices; None accepts devices without authentication."""
    sip_port: int | None = attrs.field(default=None, validator=_optional_port)
    """SIP port; default `[video.protocols] sip_port`."""
    media_port_range: tuple[int, int] = attrs.field(default=(30000, 30999), validator=_port_range)
    """First and last UDP/TCP port for incoming RTP media, as a two-element array."""


@attrs.frozen(kw_only=True)
class StreamSettings:
    """One `[[video.streams]]` entry: a stream fluxkit ingests (the REST create-stream body, as a table)."""

    stream_id: str = attrs.field(validator=_stream_id)
    """The stream's id: its RTSP path and directory name."""
    protocol: str = attrs.field(validator=_one_of(*PROTOCOLS))
    """How it is ingested: "rtsp", "gb28181", "rtmp" or "webrtc"."""
    source_url: str = attrs.field(validator=_source_url)
    """Where from, e.g. rtsp://user:pass@192.168.1.10:554/stream1 or gb28181://<device_id>/<channel_id>."""
    transport: str | None = attrs.field(default=None, validator=_transport)
    """RTSP only: "tcp" (interleaved, the default when unset) or "udp"."""


@attrs.frozen(kw_only=True)
class VideoSettings:
    """`[video]`: everything fluxkit does."""

    data_dir: str = attrs.field(default="./fluxkit-data", validator=_non_empty)
    """Directory for recordings, keyframes, the index and generated clips (relative to the working directory)."""
    log_level: str = attrs.field(default="info", validator=_one_of("debug", "info", "warning", "error"))
    """Log verbosity (`--log-level`)."""
    protocols: ProtocolSettings = attrs.field(factory=ProtocolSettings)
    """Listener addresses and ports."""
    storage: StorageSettings = attrs.field(factory=StorageSettings)
    """Recording storage."""
    keyframe: KeyframeSettings = attrs.field(factory=KeyframeSettings)
    """Keyframe snapshots."""
    recording: RecordingSettings = attrs.field(factory=RecordingSettings)
    """Recording segments."""
    api: ApiSettings = attrs.field(factory=ApiSettings)
    """The REST API."""
    gb28181: GB28181Settings = attrs.field(factory=GB28181Settings)
    """The GB28181 platform."""
    streams: tuple[StreamSettings, ...] = attrs.field(default=(), validator=_unique_stream_ids)
    """Streams ingested from start-up (`[[video.streams]]`); more can be added through the API."""

    @property
    def data_path(self) -> Path:
        """`data_dir` as a Path."""
        return Path(self.data_dir)

    @property
    def storage_path(self) -> Path:
        """Where recordings go: `storage.path`, else `<data_dir>/recordings`."""
        return Path(self.storage.path) if self.storage.path else self.data_path / "recordings"

    @property
    def sip_port(self) -> int:
        """The SIP port in effect: `gb28181.sip_port`, else `protocols.sip_port`."""
        return self.protocols.sip_port if self.gb28181.sip_port is None else self.gb28181.sip_port


@attrs.frozen(kw_only=True)
class Config:
    """The whole file. `Config()` is the configuration used when there is no file."""

    video: VideoSettings = attrs.field(factory=VideoSettings)
    """The `[video]` table."""


# -- loading ---------------------------------------------------------------------------------------------------

_T = TypeVar("_T")


def _strict(kind: type[Any], label: str, *, also: tuple[type[Any], ...] = ()) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _type: Any) -> Any:
        # bool is an int subclass: only accept it where it is asked for.
        if (type(value) is kind or type(value) in also) and not (kind is not bool and type(value) is bool):
            return kind(value)
        raise TypeError(f"expected {label}, got {_toml_type(value)} {value!r}")

    return hook


def _toml_type(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _run_validators(fields: tuple[attrs.Attribute[Any], ...], instance: Any, *, skip: set[str]) -> list[Exception]:
    """Run every field validator, collecting failures (attrs itself stops at the first)."""
    problems: list[Exception] = []
    for field in fields:
        if field.validator is None or field.name in skip:
            continue
        try:
            field.validator(instance, field, getattr(instance, field.name))
        except AttributeError:
            continue  # a cross-field check that needs a field which failed to load: already reported
        except Exception as exc:
            exc.add_note(f"@field:{field.name}")
            problems.append(exc)
    return problems


def _make_converter() -> TomllibConverter:
    converter = make_converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(float, _strict(float, "a number", also=(int,)))
    converter.register_structure_hook(bool, _strict(bool, "true or false"))

    def structure_tuple_pair(value: Any, _type: Any) -> tuple[int, int]:
        if type(value) is not list or len(value) != 2:
            raise TypeError(f"expected an array of two integers, got {_toml_type(value)} {value!r}")
        errors = []
        for i, item in enumerate(value):
            if type(item) is not int:
                errors.append(_Problem(f"expected an integer, got {_toml_type(item)} {item!r}", subpath=f"[{i}]"))
        if errors:
            raise ExceptionGroup("bad port range", errors)
        return (value[0], value[1])

    converter.register_structure_hook_func(lambda t: t == tuple[int, int], structure_tuple_pair)

    def factory(cl: type[_T]) -> Callable[[Any, Any], _T]:
        base = make_dict_structure_fn(cl, converter, _cattrs_forbid_extra_keys=True)
        fields = attrs.fields(cl)  # type: ignore[arg-type]  # only called for attrs classes (attrs.has)

        def structure(value: Any, type_: Any) -> _T:
            if type(value) is not dict:
                raise TypeError(f"expected a table, got {_toml_type(value)} {value!r}")
            try:
                with attrs.validators.disabled():
                    instance = base(value, type_)
            except ClassValidationError as exc:
                # Some fields did not structure; check the others anyway, so one bad type does not hide the
                # rest of the class's mistakes.
                failed = {note.name for _, note in exc.group_exceptions()[0]}
                partial = types.SimpleNamespace()
                for field in fields:
                    if field.name in failed:
                        continue
                    if field.name in value:
                        setattr(partial, field.name, converter.structure(value[field.name], field.type))
                    elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                        setattr(partial, field.name, field.default.factory())
                    else:
                        setattr(partial, field.name, field.default)
                problems = _run_validators(fields, partial, skip=failed)
                if problems:
                    raise ExceptionGroup(f"invalid {cl.__name__}", [exc, *problems]) from None
                raise
            problems = _run_validators(fields, instance, skip=set())
            if problems:
                raise ExceptionGroup(f"invalid {cl.__name__}", problems)
            return instance

        return structure

    converter.register_structure_hook_factory(attrs.has, factory)

    def list_only(inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def hook(value: Any, type_: Any) -> Any:
            if type(value) is not list:
                raise TypeError(f"expected an array of tables, got {_toml_type(value)} {value!r}")
            try:
                return inner(value, type_)
            except IterableValidationError as exc:
                # Some entries are broken, so the attrs validator on the whole list will not run: look for
                # duplicate ids in the raw tables instead.
                ids = [item.get("stream_id") if type(item) is dict else None for item in value]
                duplicates = _duplicate_ids([i if type(i) is str else None for i in ids])
                if duplicates:
                    raise ExceptionGroup("invalid streams", [exc, *duplicates]) from None
                raise

        return hook

    streams_hook = list_only(converter.get_structure_hook(tuple[StreamSettings, ...]))
    converter.register_structure_hook_func(lambda t: t == tuple[StreamSettings, ...], streams_hook)
    return converter


_CONVERTER = _make_converter()


def _messages(exc: BaseException, path: str) -> Iterator[str]:
    """Flatten cattrs' exception tree (and our validator groups) into `message @ $.path` lines."""
    if isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            yield f"unknown key {key!r} @ {path}.{key}"
        return
    if isinstance(exc, ClassValidationError):
        with_names, unnamed = exc.group_exceptions()
        for sub, name_note in with_names:
            yield from _messages(sub, f"{path}.{name_note.name}")
        for sub in unnamed:
            yield from _messages(sub, path)
        return
    if isinstance(exc, IterableValidationError):
        with_index, unindexed = exc.group_exceptions()
        for sub, index_note in with_index:
            yield from _messages(sub, f"{path}[{index_note.index}]")
        for sub in unindexed:
            yield from _messages(sub, path)
        return
    if isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            field = next((n[7:] for n in getattr(member, "__notes__", ()) if n.startswith("@field:")), None)
            yield from _messages(member, path if field is None else f"{path}.{field}")
        return
    if isinstance(exc, _Problem):
        yield f"{exc} @ {path}{exc.subpath}"
    elif isinstance(exc, KeyError):
        yield f"required key missing @ {path}"
    else:
        yield f"{exc} @ {path}"


def parse_config(text: str) -> Config:
    """Build a `Config` from TOML text.

    Raises:
        ConfigError: with one `message @ $.path` line per problem (TOML syntax errors point at `$`).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"invalid TOML: {exc} @ $"]) from None
    try:
        return _CONVERTER.structure(data, Config)
    except Exception as exc:  # cattrs and validator errors of any shape become ConfigError
        messages = list(_messages(exc, "$"))
        raise ConfigError(messages or [f"{exc} @ $"]) from None


def load_config(path: str | Path) -> Config:
    """Read and check a configuration file.

    Raises:
        OSError: the file cannot be read.
        ConfigError: the file is not valid TOML or breaks a rule; `messages` lists every problem at once, each
            as `message @ $.path` (e.g. `port must be between 1 and 65535, not 70000 @ $.video.protocols.api_port`).
    """
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"the file is not UTF-8 (byte {exc.start}) @ $"]) from None
    return parse_config(text)


def validate_main(path: str | Path) -> int:
    """`fluxkit config validate FILE`: 0 when the file is valid, 2 when it is not, 1 when it cannot be read.

    Problems go to stderr, one `message @ $.path` per line; a one-line summary of a valid file goes to stdout.
    """
    try:
        config = load_config(path)
    except OSError as exc:
        print(f"fluxkit config validate: {path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"fluxkit config validate: {path}: {len(exc.messages)} problem(s)", file=sys.stderr)
        for message in exc.messages:
            print(message, file=sys.stderr)
        return 2
    video = config.video
    print(f"{path}: valid ({len(video.streams)} stream(s), data in {video.data_dir})")
    return 0
