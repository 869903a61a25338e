"""Settings of the storage tiers (`[video.storage]`, `[[video.storage.backends]]`), the factory, and the
`fluxkit storage rebuild|migrate|check` entry points for the tiered layout.

Strategy: plain attrs records mirroring the config names, so the config loader can build them with cattrs;
`build_storage` turns them into a policy over blob stores. The command entry points are synchronous (they run
their own Trio loop), report progress to a callback (`fluxkit storage` draws bars with it; default: lines on
stdout), stop cleanly on Ctrl-C (exit 130; `migrate` between two segments) and resume on the next run, since
all their state is in the tier index.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from fluxkit.errors import ConfigError
from fluxkit.storage._model import RetentionLimits

from ._managed import ManagedStorage, MultiReplicaStorage, PrimaryBackupStorage, TieredStorage
from ._nvr import NvrStorage
from ._s3 import CloudStorage
from ._stores import BlobStore, DirStore, NasStorage

__all__ = [
    "EXIT_INTERRUPTED",
    "RESUME_HINTS",
    "BackendSettings",
    "TierSettings",
    "build_storage",
    "check_main",
    "migrate_main",
    "open_configured_storage",
    "rebuild_main",
    "retention_limits",
    "settings_from_config",
]

POLICIES = ("primary_backup", "multi_replica", "tiered")
#: The progress callback of the commands: one line of text per update (`migrate: 3/10 segments, 12.0 MB`).
Progress = Callable[[str], None]
TYPES = ("local", "nas", "nvr", "s3")


@attrs.frozen(kw_only=True, slots=True)
class BackendSettings:
    """One `[[video.storage.backends]]` entry; which fields apply depends on `type`.

    Attributes:
        type: "local" | "nas" | "nvr" | "s3".
        name: unique name (the index records copies by it).
        base_path: local: the directory; nas: the directory under `mount_point`.
        mount_point: nas: where the share is mounted.
        nvr_url: nvr: base URL of the NVR.
        auth_token: nvr: bearer token.
        endpoint: s3: endpoint URL.
        bucket: s3: bucket.
        region: s3: region.
        access_key: s3: access key id.
        secret_key: s3: secret key.
        prefix: s3: key prefix.
        addressing_style: s3: "path" or "virtual".
        require_mount: nas: refuse a mount point that is not mounted (default True).
        retention_days: delete this backend's copies older than this many days (None: no limit).
        max_size_gb: keep at most this many GB on this backend, oldest deleted first (None: no limit).
        min_free_gb: keep this many GB free on the backend's file system, oldest deleted first (None: no limit).
    """

    type: str = attrs.field(validator=attrs.validators.in_(TYPES))
    name: str
    base_path: str = ""
    mount_point: str = ""
    nvr_url: str = ""
    auth_token: str = ""
    endpoint: str = ""
    bucket: str = ""
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""
    prefix: str = ""
    addressing_style: str = "path"
    require_mount: bool = True
    retention_days: float | None = None
    max_size_gb: float | None = None
    min_free_gb: float | None = None

    def retention(self) -> RetentionLimits:
        """The backend's retention limits (GB are 10^9 bytes, as `[video.storage] max_size_gb`)."""
        return retention_limits(self.retention_days, self.max_size_gb, self.min_free_gb)


def retention_limits(days: float | None, max_gb: float | None, min_free_gb: float | None) -> RetentionLimits:
    """`RetentionLimits` from the config's `retention_days`, `max_size_gb` and `min_free_gb`."""
    return RetentionLimits(
        max_age_days=None if days is None else float(days),
        max_bytes=None if max_gb is None else int(max_gb * 1e9),
        min_free_bytes=None if min_free_gb is None else int(min_free_gb * 1e9),
    )


