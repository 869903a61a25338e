"""fluxkit's simulated GB28181 device against SIPp as a third-party platform (registrar), on 127.0.0.1.

SIPp runs a UAS scenario with `<verifyauth>`: the device's Digest answer is checked by SIPp's own code, so a
200 proves fluxkit hashes what other implementations hash, and a wrong password gets SIPp's 403, which the
device must report. The CLI test starts `fluxkit sim-device` as a subprocess against a SIPp platform that also
checks a Keepalive MESSAGE. SIPp runs with `-timeout 20s -timeout_error`; every process is stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from tests.conftest import require_tool
from tests.mediagen import encode_annexb

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).resolve().parent / "sipp"
DEVICE = "34020000001320000001"
PLATFORM = "34020000002000000001"
PASSWORD = "12345678"
ROOT = Path(__file__).resolve().parents[2]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sipp_uas(scenario: str, port: int, calls: int) -> list[str]:
    sipp = require_tool("sipp")
    return [sipp, "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port), "-m", str(calls)]


@pytest.mark.trio
@pytest.mark.parametrize(("password", "registered"), [(PASSWORD, True), ("wrong-password", False)])
async def test_device_registers_to_sipp_with_digest(tmp_path: Path, password: str, registered: bool) -> None:
    port = _free_udp_port()
    cmd = [*_sipp_uas("uas_register.xml", port, 1), "-nostdin", "-timeout", "20s", "-timeout_error"]
    lines: list[str] = []
    settings = DeviceSettings(
        server_host="127.0.0.1",
        server_port=port,
        server_id=PLATFORM,
        domain="3402000000",
        device_id=DEVICE,
        password=password,
    )
    device = SimulatedDevice(settings, report=lines.append)
    log = tmp_path / "sipp.log"
    with trio.fail_after(30), log.open("wb") as out:
        proc = await trio.lowlevel.open_process(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        try:
            await trio.sleep(0.3)  # SIPp binds its port
            async with trio.open_nursery() as nursery:
                await nursery.start(device.run)
                await device.wait_state(lambda d: d.state in ("registered", "rejected"))
                await proc.wait()
                state, status, registrations = device.state, device.last_status, device.registrations
                nursery.cancel_scope.cancel()
        finally:
            if proc.returncode is None:
                proc.kill()
                with trio.CancelScope(shield=True):
                    await proc.wait()
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]
    if registered:
        assert (state, status, registrations) == ("registered", 200, 1)
        assert device.server_date == "2024-01-01T12:00:00.000"
    else:
        assert (state, status, registrations) == ("rejected", 403, 0)
        assert any("403" in line and "wrong password" in line for line in lines), lines


def test_cli_sim_device_registers_and_keeps_alive_with_sipp(tmp_path: Path) -> None:
    port = _free_udp_port()
    clip = tmp_path / "clip.h264"
    clip.write_bytes(encode_annexb("h264", width=160, height=96, frames=25, gop=25, fps=25))
    sipp_log = (tmp_path / "sipp.log").open("wb")
    sipp = subprocess.Popen(
        [*_sipp_uas("device_register_keepalive.xml", port, 2), "-nostdin", "-timeout", "20s", "-timeout_error"],
        cwd=tmp_path,
        stdout=sipp_log,
        stderr=subprocess.STDOUT,
    )
    cli = None
    try:
        args = ["sim-device", "--server", f"127.0.0.1:{port}", "--device-id", DEVICE, "--password", PASSWORD]
        args += ["--channels", "4", "--keepalive", "1", "--clip", str(clip)]
        cli = subprocess.Popen(
            [sys.executable, "-m", "fluxkit", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert sipp.wait(timeout=30) == 0, (tmp_path / "sipp.log").read_text(errors="replace")[-3000:]
        cli.send_signal(signal.SIGINT)
        out, _ = cli.communicate(timeout=15)
    finally:
        for proc in (sipp, cli):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        sipp_log.close()
    text = out.decode(errors="replace")
    assert f"sim-device {DEVICE}" in text
    assert "registration registered: 200 OK, expires 3600 s" in text, text
    assert cli.returncode == 0, text
