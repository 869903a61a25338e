"""WHIP ingest (RFC 9725): WebRTC publishers push H.264 and Opus into the engine, without transcoding.

Usage, in the engine's nursery::

    async with open_engine() as engine, open_whip_service(engine) as whip:
        services = ApiServices(engine=engine, token=token, extra_routes=tuple(whip_routes(whip)))
        await nursery.start(serve_api, services, "127.0.0.1", 8080)

HTTP (RFC 9725 §4): `POST /api/video/whip/{stream_id}` with `Content-Type: application/sdp` and an SDP offer
answers `201 Created` with the SDP answer and `Location: /api/video/whip/{stream_id}/{resource_id}`; `DELETE` on
that URL stops the stream (200). Errors are plain-text bodies: 415 wrong content type, 400 bad offer or stream id,
401 bad token (the API middleware, or `token=` here), 409 stream already exists, 404 unknown resource, 413 offer
too large. No trickle ICE or ICE restart: PATCH is 405 (RFC 9725 §4.3.1 lets a server refuse it). Each route
carries its OpenAPI operations in an `openapi` attribute (`openapi_paths(prefix)`), merged by the API app into
`/api/openapi.json`.

Strategy: aiortc runs on one trio-asyncio loop owned by `open_whip_service`; every aiortc call goes through
`aio_as_trio(..., loop=...)`. The POST handler negotiates (setRemoteDescription, createAnswer,
setLocalDescription, which gathers the host candidates: non-trickle, all candidates are in the answer), then
registers the stream with `engine.add_source`, so the engine supervises it like any other source: `stop_stream`
(or DELETE) cancels it, and every failure (ICE/DTLS failed, no connection within `connect_timeout`) is a
`PermanentSourceError`, logged and reported as `StreamFailed`, never retried (a peer connection cannot be redialed
from the server side). A connection the peer closes ends the stream normally.

Media: `fluxkit.net._webrtc.EncodedFrameTap` takes each frame aiortc's jitter buffer reassembles (after SRTP,
RTX and NACK handling) instead of its decoder, so frames are published as they arrived: Annex-B H.264 with
`pts` = the RTP timestamp (90 kHz, unwrapped, starting at 0), `dts=None`. The stream goes live
(`session.publish`) at the first IDR, with its SPS/PPS as the track's parameter sets. The first audio section is
passed through the same way: each Opus packet as sent (`MediaFrame(codec="opus")`, `pts` = its RTP timestamp at
48 kHz, RFC 7587 §4.1, unwrapped from 0) on an "opus" track (48 kHz, 2 channels as RFC 7587 §7 declares; a
decoder mixes mono packets up), recorded as Opus in the fMP4 segments. PCMU/PCMA, when that is what the answer
settled on, go out as "pcm_mulaw"/"pcm_alaw" at 8 kHz. Audio before the first IDR is dropped, like everything
else the engine would drop before a keyframe.

Keyframe requests (RTCP PLI, RFC 4585 §6.3.1) go to the publisher while no IDR has arrived yet, when the engine
asks (`VideoEngine.request_keyframe`: a subscriber joined without a cached GOP, or the recorder waits to cut a
segment), and when aiortc's jitter buffer loses packets for good (it asks by itself; `_webrtc.intercept_pli`
routes that through the same gate). All share one `PliGate`: at most one PLI per `pli_interval` seconds.

Loopback: by default host candidates are gathered on 127.0.0.1 only, no STUN/TURN server is used, and offer
candidates outside 127.0.0.0/8 and ::1 (and every mDNS `.local` name) are removed before aiortc sees them, so
nothing but loopback is ever contacted. `WhipSettings` opens this up deliberately.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
import trio_asyncio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fluxkit.engine import (
    PermanentSourceError,
    SourceSession,
    StreamExistsError,
    StreamNotFoundError,
    Track,
    VideoEngine,
)
from fluxkit.errors import FluxkitError
from fluxkit.protocols._media import new_media_frame
from fluxkit.protocols.nalu import (
    H264_NAL_IDR,
    nal_types,
    split_annexb,
)

from . import _webrtc

__all__ = [
    "DEFAULT_MAX_OFFER_SIZE",
    "WhipError",
    "WhipService",
    "WhipSettings",
    "open_whip_service",
    "openapi_paths",
    "whip_routes",
]

_log = logging.getLogger("fluxkit.net.whip")

#: Largest SDP offer accepted, bytes (413 beyond).
DEFAULT_MAX_OFFER_SIZE = 64 * 1024

_SDP = "application/sdp"

#: Audio passed through, by lower-case rtpmap encoding name: (FFmpeg codec name, clock rate, channels).
_AUDIO_CODECS = {"opus": ("opus", 48000, 2), "pcmu": ("pcm_mulaw", 8000, 1), "pcma": ("pcm_alaw", 8000, 1)}


@attrs.frozen(kw_only=True, slots=True)
class WhipSettings:
    """WHIP service settings.

    Attributes:
        host_addresses: addresses ICE host candidates are gathered on; None gathers on every interface (as aioice
            does by default, which excludes 127.0.0.1).
        allowed_networks: CIDR networks an offer's candidates must be in; the others (and mDNS names) are removed.
        ice_servers: STUN/TURN URLs ("stun:host:port"); none by default.
        connect_timeout: seconds ICE+DTLS may take after the answer before the stream fails.
        pli_interval: least seconds between two keyframe requests (RTCP PLI) to one publisher, whatever asks.
        max_offer_size: largest offer body, bytes.
        max_sessions: most concurrent WHIP sessions (503 beyond).
    """

    host_addresses: tuple[str, ...] | None = ("127.0.0.1",)
    allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    ice_servers: tuple[str, ...] = ()
    connect_timeout: float = 30.0
    pli_interval: float = 1.0
    max_offer_size: int = DEFAULT_MAX_OFFER_SIZE
    max_sessions: int = 64


class WhipError(FluxkitError):
    """A refused WHIP request; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Session:
    """One WHIP resource: its peer connection, the engine source feeding its stream, and the frame path."""

    def __init__(self, service: WhipService, stream_id: str, resource_id: str) -> None:
        self.service = service
        self.stream_id = stream_id
        self.resource_id = resource_id
        self.pc: Any = None
        self.video_receiver: Any = None
        self.send_pli: Callable[[int], Awaitable[None]] | None = None
        self.pli_gate = _webrtc.PliGate(service.settings.pli_interval)
        self.audio_track: Track | None = None
        self.audio_codec = ""
        self.source_session: SourceSession | None = None
        self.publisher: Any = None
        self.connected = trio.Event()
        self.done = trio.Event()
        self.closed = trio.Event()
        self.failure: str | None = None
        self.frames = 0
        self.audio_frames = 0
        self.audio_dropped = 0
        self.dropped_before_key = 0
        #: PLIs sent, by what asked: "start" (no IDR yet), "consumer" (the engine), "loss" (aiortc).
        self.plis = {"start": 0, "consumer": 0, "loss": 0}
        self._pending: set[Any] = set()

    # -- asyncio side (called on the trio-asyncio loop, synchronously) -----------------------------------------

    def on_state(self, state: str) -> None:
        if state == "connected":
            self.connected.set()
        elif state == "failed":
            self.finish("ICE/DTLS failed (connection state 'failed')")
        elif state == "closed":
            self.finish(None)

    def finish(self, failure: str | None) -> None:
        if not self.done.is_set():
            self.failure = failure
            self.done.set()

    def on_video(self, data: bytes, timestamp: int, _codec: str) -> None:
        session = self.source_session
        if session is None:
            return
        key = H264_NAL_IDR in nal_types("h264", data)
        if self.publisher is None:
            if not key:
                self.dropped_before_key += 1
                self.request_keyframe("start")
                return
            tracks = [Track.for_video("h264", split_annexb(data))]
            if self.audio_track is not None:
                tracks.append(self.audio_track)
            try:
                self.publisher = session.publish(tracks)
            except trio.ClosedResourceError:
                return
            self.publisher.set_keyframe_handler(self._on_keyframe_request)
        try:
            self.publisher.send(new_media_frame("h264", data, timestamp, None, key, 0))
        except trio.ClosedResourceError:
            return
        self.frames += 1

    def on_audio(self, data: bytes, timestamp: int, codec: str) -> None:
        publisher = self.publisher
        if publisher is None:
            return  # before the first IDR: the engine would drop it too
        name = _AUDIO_CODECS.get(codec.lower())
        if name is None or name[0] != self.audio_codec:
            self.audio_dropped += 1  # a payload type other than the announced track's
            return
        try:
            publisher.send(new_media_frame(self.audio_codec, data, timestamp, None, True, 0))
        except trio.ClosedResourceError:
            return
        self.audio_frames += 1

    def on_video_stop(self) -> None:
        self.finish(None)

    def _on_keyframe_request(self) -> None:
        self.request_keyframe("consumer")

    def _on_loss_pli(self, _media_ssrc: int) -> bool:
        # aiortc's jitter buffer gave up on lost packets and wants a PLI: allowed within the shared limit.
        if self.pli_gate.allow(trio.current_time()):
            self.plis["loss"] += 1
            return True
        return False

    def request_keyframe(self, reason: str) -> None:
        """Send a PLI to the publisher unless one went out less than `pli_interval` ago (trio or asyncio side)."""
        receiver = self.video_receiver
        send = self.send_pli
        if receiver is None or send is None or self.closed.is_set():
            return
        if not self.pli_gate.allow(trio.current_time()):
            return
        # The first SSRC seen is the media one (an RTX SSRC only shows up after a NACK).
        sources = receiver.getSynchronizationSources()
        if not sources:
            return
        self.plis[reason] += 1
        # Runs on the aiortc loop; keep a reference until done, as the loop holds tasks weakly.
        task = self.service.loop.create_task(send(sources[0].source))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- trio side --------------------------------------------------------------------------------------------

    async def run(self, session: SourceSession) -> None:
        """The engine `Source` of this resource: wait until the connection ends or fails."""
        self.source_session = session
        settings = self.service.settings
        try:
            with trio.move_on_after(settings.connect_timeout) as scope:
                await self.connected.wait()
            if scope.cancelled_caught and not self.done.is_set():
                self.finish(f"ICE/DTLS did not connect within {settings.connect_timeout:g} s")
            await self.done.wait()
            if self.failure is not None:
                _log.error("WHIP stream %r (resource %s) failed: %s", self.stream_id, self.resource_id, self.failure)
                raise PermanentSourceError(self.failure)
            _log.info("WHIP stream %r: the publisher closed the connection", self.stream_id)
        finally:
            self.source_session = None
            if self.publisher is not None:
                self.publisher.set_keyframe_handler(None)
            self.publisher = None
            with trio.CancelScope(shield=True):
                await self.service._close_session(self)


