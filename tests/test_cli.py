"""The `fluxkit` command line: subcommand wiring (each command's own behaviour is tested with its package)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxkit.cli import main


def test_config_validate_accepts_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fluxkit.toml"
    path.write_text('[[video.streams]]\nstream_id = "gate"\nprotocol = "rtsp"\nsource_url = "rtsp://cam/1"\n')
    assert main(["config", "validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def test_config_validate_reports_every_mistake_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fluxkit.toml"
    path.write_text("[video]\ndata_dir = 5\n[video.protocols]\nrtsp_port = 99999\n")
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "@ $.video.data_dir" in err
    assert "@ $.video.protocols.rtsp_port" in err


def test_config_validate_missing_file(tmp_path: Path) -> None:
    assert main(["config", "validate", str(tmp_path / "absent.toml")]) == 1


def test_unknown_subcommand_is_a_usage_error() -> None:
    assert main(["frobnicate"]) == 2


def test_storage_check_on_an_empty_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["storage", "check", "--data-dir", str(tmp_path)]) == 0
    assert "storage OK" in capsys.readouterr().out


def test_storage_check_reports_an_unfinished_segment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    partial = tmp_path / "recordings" / "cam1" / "2026-02-11" / "10" / ".20260211T100000.000Z.mp4.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\x00\x00\x00\x08free")
    assert main(["storage", "check", "--data-dir", str(tmp_path)]) == 1
    assert "partial" in capsys.readouterr().out
