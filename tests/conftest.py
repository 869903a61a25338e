"""Shared fixtures and Hypothesis profiles.

Profiles (pick with FLUXKIT_HYPOTHESIS_PROFILE): `dev` (default, fast), `ci` (derandomized, no deadline) and
`nightly` (many examples).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("nightly", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("FLUXKIT_HYPOTHESIS_PROFILE", "dev"))

SHARED_MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The real-content clips in ../shared/media; tests using them skip where the folder is absent."""
    if not (SHARED_MEDIA / "avatar.h264").exists():
        pytest.skip("../shared/media is not present (fresh clone): real-clip tests need it")
    return SHARED_MEDIA


def require_tool(name: str) -> str:
    """Path of an external peer binary (ffmpeg, gst-launch-1.0, tcpdump, ...).

    Where it is missing the test is skipped on a developer machine but fails under CI (CI=true), since
    scripts/test installs every peer and a silent skip there would hide a broken install step.
    """
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