class _SessionSource:
    """Adapter: the engine calls `run(session)`."""

    def __init__(self, session: _Session) -> None:
        self._session = session

    async def run(self, session: SourceSession) -> None:
        await self._session.run(session)


class WhipService:
    """Running WHIP ingest: made by `open_whip_service`; `whip_routes(service)` exposes it over HTTP."""

    def __init__(self, engine: VideoEngine, settings: WhipSettings, loop: Any) -> None:
        self.engine = engine
        self.settings = settings
        self.loop = loop
        self._sessions: dict[str, _Session] = {}
        self._closing = False

    def sessions(self) -> dict[str, str]:
        """{resource_id: stream_id} of the live WHIP resources."""
        return {rid: s.stream_id for rid, s in self._sessions.items()}

    def resource_path(self, stream_id: str, resource_id: str) -> str:
        return f"/api/video/whip/{stream_id}/{resource_id}"

    async def publish(self, stream_id: str, offer: str) -> tuple[str, str]:
        """Answer `offer` and start feeding `stream_id`; returns (answer SDP, resource id).

        Raises:
            WhipError: 400 bad offer, 409 the stream exists, 503 too many sessions or shutting down.
        """
        if self._closing:
            raise WhipError(503, "the WHIP service is shutting down")
        if len(self._sessions) >= self.settings.max_sessions:
            raise WhipError(503, f"too many WHIP sessions (max {self.settings.max_sessions})")
        if any(info.stream_id == stream_id for info in self.engine.list_streams()):
            raise WhipError(409, f"stream {stream_id!r} already exists")
        if "v=0" not in offer[:200] or "\nm=" not in offer:
            raise WhipError(400, "the body is not an SDP offer (no v=0 or m= line)")
        offer, kept, dropped = _webrtc.filter_candidates(offer, self.settings.allowed_networks)
        if dropped:
            _log.info(
                "WHIP %r: removed %d offer candidate(s) outside %s", stream_id, dropped, self.settings.allowed_networks
            )
        if not kept:
            raise WhipError(400, "the offer has no usable ICE candidate (trickle ICE is not supported; "
                                 f"candidates must be in {', '.join(self.settings.allowed_networks)})")  # fmt: skip
        session = _Session(self, stream_id, secrets.token_urlsafe(12))
        try:
            answer = await trio_asyncio.aio_as_trio(self._negotiate, loop=self.loop)(session, offer)
        except WhipError:
            raise
        except Exception as exc:
            _log.info("WHIP %r: offer refused: %s", stream_id, exc)
            raise WhipError(400, f"bad offer: {exc}") from None
        try:
            self.engine.add_source(stream_id, _SessionSource(session))
        except StreamExistsError:
            await self._close_session(session)
            raise WhipError(409, f"stream {stream_id!r} already exists") from None
        self._sessions[session.resource_id] = session
        _log.info("WHIP stream %r published (resource %s)", stream_id, session.resource_id)
        return answer, session.resource_id

    async def delete(self, stream_id: str, resource_id: str) -> None:
        """Stop a WHIP resource and its stream.

        Raises:
            WhipError: 404 no such resource.
        """
        session = self._sessions.get(resource_id)
        if session is None or session.stream_id != stream_id:
            raise WhipError(404, "no such WHIP resource")
        with contextlib.suppress(StreamNotFoundError):
            self.engine.stop_stream(stream_id)
        session.finish(None)
        await self._close_session(session)

    async def _negotiate(self, session: _Session, offer: str) -> str:
        # Runs as an asyncio coroutine: the context variable covers the gathering in setLocalDescription.
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription

        _webrtc.HOST_ADDRESSES.set(self.settings.host_addresses)
        config = RTCConfiguration(iceServers=[RTCIceServer(url) for url in self.settings.ice_servers])
        pc = RTCPeerConnection(config)
        session.pc = pc
        pc.on("connectionstatechange", lambda: session.on_state(pc.connectionState))
        try:
            # A recvonly video transceiver made before the offer is applied takes its first video section; its
            # codec preferences leave H.264 (and its RTX) as the only codecs aiortc can negotiate there.
            video = pc.addTransceiver("video", direction="recvonly")
            capabilities = RTCRtpReceiver.getCapabilities("video")
            assert capabilities is not None
            video.setCodecPreferences([c for c in capabilities.codecs if c.mimeType in ("video/H264", "video/rtx")])
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            except Exception as exc:
                if video.mid is None:
                    raise WhipError(400, "the offer has no video section") from None
                raise WhipError(400, f"bad offer (H.264 video required): {exc}") from None
            if video.mid is None:
                raise WhipError(400, "the offer has no video section")
            audio = None
            for transceiver in pc.getTransceivers():
                if transceiver is video:
                    _webrtc.EncodedFrameTap.install(video.receiver, session.on_video, session.on_video_stop)
                    session.video_receiver = video.receiver
                    session.send_pli = _webrtc.intercept_pli(video.receiver, session._on_loss_pli)
                elif audio is None and transceiver.kind == "audio":
                    audio = transceiver
                    _webrtc.EncodedFrameTap.install(transceiver.receiver, session.on_audio, _nothing)
                else:
                    # Extra audio or video sections: received, never decoded, dropped.
                    _webrtc.EncodedFrameTap.install(transceiver.receiver, _drop, _nothing)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
            sdp = str(pc.localDescription.sdp)
            if audio is not None and audio.mid is not None:
                # The track is announced at the first IDR; its codec is the one the answer names first.
                name = _webrtc.negotiated_codecs(sdp).get(audio.mid, ("", 0, 0))[0]
                known = _AUDIO_CODECS.get(name.lower())
                if known is not None:
                    session.audio_codec = known[0]
                    session.audio_track = Track(
                        codec=known[0], clock_rate=known[1], sample_rate=known[1], channels=known[2]
                    )
            return sdp
        except BaseException:
            await pc.close()
            raise

    async def _close_session(self, session: _Session) -> None:
        if self._sessions.get(session.resource_id) is session:
            del self._sessions[session.resource_id]
        if session.closed.is_set():
            return
        session.closed.set()
        pc, session.pc = session.pc, None
        if pc is not None:
            with trio.move_on_after(5):
                await trio_asyncio.aio_as_trio(pc.close, loop=self.loop)()
        session.finish(None)
        plis = session.plis
        _log.info(
            "WHIP stream %r closed: %d video frames (%d dropped before the first IDR), %d audio frames (%d dropped), "
            "PLI sent %d at start, %d on request, %d on loss, %d held back by the %g s limit",
            session.stream_id,
            session.frames,
            session.dropped_before_key,
            session.audio_frames,
            session.audio_dropped,
            plis["start"],
            plis["consumer"],
            plis["loss"],
            session.pli_gate.suppressed,
            self.settings.pli_interval,
        )

    async def _shutdown(self) -> None:
        self._closing = True
        for session in list(self._sessions.values()):
            with contextlib.suppress(StreamNotFoundError):
                self.engine.stop_stream(session.stream_id)
            session.finish(None)
            await self._close_session(session)


