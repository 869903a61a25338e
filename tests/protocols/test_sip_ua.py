"""Two SIP user agents wired together in memory: a GB28181 platform and a device.

A tiny in-memory network moves datagrams (or stream bytes) between the two sans-IO agents under a fake clock,
optionally dropping chosen datagrams to exercise retransmissions. The platform answers what the tests tell it to.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.digest import DigestServer, parse_authorization, parse_challenge
from fluxkit.protocols.sip import (
    AckReceived,
    DialogState,
    RequestReceived,
    ResponseReceived,
    SipEvent,
    SipRequest,
    SipUserAgent,
    TransactionTimedOut,
    parse_message,
)

PLATFORM_ID = "34020000002000000001"
DEVICE_ID = "34020000001320000001"
P_ADDR = ("10.0.0.1", 5060)
D_ADDR = ("10.0.0.2", 5060)
REGISTRAR = f"sip:{PLATFORM_ID}@3402000000"
PASSWORDS = {DEVICE_ID: "12345678"}


def make_platform(transport: str = "UDP", nonce_ttl: float = 300.0) -> SipUserAgent:
    return SipUserAgent(
        user=PLATFORM_ID,
        host=P_ADDR[0],
        port=P_ADDR[1],
        rng=random.Random(1),
        domain="3402000000",
        transport=transport,
        authenticator=DigestServer("3402000000", random.Random(2), nonce_ttl=nonce_ttl),
        lookup=PASSWORDS.get,
    )


def make_device(password: str = "12345678", transport: str = "UDP") -> SipUserAgent:
    return SipUserAgent(
        user=DEVICE_ID,
        host=D_ADDR[0],
        port=D_ADDR[1],
        rng=random.Random(3),
        domain="3402000000",
        transport=transport,
        password=password,
    )


Handler = Callable[[SipUserAgent, SipEvent, float], None]


class Net:
    """Moves messages between the two agents; records events; can drop datagrams matching a predicate."""

    def __init__(self, platform: SipUserAgent, device: SipUserAgent, stream: bool = False) -> None:
        self.platform = platform
        self.device = device
        self.stream = stream
        self.events: list[tuple[str, SipEvent]] = []
        self.wire: list[tuple[str, bytes]] = []
        self.drop: Callable[[bytes], bool] = lambda data: False
        self.handlers: dict[str, Handler] = {}

    def run(self, now: float) -> None:
        agents = (("platform", self.platform, P_ADDR), ("device", self.device, D_ADDR))
        busy = True
        while busy:
            busy = False
            for name, ua, src in agents:
                while (event := ua.next_event()) is not None:
                    self.events.append((name, event))
                    if name in self.handlers:
                        self.handlers[name](ua, event, now)
                    busy = True
                for data, addr in ua.datagrams_to_send(now):
                    busy = True
                    self.wire.append((name, data))
                    if self.drop(data):
                        continue
                    peer = self.device if addr == D_ADDR else self.platform
                    if self.stream:
                        peer.receive_data(data, src, now)
                    else:
                        peer.receive_datagram(data, src, now)

    def advance(self, until: float, start: float = 0.0) -> float:
        """Fire timers of both agents in order until `until`; return the last time used."""
        now = start
        self.run(now)
        while True:
            timers = [t for t in (self.platform.get_timer(), self.device.get_timer()) if t is not None]
            if not timers or min(timers) > until:
                return now
            now = min(timers)
            self.platform.handle_timer(now)
            self.device.handle_timer(now)
            self.run(now)

    def of(self, name: str, kind: type[SipEvent]) -> list[SipEvent]:
        return [e for n, e in self.events if n == name and isinstance(e, kind)]

    def sent(self, name: str) -> list[bytes]:
        return [d.split(b"\r\n", 1)[0] for n, d in self.wire if n == name]


def accept_register(ua: SipUserAgent, event: SipEvent, now: float) -> None:
    if isinstance(event, RequestReceived):
        assert event.request.method == "REGISTER"
        ua.respond(event.request, 200, now, headers=[("Date", "2024-01-01T12:00:00.000"), ("Expires", "3600")])


def answer_all(ua: SipUserAgent, event: SipEvent, now: float) -> None:
    if isinstance(event, RequestReceived):
        if event.request.method == "INVITE":
            ua.respond(event.request, 200, now, body=b"v=0\r\ny=0100000001\r\n", content_type="application/sdp")
        else:
            ua.respond(event.request, 200, now)


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_register_with_digest(transport: str) -> None:
    net = Net(make_platform(transport), make_device(transport=transport), stream=transport == "TCP")
    net.handlers["platform"] = accept_register
    first = net.device.register(REGISTRAR, P_ADDR, 0.0)
    net.run(0.0)
    assert net.sent("platform") == [b"SIP/2.0 401 Unauthorized", b"SIP/2.0 200 OK"]
    (got,) = net.of("platform", RequestReceived)
    assert isinstance(got, RequestReceived)
    assert got.username == DEVICE_ID
    retried = got.request
    assert retried.call_id == first.call_id
    assert retried.cseq.seq == first.cseq.seq + 1
    assert retried.from_.tag == first.from_.tag
    assert retried.via.branch != first.via.branch
    assert retried.via.branch.startswith("z9hG4bK")  # type: ignore[union-attr]
    creds = parse_authorization(retried.headers["Authorization"])
    assert creds.username == DEVICE_ID
    (resp,) = net.of("device", ResponseReceived)
    assert isinstance(resp, ResponseReceived)
    assert resp.response.status_code == 200
    assert resp.response.headers["Date"] == "2024-01-01T12:00:00.000"
    assert resp.response.to.tag is not None
    # A refresh reuses the Call-ID, CSeq counts on (RFC 3261 §10.2.4).
    refresh = net.device.register(REGISTRAR, P_ADDR, 10.0, call_id=first.call_id)
    assert refresh.cseq.seq == retried.cseq.seq + 1


def test_register_wrong_password_403() -> None:
    net = Net(make_platform(), make_device(password="wrong"))
    net.handlers["platform"] = accept_register
    net.device.register(REGISTRAR, P_ADDR, 0.0)
    net.run(0.0)
    assert net.of("platform", RequestReceived) == []
    (resp,) = net.of("device", ResponseReceived)
    assert resp.response.status_code == 403  # type: ignore[attr-defined]


def test_register_unknown_device_403_and_no_password_sees_401() -> None:
    platform = make_platform()
    stranger = SipUserAgent(user="34020000001320000099", host=D_ADDR[0], port=D_ADDR[1], rng=random.Random(9))
    net = Net(platform, stranger)
    stranger.register(REGISTRAR, P_ADDR, 0.0)
    net.run(0.0)
    (resp,) = net.of("device", ResponseReceived)
    assert resp.response.status_code == 401  # type: ignore[attr-defined]
    challenge = parse_challenge(resp.response.headers["WWW-Authenticate"])  # type: ignore[attr-defined]
    assert challenge.realm == "3402000000"
    assert challenge.qop == ("auth",)


def test_register_stale_nonce_retried() -> None:
    platform = make_platform(nonce_ttl=10.0)
    device = make_device()

    def deliver(src: SipUserAgent, dst: SipUserAgent, addr: tuple[str, int], now: float) -> list[bytes]:
        out = src.datagrams_to_send(now)
        for data, _ in out:
            dst.receive_datagram(data, addr, now)
        return [d.split(b"\r\n", 1)[0] for d, _ in out]

    device.register(REGISTRAR, P_ADDR, 0.0)
    deliver(device, platform, D_ADDR, 0.0)
    assert deliver(platform, device, P_ADDR, 0.0) == [b"SIP/2.0 401 Unauthorized"]
    # The credentials for that nonce reach the platform after it expired: 401 with stale=true ...
    deliver(device, platform, D_ADDR, 20.0)
    out = platform.datagrams_to_send(20.0)
    assert parse_challenge(parse_message(out[0][0]).headers["WWW-Authenticate"]).stale
    for data, _ in out:
        device.receive_datagram(data, P_ADDR, 20.0)
    # ... which the device answers once more, although it had already answered a challenge.
    deliver(device, platform, D_ADDR, 20.0)
    event = platform.next_event()
    assert isinstance(event, RequestReceived)
    assert event.username == DEVICE_ID


def test_retransmission_over_lossy_link() -> None:
    net = Net(make_platform(), make_device())
    net.handlers["platform"] = accept_register
    dropped: list[bytes] = []

    def drop_first_two(data: bytes) -> bool:
        if len(dropped) < 2 and data.startswith(b"REGISTER"):
            dropped.append(data)
            return True
        return False

    net.drop = drop_first_two
    net.device.register(REGISTRAR, P_ADDR, 0.0)
    net.advance(5.0)
    assert len(dropped) == 2
    assert [e.response.status_code for e in net.of("device", ResponseReceived)] == [200]  # type: ignore[attr-defined]
    # Timer E fired at 0.5 and 1.5: the third REGISTER got through.
    assert net.sent("device")[:3] == [b"REGISTER sip:34020000002000000001@3402000000 SIP/2.0"] * 3


def test_request_retransmission_absorbed_and_response_resent() -> None:
    net = Net(make_platform(), make_device())
    net.handlers["platform"] = answer_all
    request = net.device.message(REGISTRAR, P_ADDR, 0.0, b"<Notify/>")
    net.run(0.0)
    net.platform.receive_datagram(request.serialize(), D_ADDR, 0.2)  # a retransmission
    out = net.platform.datagrams_to_send(0.2)
    assert [d.split(b"\r\n", 1)[0] for d, _ in out] == [b"SIP/2.0 200 OK"]
    assert len(net.of("platform", RequestReceived)) == 1


def test_timeout_without_peer() -> None:
    device = make_device()
    device.message(REGISTRAR, P_ADDR, 0.0, b"<Notify/>")
    assert len(device.datagrams_to_send(0.0)) == 1
    sends = 0
    now = 0.0
    while (t := device.get_timer()) is not None:
        now = t
        device.handle_timer(now)
        sends += len(device.datagrams_to_send(now))
    assert now == 32.0
    assert sends == 10  # 10 retransmissions after the first send
    event = device.next_event()
    assert isinstance(event, TransactionTimedOut)
    assert event.client


def test_invite_ack_info_bye() -> None:
    net = Net(make_platform(), make_device())
    net.handlers["device"] = answer_all
    sdp = b"v=0\r\ns=Play\r\ny=0100000001\r\n"
    invite = net.platform.invite(f"sip:{DEVICE_ID}@3402000000", D_ADDR, 0.0, body=sdp)
    net.run(0.0)
    statuses = [e.response.status_code for e in net.of("platform", ResponseReceived)]  # type: ignore[attr-defined]
    assert statuses == [100, 200]
    ok = net.of("platform", ResponseReceived)[-1]
    assert isinstance(ok, ResponseReceived)
    dialog = ok.dialog
    assert dialog is not None
    assert dialog.call_id == invite.call_id
    assert dialog.remote_target == f"sip:{DEVICE_ID}@{D_ADDR[0]}:{D_ADDR[1]}"
    (ack,) = net.of("device", AckReceived)
    assert isinstance(ack, AckReceived)
    assert ack.request.cseq.seq == invite.cseq.seq
    assert ack.request.via.branch != invite.via.branch
    assert ack.dialog is not None
    device_dialog = ack.dialog
    assert device_dialog.id == (dialog.call_id, dialog.remote_tag, dialog.local_tag)
    # INFO (GB28181 playback control) in the dialog.
    info = net.platform.info(dialog, 1.0, b"PLAY RTSP/1.0\r\nCSeq: 1\r\nScale: 2.0\r\n")
    net.run(1.0)
    assert info.cseq.seq == invite.cseq.seq + 1
    got_info = net.of("device", RequestReceived)[-1]
    assert isinstance(got_info, RequestReceived)
    assert got_info.dialog is device_dialog
    assert got_info.request.content_type == "Application/MANSRTSP"
    # The device hangs up.
    net.device.bye(device_dialog, 2.0)
    net.handlers["platform"] = answer_all
    net.run(2.0)
    assert device_dialog.state is DialogState.TERMINATED
    assert dialog.state is DialogState.TERMINATED
    assert net.platform.dialogs == []
    assert net.device.dialogs == []
    net.advance(100.0, start=2.0)
    assert net.platform.statistics().transactions == 0
    assert net.device.statistics().transactions == 0
    assert net.of("platform", TransactionTimedOut) == []


def test_invite_2xx_retransmission_reacked() -> None:
    net = Net(make_platform(), make_device())
    net.handlers["device"] = answer_all
    acks: list[bytes] = []

    def drop_first_ack(data: bytes) -> bool:
        if data.startswith(b"ACK") and not acks:
            acks.append(data)
            return True
        return False

    net.drop = drop_first_ack
    net.platform.invite(f"sip:{DEVICE_ID}@3402000000", D_ADDR, 0.0, body=b"v=0\r\n")
    net.advance(1.0)
    # The device re-sent its 2xx at T1; the platform answered with the same ACK again, which got through.
    assert net.sent("device").count(b"SIP/2.0 200 OK") == 2
    assert len(net.of("device", AckReceived)) == 1
    oks = [e for e in net.of("platform", ResponseReceived) if e.response.status_code == 200]  # type: ignore[attr-defined]
    assert len(oks) == 2  # the TU sees the retransmission too (RFC 6026), on the same dialog
    assert oks[0].dialog is oks[1].dialog  # type: ignore[attr-defined]


def test_invite_rejected_gets_ack() -> None:
    net = Net(make_platform(), make_device())

    def busy(ua: SipUserAgent, event: SipEvent, now: float) -> None:
        if isinstance(event, RequestReceived):
            ua.respond(event.request, 486, now)

    net.handlers["device"] = busy
    net.platform.invite(f"sip:{DEVICE_ID}@3402000000", D_ADDR, 0.0, body=b"v=0\r\n")
    net.advance(100.0)
    assert [e.response.status_code for e in net.of("platform", ResponseReceived)] == [100, 486]  # type: ignore[attr-defined]
    assert net.sent("platform")[-1].startswith(b"ACK")
    assert net.platform.dialogs == []
    assert net.of("device", TransactionTimedOut) == []
    assert net.device.statistics().transactions == 0


def test_in_dialog_request_for_unknown_dialog_481_and_cseq_order_500() -> None:
    net = Net(make_platform(), make_device())
    net.handlers["device"] = answer_all
    net.platform.invite(f"sip:{DEVICE_ID}@3402000000", D_ADDR, 0.0, body=b"v=0\r\n")
    net.run(0.0)
    dialog = net.platform.dialogs[0]
    bye = net.platform.bye(dialog, 1.0)
    net.platform.datagrams_to_send(1.0)  # lost
    stray = SipRequest(method=bye.method, uri=bye.uri, headers=bye.headers.with_replaced("Call-ID", "nope"))
    net.device.receive_datagram(stray.serialize(), P_ADDR, 1.0)
    (resp, _) = net.device.datagrams_to_send(1.0)[0]
    assert resp.startswith(b"SIP/2.0 481")
    old = SipRequest(
        method="INFO",
        uri=bye.uri,
        headers=bye.headers.with_replaced("CSeq", "1 INFO").with_replaced(
            "Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKold"
        ),
    )
    net.device.receive_datagram(old.serialize(), P_ADDR, 1.1)
    (resp, _) = net.device.datagrams_to_send(1.1)[0]
    assert resp.startswith(b"SIP/2.0 500")


def test_message_and_subscribe_notify() -> None:
    net = Net(make_platform(), make_device())
    net.handlers["device"] = answer_all
    body = b'<?xml version="1.0"?><Query><CmdType>Catalog</CmdType><SN>1</SN></Query>'
    net.platform.message(f"sip:{DEVICE_ID}@3402000000", D_ADDR, 0.0, body)
    net.run(0.0)
    got = net.of("device", RequestReceived)[0]
    assert isinstance(got, RequestReceived)
    assert got.request.body == body
    assert got.request.content_type == "Application/MANSCDP+xml"
    assert got.dialog is None
    sub = net.platform.subscribe(f"sip:{DEVICE_ID}@3402000000", D_ADDR, 1.0, event="Catalog", body=body)
    net.run(1.0)
    ok = net.of("platform", ResponseReceived)[-1]
    assert isinstance(ok, ResponseReceived)
    assert ok.request is sub or ok.request.call_id == sub.call_id
    assert ok.dialog is not None
    notifier = net.device.dialogs[0]
    net.handlers["platform"] = answer_all
    net.device.notify(notifier, 2.0, event="Catalog", body=b"<Notify/>", content_type="Application/MANSCDP+xml")
    net.run(2.0)
    notify = net.of("platform", RequestReceived)[-1]
    assert isinstance(notify, RequestReceived)
    assert notify.request.method == "NOTIFY"
    assert notify.dialog is ok.dialog
    assert notify.request.headers["Subscription-State"] == "active"


def test_notify_before_subscribe_2xx_creates_dialog() -> None:
    platform, device = make_platform(), make_device()
    sub = platform.subscribe(f"sip:{DEVICE_ID}@3402000000", D_ADDR, 0.0, event="Catalog")
    platform.datagrams_to_send(0.0)
    device.receive_datagram(sub.serialize(), P_ADDR, 0.0)
    event = device.next_event()
    assert isinstance(event, RequestReceived)
    ok = device.respond(event.request, 200, 0.0)
    device.datagrams_to_send(0.0)  # the 200 is "delayed": NOTIFY first
    device.notify(device.dialogs[0], 0.1, event="Catalog")
    for data, _ in device.datagrams_to_send(0.1):
        platform.receive_datagram(data, D_ADDR, 0.1)
    notify = platform.next_event()
    assert isinstance(notify, RequestReceived)
    assert notify.dialog is not None
    platform.receive_datagram(ok.serialize(), D_ADDR, 0.2)
    late = platform.next_event()
    assert isinstance(late, ResponseReceived)
    assert late.dialog is notify.dialog


def test_malformed_requests_answered_400_and_counted() -> None:
    platform = make_platform()
    bad = (
        b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKx\r\nFrom: <sip:d@b>;tag=1\r\n"
        b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 99\r\n\r\nshort"
    )
    platform.receive_datagram(bad, D_ADDR, 0.0)
    ((resp, addr),) = platform.datagrams_to_send(0.0)
    assert resp.startswith(b"SIP/2.0 400")
    assert addr == D_ADDR
    platform.receive_datagram(b"garbage\r\n\r\n", D_ADDR, 0.0)
    platform.receive_datagram(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", D_ADDR, 0.0)  # no Via
    platform.receive_datagram(b"\r\n\r\n", D_ADDR, 0.0)  # keepalive
    assert platform.datagrams_to_send(0.0) == []
    stats = platform.statistics()
    assert stats.malformed == 3


def test_via_received_and_rport_filled() -> None:
    platform = make_platform()
    device = make_device()
    request = device.message(REGISTRAR, P_ADDR, 0.0, b"x")
    platform.receive_datagram(request.serialize(), ("192.0.2.99", 40000), 0.0)
    event = platform.next_event()
    assert isinstance(event, RequestReceived)
    response = platform.respond(event.request, 200, 0.0)
    via = parse_message(response.serialize()).via
    assert via.received == "192.0.2.99"
    assert via.rport == 40000
    ((_, addr),) = platform.datagrams_to_send(0.0)
    assert addr == ("192.0.2.99", 40000)


def test_respond_errors() -> None:
    platform = make_platform()
    device = make_device()
    request = device.message(REGISTRAR, P_ADDR, 0.0, b"x")
    with pytest.raises(LocalProtocolError):
        platform.respond(request, 200, 0.0)  # never received
    platform.receive_datagram(request.serialize(), D_ADDR, 0.0)
    event = platform.next_event()
    assert isinstance(event, RequestReceived)
    platform.respond(event.request, 200, 0.0)
    with pytest.raises(LocalProtocolError):
        platform.respond(event.request, 200, 0.0)  # answered twice
    with pytest.raises(LocalProtocolError):
        device.request("ACK", REGISTRAR, P_ADDR, 0.0)
    with pytest.raises(LocalProtocolError):
        SipUserAgent(user="a", host="h", port=1, rng=random.Random(0), lookup=PASSWORDS.get)


def test_tcp_stream_broken_raises_and_fails_transactions() -> None:
    device = make_device(transport="TCP")
    device.message(REGISTRAR, P_ADDR, 0.0, b"x")
    device.datagrams_to_send(0.0)
    with pytest.raises(Exception, match="Content-Length"):
        device.receive_data(b"SIP/2.0 200 OK\r\nCSeq: 1 MESSAGE\r\n\r\n", P_ADDR, 0.1)
    event = device.next_event()
    assert isinstance(event, TransactionTimedOut)


def test_identifiers_from_injected_rng() -> None:
    a = make_device().message(REGISTRAR, P_ADDR, 0.0, b"x")
    b = make_device().message(REGISTRAR, P_ADDR, 0.0, b"x")
    assert a.serialize() == b.serialize()  # same seed, same bytes
    assert a.via.branch.startswith("z9hG4bK")  # type: ignore[union-attr]
    assert a.from_.tag
    assert a.call_id.endswith("@10.0.0.2")