@attrs.frozen(kw_only=True, slots=True)
class TierSettings:
    """`[video.storage]` for the tiers.

    Attributes:
        policy: "primary_backup" (backends: primary, backup), "multi_replica" (all), "tiered" (hot, warm, cold).
        backends: the backends, in policy order.
        state_dir: local directory for the tier index, spool, cache and keyframes.
        hot_days: tiered: age (days, fractions allowed) after which a segment leaves the hot tier.
        warm_days: tiered: age after which it leaves the warm tier.
        quorum: multi_replica: copies needed for a write to succeed (default: a majority).
    """

    policy: str = attrs.field(validator=attrs.validators.in_(POLICIES))
    backends: tuple[BackendSettings, ...]
    state_dir: str
    hot_days: float = 7.0
    warm_days: float = 30.0
    quorum: int | None = None


def build_store(b: BackendSettings) -> BlobStore:
    """The blob store for one backend entry."""
    if b.type == "local":
        if not b.base_path:
            raise ConfigError([f"backends.{b.name}.base_path: required for a local backend"])
        return DirStore(b.base_path, name=b.name)
    if b.type == "nas":
        if not b.mount_point:
            raise ConfigError([f"backends.{b.name}.mount_point: required for a nas backend"])
        return NasStorage(b.mount_point, b.base_path or "fluxkit", name=b.name, require_mount=b.require_mount)
    if b.type == "s3":
        missing = [f for f in ("endpoint", "bucket", "access_key", "secret_key") if not getattr(b, f)]
        if missing:
            raise ConfigError([f"backends.{b.name}.{f}: required for an s3 backend" for f in missing])
        return CloudStorage(
            b.endpoint, b.bucket, region=b.region, access_key=b.access_key, secret_key=b.secret_key,
            prefix=b.prefix, addressing_style=b.addressing_style, name=b.name,
        )  # fmt: skip
    if b.type == "nvr":
        if not b.nvr_url:
            raise ConfigError([f"backends.{b.name}.nvr_url: required for an nvr backend"])
        return NvrStorage(b.nvr_url, b.auth_token, name=b.name)
    raise ConfigError([f"backends.{b.name}.type: unknown backend type {b.type!r}"])


def build_storage(settings: TierSettings) -> ManagedStorage:
    """The policy storage the settings describe (not opened: `async with build_storage(s) as storage`)."""
    stores = [build_store(b) for b in settings.backends]
    n = len(stores)
    try:
        retention = {b.name: b.retention() for b in settings.backends}
    except ValueError as exc:
        raise ConfigError([f"video.storage.backends: {exc}"]) from exc
    if settings.policy == "primary_backup":
        if n != 2:
            raise ConfigError([f"video.storage.backends: primary_backup needs 2 backends (primary, backup), not {n}"])
        return PrimaryBackupStorage(stores[0], stores[1], state_dir=settings.state_dir, retention=retention)
    if settings.policy == "multi_replica":
        if n < 2:
            raise ConfigError([f"video.storage.backends: multi_replica needs at least 2 backends, not {n}"])
        return MultiReplicaStorage(stores, quorum=settings.quorum, state_dir=settings.state_dir, retention=retention)
    if n not in (2, 3):
        raise ConfigError([f"video.storage.backends: tiered needs 2 or 3 backends (hot, [warm,] cold), not {n}"])
    hot, warm, cold = (stores[0], None, stores[1]) if n == 2 else (stores[0], stores[1], stores[2])
    return TieredStorage(hot, warm, cold, hot_days=settings.hot_days, warm_days=settings.warm_days,
                         state_dir=settings.state_dir, retention=retention)  # fmt: skip


#: Exit status of a command stopped by Ctrl-C (128 + SIGINT, what shells report).
EXIT_INTERRUPTED = 130

#: What each command keeps when it is interrupted, and how to go on (printed with the interruption).
RESUME_HINTS = {
    "check": "it changes nothing; run it again to check from the start",
    "rebuild": "every copy indexed so far is kept; run it again to finish (it reads the backends again and "
    "updates what is already indexed in place)",
    "migrate": "every finished move is recorded; run it again to continue where it stopped",
}


class _Stopped(Exception):
    """Raised by the progress callback once a stop was asked for: the operation ends between two items."""