def _drop(_data: bytes, _timestamp: int, _codec: str) -> None:
    pass


def _nothing() -> None:
    pass


@asynccontextmanager
async def open_whip_service(
    engine: VideoEngine, settings: WhipSettings | None = None, *, loop: Any = None
) -> AsyncIterator[WhipService]:
    """Run WHIP ingest for `engine`: a trio-asyncio loop for aiortc, closed (with every session) on exit.

    Args:
        engine: the running engine streams are published to.
        settings: `WhipSettings` (default: loopback only).
        loop: an already open `trio_asyncio` loop to use instead of opening one.

    Raises:
        RuntimeError: the installed aiortc is not the pinned 1.16.0 in the ways that matter: it lacks internals
            fluxkit relies on, each named in the message (`fluxkit.net._webrtc.check_aiortc_internals`).
    """
    _webrtc.check_aiortc_internals()
    _webrtc.install_host_address_hook()
    settings = settings or WhipSettings()
    if loop is not None:
        service = WhipService(engine, settings, loop)
        try:
            yield service
        finally:
            with trio.CancelScope(shield=True):
                await service._shutdown()
        return
    async with trio_asyncio.open_loop() as own_loop:
        service = WhipService(engine, settings, own_loop)
        try:
            yield service
        finally:
            with trio.CancelScope(shield=True):
                await service._shutdown()


