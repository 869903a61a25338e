"""Configuration: defaults, a full valid file, and every mistake reported at once with its `$.path`."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxkit.config import (
    ApiSettings,
    Config,
    GB28181Settings,
    ProtocolSettings,
    RecordingSettings,
    StreamSettings,
    VideoSettings,
    load_config,
    parse_config,
    validate_main,
)
from fluxkit.errors import ConfigError

VALID = """
[video]
data_dir = "/var/lib/fluxkit"
log_level = "debug"

[video.protocols]
host = "0.0.0.0"
api_port = 9080
rtsp_port = 9554

[video.storage]
retention_days = 0.5
max_size_gb = 200

[video.keyframe]
interval_seconds = 5

[video.gb28181]
enabled = true
password = "12345678"
sip_port = 15060
media_port_range = [40000, 40100]

[[video.streams]]
stream_id = "front-door"
protocol = "rtsp"
source_url = "rtsp://admin:p%40ss:word@192.168.1.10:554/Streaming/Channels/101"
transport = "udp"

[[video.streams]]
stream_id = "gate.cam_2"
protocol = "gb28181"
source_url = "gb28181://34020000001320000001/34020000001310000001?transport=tcp-passive"

[[video.streams]]
stream_id = "obs"
protocol = "rtmp"
source_url = "rtmp://127.0.0.1/live/obs"

[[video.streams]]
stream_id = "browser"
protocol = "webrtc"
source_url = "https://example.net/whep/browser"
"""

# One mistake per line of the expectation below; type errors sit beside value errors in the same tables, so a
# loader that stopped at the first problem of a table would miss some.
MANY_MISTAKES = """
colour = "red"

[video]
data_dir = ""

[video.protocols]
host = "not a host!"
api_port = 70000
rtsp_port = "8554"
rtmp_port = 0
sip_port = 1935
extra = 1

[video.keyframe]
interval_seconds = 0
jpeg_quality = true

[video.gb28181]
server_id = "123"
media_port_range = [40000, 30000]

[[video.streams]]
stream_id = "cam1"
protocol = "rtsp"
source_url = "rtsp://admin:s3cret@192.168.1.10:554/stream1"

[[video.streams]]
stream_id = "cam1"
protocol = "rtsp"
source_url = "http://admin:hunter2@example.com/x"

[[video.streams]]
stream_id = "bad/id"
protocol = "hls"
source_url = "rtsp://h/x"
transport = "quic"

