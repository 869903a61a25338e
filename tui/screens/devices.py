"""GB28181 devices and PTZ: the device tree on the left, the PTZ panel of the selected channel on the right.

Strategy: the arrow keys are PTZ here, so they are priority bindings of this screen (the tree would take them
otherwise); the tree moves with j/k (or the mouse) and Enter picks the channel. A terminal reports no key
releases, so an arrow starts a move and Space stops it, as on a joystick-less keyboard console. Every command is
one `Backend.ptz` call in a queued worker, and the panel shows the request body sent and the HTTP status and
body that came back. `v` starts the selected channel's live video (`POST .../devices/{id}/live`, UDP) and a
second `v` on that channel stops it (`DELETE /api/video/gb28181/streams/{stream_id}`); the stream ids the
platform returned are remembered per channel, and each request and answer is shown under the PTZ log. The
selected device's address, SIP transport and last keepalive (with its age by the app's clock) are shown when the
API reports them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, ProgressBar, Static, Tree

from ..backend import BackendError, Device, HttpAnswer, PtzResult

if TYPE_CHECKING:
    from ..app import FluxkitConsole

__all__ = ["DEVICE_REFRESH", "DevicesScreen"]

#: Seconds between device list refreshes.
DEVICE_REFRESH = 3.0

_SPEED_STEP = 32

#: The PTZ panel's buttons: (id suffix, label, action of this screen).
_BUTTONS = (
    ("left", "◀", "ptz('left')"),
    ("up", "▲", "ptz('up')"),
    ("down", "▼", "ptz('down')"),
    ("right", "▶", "ptz('right')"),
    ("stop", "■", "ptz('stop')"),
    ("zoom-in", "+", "ptz('zoom_in')"),
    ("zoom-out", "−", "ptz('zoom_out')"),
    ("call", "call", "preset('preset_call')"),
    ("live", "live", "toggle_live"),
)


class DevicesScreen(Screen[None]):
    """The GB28181 device tree with PTZ on the selected channel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "ptz('up')", "Tilt up", show=False, priority=True),
        Binding("down", "ptz('down')", "Tilt down", show=False, priority=True),
        Binding("left", "ptz('left')", "Pan left", show=False, priority=True),
        Binding("right", "ptz('right')", "Pan right", show=False, priority=True),
        Binding("space", "ptz('stop')", "Stop", priority=True),
        Binding("plus,equals_sign", "ptz('zoom_in')", "Zoom in", show=False),
        Binding("minus", "ptz('zoom_out')", "Zoom out", show=False),
        Binding("n", "ptz('focus_near')", "Focus near", show=False),
        Binding("f", "ptz('focus_far')", "Focus far", show=False),
        Binding("o", "ptz('iris_open')", "Iris open", show=False),
        Binding("c", "ptz('iris_close')", "Iris close", show=False),
        Binding("p", "preset('preset_set')", "Preset set", show=False),
        Binding("g", "preset('preset_call')", "Preset call", show=False),
        Binding("x", "preset('preset_delete')", "Preset delete", show=False),
        Binding("less_than_sign,comma", "speed(-1)", "Slower", show=False),
        Binding("greater_than_sign,full_stop", "speed(1)", "Faster", show=False),
        Binding("j", "tree_cursor(1)", "Next in the tree", show=False),
        Binding("k", "tree_cursor(-1)", "Previous in the tree", show=False),
        Binding("u", "refresh_devices", "Refresh devices", show=False),
        Binding("v", "toggle_live", "Live on/off"),
        *(Binding(str(n), f"preset_number({n})", f"Preset number {n}", show=False) for n in range(1, 10)),
    ]
    HELP: ClassVar[str] = (
        "A terminal reports no key release, so a move runs until Stop, as on a joystick-less keyboard. The tree "
        "and the buttons under the speed bar work with the mouse too. Every request sent and the platform's answer "
        "are shown, with the device's address, transport and last keepalive; Live starts the channel's video (UDP) "
        "and a second press stops it."
    )

    def __init__(self, *, refresh_interval: float = DEVICE_REFRESH) -> None:
        super().__init__(id="devices")
        self.refresh_interval = refresh_interval
        self.devices: list[Device] = []
        self.target: tuple[str, str] | None = None  # (device_id, channel_id)
        self.speed = 128
        self.preset = 1
        self.sent: list[PtzResult] = []
        #: Live streams this screen started: (device_id, channel_id) -> stream_id.
        self.live: dict[tuple[str, str], str] = {}
        #: Live start/stop requests and their answers, newest last.
        self.live_answers: list[HttpAnswer] = []
        self._queue: asyncio.Queue[tuple[tuple[str, str], str, int, int | None]] = asyncio.Queue(maxsize=64)

    @property
    def console(self) -> FluxkitConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="devices-body"):
            tree: Tree[tuple[str, str]] = Tree("GB28181", id="device-tree")
            tree.show_root = False
            yield tree
            with Vertical(id="ptz-panel"):
                yield Static("no channel selected", id="ptz-target")
                yield Static(id="device-info")
                yield Static(id="ptz-speed-label")
                yield ProgressBar(total=255, show_eta=False, show_percentage=False, id="ptz-speed")
                with Horizontal(id="ptz-buttons"):
                    for name, label, action in _BUTTONS:
                        yield Button(label, id=f"ptz-{name}", action=f"screen.{action}", compact=True)
                yield Static(id="ptz-help")
                yield Static(id="ptz-log")
                yield Static(id="live-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#ptz-help", Static).update("? lists every key · ctrl+p runs any command")
        self._draw_speed()
        self._sender()
        self.action_refresh_devices()
        if self.refresh_interval > 0:
            self.set_interval(self.refresh_interval, self.action_refresh_devices)

    @work(exclusive=True, group="devices")
    async def action_refresh_devices(self) -> None:
        try:
            devices = await self.console.backend.devices()
        except BackendError as exc:
            self.query_one("#ptz-target", Static).update(Text(f"devices: {exc}", style="red"))
            return
        if devices != self.devices:
            self.devices = devices
            self._build_tree()
            self._draw_device_info()

    def _build_tree(self) -> None:
        tree: Tree[tuple[str, str]] = self.query_one("#device-tree", Tree)
        line = tree.cursor_line
        tree.clear()
        for device in self.devices:
            state = "[green]online[/]" if device.online else "[red]offline[/]"
            label = f"{device.device_id} {device.name or device.model} {state}"
            node = tree.root.add(Text.from_markup(label), data=(device.device_id, device.device_id), expand=True)
            for channel in device.channels:
                node.add_leaf(
                    f"{channel.channel_id} {channel.name} [{channel.status}]",
                    data=(device.device_id, channel.channel_id),
                )
        if self.target is None:
            first = next((d for d in self.devices if d.channels), None)
            if first is not None:
                self._select((first.device_id, first.channels[0].channel_id))
        tree.cursor_line = max(0, line)

    def _select(self, target: tuple[str, str]) -> None:
        self.target = target
        self.query_one("#ptz-target", Static).update(f"PTZ on device {target[0]} channel {target[1]}")
        self._draw_device_info()

    def _draw_device_info(self) -> None:
        if self.target is None:
            return
        device = next((d for d in self.devices if d.device_id == self.target[0]), None)
        if device is None:
            return
        parts = [f"address {device.address or 'n/a'}", f"transport {device.transport or 'n/a'}"]
        if device.last_keepalive is None:
            parts.append("keepalive n/a")
        else:
            when = dt.datetime.fromtimestamp(device.last_keepalive, dt.UTC)
            age = (self.console.clock() - when).total_seconds()
            parts.append(f"keepalive {when:%H:%M:%S}Z ({max(0.0, age):.0f}s ago)")
        stream = self.live.get(self.target)
        if stream is not None:
            parts.append(f"live {stream}")
        self.query_one("#device-info", Static).update(" · ".join(parts))

    def on_tree_node_selected(self, event: Tree.NodeSelected[tuple[str, str]]) -> None:
        if event.node.data is not None:
            self._select(event.node.data)

    def action_tree_cursor(self, step: int) -> None:
        tree: Tree[tuple[str, str]] = self.query_one("#device-tree", Tree)
        tree.cursor_line = max(0, tree.cursor_line + step)
        node = tree.cursor_node
        if node is not None and node.data is not None:
            self._select(node.data)

    def action_speed(self, step: int) -> None:
        self.speed = max(0, min(255, self.speed + step * _SPEED_STEP))
        self._draw_speed()

    def _draw_speed(self) -> None:
        self.query_one("#ptz-speed-label", Static).update(f"speed {self.speed} · preset {self.preset}")
        self.query_one("#ptz-speed", ProgressBar).update(progress=self.speed)

    def action_preset_number(self, number: int) -> None:
        self.preset = number
        self._draw_speed()

    def action_preset(self, command: str) -> None:
        self.send(command, preset=self.preset)

    def action_ptz(self, command: str) -> None:
        self.send(command)

    def send(self, command: str, *, preset: int | None = None) -> None:
        if self.target is None:
            self.notify("select a channel first", severity="warning")
            return
        if self._queue.full():
            self.notify("PTZ commands are queuing up: the platform is slow", severity="warning")
            return
        self._queue.put_nowait((self.target, command, self.speed, preset))

    def action_toggle_live(self) -> None:
        if self.target is None:
            self.notify("select a channel first", severity="warning")
            return
        self._toggle_live(self.target)

    @work(group="live", exclusive=True)
    async def _toggle_live(self, target: tuple[str, str]) -> None:
        backend = self.console.backend
        stream_id = self.live.get(target)
        if stream_id is None:
            answer = await backend.start_live(target[0], target[1], "udp")
            if answer.ok and answer.body is not None and "stream_id" in answer.body:
                self.live[target] = str(answer.body["stream_id"])
        else:
            answer = await backend.stop_live(stream_id)
            if answer.ok or answer.status == 404:  # 404: it has ended already, nothing left to stop
                self.live.pop(target, None)
        self.live_answers.append(answer)
        del self.live_answers[:-50]
        text = Text()
        body = f" {json.dumps(answer.request)}" if answer.request is not None else ""
        path = answer.path.replace("/api/video/gb28181", "...", 1)
        text.append(f"sent  {answer.method} {path}{body}\n")
        text.append(f"answer {answer.status or 'no answer'} {answer.answer}", style="green" if answer.ok else "red")
        self.query_one("#live-log", Static).update(text)
        self._draw_device_info()

    @work(group="ptz")
    async def _sender(self) -> None:
        # One consumer keeps the commands in key-press order (concurrent workers could reorder them).
        while True:
            target, command, speed, preset = await self._queue.get()
            await self._send(target, command, speed, preset)

    async def _send(self, target: tuple[str, str], command: str, speed: int, preset: int | None) -> None:
        result = await self.console.backend.ptz(target[0], target[1], command, speed=speed, preset=preset)
        self.sent.append(result)
        del self.sent[:-50]
        style = "green" if 200 <= result.status < 300 else "red"
        text = Text()
        text.append(f"sent  POST .../devices/{target[0]}/ptz {json.dumps(result.request)}\n")
        text.append(f"answer {result.status or 'no answer'} {result.answer}", style=style)
        self.query_one("#ptz-log", Static).update(text)
