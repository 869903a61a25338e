"""Text rendering of an `InspectReport` (the default output of `fluxkit inspect`)."""

from __future__ import annotations

from typing import Any

from fluxkit.inspect._inspect import InspectReport

__all__ = ["format_human"]

_FORMATS = {
    "pcap": "pcap capture",
    "pcapng": "pcapng capture",
    "mpeg-ps": "MPEG program stream",
    "rtp": "RTP dump (RFC 4571 framing)",
    "h264": "H.264 Annex-B elementary stream",
    "hevc": "H.265 Annex-B elementary stream",
}
_COUNTER_NAMES = {
    "ip-fragment": "IP fragments",
    "not-ip": "non-IP packets",
    "other-transport": "non-UDP/TCP packets",
    "unsupported-linktype": "packets of an unsupported link type",
    "malformed": "malformed packets",
    "truncated": "packets cut by the snap length",
    "not_rtp": "non-RTP payloads",
    "rtcp": "RTCP packets",
    "rtp_malformed": "malformed RTP packets",
    "rtp_sources_ignored": "RTP streams over the limit",
    "tcp_flows_ignored": "TCP flows over the limit",
    "tcp_flows_not_media": "non-media TCP flows",
    "tcp_gap_bytes": "TCP bytes missing from the capture",
    "skipped_bytes": "bytes skipped",
}


def _num(value: float | None, fmt: str, unit: str = "") -> str | None:
    return None if value is None else f"{value:{fmt}}{unit}"


def _bitrate(bps: float | None) -> str | None:
    if bps is None:
        return None
    if bps >= 1_000_000:
        return f"{bps / 1_000_000:.2f} Mb/s"
    return f"{bps / 1000:.1f} kb/s"


def _stream_line(s: dict[str, Any]) -> str:
    head = f"Stream #{s['index']} {s['stream']}: {s['codec']}"
    if s.get("codec_string"):
        head += f" ({s['codec_string']})"
    parts: list[str | None] = []
    if s.get("width"):
        parts.append(f"{s['width']}x{s['height']}")
    if s["stream"] == "video":
        fps = _num(s.get("fps"), ".3g", " fps")
        if fps and s.get("timestamps") == "assumed":
            fps += " (assumed)"
        parts.append(fps)
        if s.get("gop") is not None:
            parts.append(f"GOP {s['gop']:.1f} (max {s['gop_max']})")
    parts.append(f"{s['frames']} frames")
    if s["stream"] == "video":
        parts.append(f"{s['keyframes']} keyframes")
    parts.append(_num(s.get("duration"), ".3f", " s"))
    parts.append(_bitrate(s.get("bitrate")))
    return head + ", " + ", ".join(p for p in parts if p)


def _rtp_line(s: dict[str, Any]) -> str:
    where = f" {s['transport']}"
    if s.get("src"):
        where += f" {s['src']} -> {s['dst']}"
    line = (
        f"RTP ssrc 0x{s['ssrc']:08x} pt {s['pt']}{where} ({s['payload']}): {s['packets']} packets, "
        f"{s['lost']} lost, {s['duplicates']} duplicates, {s['reordered']} reordered, "
        f"jitter {s['jitter'] * 1000:.2f} ms"
    )
    if s.get("dropped_frames"):
        line += f", {s['dropped_frames']} frames dropped"
    return line


def format_human(report: InspectReport) -> str:
    """A few lines per stream: codec, size, rate, GOP, counts, and RTP statistics where relevant."""
    lines = [f"{report.path}: {_FORMATS.get(report.format, report.format)}"]
    if "packets" in report.counters:
        lines[0] += f", {report.counters['packets']} packets"
    for s in report.streams:
        lines.append("  " + _stream_line(s))
        if "ssrc" in s:
            lines.append("    " + _rtp_line(s))
    skipped = [f"{report.counters[k]} {label}" for k, label in _COUNTER_NAMES.items() if report.counters.get(k)]
    if skipped:
        lines.append("  skipped: " + ", ".join(skipped))
    lines += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(lines)