[[video.streams]]
protocol = "gb28181"
source_url = "gb28181://34020000001320000001/34020000001320000001"
transport = "tcp"
"""

EXPECTED = {
    "unknown key 'colour' @ $.colour",
    "must not be empty @ $.video.data_dir",
    "not an IP address or host name: 'not a host!' @ $.video.protocols.host",
    "port must be between 1 and 65535, not 70000 @ $.video.protocols.api_port",
    "expected an integer, got a string '8554' @ $.video.protocols.rtsp_port",
    "port must be between 1 and 65535, not 0 @ $.video.protocols.rtmp_port",
    "unknown key 'extra' @ $.video.protocols.extra",
    "must be greater than 0, not 0.0 @ $.video.keyframe.interval_seconds",
    "expected an integer, got a boolean True @ $.video.keyframe.jpeg_quality",
    "must be 20 decimal digits, not '123' @ $.video.gb28181.server_id",
    "the range is empty: 40000 > 30000 @ $.video.gb28181.media_port_range",
    "duplicate stream_id 'cam1' (first used by streams[0]) @ $.video.streams[1].stream_id",
    "a rtsp stream needs a rtsp:// or rtsps:// URL, not 'http://admin:***@example.com/x' "
    "@ $.video.streams[1].source_url",
    "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit, not 'bad/id' "
    "@ $.video.streams[2].stream_id",
    "must be one of 'rtsp', 'gb28181', 'rtmp', 'webrtc', not 'hls' @ $.video.streams[2].protocol",
    "must be one of 'tcp', 'udp', not 'quic' @ $.video.streams[2].transport",
    "required key missing @ $.video.streams[3].stream_id",
    "transport applies to rtsp streams only (a gb28181 stream sets it in its URL) @ $.video.streams[3].transport",
}


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.__suppress_context__  # raised `from None`
    return info.value.messages


def test_defaults_work_without_a_file() -> None:
    config = Config()
    video = config.video
    assert video.data_dir == "./fluxkit-data"
    assert video.data_path == Path("fluxkit-data")
    assert video.storage_path == Path("fluxkit-data/recordings")
    protocols = video.protocols
    assert (protocols.host, protocols.api_port, protocols.rtsp_port, protocols.rtmp_port, protocols.sip_port) == (
        "127.0.0.1",
        8080,
        8554,
        1935,
        5060,
    )
    assert video.sip_port == 5060
    assert video.streams == ()
    assert video.gb28181.server_id == "34020000002000000001"
    assert video.gb28181.domain == "3402000000"
    assert not video.gb28181.enabled
    assert parse_config("") == config
    assert parse_config("[video]\n[video.protocols]\n") == config


def test_a_full_valid_file() -> None:
    config = parse_config(VALID)
    video = config.video
    assert video.data_dir == "/var/lib/fluxkit"
    assert video.protocols == ProtocolSettings(host="0.0.0.0", api_port=9080, rtsp_port=9554)
    assert video.storage.retention_days == 0.5
    assert video.storage.max_size_gb == 200.0
    assert isinstance(video.storage.max_size_gb, float)
    assert video.keyframe.interval_seconds == 5.0
    assert video.gb28181 == GB28181Settings(
        enabled=True, password="12345678", sip_port=15060, media_port_range=(40000, 40100)
    )
    assert video.sip_port == 15060
    assert [s.stream_id for s in video.streams] == ["front-door", "gate.cam_2", "obs", "browser"]
    assert video.streams[0] == StreamSettings(
        stream_id="front-door",
        protocol="rtsp",
        source_url="rtsp://admin:p%40ss:word@192.168.1.10:554/Streaming/Channels/101",
        transport="udp",
    )
    assert [s.transport for s in video.streams] == ["udp", None, None, None]


def test_every_mistake_is_reported_at_once_with_its_path() -> None:
    messages = _problems(MANY_MISTAKES)
    assert set(messages) == EXPECTED
    assert len(messages) == len(EXPECTED)
    assert not any("s3cret" in m or "hunter2" in m for m in messages)  # passwords never echoed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[video]\nstreams = 3", ["expected an array of tables, got an integer 3 @ $.video.streams"]),
        ("[video]\nstreams = [1]", ["expected a table, got an integer 1 @ $.video.streams[0]"]),
        (
            "[video.streams]\nstream_id = 'a'",
            ["expected an array of tables, got a table {'stream_id': 'a'} @ $.video.streams"],
        ),
        ("video = 1", ["expected a table, got an integer 1 @ $.video"]),
        (
            "[video.protocols]\napi_port = 8080.0",
            ["expected an integer, got a float 8080.0 @ $.video.protocols.api_port"],
        ),
        (
            "[video.protocols]\nrtsp_port = 8080",
            ["port 8080 is already used by api_port @ $.video.protocols.rtsp_port"],
        ),
        ("[video.keyframe]\nenabled = 1", ["expected true or false, got an integer 1 @ $.video.keyframe.enabled"]),
        ("[video]\nlog_level = 3", ["expected a string, got an integer 3 @ $.video.log_level"]),
        (
            "[video]\nlog_level = 'loud'",
            ["must be one of 'debug', 'info', 'warning', 'error', not 'loud' @ $.video.log_level"],
        ),
        (
            "[video.gb28181]\nmedia_port_range = [1, 'x']",
            ["expected an integer, got a string 'x' @ $.video.gb28181.media_port_range[1]"],
        ),
        (
            "[video.gb28181]\nmedia_port_range = [1, 2, 3]",
            ["expected an array of two integers, got an array [1, 2, 3] @ $.video.gb28181.media_port_range"],
        ),
        (
            "[video.gb28181]\nmedia_port_range = [1, 70000]",
            ["port must be between 1 and 65535, not 70000 @ $.video.gb28181.media_port_range[1]"],
        ),
        ("[video.gb28181]\nsip_port = 0", ["port must be between 1 and 65535, not 0 @ $.video.gb28181.sip_port"]),
        ("[video.storage]\nmax_size_gb = 0", ["must be greater than 0, not 0.0 @ $.video.storage.max_size_gb"]),
        ("[video.storage]\nretention_days = -1", ["must not be negative, not -1.0 @ $.video.storage.retention_days"]),
        (
            "[[video.streams]]\nstream_id='a'\nprotocol='rtsp'\nsource_url='rtsp://u:pw@h:99999/x'",
            ["not a valid URL (Port out of range 0-65535): 'rtsp://u:***@h:99999/x' @ $.video.streams[0].source_url"],
        ),
        (
            "[[video.streams]]\nstream_id='a'\nprotocol='rtsp'\nsource_url='rtsp:///x'",
            ["the URL has no host: 'rtsp:///x' @ $.video.streams[0].source_url"],
        ),
        (
            "[[video.streams]]\nstream_id='a'\nprotocol='rtmp'\nsource_url='rtsp://h/x'",
            ["a rtmp stream needs a rtmp:// or rtmps:// URL, not 'rtsp://h/x' @ $.video.streams[0].source_url"],
        ),
        (
            "[[video.streams]]\nstream_id='a'\nprotocol='rtsp'\nsource_url='rtsp://h/x'\n"
            "[[video.streams]]\nstream_id='a'\nprotocol='rtsp'\nsource_url='rtsp://h/y'\n"
            "[[video.streams]]\nstream_id='a'\nprotocol='rtsp'\nsource_url='rtsp://h/z'",
            [
                "duplicate stream_id 'a' (first used by streams[0]) @ $.video.streams[1].stream_id",
                "duplicate stream_id 'a' (first used by streams[0]) @ $.video.streams[2].stream_id",
            ],
        ),
        (
            "[[video.streams]]\nstream_id='a'\nsource_url='rtsp://h/x'\nurl='x'",
            ["required key missing @ $.video.streams[0].protocol", "unknown key 'url' @ $.video.streams[0].url"],
        ),
    ],
)
def test_single_mistakes(text: str, expected: list[str]) -> None:
    assert sorted(_problems(text)) == sorted(expected)


def test_toml_syntax_error_points_at_the_root() -> None:
    (message,) = _problems("[video\n")
    assert message.startswith("invalid TOML: ")
    assert "line 1" in message
    assert message.endswith(" @ $")


def test_python_construction_is_validated_too() -> None:
    with pytest.raises(ValueError, match="port must be between"):
        ProtocolSettings(api_port=0)
    with pytest.raises(ValueError, match="duplicate stream_id"):
        VideoSettings(
            streams=(
                StreamSettings(stream_id="a", protocol="rtsp", source_url="rtsp://h/1"),
                StreamSettings(stream_id="a", protocol="rtsp", source_url="rtsp://h/2"),
            )
        )


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(VALID, encoding="utf-8")
    assert load_config(path) == parse_config(VALID)
    assert load_config(str(path)) == parse_config(VALID)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")
    path.write_bytes(b"[video]\ndata_dir = '\xff'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.messages == ["the file is not UTF-8 (byte 20) @ $"]


def test_validate_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(VALID, encoding="utf-8")
    assert validate_main(good) == 0
    out, err = capsys.readouterr()
    assert "valid (4 stream(s)" in out
    assert err == ""

    bad = tmp_path / "bad.toml"
    bad.write_text(MANY_MISTAKES, encoding="utf-8")
    assert validate_main(bad) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].endswith(f"{len(EXPECTED)} problem(s)")
    assert set(lines[1:]) == EXPECTED

    assert validate_main(tmp_path / "missing.toml") == 1
    out, err = capsys.readouterr()
    assert "cannot read" in err


def test_recording_and_api_sections() -> None:
    video = Config().video
    assert (video.recording.enabled, video.recording.segment_duration, video.recording.part_duration) == (
        True,
        300.0,
        1.0,
    )
    assert (video.api.enabled, video.api.token) == (True, None)
    video = parse_config(
        "[video.recording]\nsegment_duration = 60\npart_duration = 0.5\nenabled = false\n"
        "[video.api]\ntoken = 's3cr3t-T0ken_~'\nenabled = false\n"
    ).video
    assert video.recording == RecordingSettings(enabled=False, segment_duration=60.0, part_duration=0.5)
    assert isinstance(video.recording.segment_duration, float)
    assert video.api == ApiSettings(enabled=False, token="s3cr3t-T0ken_~")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[video.recording]\nsegment_duration = 0",
            ["must be greater than 0, not 0.0 @ $.video.recording.segment_duration"],
        ),
        (
            "[video.recording]\nsegment_duration = 1\npart_duration = 2",
            ["must not be longer than segment_duration (1.0), not 2.0 @ $.video.recording.part_duration"],
        ),
        (
            "[video.recording]\npart_duration = -1",
            ["must be greater than 0, not -1.0 @ $.video.recording.part_duration"],
        ),
        (
            "[video.recording]\nenabled = 'yes'",
            ["expected true or false, got a string 'yes' @ $.video.recording.enabled"],
        ),
        ("[video.recording]\nsegment = 1", ["unknown key 'segment' @ $.video.recording.segment"]),
        ("[video.api]\ntoken = 5", ["expected a string, got an integer 5 @ $.video.api.token"]),
        (
            "[video.api]\ntoken = 'two words'",
            ["must be a non-empty string of printable ASCII characters without spaces @ $.video.api.token"],
        ),
        (
            "[video.api]\ntoken = ''",
            ["must be a non-empty string of printable ASCII characters without spaces @ $.video.api.token"],
        ),
        ("[video.api]\nport = 1", ["unknown key 'port' @ $.video.api.port"]),
    ],
)
def test_recording_and_api_mistakes(text: str, expected: list[str]) -> None:
    assert _problems(text) == expected


def test_recording_and_api_python_construction_is_validated() -> None:
    with pytest.raises(ValueError, match="segment_duration"):
        RecordingSettings(segment_duration=1.0, part_duration=5.0)
    with pytest.raises(ValueError, match="printable"):
        ApiSettings(token="bad\ntoken")


# -- [video.storage] policy and backends (storage tiers) --------------------------------------------------------

TIERED = """
[video.storage]
policy = "tiered"
hot_days = 0.5
warm_days = 2
[[video.storage.backends]]
type = "local"
name = "hot"
[[video.storage.backends]]
type = "nas"
name = "warm"
mount_point = "/mnt/nas"
[[video.storage.backends]]
type = "s3"
name = "cold"
endpoint = "http://127.0.0.1:9000"
bucket = "rec"
access_key = "a"
secret_key = "b"
addressing_style = "virtual"
"""


def test_storage_policy_and_backends() -> None:
    storage = parse_config(TIERED).video.storage
    assert storage.policy == "tiered"
    assert [(b.type, b.name) for b in storage.backends] == [("local", "hot"), ("nas", "warm"), ("s3", "cold")]
    assert (storage.hot_days, storage.warm_days, storage.quorum) == (0.5, 2.0, None)
    assert storage.backends[2].addressing_style == "virtual"
    assert parse_config("").video.storage.policy is None  # default: local storage only
    nvr = parse_config(
        '[video.storage]\npolicy = "multi_replica"\nquorum = 2\n'
        '[[video.storage.backends]]\ntype = "local"\nname = "a"\n'
        '[[video.storage.backends]]\ntype = "nvr"\nname = "central"\nnvr_url = "http://127.0.0.1:8080"\n'
        'auth_token = "t"\n'
    ).video.storage
    assert nvr.quorum == 2
    assert nvr.backends[1].nvr_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[video.storage]\npolicy = "raid"\n',
            ["must be one of 'primary_backup', 'multi_replica', 'tiered', not 'raid' @ $.video.storage.policy"],
        ),
        (
            '[video.storage]\npolicy = "tiered"\n[[video.storage.backends]]\ntype = "ftp"\nname = "x"\n',
            ["must be one of 'local', 'nas', 'nvr', 's3', not 'ftp' @ $.video.storage.backends[0].type"],
        ),
        (
            '[video.storage]\npolicy = "primary_backup"\n[[video.storage.backends]]\ntype = "s3"\nname = "a"\n'
            'bucket = "b"\n[[video.storage.backends]]\ntype = "nas"\nname = "a"\n',
            [
                "required for s3 backends @ $.video.storage.backends[0].endpoint",
                "required for s3 backends @ $.video.storage.backends[0].access_key",
                "required for s3 backends @ $.video.storage.backends[0].secret_key",
                "required for nas backends @ $.video.storage.backends[1].mount_point",
                "duplicate backend name 'a' (first used by backends[0]) @ $.video.storage.backends[1].name",
            ],
        ),
        (
            '[video.storage]\npolicy = "tiered"\n[[video.storage.backends]]\ntype = "local"\nname = "a"\n',
            ["policy 'tiered' needs 2 to 3 backends, not 1 @ $.video.storage.backends"],
        ),
        (
            '[[video.storage.backends]]\ntype = "local"\nname = "a"\n',
            ["backends are used only with a policy (set video.storage.policy) @ $.video.storage.backends"],
        ),
        (
            "[video.storage]\nhot_days = 3\nwarm_days = 1\n",
            ["must not be less than hot_days (3.0), not 1.0 @ $.video.storage.warm_days"],
        ),
        ("[video.storage]\nhot_days = -1\n", ["must not be negative, not -1.0 @ $.video.storage.hot_days"]),
        (
            '[video.storage]\npolicy = "multi_replica"\nquorum = 3\n[[video.storage.backends]]\ntype = "local"\n'
            'name = "a"\n[[video.storage.backends]]\ntype = "local"\nname = "b"\n',
            ["must be between 1 and the number of backends (2), not 3 @ $.video.storage.quorum"],
        ),
        (
            '[video.storage]\npolicy = "tiered"\nquorum = 1\n[[video.storage.backends]]\ntype = "local"\nname = "a"\n'
            '[[video.storage.backends]]\ntype = "nvr"\nname = "b"\nnvr_url = "ftp://x"\n',
            [
                "must be an http:// or https:// URL, not 'ftp://x' @ $.video.storage.backends[1].nvr_url",
                "quorum applies to the multi_replica policy only @ $.video.storage.quorum",
            ],
        ),
        (
            '[video.storage]\nhot_days = "7"\n[[video.storage.backends]]\ntype = "local"\nname = "a"\nbogus = 1\n',
            None,
        ),
    ],
)
def test_storage_backend_mistakes(text: str, expected: list[str] | None) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    if expected is None:
        assert "unknown key 'bogus' @ $.video.storage.backends[0].bogus" in info.value.messages
        assert any(m.endswith("@ $.video.storage.hot_days") for m in info.value.messages)
    else:
        assert info.value.messages == expected


def test_storage_retention_per_backend_and_free_space() -> None:
    from fluxkit.storage import RetentionLimits
    from fluxkit.storage.tiers import settings_from_config

    config = parse_config(
        '[video.storage]\nmin_free_gb = 2.5\npolicy = "primary_backup"\n'
        '[[video.storage.backends]]\ntype = "local"\nname = "p"\nretention_days = 0.5\nmax_size_gb = 100\n'
        '[[video.storage.backends]]\ntype = "nas"\nname = "b"\nmount_point = "/mnt/nas"\nmin_free_gb = 1\n'
    )
    storage = config.video.storage
    assert storage.min_free_gb == 2.5
    assert (storage.backends[0].retention_days, storage.backends[0].max_size_gb) == (0.5, 100.0)
    assert isinstance(storage.backends[0].max_size_gb, float)
    assert (storage.backends[1].retention_days, storage.backends[1].min_free_gb) == (None, 1.0)
    settings = settings_from_config(config)
    assert settings is not None
    assert [b.retention() for b in settings.backends] == [
        RetentionLimits(max_age_days=0.5, max_bytes=100 * 10**9),
        RetentionLimits(min_free_bytes=10**9),
    ]
    assert parse_config("").video.storage.min_free_gb is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[video.storage]\npolicy = "tiered"\n[[video.storage.backends]]\ntype = "local"\nname = "a"\n'
            'retention_days = -1\n[[video.storage.backends]]\ntype = "local"\nname = "b"\nmax_size_gb = 0\n'
            "min_free_gb = -2\n",
            [
                "must not be negative, not -1.0 @ $.video.storage.backends[0].retention_days",
                "must be greater than 0, not 0.0 @ $.video.storage.backends[1].max_size_gb",
                "must not be negative, not -2.0 @ $.video.storage.backends[1].min_free_gb",
            ],
        ),
        ("[video.storage]\nmin_free_gb = -1", ["must not be negative, not -1.0 @ $.video.storage.min_free_gb"]),
    ],
)
def test_storage_retention_mistakes(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.messages == expected


def test_nvr_upload_max_age() -> None:
    assert parse_config("").video.storage.nvr_upload_max_age_hours == 24.0
    storage = parse_config("[video.storage]\nserve_nvr = true\nnvr_upload_max_age_hours = 2\n").video.storage
    assert storage.serve_nvr
    assert storage.nvr_upload_max_age_hours == 2.0
    assert isinstance(storage.nvr_upload_max_age_hours, float)
    assert parse_config("[video.storage]\nnvr_upload_max_age_hours = 0.25\n").video.storage.nvr_upload_max_age_hours
    for text, shown in (("0", "0.0"), ("-3", "-3.0")):
        with pytest.raises(ConfigError) as info:
            parse_config(f"[video.storage]\nnvr_upload_max_age_hours = {text}\n")
        where = "$.video.storage.nvr_upload_max_age_hours"
        assert info.value.messages == [f"must be greater than 0, not {shown} @ {where}"]
    with pytest.raises(ConfigError) as info:
        parse_config('[video.storage]\nnvr_upload_max_age_hours = "24"\n')
    assert "$.video.storage.nvr_upload_max_age_hours" in info.value.messages[0]
