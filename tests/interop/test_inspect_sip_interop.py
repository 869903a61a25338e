"""`fluxkit inspect` on a real SIP exchange: tcpdump on lo captures SIPp (UAC, REGISTER with digest) against SIPp
(UAS registrar) over UDP, once with the right password (401 then 200) and once with a wrong one (401 then 403).

Both SIPp instances run with `-m 1 -timeout 20s -timeout_error` on free ports of 127.0.0.1, so nothing hangs;
each is also stopped by its PID in any case.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fluxkit.cli import main
from tests.conftest import require_tool
from tests.interop.test_inspect_interop import tcpdump

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).resolve().parent / "sipp"
DEVICE = "34020000001320000001"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _register(tmp_path: Path, password: str) -> Path:
    sipp = require_tool("sipp")
    uas_port, uac_port = _free_udp_port(), _free_udp_port()
    common = ["-i", "127.0.0.1", "-m", "1", "-timeout", "20s", "-timeout_error", "-nostdin"]
    pcap = tmp_path / "register.pcap"
    uas_cmd = [sipp, "-sf", str(SCENARIOS / "uas_register.xml"), "-p", str(uas_port), *common]
    uac_cmd = [
        sipp, f"127.0.0.1:{uas_port}", "-sf", str(SCENARIOS / "uac_register.xml"), "-p", str(uac_port),
        "-s", DEVICE, "-au", DEVICE, "-ap", password, *common,
    ]  # fmt: skip
    with tcpdump(pcap, f"udp and (port {uas_port} or port {uac_port})"):
        uas = subprocess.Popen(uas_cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            subprocess.run(uac_cmd, cwd=tmp_path, capture_output=True, timeout=60, check=False)
            uas.wait(timeout=30)
        finally:
            if uas.poll() is None:
                uas.kill()
                uas.wait()
    return pcap


def _inspect(pcap: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    rc = main(["inspect", str(pcap), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary: dict[str, Any] = json.loads(out.splitlines()[-1])
    return summary


@pytest.mark.parametrize(
    ("password", "final", "outcome"), [("12345678", 200, "registered"), ("wrong-password", 403, "forbidden")]
)
def test_sipp_register_capture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], password: str, final: int, outcome: str
) -> None:
    pcap = _register(tmp_path, password)
    summary = _inspect(pcap, capsys)
    assert summary["streams"] == []
    sip = summary["sip"]
    registers = [t for t in sip["transactions"] if t["method"] == "REGISTER"]
    assert [t["final"] for t in registers] == [401, final]
    assert [t["cseq"] for t in registers] == [1, 2]
    assert all(t["transport"] == "udp" for t in registers)
    (reg,) = sip["registrations"]
    assert reg["device"] == DEVICE
    assert reg["statuses"][-2:] == [401, final]
    assert reg["outcome"] == outcome
    assert reg["authorized"]
    rc = main(["inspect", str(pcap)])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"REGISTER {DEVICE}: 401 -> {final} ({outcome}" in out
