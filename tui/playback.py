"""Playback of a recorded range in the console: the HTTP stream, a decoder thread, and pictures for the UI.

Strategy: a `Player` plays one request of the playback endpoint (`Backend.playback`: one fragmented MP4 of the
range, made while it is sent and paced by the server at `speed`). Nothing it does blocks Textual's asyncio loop:

- a reader task on the loop copies the response's chunks into a `BytePipe` holding at most about `max_buffer`
  bytes: when the decoder falls behind (or is paused) the reader waits, the socket is no longer read and TCP
  pushes back on the server, so compressed bytes are the only buffer (with FFmpeg's own read buffer of 32 KiB);
- a decoder thread reads the pipe with PyAV (the MP4 demuxer reads it as a non-seekable file) and decodes every
  frame (inter frames need their references), but keeps only frames at least `speed / max_fps` seconds of media
  apart. Each kept frame waits until it is due on the player's clock (the first one when decoded, the others at
  `speed` x real time after it, which smooths the one-fragment bursts the server sends); one late by more than
  `LATE_DROP` seconds is skipped (by more than `RESYNC`, the stream stalled and the clock restarts on it). Kept
  frames are scaled by swscale to the box the view asks for (`box`), turned into half-block cells there too when
  the view draws with them (the costly part of drawing, in Python), and put in a queue of at most `max_queue`
  pictures, whose oldest is dropped when it is full;
- the screen takes the newest picture from a timer at `max_fps` (`take`, which drops any older one), so the UI
  draws at most `max_fps` pictures a second whatever the source rate, and never more than it keeps up with.

Pausing holds the decoder thread (the reader then fills the pipe and stops reading), so resuming goes on with the
very next frame. `close` cancels the reader (which closes the HTTP response), aborts the pipe, wakes the decoder
and waits for its thread to end.

The recording time of a frame is `anchor` plus its media time. The export starts at the keyframe at or before the
requested start and says that frame's time (`X-Fluxkit-First-Frame`), which becomes the anchor. Without the header
(an older server) it is estimated: with the start inside a recorded segment it is the start itself, so the time
shown may run ahead by up to one GOP; with the start in a gap it is the next segment's start, which is exact
(`playback_anchor`). A player started again from a time another one has played takes that one's keyframe times
(`keyframe_before`), so a new speed adds no error.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs
import numpy as np
from textual.strip import Strip

from .backend import BackendError, Recordings
from .snapshot import fit_frame, halfblock_strips

if TYPE_CHECKING:
    from .backend import Backend

__all__ = [
    "CLOSE_TIMEOUT",
    "DECODER_THREAD_NAME",
    "DEFAULT_MAX_BUFFER",
    "DEFAULT_MAX_FPS",
    "DEFAULT_MAX_QUEUE",
    "LATE_DROP",
    "MAX_KEYFRAMES",
    "MAX_SPEED",
    "MIN_SPEED",
    "RESYNC",
    "BytePipe",
    "PipeClosed",
    "PlaybackFrame",
    "Player",
    "PlayerState",
    "playback_anchor",
]

#: Most pictures drawn per second, whatever the source's frame rate.
DEFAULT_MAX_FPS: Final = 10.0
#: Bytes of the MP4 held between the reader and the decoder (plus at most one chunk).
DEFAULT_MAX_BUFFER: Final = 4 << 20
#: Decoded pictures waiting for the UI; the oldest is dropped beyond this.
DEFAULT_MAX_QUEUE: Final = 2
#: A kept frame later than this (seconds) is skipped, not converted.
LATE_DROP: Final = 0.25
#: A frame later than this (seconds) means the stream stalled: the clock restarts on it.
RESYNC: Final = 1.0
#: Speeds the playback endpoint accepts.
MIN_SPEED: Final = 0.25
MAX_SPEED: Final = 4.0
#: Keyframe times a player remembers (for `keyframe_before`).
MAX_KEYFRAMES: Final = 256
#: Seconds `Player.close` waits for the decoder thread to end.
CLOSE_TIMEOUT: Final = 5.0
#: Name of the decoder threads (one per player).
DECODER_THREAD_NAME: Final = "fluxkit-playback-decoder"

PlayerState = Literal["starting", "playing", "paused", "ended", "failed", "closed"]


class PipeClosed(Exception):
    """The pipe was aborted: the player is closing."""


class BytePipe(io.RawIOBase):
    """Bytes from the asyncio loop to one reading thread, holding at most about `max_bytes`.

    `put` (a coroutine, on the loop) waits while `max_bytes` or more are held; `readinto` (in the thread) blocks
    until there are bytes, the end (`finish`) or an `abort`, both read as the end (0: PyAV would print a traceback
    for an exception raised in its read callback, and the decoder checks why it ended anyway). Not seekable, so a
    demuxer reads it strictly in order. Create it, `put`, `finish` and `abort` it on the loop.

    Args:
        max_bytes: bytes held before `put` waits (one chunk may go over).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__()
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.max_bytes = max_bytes
        self._loop = asyncio.get_running_loop()
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._first = 0  # bytes of _chunks[0] already read
        self._held = 0
        self._finished = False
        self._aborted = False
        self._space = asyncio.Event()
        self._space.set()

    @property
    def held(self) -> int:
        """Bytes written and not read yet."""
        return self._held

    async def put(self, data: bytes) -> None:
        """Append `data`, first waiting while the pipe is full.

        Raises:
            PipeClosed: the pipe was aborted.
        """
        while True:
            with self._cond:
                if self._aborted:
                    raise PipeClosed
                if self._finished:
                    raise PipeClosed("write after finish")
                if self._held < self.max_bytes:
                    if data:
                        self._chunks.append(data)
                        self._held += len(data)
                        self._cond.notify_all()
                    return
                self._space.clear()
            await self._space.wait()

    def finish(self) -> None:
        """No more bytes: the reader gets the end once it has read what is held."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def abort(self) -> None:
        """Drop what is held: the reader gets the end at once, a waiting writer `PipeClosed`."""
        with self._cond:
            self._aborted = True
            self._chunks.clear()
            self._held = 0
            self._cond.notify_all()
        self._space.set()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with self._cond:
            while not self._chunks and not self._finished and not self._aborted:
                self._cond.wait()
            if self._aborted:
                return 0
            done = 0
            while self._chunks and done < len(view):
                chunk = self._chunks[0]
                n = min(len(view) - done, len(chunk) - self._first)
                view[done : done + n] = chunk[self._first : self._first + n]
                done += n
                self._first += n
                if self._first == len(chunk):
                    self._chunks.popleft()
                    self._first = 0
            was_full = self._held >= self.max_bytes
            self._held -= done
            if was_full and self._held < self.max_bytes:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody writes any more
                    self._loop.call_soon_threadsafe(self._space.set)
            return done


@attrs.frozen(kw_only=True, slots=True, eq=False)
class PlaybackFrame:
    """A picture for the screen: its media time (seconds from the first frame of the answer), RGB pixels, and the
    half-block cells when the player makes them (`halfblocks`)."""

    time: float
    image: np.ndarray
    cells: list[Strip] | None = None


def playback_anchor(recordings: Recordings | None, start: dt.datetime) -> dt.datetime:
    """The recording time of the first frame a playback from `start` sends (best known; see the module notes).

    `start` when it falls in a listed segment (or nothing is listed), else the start of the first segment after it.
    """
    if recordings is None:
        return start
    later = [s.start for s in recordings.segments if s.start >= start]
    if any(s.start <= start < s.end for s in recordings.segments) or not later:
        return start
    return min(later)


class Player:
    """Plays [start, end) of `stream_id` at `speed` from `backend`: `start()`, then `take()` pictures, `close()`.

    Args:
        backend: where the playback comes from.
        stream_id: the recorded stream.
        start: the first time asked for.
        end: the end of the range.
        speed: 0.25 to 4 (the server paces the answer at it).
        anchor: the recording time of the first frame (default `start`; see `playback_anchor`).
        box: (width, height) in pixels the pictures are scaled to fit; may be changed while playing.
        upscale: scale pictures smaller than `box` up to it (half-blocks), else only down (image protocols).
        halfblocks: also make each picture's half-block cells (`halfblock_strips`) in the decoder thread, so the
            event loop only draws them.
        max_fps: most pictures kept per second of real time.
        max_buffer: bytes held between the reader and the decoder (see `BytePipe`).
        max_queue: pictures waiting for `take` before the oldest is dropped.
    """

    def __init__(
        self,
        backend: Backend,
        stream_id: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        speed: float = 1.0,
        anchor: dt.datetime | None = None,
        box: tuple[int, int] = (80, 48),
        upscale: bool = True,
        halfblocks: bool = False,
        max_fps: float = DEFAULT_MAX_FPS,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"speed must be from {MIN_SPEED} to {MAX_SPEED}, not {speed}")
        if max_fps <= 0 or max_queue < 1:
            raise ValueError("max_fps and max_queue must be positive")
        self.backend = backend
        self.stream_id = stream_id
        self.start_time = start
        self.end_time = end
        self.speed = speed
        self.anchor = start if anchor is None else anchor
        self.box = box
        self.upscale = upscale
        self.halfblocks = halfblocks
        self.max_fps = max_fps
        self.max_buffer = max_buffer
        self.max_queue = max_queue
        #: Why the playback failed (the server's refusal, a decoding error); None while all is well.
        self.error: str | None = None
        #: Bytes received, frames decoded, pictures taken by the UI, and frames dropped (late or superseded).
        self.received = 0
        self.decoded = 0
        self.shown = 0
        self.dropped = 0
        #: Media time (seconds) of the newest picture taken; None before the first.
        self.last_time: float | None = None
        #: Media (decode) times of the keyframes read (the latest `MAX_KEYFRAMES`).
        self.keyframes: deque[float] = deque(maxlen=MAX_KEYFRAMES)
        #: The decoder thread (None before `start`).
        self.thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_ended: asyncio.Event | None = None
        self._pipe: BytePipe | None = None
        self._cond = threading.Condition()
        self._queue: deque[PlaybackFrame] = deque()
        self._paused = False
        self._stopping = False
        self._decoder_done = False
        self._closed = False

    # -- what the screen reads --------------------------------------------------------------------------------

    @property
    def state(self) -> PlayerState:
        if self._closed:
            return "closed"
        if self.error is not None:
            return "failed"
        if self._decoder_done and not self._queue:
            return "ended"
        if self._paused:
            return "paused"
        return "playing" if self.shown else "starting"

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def position(self) -> dt.datetime:
        """The recording time of the newest picture taken (`anchor` before the first)."""
        return self.anchor + dt.timedelta(seconds=self.last_time or 0.0)

    def keyframe_before(self, when: dt.datetime) -> dt.datetime | None:
        """The recording time of the latest keyframe read at or before `when`, if any.

        The server starts a playback from `when` at that keyframe (the recorder starts a fragment at every
        keyframe and indexes them all), so it is the anchor of a new player from `when` that is as exact as this
        one's.
        """
        media = (when - self.anchor).total_seconds()
        times = [t for t in list(self.keyframes) if t <= media]
        return self.anchor + dt.timedelta(seconds=max(times)) if times else None

    def take(self) -> PlaybackFrame | None:
        """The newest decoded picture, if any (older ones waiting are dropped: the UI is behind)."""
        with self._cond:
            if not self._queue:
                return None
            frame = self._queue.pop()
            self.dropped += len(self._queue)
            self._queue.clear()
        self.shown += 1
        self.last_time = frame.time
        return frame

    # -- control ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Send the request and start the decoder (call once, on the loop)."""
        if self._task is not None or self._closed:
            raise RuntimeError("a player starts once")
        self._pipe = BytePipe(self.max_buffer)
        self._loop = asyncio.get_running_loop()
        self._thread_ended = asyncio.Event()
        self._task = self._loop.create_task(self._read(), name=f"playback {self.stream_id}")
        self.thread = threading.Thread(target=self._decode, name=DECODER_THREAD_NAME, daemon=True)
        self.thread.start()

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def abort(self) -> None:
        """Stop at once without waiting: cancel the reader (closing the response), end the decoder."""
        self._closed = True
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
        if self._pipe is not None:
            self._pipe.abort()
        if self._task is not None:
            self._task.cancel()

    async def close(self) -> bool:
        """`abort`, then wait until the response is closed and the decoder thread ended; False if it did not end
        within `CLOSE_TIMEOUT` seconds (it still ends on its own once FFmpeg returns)."""
        self.abort()
        if self._task is not None:
            await asyncio.wait({self._task})
            if not self._task.cancelled():
                self._task.exception()  # retrieved: the reader catches what it expects, nothing else is raised
        thread, ended = self.thread, self._thread_ended
        if thread is None or ended is None:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), CLOSE_TIMEOUT)  # joining at once would block the loop
        if ended.is_set():
            thread.join()  # it has left `_decode`: only the thread's own exit is left
        return not thread.is_alive()

    # -- the reader (asyncio) and the decoder (thread) ------------------------------------------------------------

    def _fail(self, message: str) -> None:
        with self._cond:
            if self.error is None and not self._stopping:
                self.error = message
            self._cond.notify_all()

    def _set_anchor(self, first_frame: dt.datetime) -> None:
        """The server said when the first frame was recorded: shown times are exact from here on."""
        self.anchor = first_frame

    async def _read(self) -> None:
        pipe = self._pipe
        assert pipe is not None
        chunks = self.backend.playback(
            self.stream_id, self.start_time, self.end_time, speed=self.speed, on_first_frame=self._set_anchor
        )
        try:
            async with contextlib.aclosing(chunks):  # closing the generator closes the HTTP response
                async for chunk in chunks:
                    self.received += len(chunk)
                    await pipe.put(chunk)
        except PipeClosed:
            pass
        except BackendError as exc:
            self._fail(str(exc))
        except Exception as exc:  # anything else a backend raises ends this playback, never the console
            self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            pipe.finish()

    def _decode(self) -> None:
        try:
            self._decode_frames()
        except Exception as exc:  # FFmpeg raises several kinds; a bad stream ends the playback, not the console
            if self.error is None and self.received == 0:
                self._fail("the server sent nothing")
            else:
                self._fail(f"cannot decode the playback: {exc}")
        finally:
            with self._cond:
                self._decoder_done = True
                self._cond.notify_all()
            if self._loop is not None and self._thread_ended is not None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                    self._loop.call_soon_threadsafe(self._thread_ended.set)

    def _hold(self, t: float, origin: float | None) -> tuple[float, float] | None:
        """Wait until media time `t` is due (and while paused); (the clock's origin, seconds late), or None when
        the player is closing. `origin` is the monotonic time media time 0 is due (None: not set yet)."""
        with self._cond:
            while True:
                if self._stopping:
                    return None
                if self._paused:
                    paused_at = time.monotonic()
                    self._cond.wait_for(lambda: not self._paused or self._stopping)
                    if origin is not None:
                        origin += time.monotonic() - paused_at  # the pause does not count as lateness
                    continue
                now = time.monotonic()
                if origin is None or now - (origin + t / self.speed) > RESYNC:
                    origin = now - t / self.speed  # the first frame, or the first after a stall
                late = now - (origin + t / self.speed)
                if late >= 0:
                    return origin, late
                self._cond.wait(-late)

    def _offer(self, frame: PlaybackFrame) -> bool:
        """Queue a picture for `take`, dropping the oldest when full; False when the player is closing."""
        with self._cond:
            if self._stopping:
                return False
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(frame)
            return True

    def _frames(self, stream: Any, packets: Iterator[Any]) -> Iterator[Any]:
        """The decoded frames of `packets`, noting the decode time of each keyframe packet on the way.

        Keyframes are taken from the packets (the MP4's sync samples, which are the keyframes the recorder indexed
        and the server seeks to), not from the decoded frames' flags (an encoder's scene-cut I-frames).
        """
        for packet in packets:
            if packet.is_keyframe and packet.dts is not None:
                self.keyframes.append(float(packet.dts * stream.time_base))
            yield from packet.decode()

    def _decode_frames(self) -> None:
        import av

        assert self._pipe is not None
        with av.open(self._pipe, "r", format="mp4") as container:
            if not container.streams.video:
                self._fail("the recording has no video")
                return
            stream = container.streams.video[0]
            interval = self.speed / self.max_fps  # media seconds between kept frames
            origin: float | None = None  # monotonic time at which media time 0 is due
            kept = -math.inf
            for frame in self._frames(stream, container.demux(stream)):
                self.decoded += 1
                t = frame.time
                if t is None or t - kept < interval - 1e-6:
                    continue
                timing = self._hold(t, origin)
                if timing is None:
                    return
                origin, late = timing
                if late > LATE_DROP:
                    with self._cond:
                        self.dropped += 1
                    continue
                kept = t
                width, height = self.box
                image = fit_frame(frame, width, height, even=True, upscale=self.upscale)
                cells = halfblock_strips(image) if self.halfblocks else None
                if not self._offer(PlaybackFrame(time=t, image=image, cells=cells)):
                    return
            if self.decoded == 0 and not self._stopping:
                self._fail("the playback holds no video frame")