def _interrupted(what: str) -> int:
    """Say on stderr that `fluxkit storage WHAT` was interrupted and how to resume; returns `EXIT_INTERRUPTED`."""
    print(f"fluxkit storage {what}: interrupted; {RESUME_HINTS[what]}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def _run_command(settings: TierSettings, what: str, progress: Progress | None) -> int:
    """Run `what` on the configured storage in a Trio loop of its own; returns the exit status.

    Ctrl-C (SIGINT, in the main thread): `check` and `rebuild` stop at once (safe anywhere: check changes nothing,
    rebuild records each copy as it finds it); `migrate` finishes the segment it is moving (copy, verify, index,
    delete the source) and stops at its next progress report, before the next segment, so no copy is left half
    moved; a second Ctrl-C stops it at once. Either way the storage is closed, the interruption and how to resume
    are printed on stderr, and the status is `EXIT_INTERRUPTED`.
    """
    report: Progress = progress if progress is not None else (lambda line: print(line, flush=True))
    stopping = False

    def _progress(message: str) -> None:
        report(message)
        if stopping:
            raise _Stopped

    async def _main() -> int:
        async with build_storage(settings) as storage:
            for name, error in storage.down.items():
                print(f"backend {name} unavailable: {error}", flush=True)
            if what == "rebuild":
                n = await storage.rebuild(_progress)
                print(f"rebuild done: {n} copies indexed", flush=True)
                return 0 if not storage.down else 1
            if what == "migrate":
                await storage.repair(_progress)
                n = await storage.migrate(_progress)
                print(f"migrate done: {n} segments moved", flush=True)
                return 0
            result = await storage.check(progress=_progress)
            for line in result.lines():
                print(line, flush=True)
            if result.ok:
                print(f"storage OK: {result.copies} copies checked", flush=True)
                return 0
            return 1

    async def _interruptible() -> int:
        if threading.current_thread() is not threading.main_thread():
            return await _main()  # signals are delivered to the main thread only: nothing to stop this one
        status = EXIT_INTERRUPTED  # unless the operation returns (it may finish after a first Ctrl-C)
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:

                async def _on_sigint() -> None:
                    nonlocal stopping
                    async for _ in signals:
                        if what == "migrate" and not stopping:
                            stopping = True  # the next progress report, between two segments, stops it
                            print(f"fluxkit storage {what}: stopping after the current segment (Ctrl-C again to "
                                  "stop at once)", file=sys.stderr, flush=True)  # fmt: skip
                        else:
                            nursery.cancel_scope.cancel()

                nursery.start_soon(_on_sigint)
                with contextlib.suppress(_Stopped):
                    status = await _main()
                nursery.cancel_scope.cancel()
        return status

    try:
        status = trio.run(_interruptible)
    except (KeyboardInterrupt, BaseExceptionGroup) as exc:
        if isinstance(exc, BaseExceptionGroup):  # a nursery (parallel copies) wraps Ctrl-C
            interrupt, rest = exc.split(KeyboardInterrupt)
            if interrupt is None or rest is not None:
                raise
        return _interrupted(what)
    except (OSError, ConfigError) as exc:
        print(f"storage {what} failed: {exc}", flush=True)
        return 1
    return _interrupted(what) if status == EXIT_INTERRUPTED else status


def rebuild_main(settings: TierSettings, *, progress: Progress | None = None) -> int:
    """`fluxkit storage rebuild`: reconstruct the tier index from every backend; 0 on success, 1 when a backend
    was unreachable, `EXIT_INTERRUPTED` after Ctrl-C (see `_run_command`). `progress` gets the progress lines
    (default: printed on stdout)."""
    return _run_command(settings, "rebuild", progress)


def migrate_main(settings: TierSettings, *, progress: Progress | None = None) -> int:
    """`fluxkit storage migrate`: repair missing copies and run the tier moves due now; 0 on success,
    `EXIT_INTERRUPTED` after Ctrl-C, which stops between two segments (see `_run_command`)."""
    return _run_command(settings, "migrate", progress)


def check_main(settings: TierSettings, *, progress: Progress | None = None) -> int:
    """`fluxkit storage check` for the tiers: presence, size and sha256 of every copy; 0 when clean, 1 otherwise,
    `EXIT_INTERRUPTED` after Ctrl-C."""
    return _run_command(settings, "check", progress)


def settings_from_dict(data: dict[str, object], *, state_dir: str | os.PathLike[str]) -> TierSettings:
    """TierSettings from a parsed `[video.storage]` table (what the config loader would hand over)."""
    raw = data.get("backends", [])
    backends: Sequence[object] = raw if isinstance(raw, list) else []
    try:
        return TierSettings(
            policy=str(data.get("policy", "primary_backup")),
            backends=tuple(BackendSettings(**b) for b in backends if isinstance(b, dict)),
            state_dir=str(Path(state_dir)),
            hot_days=float(data.get("hot_days", 7.0)),  # type: ignore[arg-type]
            warm_days=float(data.get("warm_days", 30.0)),  # type: ignore[arg-type]
            quorum=data.get("quorum"),  # type: ignore[arg-type]
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError([f"video.storage: {exc}"]) from exc


#: Directory under the data directory for the tier index, spool, read cache and keyframes.
STATE_DIR_NAME = "storage-tiers"


def settings_from_config(config: Any) -> TierSettings | None:
    """The tier settings of a loaded `fluxkit.config.Config`, or None when `[video.storage] policy` is unset
    (plain local storage). A local backend without `base_path` uses the recordings directory."""
    video = config.video
    storage = video.storage
    if storage.policy is None:
        return None
    backends = tuple(
        BackendSettings(
            type=b.type,
            name=b.name,
            base_path=b.base_path or (str(video.storage_path) if b.type == "local" else ""),
            mount_point=b.mount_point,
            nvr_url=b.nvr_url,
            auth_token=b.auth_token,
            endpoint=b.endpoint,
            bucket=b.bucket,
            region=b.region,
            access_key=b.access_key,
            secret_key=b.secret_key,
            prefix=b.prefix,
            addressing_style=b.addressing_style,
            retention_days=b.retention_days,
            max_size_gb=b.max_size_gb,
            min_free_gb=b.min_free_gb,
        )
        for b in storage.backends
    )
    return TierSettings(
        policy=storage.policy, backends=backends, state_dir=str(video.data_path / STATE_DIR_NAME),
        hot_days=storage.hot_days, warm_days=storage.warm_days, quorum=storage.quorum,
    )  # fmt: skip


@asynccontextmanager
async def open_configured_storage(config: Any, *, background_interval: float = 30.0) -> AsyncIterator[Any]:
    """The recording storage a config describes, open: `async with open_configured_storage(config) as storage`.

    Without `[video.storage] policy` it is `LocalStorage(config.video.storage_path)` with the `[video.storage]`
    retention limits (`retention_days`, `max_size_gb`, `min_free_gb`: applied in the background when
    `min_free_gb` is set, since the recorder's own retention pass knows no free-space limit); with one, the
    policy's `ManagedStorage` with its background repair / migration / retention / deletion pass
    (`run_background`) running every `background_interval` seconds inside the context (cancelled on exit).
    """
    from fluxkit.storage import LocalStorage

    settings = settings_from_config(config)
    if settings is None:
        storage = config.video.storage
        limits = retention_limits(storage.retention_days, storage.max_size_gb, getattr(storage, "min_free_gb", None))
        async with LocalStorage(config.video.storage_path, retention=limits) as local, trio.open_nursery() as nursery:
            if limits.min_free_bytes is not None:
                await nursery.start(functools.partial(local.run_background, interval=background_interval))
            try:
                yield local
            finally:
                nursery.cancel_scope.cancel()
        return
    async with build_storage(settings) as managed, trio.open_nursery() as nursery:
        await nursery.start(functools.partial(managed.run_background, interval=background_interval))
        try:
            yield managed
        finally:
            nursery.cancel_scope.cancel()