_TEXT_ERROR = {"text/plain": {"schema": {"type": "string"}}}


def _whip_errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad stream id or offer (not SDP, no H.264 video, no usable ICE candidate).",
        404: "No such WHIP resource.",
        409: "A stream with this id exists.",
        413: "The offer is too large.",
        415: "Content-Type is not application/sdp.",
        503: "The service is shutting down, or has too many sessions.",
    }
    out: dict[str, Any] = {str(code): {"description": text[code], "content": _TEXT_ERROR} for code in codes}
    # The API middleware refuses with its JSON error; `whip_routes(token=...)` with plain text.
    out["401"] = {
        "description": "Missing or wrong bearer token (`WWW-Authenticate: Bearer`).",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}, **_TEXT_ERROR},
    }
    return out


def openapi_paths(prefix: str = "/api/video/whip") -> dict[str, dict[str, Any]]:
    """The OpenAPI operations of `whip_routes(service, prefix=prefix)`, `{path: {method: operation}}`.

    Errors are plain text (RFC 9725 leaves the body open), except the API middleware's JSON 401.
    """
    stream_id = {
        "name": "stream_id",
        "in": "path",
        "required": True,
        "description": "The stream to publish (the API's stream id rules: 400 otherwise).",
        "schema": {"type": "string", "maxLength": 128},
    }
    resource_id = {
        "name": "resource_id",
        "in": "path",
        "required": True,
        "description": "The session resource, from the POST's Location.",
        "schema": {"type": "string"},
    }
    sdp = {_SDP: {"schema": {"type": "string"}}}
    return {
        prefix + "/{stream_id}": {
            "post": {
                "operationId": "whipPublish",
                "summary": "WHIP (RFC 9725 §4.2): publish H.264 and Opus over WebRTC by SDP offer (non-trickle ICE).",
                "tags": ["whip"],
                "parameters": [stream_id],
                "requestBody": {"required": True, "content": sdp},
                "responses": {
                    "201": {
                        "description": "The SDP answer; Location names the session resource.",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": sdp,
                    },
                    **_whip_errors(400, 409, 413, 415, 503),
                },
            }
        },
        prefix + "/{stream_id}/{resource_id}": {
            "delete": {
                "operationId": "whipStop",
                "summary": "WHIP (RFC 9725 §4.2): end the session and stop its stream.",
                "tags": ["whip"],
                "parameters": [stream_id, resource_id],
                "responses": {"200": {"description": "Stopped."}, **_whip_errors(404)},
            }
        },
    }


