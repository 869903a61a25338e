"""The packages pyproject.toml installs are exactly the packages on disk (fluxkit/ and tui/ as fluxkit_tui)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _on_disk() -> set[str]:
    found = set()
    for top, name in (("fluxkit", "fluxkit"), ("tui", "fluxkit_tui")):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *parts)))
    return found


def test_every_package_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _on_disk()
    assert config["package-dir"] == {"fluxkit_tui": "tui"}
