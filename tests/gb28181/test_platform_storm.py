"""The platform under load and abuse: 200 devices registering at once, and floods of malformed SIP and garbage RTP.

The devices are the lightweight in-test `FakeDevice` (a `SipUserAgent` on its own UDP socket, conftest.py), which
answer the Digest challenge like a camera. The flood is a fixed number of rounds of bad datagrams (not a time
span, so a slow or loaded machine floods exactly as much as a fast one); between rounds registered devices keep
alive and a live stream keeps streaming; afterwards the platform still serves, and the memory traced across the
flood stays under a generous bound (nothing kept per bad datagram). Nothing is timed: what the platform has
queued is drained by waiting for answers and frames sent after the flood.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest
import trio

from fluxkit.gb28181 import Gb28181Source
from fluxkit.protocols.sdp import parse_sdp

from .conftest import DOMAIN, PLATFORM_ID, FakeDevice, engine_and_platform, running_platform

pytestmark = pytest.mark.slow

COUNT = 200
CHANNEL = "34020000001310000001"
#: Rounds of the flood; each sends every malformed SIP datagram and every garbage RTP datagram once.
FLOOD_ROUNDS = 24
#: A round in this many is followed by a wait for the live stream's next frames (it is served mid-flood).
FRAME_CHECK_EVERY = 6


def device_id(n: int) -> str:
    return f"3402000000132{n:07d}"


@pytest.mark.trio
async def test_200_devices_register_at_once() -> None:
    with trio.fail_after(30):
        async with running_platform(catalog_on_register=False) as platform, trio.open_nursery() as nursery:
            devices = [FakeDevice(platform.sip_port, device_id=device_id(n)) for n in range(COUNT)]
            for device in devices:
                await device.start(nursery)
            statuses: dict[str, int | None] = {}

            async def register(device: FakeDevice) -> None:
                response = await device.register()
                statuses[device.device_id] = None if response is None else response.status_code

            async with trio.open_nursery() as burst:
                for device in devices:
                    burst.start_soon(register, device)
            assert statuses == {d.device_id: 200 for d in devices}
            records = {d.device_id: d for d in platform.devices()}
            assert all(records[d.device_id].online for d in devices)
            # Every one of them is served afterwards too.
            async with trio.open_nursery() as burst:
                for device in devices[::10]:
                    burst.start_soon(device.keepalive)
            nursery.cancel_scope.cancel()
    for device in devices:
        await device.stop()


def malformed_sip(rng: random.Random) -> list[bytes]:
    """Datagrams that must not parse, or that parse into requests nobody may act on."""
    good = (
        f"MESSAGE sip:{PLATFORM_ID}@{DOMAIN} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\n"
        "From: <sip:34020000001329999999@3402000000>;tag=1\r\n"
        f"To: <sip:{PLATFORM_ID}@{DOMAIN}>\r\n"
        "Call-ID: x@y\r\nCSeq: 1 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\nContent-Length: 5\r\n\r\n<x/>\n"
    ).encode()
    variants = [
        b"",
        b"\r\n\r\n",
        b"REGISTER",
        b"REGISTER sip:x SIP/2.0\r\n",
        b"REGISTER sip:x SIP/2.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"SIP/2.0 999999999999 OK\r\nCSeq: x\r\n\r\n",
        good.replace(b"Content-Length: 5", b"Content-Length: 99999"),
        good.replace(b"Content-Length: 5", b"Content-Length: -1"),
        good.replace(b"CSeq: 1 MESSAGE", b"CSeq: one"),
        good.replace(b"Via: ", b"Via: \xff\xfe"),
        good.replace(b"From: <sip:", b"From: <"),
        good[: len(good) // 2],
        good.replace(b"\r\n", b"\n"),
        b"INVITE sip:a SIP/2.0\r\n" + b"X: " + b"A" * 60000 + b"\r\n\r\n",
        b"\x00" * 1400,
        good,  # a MESSAGE from a device that never registered: 404, nothing kept
    ]
    variants += [rng.randbytes(rng.randrange(1, 1500)) for _ in range(64)]
    variants += [good[: rng.randrange(len(good))] + rng.randbytes(40) for _ in range(64)]
    return variants


@pytest.mark.trio
async def test_flood_of_malformed_sip_and_garbage_rtp() -> None:
    rng = random.Random(11)
    sip_garbage = malformed_sip(rng)
    rtp_garbage = [rng.randbytes(rng.randrange(0, 1500)) for _ in range(64)]
    rtp_garbage += [b"\x80\x60" + rng.randbytes(rng.randrange(10, 1400)) for _ in range(64)]  # RTP-looking headers
    per_round = len(sip_garbage) + len(rtp_garbage)
    assert FLOOD_ROUNDS * per_round > 5000
    frames_during: list[int] = []

    async def more_frames(count: int) -> None:
        """Wait until the live stream delivered `count` more frames (under the test's fail_after)."""
        target = len(frames_during) + count
        while len(frames_during) < target:  # noqa: ASYNC110 - the counter is a plain list
            await trio.sleep(0.01)

    with trio.fail_after(60):
        async with (
            engine_and_platform(catalog_on_register=False, media_timeout=5.0) as (engine, platform),
            trio.open_nursery() as nursery,
        ):
            devices = [FakeDevice(platform.sip_port, device_id=device_id(n)) for n in range(10)]
            devices[0].media_frames = 5000  # 50 s at 100 fps: streams through the flood on any machine
            for device in devices:
                await device.start(nursery)
                assert (await device.register()).status_code == 200  # type: ignore[union-attr]
            streamer = devices[0]
            engine.add_source("cam", Gb28181Source(platform, streamer.device_id, CHANNEL))
            await streamer.wait_until(lambda: streamer.offers)
            media_port = parse_sdp(streamer.offers[0]).media[0].port

            async def count_frames() -> None:
                async with engine.subscribe_stream("cam", queue_size=4096) as subscription:
                    async for _ in subscription:
                        frames_during.append(1)

            nursery.start_soon(count_frames)
            await more_frames(1)

            tracemalloc.start()
            try:
                before, _ = tracemalloc.get_traced_memory()
                sent = 0
                keepalives: list[int | None] = []
                frame_checks = 0
                with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
                    # A TCP connection that sends nothing but garbage is dropped or ignored, never fatal.
                    garbage_tcp = await trio.open_tcp_stream("127.0.0.1", platform.sip_port)
                    await garbage_tcp.send_all(rng.randbytes(4096) + b"\r\n\r\n" + b"INVITE x\r\n" * 100)
                    for n in range(FLOOD_ROUNDS):
                        for data in sip_garbage:
                            await sock.sendto(data, ("127.0.0.1", platform.sip_port))
                        for data in rtp_garbage:
                            await sock.sendto(data, ("127.0.0.1", media_port))
                        sent += per_round
                        # Registered devices are still served in the middle of the flood...
                        device = devices[1 + n % (len(devices) - 1)]
                        response = await device.keepalive(sn=n + 2)
                        keepalives.append(None if response is None else response.status_code)
                        # ... and so is the live stream: its frames come after the garbage queued on its port.
                        if n % FRAME_CHECK_EVERY == FRAME_CHECK_EVERY - 1:
                            await more_frames(2)
                            frame_checks += 1
                    await garbage_tcp.aclose()
                # Drain what the flood left queued (a keepalive answered and frames received after it), then measure.
                assert (await devices[1].keepalive(sn=FLOOD_ROUNDS + 2)).status_code == 200  # type: ignore[union-attr]
                await more_frames(10)
                after, _ = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert sent == FLOOD_ROUNDS * per_round
            assert frame_checks == FLOOD_ROUNDS // FRAME_CHECK_EVERY
            assert keepalives == [200] * FLOOD_ROUNDS
            assert after - before < 4_000_000, f"{after - before} bytes kept after {sent} bad datagrams"
            # The live stream goes on after the flood.
            await more_frames(10)
            # Newcomers still register.
            late = FakeDevice(platform.sip_port, device_id=device_id(999))
            await late.start(nursery)
            assert (await late.register()).status_code == 200  # type: ignore[union-attr]
            engine.remove_source("cam")
            nursery.cancel_scope.cancel()
    for device in [*devices, late]:
        await device.stop()
