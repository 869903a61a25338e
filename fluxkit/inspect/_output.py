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
    "sip_malformed": "malformed SIP messages",
    "manscdp_malformed": "MANSCDP bodies that do not parse",
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
    if s.get("session"):
        line += f", session {s['session']}"
    if s.get("flags"):
        line += " [" + ", ".join(s["flags"]) + "]"
    return line


def _sdp_line(sdp: dict[str, Any] | None, what: str) -> list[str]:
    if sdp is None:
        return [f"{what}: none"]
    head = f"{what} ({sdp['side']}): s={sdp['session_name']}"
    if sdp.get("uri"):
        head += f" u={sdp['uri']}"
    if sdp.get("timing"):
        head += f" t={sdp['timing'][0]} {sdp['timing'][1]}"
    head += f" y={sdp['ssrc']}"
    if sdp.get("ssrc_int") is not None:
        head += f" (0x{sdp['ssrc_int']:08x})"
    lines = [head]
    for m in sdp["media"]:
        media = f"  m={m['media']} {m['address']}:{m['port']} {m['proto']} ({m['transport']}"
        if m.get("setup"):
            media += f", setup {m['setup']}"
        media += ")"
        if m.get("direction"):
            media += f" {m['direction']}"
        if m.get("formats"):
            media += " " + ", ".join(m["formats"])
        lines.append(media)
    return lines


def _signalling(sip: dict[str, Any]) -> list[str]:
    lines = ["Signalling (SIP):"]
    txs = sip["transactions"]
    by_method: dict[str, dict[str, int]] = {}
    for tx in txs:
        final = tx["final"]
        counts = by_method.setdefault(tx["method"], {})
        label = str(final) if final is not None else "no final"
        counts[label] = counts.get(label, 0) + 1
    lines.append(f"  {len(txs)} transactions")
    for method, counts in by_method.items():
        lines.append(f"    {method}: " + ", ".join(f"{n} x {label}" for label, n in counts.items()))
    for reg in sip["registrations"]:
        statuses = " -> ".join(str(x) for x in reg["statuses"]) or "no response"
        lines.append(f"  REGISTER {reg['device']}: {statuses} ({reg['outcome']}, {reg['attempts']} requests)")
    for sess in sip["sessions"]:
        head = f"  Session {sess['call_id']}: INVITE {sess['caller']} -> {sess['callee']}"
        if sess.get("channel"):
            head += f" channel {sess['channel']}"
        head += f", final {sess['status'] if sess['status'] is not None else 'none'}"
        if sess.get("bye"):
            head += f", BYE from {sess['bye']['from']}"
        lines.append(head)
        lines += ["    " + x for x in _sdp_line(sess["offer"], "offer")]
        lines += ["    " + x for x in _sdp_line(sess["answer"], "answer")]
        streams = ", ".join(f"#{i}" for i in sess["streams"]) or "none"
        lines.append(f"    media streams: {streams}" + (" [" + ", ".join(sess["flags"]) + "]" if sess["flags"] else ""))
    if sip["keepalives"]:
        lines.append("  Keepalive: " + ", ".join(f"{d} x {n}" for d, n in sip["keepalives"].items()))
    for msg in sip["messages"]:
        if msg["cmd_type"] == "Keepalive":
            continue
        line = f"  {msg['method']} {msg['root']} {msg['cmd_type']} SN {msg['sn']} device {msg['device_id']}"
        if "items" in msg:
            line += f": {msg['items']} items of {msg['sum_num']}"
        if msg.get("ptz"):
            line += f": PTZ {msg['ptz']} ({msg['ptz_cmd']})"
        elif "ptz_cmd" in msg:
            line += f": PTZCmd {msg['ptz_cmd']} (undecodable)"
        lines.append(line)
    return lines


def format_human(report: InspectReport) -> str:
    """A few lines per stream: codec, size, rate, GOP, counts, and RTP statistics where relevant."""
    lines = [f"{report.path}: {_FORMATS.get(report.format, report.format)}"]
    if "packets" in report.counters:
        lines[0] += f", {report.counters['packets']} packets"
    for s in report.streams:
        lines.append("  " + _stream_line(s))
        if "ssrc" in s:
            lines.append("    " + _rtp_line(s))
    if report.sip is not None and (report.sip["transactions"] or report.sip["messages"]):
        lines += ["  " + x for x in _signalling(report.sip)]
    skipped = [f"{report.counters[k]} {label}" for k, label in _COUNTER_NAMES.items() if report.counters.get(k)]
    if skipped:
        lines.append("  skipped: " + ", ".join(skipped))
    lines += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(lines)
