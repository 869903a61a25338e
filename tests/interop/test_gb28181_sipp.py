"""SIPp as a third-party GB28181 device against fluxkit's `Gb28181Platform` (issue 6).

The scenarios (tests/interop/sipp/gb28181_*.xml) REGISTER with Digest (SIPp computes the response from `-ap`),
send a Keepalive and a Catalog response; the wrong-password one expects 403. SIPp runs with `-m 1`, a timeout and
`-timeout_error`, so it never hangs; its exit status says whether every step got the expected answer.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
import trio

from fluxkit.gb28181 import Gb28181Platform, PlatformSettings
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).resolve().parent / "sipp"
DEVICE = "34020000001320000001"
PASSWORD = "12345678"


async def run_sipp(platform: Gb28181Platform, scenario: str, password: str, cwd: Path) -> tuple[int, bytes]:
    sipp = require_tool("sipp")
    cmd = [
        sipp,
        f"127.0.0.1:{platform.sip_port}",
        "-sf",
        str(SCENARIOS / scenario),
        "-i",
        "127.0.0.1",
        "-p",
        "0",
        "-s",
        DEVICE,
        "-au",
        DEVICE,
        "-ap",
        password,
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "20s",
        "-timeout_error",
        "-trace_err",
    ]
    log = cwd / "sipp.log"
    with log.open("wb") as out:
        proc = await trio.lowlevel.open_process(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        with trio.fail_after(30):
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()  # by PID
            with trio.CancelScope(shield=True):
                await proc.wait()
    errors = b"".join(p.read_bytes() for p in cwd.glob("*_errors.log"))
    return proc.returncode, log.read_bytes() + errors


async def serve_platform(nursery: trio.Nursery) -> Gb28181Platform:
    platform = Gb28181Platform(
        None,
        PlatformSettings(sip_port=0, password=PASSWORD, catalog_on_register=False),
        rng=random.Random(1),
    )
    await nursery.start(platform.serve)
    return platform


@pytest.mark.trio
async def test_sipp_device_registers_keeps_alive_and_sends_its_catalog(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        platform = await serve_platform(nursery)
        code, output = await run_sipp(platform, "gb28181_device.xml", PASSWORD, tmp_path)
        assert code == 0, output.decode(errors="replace")[-3000:]
        record = platform.device(DEVICE)
        assert record is not None
        assert record.online
        assert record.last_keepalive is not None
        assert [(c.channel_id, c.name, c.status) for c in record.channels] == [
            ("34020000001310000001", "SIPp Camera", "ON")
        ]
        nursery.cancel_scope.cancel()
    platform.close()


@pytest.mark.trio
async def test_sipp_device_with_a_wrong_password_gets_403(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        platform = await serve_platform(nursery)
        code, output = await run_sipp(platform, "gb28181_device_badpw.xml", "not-the-password", tmp_path)
        assert code == 0, output.decode(errors="replace")[-3000:]
        assert platform.device(DEVICE) is None
        nursery.cancel_scope.cancel()
    platform.close()
