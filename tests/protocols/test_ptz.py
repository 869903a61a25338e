"""PTZCmd (GB/T 28181-2016 A.3): the worked examples of gb28181.md as golden vectors, every command family,
checksum/format errors, Hypothesis round trips over `st.builds` and garbage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError
from fluxkit.protocols.manscdp import DeviceControl, PtzAction, PtzCommand, parse_manscdp

# (hex, expected command) — the "Worked examples" table of ../shared/reference/gb28181.md, checked by hand there.
GOLDEN = [
    ("A50F0100000000B5", PtzCommand(action=PtzAction.STOP)),
    ("A50F010180000036", PtzCommand(action=PtzAction.MOVE, pan="right", pan_speed=0x80)),
    ("A50F01080080003D", PtzCommand(action=PtzAction.MOVE, tilt="up", tilt_speed=0x80)),
    ("A50F0105808000BA", PtzCommand(action=PtzAction.MOVE, pan="right", tilt="down", pan_speed=0x80, tilt_speed=0x80)),
    ("A50F0110000010D5", PtzCommand(action=PtzAction.MOVE, zoom="in", zoom_speed=1)),
    ("A50F01200000F0C5", PtzCommand(action=PtzAction.MOVE, zoom="out", zoom_speed=15)),
    ("A50F018100010037", PtzCommand(action=PtzAction.PRESET_SET, preset=1)),
    ("A50F018200010038", PtzCommand(action=PtzAction.PRESET_CALL, preset=1)),
    ("A50F014180000076", PtzCommand(action=PtzAction.FOCUS_IRIS, focus="far", focus_speed=0x80)),
    ("A50F014400800079", PtzCommand(action=PtzAction.FOCUS_IRIS, iris="open", iris_speed=0x80)),
]


@pytest.mark.parametrize(("hex_string", "command"), GOLDEN)
def test_worked_examples(hex_string: str, command: PtzCommand) -> None:
    assert PtzCommand.decode(hex_string) == command
    assert command.encode() == hex_string
    assert PtzCommand.decode(hex_string.lower()).encode() == hex_string


def _with_checksum(first7: str) -> str:
    data = bytes.fromhex(first7)
    return (data + bytes((sum(data) & 0xFF,))).hex().upper()


@pytest.mark.parametrize(
    ("first7", "command"),
    [
        # 0x29 = up + right + zoom out (A.3.2 combination), zoom speed 3 in the high nibble of byte 7.
        (
            "A50F0129102030",
            PtzCommand.move(pan="right", tilt="up", zoom="out", pan_speed=16, tilt_speed=32, zoom_speed=3),
        ),
        ("A50F010A404000", PtzCommand.move(pan="left", tilt="up", pan_speed=64, tilt_speed=64)),
        ("A50F0106050600", PtzCommand.move(pan="left", tilt="down", pan_speed=5, tilt_speed=6)),
        ("A50F0142200000", PtzCommand(action=PtzAction.FOCUS_IRIS, focus="near", focus_speed=0x20)),
        ("A50F0148003000", PtzCommand(action=PtzAction.FOCUS_IRIS, iris="close", iris_speed=0x30)),
        ("A50F0140000000", PtzCommand(action=PtzAction.FOCUS_IRIS)),
        ("A50F0183000700", PtzCommand.preset_command(PtzAction.PRESET_DELETE, 7)),
        ("A50F0184020500", PtzCommand(action=PtzAction.CRUISE_ADD, group=2, point=5)),
        ("A50F0185020000", PtzCommand(action=PtzAction.CRUISE_DELETE, group=2, point=0)),
        # 12-bit value: byte 6 = low 8 bits, byte 7 high nibble = bits 8..11 (0x234 = 564).
        ("A50F0186023420", PtzCommand(action=PtzAction.CRUISE_SPEED, group=2, value=0x234)),
        ("A50F018701FFF0", PtzCommand(action=PtzAction.CRUISE_DWELL, group=1, value=0xFFF)),
        ("A50F0188030000", PtzCommand(action=PtzAction.CRUISE_START, group=3)),
        ("A50F0189010000", PtzCommand(action=PtzAction.SCAN_START, group=1)),
        ("A50F0189010100", PtzCommand(action=PtzAction.SCAN_LEFT, group=1)),
        ("A50F0189010200", PtzCommand(action=PtzAction.SCAN_RIGHT, group=1)),
        ("A50F018A011010", PtzCommand(action=PtzAction.SCAN_SPEED, group=1, value=0x110)),
        ("A50F018C010000", PtzCommand(action=PtzAction.AUX_ON, switch=1)),
        ("A50F018D010000", PtzCommand(action=PtzAction.AUX_OFF, switch=1)),
        # address 0xABC: low 8 bits in byte 3, high nibble in the low nibble of byte 7.
        ("A50FBC0000000A", PtzCommand(action=PtzAction.STOP, address=0xABC)),
    ],
)
def test_every_command_family(first7: str, command: PtzCommand) -> None:
    hex_string = _with_checksum(first7)
    assert command.encode() == hex_string
    assert PtzCommand.decode(hex_string) == command


def test_describe() -> None:
    assert PtzCommand.decode("A50F0100000000B5").describe() == "stop"
    assert PtzCommand.decode("A50F0105808000BA").describe() == "move right+down pan=128 tilt=128 zoom=0"
    assert PtzCommand.decode("A50F018200010038").describe() == "preset call 1"
    assert "focus-far" in PtzCommand.decode("A50F014180000076").describe()
    assert PtzCommand(action=PtzAction.FOCUS_IRIS).describe() == "focus/iris stop"
    assert PtzCommand(action=PtzAction.AUX_ON, switch=1).describe() == "aux on switch=1"
    assert PtzCommand(action=PtzAction.CRUISE_DWELL, group=1, value=9).describe() == "cruise dwell group=1 value=9"
    assert PtzCommand(action=PtzAction.SCAN_LEFT, group=2).describe() == "scan left group=2"
    assert PtzCommand(action=PtzAction.CRUISE_ADD, group=2, point=3).describe() == "cruise add group=2 point=3"


def test_is_stop() -> None:
    assert PtzCommand.stop().is_stop
    assert PtzCommand(action=PtzAction.FOCUS_IRIS).is_stop
    assert not PtzCommand.move(pan="left").is_stop


@pytest.mark.parametrize(
    ("hex_string", "offset"),
    [
        ("A50F0100000000B6", 7),  # checksum off by one
        ("A60F0100000000B6", 0),  # lead byte
        ("A50E0100000000B4", 1),  # check nibble does not match version 0
        ("A50F0103000000B8", 3),  # left and right at once
        ("A50F010C000000C1", 3),  # up and down at once
        ("A50F0130000000E5", 3),  # zoom in and out at once
        ("A50F014300000000", 7),  # bad checksum checked before the command
        ("A50F018B00000040", 3),  # 0x8B is not defined
        ("A50F018900030040", 5),  # scan operation 3
        ("A50F015000000005", 3),  # 0x50 is not defined
    ],
)
def test_decode_errors(hex_string: str, offset: int) -> None:
    data = bytes.fromhex(hex_string)
    fixed = data[:7] + bytes((sum(data[:7]) & 0xFF,))
    if offset != 7:
        hex_string = fixed.hex().upper()
    with pytest.raises(ParseError) as info:
        PtzCommand.decode(hex_string)
    assert info.value.offset == offset


@pytest.mark.parametrize(
    "text", ["", "A50F01", "A50F0100000000B5FF", "A50F0100000000BZ", "Ａ50F0100000000B5", "A50F 0100000000B5"]
)
def test_decode_format_errors(text: str) -> None:
    with pytest.raises(ParseError):
        PtzCommand.decode(text)


def test_whitespace_around_is_ignored() -> None:
    assert PtzCommand.decode(" A50F0100000000B5\r\n") == PtzCommand.stop()


def test_trailing_data_is_an_error() -> None:
    with pytest.raises(ParseError):
        PtzCommand.from_bytes(bytes.fromhex("A50F0100000000B5") + b"\x00")


@pytest.mark.parametrize(
    "command",
    [
        PtzCommand(action=PtzAction.MOVE),  # MOVE without a direction
        PtzCommand(action=PtzAction.STOP, pan="left"),  # STOP with one
        PtzCommand.move(pan="left", pan_speed=256),
        PtzCommand.move(zoom="in", zoom_speed=16),
        PtzCommand(action=PtzAction.PRESET_CALL, preset=-1),
        PtzCommand(action=PtzAction.CRUISE_SPEED, value=0x1000),
        PtzCommand(action=PtzAction.AUX_ON, switch=300),
        PtzCommand.stop().__class__(action=PtzAction.STOP, address=0x1000),
        PtzCommand(action=PtzAction.FOCUS_IRIS, focus_speed=-1),
    ],
)
def test_encode_validates(command: PtzCommand) -> None:
    with pytest.raises(LocalProtocolError):
        command.encode()


def test_preset_command_rejects_other_actions() -> None:
    with pytest.raises(LocalProtocolError):
        PtzCommand.preset_command(PtzAction.AUX_ON, 1)


def test_device_control_carries_ptz() -> None:
    command = PtzCommand.move(pan="left", pan_speed=0x40)
    control = DeviceControl.ptz(sn=11, device_id="34020000001320000001", command=command)
    body = control.encode()
    assert b"<PTZCmd>" + command.encode().encode() + b"</PTZCmd>" in body
    assert b"<Info>\r\n<ControlPriority>5</ControlPriority>\r\n</Info>" in body
    parsed = parse_manscdp(body)
    assert isinstance(parsed, DeviceControl)
    assert parsed.ptz_command == command
    assert parsed.control_priority == 5


# -- Hypothesis -------------------------------------------------------------------------------------------------------

byte = st.integers(0, 255)
address = st.integers(0, 0xFFF)
directions = st.tuples(
    st.sampled_from([None, "left", "right"]),
    st.sampled_from([None, "up", "down"]),
    st.sampled_from([None, "in", "out"]),
)


@st.composite
def ptz_commands(draw: st.DrawFn) -> PtzCommand:
    action = draw(st.sampled_from(PtzAction))
    if action in (PtzAction.STOP, PtzAction.MOVE):
        pan, tilt, zoom = draw(directions.filter(lambda d: (d == (None, None, None)) == (action is PtzAction.STOP)))
        return draw(
            st.builds(
                PtzCommand,
                action=st.just(action),
                pan=st.just(pan),
                tilt=st.just(tilt),
                zoom=st.just(zoom),
                pan_speed=byte,
                tilt_speed=byte,
                zoom_speed=st.integers(0, 15),
                address=address,
            )
        )
    if action is PtzAction.FOCUS_IRIS:
        return draw(
            st.builds(
                PtzCommand,
                action=st.just(action),
                focus=st.sampled_from([None, "near", "far"]),
                iris=st.sampled_from([None, "open", "close"]),
                focus_speed=byte,
                iris_speed=byte,
                address=address,
            )
        )
    if action.value.startswith("preset"):
        return draw(st.builds(PtzCommand, action=st.just(action), preset=byte, address=address))
    if action in (PtzAction.CRUISE_SPEED, PtzAction.CRUISE_DWELL, PtzAction.SCAN_SPEED):
        return draw(
            st.builds(PtzCommand, action=st.just(action), group=byte, value=st.integers(0, 0xFFF), address=address)
        )
    if action in (PtzAction.AUX_ON, PtzAction.AUX_OFF):
        return draw(st.builds(PtzCommand, action=st.just(action), switch=byte, address=address))
    if action in (PtzAction.SCAN_START, PtzAction.SCAN_LEFT, PtzAction.SCAN_RIGHT):
        return draw(st.builds(PtzCommand, action=st.just(action), group=byte, address=address))
    return draw(st.builds(PtzCommand, action=st.just(action), group=byte, point=byte, address=address))


@given(ptz_commands())
def test_round_trip(command: PtzCommand) -> None:
    text = command.encode()
    assert len(text) == 16
    assert text == text.upper()
    assert PtzCommand.decode(text) == command


@given(st.binary(min_size=8, max_size=8))
def test_garbage_bytes(data: bytes) -> None:
    try:
        command = PtzCommand.from_bytes(data)
    except ProtocolError:
        return
    # Whatever decodes re-encodes to a valid command with a correct checksum.
    PtzCommand.decode(command.encode())


@given(st.text(max_size=24))
def test_garbage_text(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        PtzCommand.decode(text)
