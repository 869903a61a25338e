"""The `fluxkit` command line.

Subcommands:
    run [--config FILE] [--demo] [...]: the main job: the engine, the RTSP output, a source per configured
        stream; --demo adds simulated cameras. Runs until Ctrl-C (or --duration seconds).
    inspect FILE [--json]: what is in a media file (like ffprobe, for surveillance streams).
    config validate FILE: check a configuration file; every mistake is printed as `message @ $.path`.
    storage check|rebuild|migrate [--config FILE] [--data-dir DIR]: compare the recording index with the files
        (every copy on every backend with a [video.storage] policy; 0 when they agree); rebuild the index from
        the backends (plain local storage: from the recordings directory); run the tier moves due now.
    sim-camera --port N [FILE ...]: an RTSP camera simulator serving each file at rtsp://127.0.0.1:N/<file stem>
        in a loop at real time (no FILE: the generated demo clip, at rtsp://127.0.0.1:N/demo), until Ctrl-C.
    console (--url URL [--token TOKEN] | --embedded [--config FILE]): the Textual operator console, on a running
        fluxkit's REST API or with fluxkit running in-process (needs the `tui` extra: textual).
    sim-device --server HOST:PORT --device-id ID --password PW [--channels N] [...]: a simulated GB28181 camera or
        NVR that registers to a platform and streams; prints registration changes and `PTZCmd <HEX>` lines.

Exit status of `fluxkit inspect`:
    0: the file was read and at least one stream was found (damage after that is reported as a warning).
    1: the file cannot be read (missing, a directory, no permission, an I/O error).
    2: the file is not a recognised media file or holds no media (also: bad command-line usage, as argparse).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any, Self, TextIO

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
    storage_actions = {
        "check": (
            "compare the recording index with the files (every copy on every backend)",
            "Compare the recording index with the segment files: rows whose file is gone, files the index does not "
            "list, unfinished partial files, size mismatches. With a [video.storage] policy, check every copy on "
            "every backend: present, same size, same sha256; also segments with fewer copies than the policy wants "
            "and backends that cannot be reached. Changes nothing. Exit status: 0 when all agree, 1 otherwise, 2 "
            "for an invalid configuration, 130 after Ctrl-C.",
        ),
        "rebuild": (
            "reconstruct the storage index from the backends",
            "Rebuild the tier index from what every backend holds (each copy carries its segment metadata); "
            "without a [video.storage] policy, bring the recordings directory's index up to date with its files "
            "(segments with their keyframe lists, keyframe thumbnails). Resumable: interrupt it and run it again. "
            "Exit status: 0 on success, 1 when a backend failed, 2 for an invalid configuration, 130 after Ctrl-C.",
        ),
        "migrate": (
            "run the tier moves due now",
            "Give segments their missing copies and move those due to the next tier now (copy, verify the "
            "checksum, update the index, then delete the source), with progress lines. Resumable: interrupt it "
            "and run it again (Ctrl-C stops it after the segment being moved). Exit status: 0 on success, 1 on a "
            "failure, 2 for an invalid configuration, 130 after Ctrl-C.",
        ),
    }
    for action, (summary, description) in storage_actions.items():
        sub = storage_commands.add_parser(action, help=summary, description=description)
        sub.add_argument("--config", metavar="FILE", help="TOML configuration file")
        sub.add_argument("--data-dir", metavar="DIR", help="the data directory (default ./fluxkit-data)")
        sub.set_defaults(handler=_storage_command)

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

    simdev = commands.add_parser(
        "sim-device",
        help="a simulated GB28181 camera or NVR that registers to a platform (until Ctrl-C)",
        description=(
            "Run a simulated GB28181 device: it registers to the platform at --server with Digest, keeps alive, "
            "answers Catalog, DeviceInfo, DeviceStatus, RecordInfo and PTZ, and streams a clip (default: the "
            "generated demo clip) as PS over RTP when INVITEd (UDP, TCP passive, TCP active). Registration state "
            "changes are printed, and one `PTZCmd <HEX>` line per PTZ command received. Exit status: 0 after "
            "Ctrl-C, 1 when the clip cannot be read or the SIP port cannot be bound, 2 for bad arguments."
        ),
    )
    simdev.add_argument("--server", required=True, metavar="HOST:PORT", help="the platform's SIP address")
    simdev.add_argument("--device-id", required=True, metavar="ID", help="our 20-digit device ID")
    simdev.add_argument("--password", required=True, metavar="PW", help="our Digest password")
    simdev.add_argument("--channels", type=int, default=1, metavar="N", help="video channels (default 1)")
    simdev.add_argument("--transport", choices=("udp", "tcp"), default="udp", help="SIP transport (default udp)")
    simdev.add_argument("--server-id", default="34020000002000000001", metavar="ID", help="the platform's SIP ID")
    simdev.add_argument("--domain", default="3402000000", metavar="D", help="the SIP domain (default 3402000000)")
    simdev.add_argument("--clip", metavar="FILE", help="H.264/H.265 clip to stream (default: the demo clip)")
    simdev.add_argument("--kind", choices=("ipc", "nvr"), default="ipc", help="device kind (default ipc)")
    simdev.add_argument("--local-host", default="127.0.0.1", metavar="ADDR", help="address to bind (127.0.0.1)")
    simdev.add_argument("--local-port", type=int, default=0, metavar="N", help="SIP port to bind (default: any)")
    simdev.add_argument("--keepalive", type=float, default=60.0, metavar="S", help="keepalive interval (60 s)")
    simdev.add_argument(
        "--quirk",
        action="append",
        default=[],
        metavar="NAME",
        help="imitate a vendor quirk: hik_psm, gb2312_bare_amp, ssrc_zero, slow_200, restart, ignore_scale "
        "(repeatable)",
    )
    simdev.set_defaults(handler=_sim_device)

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

    console = commands.add_parser(
        "console",
        help="the operator console (Textual): live streams, details, devices and PTZ, recordings, events",
        description=(
            "The terminal operator console. Remote: --url http://127.0.0.1:8080 --token TOKEN (the token also from "
            "$FLUXKIT_TOKEN). Embedded: --embedded [--config FILE] runs fluxkit in-process (with the demo cameras "
            "unless --no-demo). `q` quits. Needs the `tui` extra (textual)."
        ),
    )
    add_console_arguments(console)
    console.set_defaults(handler=_console)
    return parser


def add_console_arguments(parser: argparse.ArgumentParser) -> None:
    """The console's options, for `fluxkit console` and `fluxkit-console` alike (defined here because fluxkit
    must describe them without importing the optional console package)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the fluxkit REST API, e.g. http://127.0.0.1:8080 (remote mode)")
    where.add_argument("--embedded", action="store_true", help="run fluxkit in-process (with the demo cameras)")
    parser.add_argument("--token", help="the API bearer token (remote mode; default: $FLUXKIT_TOKEN)")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file (embedded mode)")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (embedded mode)")
    parser.add_argument("--no-demo", action="store_true", help="embedded mode without the demo cameras")
    parser.add_argument("--export-dir", metavar="DIR", help="where recording exports are written (default: here)")
    parser.add_argument(
        "--graphics",
        choices=("auto", "kitty", "sixel", "halfblock"),
        help="how snapshots are drawn: a terminal image protocol (kitty, sixel) or half-blocks; default: "
        "$FLUXKIT_CONSOLE_GRAPHICS, else what the terminal supports (auto)",
    )


