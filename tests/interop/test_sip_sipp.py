"""fluxkit's SIP user agent against SIPp (Debian sip-tester), on 127.0.0.1 with free ports.

A small Trio driver feeds a UDP socket into the sans-IO `SipUserAgent` (the shape of the future fluxkit.net
layer): datagrams in, `datagrams_to_send` out, `get_timer` bounding each receive. SIPp runs the scenarios in
tests/interop/sipp/ with `-timeout 20s -timeout_error`, so nothing hangs; it is stopped by its PID in any case.
SIPp's exit status is its verdict (0: every call succeeded); the test also checks what fluxkit saw.
"""

from __future__ import annotations

import random
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from fluxkit.protocols.digest import DigestServer
from fluxkit.protocols.sip import (
    RequestReceived,
    ResponseReceived,
    SipEvent,
    SipUserAgent,
    TransactionTimedOut,
)
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).resolve().parent / "sipp"
DEVICE = "34020000001320000001"
PLATFORM = "34020000002000000001"
PASSWORD = "12345678"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _drive(
    ua: SipUserAgent, sock: trio.socket.SocketType, on_event: Callable[[SipUserAgent, SipEvent, float], None]
) -> None:
    """Run the user agent on the socket until cancelled."""
    while True:
        now = trio.current_time()
        while (event := ua.next_event()) is not None:
            on_event(ua, event, now)
        for data, addr in ua.datagrams_to_send(now):
            await sock.sendto(data, addr)
        deadline = ua.get_timer()
        with trio.move_on_at(float("inf") if deadline is None else deadline):
            data, addr = await sock.recvfrom(65535)
            ua.receive_datagram(data, (addr[0], addr[1]), trio.current_time())
        ua.handle_timer(trio.current_time())


def _run_with_sipp(
    args: list[str],
    cwd: Path,
    ua_factory: Callable[[int], SipUserAgent],
    on_event: Callable[[SipUserAgent, SipEvent, float], None],
    start: Callable[[SipUserAgent, float], None] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    sipp = require_tool("sipp")
    result: list[subprocess.CompletedProcess[bytes]] = []

    async def main() -> None:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        ua = ua_factory(port)
        cmd = [sipp, *[a.replace("{port}", str(port)) for a in args], "-timeout", "20s", "-timeout_error"]
        log = cwd / "sipp.log"
        with log.open("wb") as out:
            proc = await trio.lowlevel.open_process(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drive, ua, sock, on_event)
                if start is not None:
                    start(ua, trio.current_time())
                with trio.fail_after(30):
                    await proc.wait()
                result.append(subprocess.CompletedProcess(cmd, proc.returncode, log.read_bytes()))
                nursery.cancel_scope.cancel()
        finally:
            if proc.returncode is None:
                proc.kill()  # by PID
                with trio.CancelScope(shield=True):
                    await proc.wait()
            sock.close()

    trio.run(main)
    return result[0]


def _platform(port: int) -> SipUserAgent:
    return SipUserAgent(
        user=PLATFORM,
        host="127.0.0.1",
        port=port,
        rng=random.Random(1),
        domain="3402000000",
        authenticator=DigestServer("3402000000", random.Random(2)),
        lookup={DEVICE: PASSWORD}.get,
    )


@pytest.mark.parametrize(("password", "expect_register"), [(PASSWORD, True), ("wrong-password", False)])
def test_sipp_registers_with_fluxkit_platform(tmp_path: Path, password: str, expect_register: bool) -> None:
    registered: list[str | None] = []

    def on_event(ua: SipUserAgent, event: SipEvent, now: float) -> None:
        if isinstance(event, RequestReceived) and event.request.method == "REGISTER":
            registered.append(event.username)
            ua.respond(event.request, 200, now, headers=[("Expires", "3600"), ("Date", "2024-01-01T12:00:00.000")])

    sipp_port = _free_udp_port()
    scenario = "uac_register.xml" if expect_register else "uac_register_badpw.xml"
    args = ["127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(sipp_port)]
    args += ["-s", DEVICE, "-au", DEVICE, "-ap", password, "-m", "1", "-nostdin"]
    done = _run_with_sipp(args, tmp_path, _platform, on_event)
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-3000:]
    assert registered == ([DEVICE] if expect_register else [])


def test_fluxkit_device_registers_with_sipp_registrar(tmp_path: Path) -> None:
    sipp_port = _free_udp_port()
    responses: list[int] = []

    def device(port: int) -> SipUserAgent:
        return SipUserAgent(
            user=DEVICE, host="127.0.0.1", port=port, rng=random.Random(3), domain="3402000000", password=PASSWORD
        )

    def on_event(ua: SipUserAgent, event: SipEvent, now: float) -> None:
        if isinstance(event, ResponseReceived):
            responses.append(event.response.status_code)
        assert not isinstance(event, TransactionTimedOut)

    def start(ua: SipUserAgent, now: float) -> None:
        ua.register(f"sip:{PLATFORM}@3402000000", ("127.0.0.1", sipp_port), now)

    args = ["-sf", str(SCENARIOS / "uas_register.xml"), "-i", "127.0.0.1", "-p", str(sipp_port)]
    args += ["-m", "1", "-nostdin"]
    done = _run_with_sipp(args, tmp_path, device, on_event, start)
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-3000:]
    assert responses == [200]  # the 401 was answered inside the user agent


def test_fluxkit_platform_invites_sipp_device(tmp_path: Path) -> None:
    sipp_port = _free_udp_port()
    seen: list[tuple[str, int]] = []

    def on_event(ua: SipUserAgent, event: SipEvent, now: float) -> None:
        assert not isinstance(event, TransactionTimedOut)
        if isinstance(event, ResponseReceived):
            seen.append((event.request.method, event.response.status_code))
            if event.request.method == "INVITE" and event.response.status_code == 200:
                assert event.dialog is not None
                assert b"y=0100000001" in event.response.body
                ua.bye(event.dialog, now)

    def start(ua: SipUserAgent, now: float) -> None:
        sdp = (
            b"v=0\r\no=34020000002000000001 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            b"m=video 30000 RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\ny=0100000001\r\n"
        )
        ua.invite(f"sip:{DEVICE}@3402000000", ("127.0.0.1", sipp_port), now, body=sdp)

    args = ["-sf", str(SCENARIOS / "uas_invite.xml"), "-i", "127.0.0.1", "-p", str(sipp_port), "-m", "1", "-nostdin"]
    done = _run_with_sipp(args, tmp_path, _platform, on_event, start)
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-3000:]
    assert seen == [("INVITE", 100), ("INVITE", 200), ("BYE", 200)]
