"""The `fluxkit` command line.

Subcommands:
    inspect FILE [--json]: what is in a media file (like ffprobe, for surveillance streams).
    config validate FILE: check a configuration file; every mistake is printed as `message @ $.path`.

Exit status of `fluxkit inspect`:
    0: the file was read and at least one stream was found (damage after that is reported as a warning).
    1: the file cannot be read (missing, a directory, no permission, an I/O error).
    2: the file is not a recognised media file or holds no media (also: bad command-line usage, as argparse).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from fluxkit.errors import ProtocolError

__all__ = ["EXIT_NOT_MEDIA", "EXIT_OK", "EXIT_UNREADABLE", "main"]

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_NOT_MEDIA = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fluxkit", description="fluxkit: video surveillance SDK tools.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    inspect = commands.add_parser(
        "inspect",
        help="show the streams of a media file (.h264/.h265, MPEG-PS, RFC 4571 RTP dump, pcap/pcapng)",
        description=(
            "Show the streams of a raw H.264/H.265 file, an MPEG-PS file, an RTP dump in RFC 4571 framing, or a "
            "pcap/pcapng capture (RTP flows over UDP and RFC 4571/RTSP-interleaved TCP). Exit status: 0 media "
            "found, 1 file unreadable, 2 not media."
        ),
    )
    inspect.add_argument("file", metavar="FILE", help="the file to inspect")
    inspect.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per frame (one per line), then one summary object",
    )
    inspect.set_defaults(handler=_inspect)

    config = commands.add_parser("config", help="configuration file tools")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    validate = config_commands.add_parser(
        "validate",
        help="check a TOML configuration file",
        description="Check a TOML configuration file. Exit status: 0 valid, 1 unreadable, 2 invalid (each "
        "mistake printed as `message @ $.path`).",
    )
    validate.add_argument("file", metavar="FILE", help="the configuration file")
    validate.set_defaults(handler=_config_validate)
    return parser


def _config_validate(args: argparse.Namespace) -> int:
    from fluxkit.config import validate_main

    return validate_main(args.file)


def _dump(obj: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(obj, separators=(",", ":")) + "\n")


def _inspect(args: argparse.Namespace) -> int:
    # Imported here so `fluxkit --help` stays fast and other subcommands do not load the media stack.
    from fluxkit.inspect import FrameInfo, format_human, inspect_file

    out = sys.stdout
    path: str = args.file

    def on_frame(frame: FrameInfo) -> None:
        _dump(frame.to_json(), out)

    try:
        report = inspect_file(path, on_frame=on_frame if args.json else None)
    except BrokenPipeError:
        raise  # our output closed early (piped into `head`): handled in main()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"fluxkit inspect: {path}: cannot read: {reason}", file=sys.stderr)
        return EXIT_UNREADABLE
    except ProtocolError as exc:
        print(f"fluxkit inspect: {path}: {exc}", file=sys.stderr)
        return EXIT_NOT_MEDIA
    if args.json:
        _dump(report.to_json(), out)
    else:
        print(format_human(report), file=out)
    out.flush()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `fluxkit` command; returns the exit status (the console script exits with it)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        handler = args.handler
        return int(handler(args))
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
