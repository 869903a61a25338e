"""Timeline: 32/33-bit unwrapping, runs at clock jumps, wall time kept apart (plain synchronous tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.engine import Timeline

WRAP = 1 << 32


def test_first_timestamp_anchors_run_zero() -> None:
    timeline = Timeline(90000)
    point = timeline.update(1000, 5.0)
    assert (point.run_id, point.media, point.seconds, point.wall, point.new_run, point.reason) == (
        0,
        1000,
        0.0,
        5.0,
        False,
        "start",
    )
    assert timeline.run_start_wall == 5.0
    second = timeline.update(1000 + 3600, 5.04)
    assert (second.run_id, second.media, second.seconds, second.reason) == (0, 4600, 0.04, "")


def test_32_bit_wrap_keeps_counting() -> None:
    timeline = Timeline(90000)
    start = WRAP - 7200
    times = [timeline.update((start + i * 3600) % WRAP, i * 0.04) for i in range(5)]
    assert [p.media for p in times] == [start + i * 3600 for i in range(5)]
    assert {p.run_id for p in times} == {0}
    assert times[-1].seconds == pytest.approx(0.16)


def test_33_bit_pes_wrap() -> None:
    timeline = Timeline(90000, wrap_bits=33)
    start = (1 << 33) - 3600
    assert timeline.update(start, 0.0).media == start
    assert timeline.update(0, 0.04).media == start + 3600


def test_no_wrap() -> None:
    timeline = Timeline(90000, wrap_bits=None)
    timeline.update(2**40, 0.0)
    assert timeline.update(2**40 + 3600, 0.04).media == 2**40 + 3600


def test_backward_jump_starts_a_new_run() -> None:
    timeline = Timeline(90000)
    timeline.update(900_000, 0.0)
    timeline.update(903_600, 0.04)
    point = timeline.update(100, 0.08)  # camera clock reset
    assert (point.run_id, point.new_run, point.reason, point.media, point.seconds) == (1, True, "backward_jump", 100, 0)
    assert timeline.run_start_wall == 0.08
    assert timeline.update(3700, 0.12).run_id == 1


def test_small_backward_step_stays_in_the_run() -> None:
    # B-frames in presentation order: pts goes back by a few frames.
    timeline = Timeline(90000)
    pts = [0, 3 * 3600, 3600, 2 * 3600, 6 * 3600, 4 * 3600, 5 * 3600]
    points = [timeline.update(p, i * 0.04) for i, p in enumerate(pts)]
    assert [p.media for p in points] == pts
    assert {p.run_id for p in points} == {0}


def test_forward_jump_starts_a_new_run_but_an_outage_does_not() -> None:
    timeline = Timeline(90000, max_forward=10.0)
    timeline.update(0, 100.0)
    # 60 s of media time after 60 s of wall time: an outage during which the camera clock kept running.
    assert timeline.update(60 * 90000, 160.0).run_id == 0
    # One hour of media time after 40 ms of wall time: the camera clock jumped.
    point = timeline.update(60 * 90000 + 3600 * 90000, 160.04)
    assert (point.run_id, point.reason) == (1, "forward_jump")


def test_a_jump_on_one_track_re_anchors_every_track() -> None:
    timeline = Timeline([90000, 8000])
    timeline.update(900_000, 0.0, track=0)
    timeline.update(500_000, 0.0, track=1)
    timeline.update(903_600, 0.04, track=0)
    assert timeline.update(500_320, 0.04, track=1).media == 500_320
    jump = timeline.update(10, 0.08, track=0)
    assert (jump.run_id, jump.reason) == (1, "backward_jump")
    # The audio track's next timestamp is taken as the new anchor, not compared with the old run.
    audio = timeline.update(7, 0.08, track=1)
    assert (audio.run_id, audio.new_run, audio.media, audio.seconds) == (1, False, 7, 0.0)
    assert timeline.tracks == 2


def test_reset_starts_a_new_run_at_the_next_timestamp() -> None:
    timeline = Timeline(90000)
    timeline.reset()  # before anything: the first run is still run 0, reason "start"
    assert timeline.update(5, 0.0).reason == "start"
    timeline.reset()
    point = timeline.update(123_456, 1.0)
    assert (point.run_id, point.new_run, point.reason) == (1, True, "reset")
    timeline.set_clock_rates([90000, 48000])
    point = timeline.update(0, 2.0, track=1)
    assert (point.run_id, point.reason) == (2, "reset")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="clock rate"):
        Timeline([])
    with pytest.raises(ValueError, match="clock rate"):
        Timeline(0)
    with pytest.raises(ValueError, match="wrap_bits"):
        Timeline(90000, wrap_bits=4)
    with pytest.raises(ValueError, match="clock rate"):
        Timeline(90000).set_clock_rates([])


@given(
    base=st.integers(0, WRAP - 1),
    steps=st.lists(st.integers(-3 * 3600, 20 * 3600), min_size=1, max_size=300),
    wrap_bits=st.sampled_from([32, 33]),
)
def test_unwrapping_recovers_the_true_time(base: int, steps: list[int], wrap_bits: int) -> None:
    # The true media time moves by small steps (some backwards, as B-frames do) and wraps on the wire; wall time
    # follows media time. Unwrapped values must equal the true ones, in a single run.
    modulus = 1 << wrap_bits
    timeline = Timeline(90000, wrap_bits=wrap_bits)
    true = base
    assert timeline.update(true % modulus, 0.0).media == base
    for step in steps:
        true += step
        point = timeline.update(true % modulus, (true - base) / 90000)
        assert point.media == true
        assert point.run_id == 0
        assert point.seconds == pytest.approx((true - base) / 90000)


@given(
    base=st.integers(0, WRAP - 1),
    before=st.integers(1, 50),
    jump=st.integers(-(2**31), 2**31 - 1 - 3600).filter(lambda j: abs(j + 3600) > 90000),
)
def test_any_jump_beyond_the_thresholds_starts_exactly_one_new_run(base: int, before: int, jump: int) -> None:
    timeline = Timeline(90000, max_backward=0.5, max_forward=0.5)
    ts = base
    for i in range(before):
        timeline.update(ts % WRAP, i * 0.04)
        ts += 3600
    wall = before * 0.04
    point = timeline.update((ts + jump) % WRAP, wall)  # a step of jump + 3600 from the last timestamp
    assert point.run_id == 1
    assert point.new_run
    assert point.reason == ("backward_jump" if jump + 3600 < 0 else "forward_jump")
    assert timeline.update((ts + jump + 3600) % WRAP, wall + 0.04).run_id == 1
