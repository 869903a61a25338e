"""The `fluxkit` command line.

Subcommands:
    run [--config FILE] [--demo] [...]: the main job: the engine, the RTSP output, a source per configured
        stream; --demo adds simulated cameras. Runs until Ctrl-C (or --duration seconds).
    inspect FILE [--json]: what is in a media file (like ffprobe, for surveillance streams).
    config validate FILE: check a configuration file; every mistake is printed as `message @ $.path`.
    storage check [--config FILE] [--data-dir DIR]: compare the recording index with the files (0 when they agree).
    sim-camera --port N [FILE ...]: an RTSP camera simulator serving each file at rtsp://127.0.0.1:N/<file stem>
        in a loop at real time (no FILE: the generated demo clip, at rtsp://127.0.0.1:N/demo), until Ctrl-C.

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
from functools import partial
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

    storage = commands.add_parser("storage", help="recording storage tools")
    storage_commands = storage.add_subparsers(dest="storage_command", metavar="ACTION", required=True)
    storage_check = storage_commands.add_parser(
        "check",
        help="compare the recording index with the files on disk",
        description="Compare the recording index with the segment files: rows whose file is gone, files the "
        "index does not list, unfinished partial files, size mismatches. Changes nothing (fluxkit run repairs at "
        "start-up). Exit status: 0 when they agree, 1 otherwise, 2 for an invalid configuration.",
    )
    storage_check.add_argument("--config", metavar="FILE", help="TOML configuration file")
    storage_check.add_argument("--data-dir", metavar="DIR", help="the data directory (default ./fluxkit-data)")
    storage_check.set_defaults(handler=_storage_check)

    sim = commands.add_parser(
        "sim-camera",
        help="serve video files as RTSP cameras (looping at real time)",
        description=(
            "Serve each FILE (Annex-B .h264/.h265, or MP4 and other containers with H.264/H.265 video) at "
            "rtsp://HOST:PORT/<file stem>, looping at real time with continuous timestamps, until Ctrl-C. "
            "With no FILE, serve a demo clip that fluxkit generates once and caches (640x360, 25 fps, a moving "
            "test pattern with a running timecode) at rtsp://HOST:PORT/demo."
        ),
    )
    sim.add_argument("files", metavar="FILE", nargs="*", help="the clips to serve (default: the demo clip)")
    sim.add_argument("--port", type=int, default=8554, help="RTSP port (default 8554)")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sim.add_argument("--user", default=None, help="require Digest authentication with this user name")
    sim.add_argument("--password", default=None, help="the password that goes with --user")
    sim.set_defaults(handler=_sim_camera)

    run = commands.add_parser(
        "run",
        help="run fluxkit: ingest the configured streams and re-stream them over RTSP (until Ctrl-C)",
        description=(
            "Run the engine with the RTSP output and a source per [[video.streams]] entry of the configuration "
            "(embedded defaults when no --config is given: everything on 127.0.0.1). With --demo, simulated "
            "cameras are started and ingested too, so you see live streams with no hardware. Exit status: 0 after "
            "Ctrl-C or --duration, 1 when a port cannot be bound, 2 for an invalid configuration."
        ),
    )
    run.add_argument("--config", metavar="FILE", help="TOML configuration file")
    run.add_argument("--data-dir", metavar="DIR", help="where recordings and state go (default ./fluxkit-data)")
    for name, default in (("api", 8080), ("rtsp", 8554), ("rtmp", 1935), ("sip", 5060)):
        run.add_argument(f"--{name}-port", type=int, metavar="N", help=f"{name.upper()} port (default {default})")
    run.add_argument("--demo", action="store_true", help="also start simulated cameras (streams demo1, demo2)")
    run.add_argument("--duration", type=float, metavar="S", help="stop by itself after S seconds")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="default: from the config")
    run.set_defaults(handler=_run)
    return parser


def _run_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]  # -> Config, imported lazily
    import attrs

    from fluxkit.config import Config, load_config

    config = load_config(args.config) if args.config else Config()
    video = config.video
    ports = {f"{name}_port": getattr(args, f"{name}_port") for name in ("api", "rtsp", "rtmp", "sip")}
    protocols = attrs.evolve(video.protocols, **{k: v for k, v in ports.items() if v is not None})
    changes: dict[str, Any] = {"protocols": protocols}
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    if args.log_level:
        changes["log_level"] = args.log_level
    return attrs.evolve(config, video=attrs.evolve(video, **changes))


def _run(args: argparse.Namespace) -> int:
    import logging

    import trio

    from fluxkit.app import run_fluxkit
    from fluxkit.errors import ConfigError

    try:
        config = _run_config(args)
    except ConfigError as exc:
        print(f"fluxkit run: {exc}", file=sys.stderr)
        return EXIT_NOT_MEDIA
    except (OSError, ValueError) as exc:  # unreadable file; a bad --port value (attrs validators)
        print(f"fluxkit run: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE if isinstance(exc, OSError) else EXIT_NOT_MEDIA
    logging.basicConfig(
        level=config.video.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        trio.run(partial(run_fluxkit, config, demo=args.demo, duration=args.duration))
    except (KeyboardInterrupt, OSError, BaseExceptionGroup) as exc:
        return _interrupted_or_unbound("fluxkit run", exc)
    return EXIT_OK


def _interrupted_or_unbound(command: str, exc: BaseException) -> int:
    """Exit status for what trio.run raised: Ctrl-C is a normal stop; a listen error is reported; else re-raise."""
    import trio

    # Trio's nurseries wrap what their tasks raise: look inside for Ctrl-C and a port that cannot be bound.
    group = exc if isinstance(exc, BaseExceptionGroup) else BaseExceptionGroup("", [exc])
    errors, rest = group.split(OSError)
    _, rest = rest.split((KeyboardInterrupt, trio.Cancelled)) if rest is not None else (None, None)
    if rest is not None:
        raise exc
    if errors is not None:
        first: BaseException = errors
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        print(f"{command}: cannot listen: {first}", file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_OK


def _sim_camera(args: argparse.Namespace) -> int:
    from pathlib import Path

    import trio

    from fluxkit.sim import generate_demo_clip

    files = [Path(f) for f in args.files] or [generate_demo_clip()]
    names: dict[str, Path] = {}
    for file in files:
        if not file.is_file():
            print(f"fluxkit sim-camera: {file}: no such file", file=sys.stderr)
            return EXIT_UNREADABLE
        if file.stem in names:
            print(f"fluxkit sim-camera: two files named {file.stem!r}: paths must differ", file=sys.stderr)
            return EXIT_NOT_MEDIA
        names[file.stem] = file
    auth = (args.user, args.password or "") if args.user else None
    try:
        trio.run(_sim_camera_main, names, args.host, args.port, auth)
    except (KeyboardInterrupt, OSError, BaseExceptionGroup) as exc:
        return _interrupted_or_unbound(f"fluxkit sim-camera: {args.host}:{args.port}", exc)
    return EXIT_OK


async def _sim_camera_main(names: dict[str, Any], host: str, port: int, auth: tuple[str, str] | None) -> None:
    import trio

    from fluxkit.engine import open_engine
    from fluxkit.net.rtsp_server import serve_rtsp
    from fluxkit.sim import FileSource

    async with open_engine() as engine:
        for stream_id, file in names.items():
            engine.add_source(stream_id, FileSource(file))
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                lambda task_status: serve_rtsp(engine, host, port, auth=auth, task_status=task_status)
            )
            bound = listeners[0].socket.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            for stream_id, file in names.items():
                print(f"rtsp://{shown}:{bound}/{stream_id}  <- {file}", flush=True)


def _storage_check(args: argparse.Namespace) -> int:
    import attrs

    from fluxkit.config import Config, load_config
    from fluxkit.errors import ConfigError
    from fluxkit.storage import check_main

    try:
        config = load_config(args.config) if args.config else Config()
    except (ConfigError, OSError) as exc:
        print(f"fluxkit storage check: {exc}", file=sys.stderr)
        return EXIT_NOT_MEDIA
    if args.data_dir:
        config = attrs.evolve(config, video=attrs.evolve(config.video, data_dir=args.data_dir))
    return check_main(config.video.storage_path)


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