def _console(args: argparse.Namespace) -> int:
    import importlib

    # fluxkit never imports the console statically (it is an optional extra on top of the public API).
    try:
        run_console = importlib.import_module("fluxkit_tui.app").run_console
    except ImportError as exc:
        print(f"fluxkit console: the console is not installed ({exc}); install fluxkit[tui]", file=sys.stderr)
        return EXIT_UNREADABLE
    status: int = run_console(args)
    return status


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


def _sim_device(args: argparse.Namespace) -> int:
    import trio

    from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
    from fluxkit.sim import generate_demo_clip, load_clip

    host, _, port = args.server.rpartition(":")
    if not host or not port.isdigit():
        print(f"fluxkit sim-device: --server must be HOST:PORT, got {args.server!r}", file=sys.stderr)
        return EXIT_NOT_MEDIA
    try:
        settings = DeviceSettings(
            server_host=host.strip("[]"),
            server_port=int(port),
            server_id=args.server_id,
            domain=args.domain,
            device_id=args.device_id,
            password=args.password,
            channels=args.channels,
            kind=args.kind,
            transport=args.transport,
            keepalive_interval=args.keepalive,
            clip=args.clip,
            quirks=frozenset(args.quirk),
            local_host=args.local_host,
            local_port=args.local_port,
        )
    except (TypeError, ValueError) as exc:
        print(f"fluxkit sim-device: {exc}", file=sys.stderr)
        return EXIT_NOT_MEDIA
    try:
        clip = load_clip(args.clip or generate_demo_clip())
    except Exception as exc:  # PermanentSourceError and I/O errors: report, do not trace
        print(f"fluxkit sim-device: {args.clip or 'demo clip'}: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE

    def report(line: str) -> None:
        print(line, flush=True)

    device = SimulatedDevice(settings, report=report, clip=clip)
    print(
        f"sim-device {settings.device_id} ({settings.kind}, {settings.channels} channel(s)) -> {args.server}",
        flush=True,
    )
    try:
        trio.run(device.run)
    except (KeyboardInterrupt, OSError, BaseExceptionGroup) as exc:
        return _interrupted_or_unbound(f"fluxkit sim-device: {args.local_host}:{args.local_port}", exc)
    return EXIT_OK


def _storage_command(args: argparse.Namespace) -> int:
    import attrs

    from fluxkit.config import Config, load_config
    from fluxkit.errors import ConfigError
    from fluxkit.storage import tiers

    action = args.storage_command
    try:
        config = load_config(args.config) if args.config else Config()
    except (ConfigError, OSError) as exc:
        print(f"fluxkit storage {action}: {exc}", file=sys.stderr)
        return EXIT_NOT_MEDIA
    if args.data_dir:
        config = attrs.evolve(config, video=attrs.evolve(config.video, data_dir=args.data_dir))
    try:
        settings = tiers.settings_from_config(config)
    except ConfigError as exc:
        print(f"fluxkit storage {action}: {exc}", file=sys.stderr)
        return EXIT_NOT_MEDIA
    if settings is None:
        return _storage_local(config.video.storage_path, action)
    return _storage_tiers(settings, action)


def _storage_local(path: Any, action: str) -> int:
    """`check` or `rebuild` of plain local storage (no `[video.storage] policy`): `fluxkit.storage.check_main` /
    `rebuild_main` on the recordings directory; there is nothing to migrate."""
    import fluxkit.storage

    if action == "migrate":
        print(f"storage migrate: no [video.storage] policy: local storage only, nothing to migrate "
              f"({path} keeps every recording)")  # fmt: skip
        return EXIT_OK
    try:
        if action == "check":
            return fluxkit.storage.check_main(path)
        print(f"storage rebuild: no [video.storage] policy: local storage only, rebuilding the index of {path} "
              "from its files", flush=True)  # fmt: skip
        return fluxkit.storage.rebuild_main(path)
    except KeyboardInterrupt:
        return _storage_interrupted(action)


def _storage_interrupted(action: str) -> int:
    from fluxkit.storage.tiers import EXIT_INTERRUPTED, RESUME_HINTS

    print(f"fluxkit storage {action}: interrupted; {RESUME_HINTS[action]}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def _storage_tiers(settings: Any, action: str) -> int:
    """Run `check`, `rebuild` or `migrate` on the configured policy storage (`fluxkit.storage.tiers.check_main`,
    `rebuild_main`, `migrate_main`), with progress on the terminal.

    Progress goes to a bar on stderr when stderr is a terminal, else (logs, pipes) one line per update on stdout;
    findings and the summary go to stdout either way. Ctrl-C is handled by the entry points: the storage is
    closed and the exit status is 130 (`migrate` first finishes the segment it is moving; a second Ctrl-C stops
    it at once).
    """
    from fluxkit.storage import tiers

    entry = {"check": tiers.check_main, "rebuild": tiers.rebuild_main, "migrate": tiers.migrate_main}[action]
    with _Progress.open(action) as progress:
        return entry(settings, progress=progress)


class _Progress:
    """The `progress` callback of the storage operations: a line per update on stdout (`_Progress`), or a live bar
    per phase on a terminal (`_BarProgress`).

    The operations report text such as `migrate: 3/10 segments, 12.0 MB` or `rebuild hot: 50/200`; the first
    `N/M` is the count, the words before it name the phase (one bar each). Callers that know their counts may pass
    `done=` and `total=` instead of writing them into the text. Text without a count (a skipped blob, a summary)
    is information, printed to stdout in both modes.

    """

    _COUNT = re.compile(r"(\d+)/(\d+)")

    @staticmethod
    def open(action: str) -> _Progress:
        """The reporter for `fluxkit storage ACTION`: a bar when stderr is a terminal, lines otherwise."""
        return _BarProgress(action) if sys.stderr.isatty() else _Progress()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, message: str, *, done: int | None = None, total: int | None = None) -> None:
        print(message, flush=True)


class _BarProgress(_Progress):
    """Live `rich` bars on stderr: phase, bar, done/total, percent, rate, elapsed, ETA."""

    def __init__(self, action: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TaskID,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class _Rate(ProgressColumn):
            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                return Text("?/s" if speed is None else f"{speed:.1f}/s", style="progress.data.speed")

        self.action = action
        self._bar = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            _Rate(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=Console(file=sys.stderr),
            # Our prints show above the bars when stdout is this terminal too; into the file when redirected.
            redirect_stdout=sys.stdout.isatty(),
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Self:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def __call__(self, message: str, *, done: int | None = None, total: int | None = None) -> None:
        match = self._COUNT.search(message)
        if done is None or total is None:
            if match is None:
                print(message, flush=True)  # information, not a count (rich shows it above the bars)
                return
            done, total = int(match.group(1)), int(match.group(2))
        phase, note = (message[: match.start()], message[match.end() :]) if match else (message, "")
        phase = phase.strip().rstrip(":").strip() or self.action
        task = self._tasks.get(phase)
        if task is None:
            task = self._tasks[phase] = self._bar.add_task(phase, total=total, note="")
        # Drawn now, not at the next tick: what is printed above the bars next must not come with a stale bar.
        self._bar.update(task, completed=done, total=total, note=note.strip(" ,"), refresh=True)


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