def whip_routes(service: WhipService, *, token: str | None = None, prefix: str = "/api/video/whip") -> list[Route]:
    """The WHIP endpoints, to mount with `ApiServices(extra_routes=...)`.

    Args:
        service: from `open_whip_service`.
        token: a bearer token the WHIP requests need (RFC 9725 §4.5), checked here; leave None when the API's
            own token (`ApiServices.token`, enforced by its middleware on every route) is enough.
        prefix: the endpoint path; the stream id follows it.
    """

    def refuse(status: int, message: str) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="fluxkit"'} if status == 401 else None
        return PlainTextResponse(message + "\n", status, headers=headers)

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        scheme, _, supplied = request.headers.get("authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(supplied.strip().encode(), token.encode())

    async def post(request: Request) -> Response:
        if not authorized(request):
            return refuse(401, "missing or invalid bearer token")
        stream_id = request.path_params["stream_id"]
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != _SDP:
            return refuse(415, f"Content-Type must be {_SDP}")
        try:
            from fluxkit.storage import validate_stream_id

            validate_stream_id(stream_id)
        except FluxkitError:
            return refuse(400, f"invalid stream id {stream_id[:80]!r}")
        limit = service.settings.max_offer_size
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return refuse(413, f"offer larger than {limit} bytes")
        try:
            offer = body.decode("utf-8")
        except UnicodeDecodeError:
            return refuse(400, "the offer is not UTF-8 text")
        try:
            answer, resource_id = await service.publish(stream_id, offer)
        except WhipError as exc:
            return refuse(exc.status, exc.message)
        location = f"{prefix}/{stream_id}/{resource_id}"
        return Response(answer, 201, headers={"Location": location}, media_type=_SDP)

    async def delete(request: Request) -> Response:
        if not authorized(request):
            return refuse(401, "missing or invalid bearer token")
        try:
            await service.delete(request.path_params["stream_id"], request.path_params["resource_id"])
        except WhipError as exc:
            return refuse(exc.status, exc.message)
        return Response(status_code=200)

    routes = [
        Route(prefix + "/{stream_id}", post, methods=["POST"]),
        Route(prefix + "/{stream_id}/{resource_id}", delete, methods=["DELETE"]),
    ]
    documents = openapi_paths(prefix)
    for route in routes:
        route.openapi = documents[route.path]  # type: ignore[attr-defined]
    return routes
