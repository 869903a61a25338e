"""A camera-like RTSP server on 127.0.0.1, built on GStreamer's gst-rtsp-server (a test peer, not fluxkit code).

Run with Debian's /usr/bin/python3 (it has `gi`; the project venv does not):

    /usr/bin/python3 tests/interop/rtsp_server.py PORT [USER PASSWORD]

PORT 0 picks a free port. Mounts `/test` (H.264), `/h265` (H.265) and `/av` (H.264 + PCMA/8000), each a live
test pattern shared between clients. With USER and PASSWORD the server requires Digest authentication. Once
listening it prints `PORT <n>` on stdout (the port actually bound), then serves until killed.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

VIDEO = "videotestsrc is-live=true ! video/x-raw,width=640,height=480,framerate=25/1 ! "
MOUNTS = {
    "/test": f"( {VIDEO}x264enc tune=zerolatency key-int-max=30 ! rtph264pay name=pay0 pt=96 )",
    "/h265": f"( {VIDEO}x265enc tune=zerolatency key-int-max=30 ! rtph265pay name=pay0 pt=96 )",
    "/av": (
        f"( {VIDEO}x264enc tune=zerolatency key-int-max=30 ! rtph264pay name=pay0 pt=96 "
        "audiotestsrc is-live=true ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8 )"
    ),
}


def main() -> None:
    Gst.init(None)
    port = sys.argv[1] if len(sys.argv) > 1 else "8554"
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    mounts = server.get_mount_points()
    factories = []
    for path, launch in MOUNTS.items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)
        mounts.add_factory(path, factory)
        factories.append(factory)
    if len(sys.argv) > 3:
        auth = GstRtspServer.RTSPAuth()
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_digest(sys.argv[2], sys.argv[3], token)
        server.set_auth(auth)
        for factory in factories:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_role_from_structure(
                Gst.Structure.new_from_string(
                    "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
                )
            )
            factory.set_permissions(permissions)
    server.attach(None)
    print(f"PORT {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
