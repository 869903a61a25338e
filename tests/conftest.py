"""Shared fixtures and Hypothesis profiles.

Profiles (pick with FLUXKIT_HYPOTHESIS_PROFILE): `dev` (default, fast), `ci` (derandomized, no deadline) and
`nightly` (many examples).
"""

from __future__ import annotations

import os
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
