"""Playback of a recorded range: frames drawn in the terminal, the recording time and the speed, with controls.

Strategy: the screen owns a `Player` (`fluxkit_tui.playback`: the HTTP stream, a decoder thread, a bounded queue
of pictures) and draws its newest picture with `SnapshotView` from a timer at `max_fps`, so drawing is bounded
whatever the source rate. Drawing is also bounded by its cost: the time from handing a picture over to the end of
the screen refresh that shows it is measured, and the next picture waits `DRAW_BUDGET` times as long, so a large
terminal gets fewer pictures a second instead of a console that no longer answers keys.

Space pauses and resumes the player (it holds its stream); a new speed closes the player and starts another from
the time last drawn (the server paces each answer at one speed). Restarts run one at a time in a worker and a
newer one supersedes those still waiting, so a burst of keys costs one request. Escape closes the player (the
HTTP response, then the decoder thread, waited for) before going back; leaving any other way aborts it without
waiting. Errors (the server's 404/503, a stream that does not decode) are shown as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from typing import TYPE_CHECKING, ClassVar, Final

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ..backend import BackendError, Recordings
from ..playback import DEFAULT_MAX_FPS, Player, playback_anchor
from ..widgets.snapshot_view import SnapshotView

if TYPE_CHECKING:
    from ..app import FluxkitConsole

__all__ = ["DRAW_BUDGET", "PLAYBACK_MAX_PICTURE", "PLAYBACK_SPEEDS", "PlaybackScreen", "format_position"]

#: The speeds `+` and `-` step through (those of the playback endpoint).
PLAYBACK_SPEEDS: Final = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Largest side (pixels) of a picture handed to a terminal image protocol during playback.
PLAYBACK_MAX_PICTURE: Final = 640
#: After a picture took `d` seconds to draw, the next waits `DRAW_BUDGET * d`: drawing takes at most a third of
#: the event loop.
DRAW_BUDGET: Final = 2.0


def format_position(when: dt.datetime) -> str:
    """`YYYY-MM-DD HH:MM:SS.s` in UTC (tenths: enough to see it move at 10 pictures a second)."""
    when = when.astimezone(dt.UTC)
    return f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond // 100_000}"


class PlaybackScreen(Screen[None]):
    """Plays [start, end) of `stream_id` at `speed`; escape stops and goes back.

    Args:
        stream_id: the recorded stream.
        start: start of the range.
        end: end of the range.
        speed: the speed to start at (one of `PLAYBACK_SPEEDS`).
        max_fps: most pictures drawn per second.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("space", "pause", "Pause/resume"),
        Binding("plus,right_square_bracket", "faster", "Faster"),
        Binding("minus,left_square_bracket", "slower", "Slower"),
    ]
    HELP: ClassVar[str] = (
        "Plays the chosen range from the recordings screen: the frames at up to 10 pictures a second, the recording "
        "time of the one shown (UTC) and the speed. A new speed starts again from the time shown; at the end, space "
        "plays the range again."
    )

    def __init__(
        self,
        stream_id: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        speed: float = 1.0,
        max_fps: float = DEFAULT_MAX_FPS,
    ) -> None:
        super().__init__(id="playback")
        self.stream_id = stream_id
        self.start = start
        self.end = end
        self.speed = speed
        self.max_fps = max_fps
        self.paused = False
        #: The recording time of the picture drawn last (the range's start before the first).
        self.position = start
        #: The player now playing, and every player this screen started whose thread may still run.
        self.player: Player | None = None
        self.players: list[Player] = []
        self.recordings: Recordings | None = None
        self._restarts = asyncio.Lock()
        self._generation = 0
        self._status_text: Text | None = None
        self._drawing = False  # a picture was handed over and its refresh has not come yet
        self._next_draw = 0.0  # monotonic time before which no picture is drawn (see DRAW_BUDGET)

    @property
    def console(self) -> FluxkitConsole:
        return self.app  # type: ignore[return-value]

    @property
    def view(self) -> SnapshotView:
        return self.query_one("#playback-view", SnapshotView)

    @property
    def message(self) -> str:
        """The status line as plain text."""
        return self._status_text.plain if self._status_text is not None else ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield SnapshotView(id="playback-view", graphics=self.console.graphics)
        yield Static("", id="playback-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.stream_id} playback"
        self.view.show_message("starting playback…")
        self._restart(self.start)
        self.set_interval(1 / self.max_fps, self._tick)

    def on_unmount(self) -> None:
        for player in self.players:
            player.abort()  # leaving without escape (the app quits): stop at once, the threads end on their own

    def _box(self) -> tuple[int, int]:
        return self.view.picture_box(PLAYBACK_MAX_PICTURE)

    # -- playing ------------------------------------------------------------------------------------------------

    @work(group="playback", exit_on_error=False)
    async def _restart(self, at: dt.datetime, *, again: bool = False) -> None:
        """Close the current player and start one from `at` at the current speed (the newest request wins).

        Args:
            again: from the start of the range (the old player's keyframes are no use there).
        """
        self._generation += 1
        generation = self._generation
        async with self._restarts:
            if generation != self._generation:
                return  # a newer restart waits behind this one
            old, self.player = self.player, None
            anchor = None
            if old is not None:
                if await old.close():
                    self.players.remove(old)  # ended: nothing left to wait for
                if not again:
                    # 1 ms on: the server's keyframe at or before the start is then surely the one found here.
                    at += dt.timedelta(milliseconds=1)
                    anchor = old.keyframe_before(at)
            if self.recordings is None:
                # Without it the anchor is the start; the playback request then says what is wrong.
                with contextlib.suppress(BackendError):
                    self.recordings = await self.console.backend.recordings(self.stream_id, self.start, self.end)
            player = Player(
                self.console.backend,
                self.stream_id,
                at,
                self.end,
                speed=self.speed,
                anchor=anchor or playback_anchor(self.recordings, at),
                box=self._box(),
                upscale=self.console.graphics == "halfblock",
                halfblocks=self.console.graphics == "halfblock",
                max_fps=self.max_fps,
            )
            if self.paused:
                player.pause()
            self.players.append(player)
            self.player = player
            player.start()
            self._show_status()

    def _tick(self) -> None:
        player = self.player
        if player is None:
            return
        player.box = self._box()  # the next pictures fit the view as it is now
        if not self.paused and not self._drawing and time.monotonic() >= self._next_draw:
            frame = player.take()
            if frame is not None:
                started = time.monotonic()
                self.view.show_image(frame.image, frame.cells)
                self.position = player.position
                self._drawing = True
                self.call_after_refresh(self._drawn, started)
        if player.error is not None:
            self.view.show_message(f"playback failed: {player.error}")
        self._show_status()

    def _drawn(self, started: float) -> None:
        done = time.monotonic()
        self._drawing = False
        self._next_draw = done + DRAW_BUDGET * (done - started)

    def _show_status(self) -> None:
        player = self.player
        state = "starting" if player is None else player.state
        if self.paused and state in ("starting", "playing"):
            state = "paused"
        text = Text.assemble(
            (f"{self.stream_id} ", "bold"),
            (f"{state} {self.speed:g}x", "bold"),
            f" · {format_position(self.position)} UTC",
            f" · range {self.start.astimezone(dt.UTC):%H:%M:%S}–{self.end.astimezone(dt.UTC):%H:%M:%S}",
        )
        if player is not None:
            text.append(f" · {player.shown} drawn, {player.dropped} dropped")
            if player.error is not None:
                text.append(f"\nplayback failed: {player.error}", style="red")
            elif state == "ended":
                text.append("\nend of the range: space plays it again", style="dim")
        if self._status_text is None or text.plain != self._status_text.plain:
            self._status_text = text
            self.query_one("#playback-status", Static).update(text)

    # -- keys ---------------------------------------------------------------------------------------------------

    def action_pause(self) -> None:
        player = self.player
        if player is not None and player.state == "ended":
            self.paused = False
            self.position = self.start
            self._restart(self.start, again=True)
        elif player is not None and player.state == "failed":
            self.paused = False
            self._restart(self.position)
        else:
            self.paused = not self.paused
            if player is not None:
                if self.paused:
                    player.pause()
                else:
                    player.resume()
        self._show_status()

    def action_faster(self) -> None:
        self._set_speed(+1)

    def action_slower(self) -> None:
        self._set_speed(-1)

    def _set_speed(self, step: int) -> None:
        faster = [s for s in PLAYBACK_SPEEDS if s > self.speed]
        slower = [s for s in PLAYBACK_SPEEDS if s < self.speed]
        choices = faster[:1] if step > 0 else slower[-1:]
        if not choices:
            self.notify(f"{self.speed:g}x is the {'fastest' if step > 0 else 'slowest'} speed")
            return
        self.speed = choices[0]
        if self.player is not None and self.player.state != "ended":
            self._restart(self.position)
        self._show_status()

    async def action_close(self) -> None:
        """Stop: close the HTTP stream and the decoder thread (waited for), then go back."""
        self._generation += 1  # restarts still waiting give up
        self.workers.cancel_group(self, "playback")
        for player in self.players:
            await player.close()
        self.app.pop_screen()
