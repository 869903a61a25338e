"""Third-party peers shared by several test packages.

`GstRtspServer` runs tests/interop/rtsp_server.py (GStreamer's gst-rtsp-server, a camera-like RTSP server) with
Debian's /usr/bin/python3, which has `gi`; it binds 127.0.0.1 on a free port (or the same port again, as a camera
reboot) and prints the port it bound.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).resolve().parent / "interop" / "rtsp_server.py"


def require_gst_rtsp_server() -> None:
    """Skip (or fail under CI) when gst-rtsp-server for Debian's python3 is not installed."""
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    ok = os.path.exists(SYSTEM_PYTHON) and (
        subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, check=False).returncode == 0
    )
    if not ok:
        message = "gst-rtsp-server for Debian's python3 is not installed (python3-gi, gir1.2-gst-rtsp-server-1.0)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


class GstRtspServer:
    """gst-rtsp-server in a subprocess: `start()` (port 0 first, then the same port again), `kill()`."""

    def __init__(self, *auth: str) -> None:
        self.auth = auth
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> int:
        for _ in range(50):  # the old socket may linger a moment after a kill
            process = subprocess.Popen(
                [SYSTEM_PYTHON, str(SCRIPT), str(self.port), *self.auth],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert process.stdout is not None
            line = process.stdout.readline()
            if line.startswith("PORT "):
                self.process = process
                self.port = int(line.split()[1])
                return self.port
            process.kill()
            process.wait()
            process.stdout.close()
            if self.port == 0:
                break
            subprocess.run(["sleep", "0.1"], check=False)
        pytest.fail("rtsp_server.py did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None

    def url(self, path: str, user: str = "", password: str = "") -> str:
        creds = f"{user}:{password}@" if user else ""
        return f"rtsp://{creds}127.0.0.1:{self.port}{path}"
