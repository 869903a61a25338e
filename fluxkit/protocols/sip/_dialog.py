"""SIP dialogs (RFC 3261 §12): identity, sequence numbers, route set and remote target; in-dialog requests.

Strategy: a `Dialog` is a plain mutable record owned by the user agent, created from the request and the 2xx
that establish it (INVITE, SUBSCRIBE; a NOTIFY arriving before the SUBSCRIBE's 2xx, RFC 6665 §4.1.2.4) by
`Dialog.from_uac` / `Dialog.from_uas`. `build_request` applies §12.2.1.1: Request-URI and Route from the route
set (loose routing when the first route has `lr`, strict routing otherwise), CSeq one above the last local one
(ACK reuses the INVITE's, §13.2.2.4), From/To with the tags. Early dialogs (from 1xx with a tag) are not kept:
fluxkit's peers (GB28181 devices and platforms) do not fork.
"""

from __future__ import annotations

import enum

from fluxkit.errors import LocalProtocolError

from ._headers import Headers
from ._message import NameAddress, SipRequest, SipResponse

__all__ = ["Dialog", "DialogState"]

Addr = tuple[str, int]


class DialogState(enum.Enum):
    """RFC 3261 §12: fluxkit keeps confirmed dialogs only (see the module docstring)."""

    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def _strip_tag(value: str) -> str:
    addr = NameAddress.parse(value)
    return NameAddress(
        display_name=addr.display_name, uri=addr.uri, params=tuple(p for p in addr.params if p[0] != "tag")
    ).serialize()


class Dialog:
    """One dialog. Attributes are public and mutable for the user agent; treat them as read-only elsewhere.

    Attributes:
        call_id, local_tag, remote_tag: the dialog ID (RFC 3261 §12).
        local_uri, remote_uri: the From/To name-addrs without tags.
        local_seq: last CSeq number we sent (None before any); remote_seq: last one received.
        remote_target: the peer's Contact URI (where in-dialog requests go).
        route_set: Route values in the order they go in requests.
        remote_addr: transport address of the peer (where the dialog's messages were received from).
        is_uac: we sent the request that created it.
        method: the creating method (INVITE or SUBSCRIBE).
        invite_seq: CSeq number of the last INVITE (for its ACK).
    """

    def __init__(
        self,
        *,
        call_id: str,
        local_tag: str,
        remote_tag: str,
        local_uri: str,
        remote_uri: str,
        local_seq: int | None,
        remote_seq: int | None,
        remote_target: str,
        route_set: list[str],
        remote_addr: Addr,
        is_uac: bool,
        method: str,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set = route_set
        self.remote_addr = remote_addr
        self.is_uac = is_uac
        self.method = method
        self.invite_seq: int | None = None
        self.state = DialogState.CONFIRMED

    def __repr__(self) -> str:
        return f"<Dialog {self.call_id} {self.local_tag}/{self.remote_tag} {self.state.name}>"

    @property
    def id(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag)."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, request: SipRequest, response: SipResponse, remote_addr: Addr) -> Dialog:
        """The dialog our request created, from its 2xx (RFC 3261 §12.1.2). ParseError if the 2xx lacks a tag."""
        contact = response.contact
        remote_tag = response.to.tag
        if remote_tag is None:
            remote_tag = ""  # RFC 2543 peers; tolerated (§12.1.2: a null tag)
        dialog = cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=remote_tag,
            local_uri=_strip_tag(request.headers["From"]),
            remote_uri=_strip_tag(request.headers["To"]),
            local_seq=request.cseq.seq,
            remote_seq=None,
            remote_target=contact.uri if contact is not None else request.uri,
            route_set=list(reversed(response.record_routes)),
            remote_addr=remote_addr,
            is_uac=True,
            method=request.method,
        )
        if request.method == "INVITE":
            dialog.invite_seq = request.cseq.seq
        return dialog

    @classmethod
    def from_uas(cls, request: SipRequest, local_tag: str, remote_addr: Addr) -> Dialog:
        """The dialog a received request creates when we answer it with a 2xx (RFC 3261 §12.1.1)."""
        contact = request.contact
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_strip_tag(request.headers["To"]),
            remote_uri=_strip_tag(request.headers["From"]),
            local_seq=None,
            remote_seq=request.cseq.seq,
            remote_target=contact.uri if contact is not None else request.from_.uri,
            route_set=list(request.record_routes),
            remote_addr=remote_addr,
            is_uac=False,
            method=request.method,
        )

    def next_seq(self, rng_seq: int) -> int:
        """The CSeq number for the next request (`rng_seq` starts a UAS dialog's count, §12.2.1.1)."""
        self.local_seq = rng_seq if self.local_seq is None else self.local_seq + 1
        return self.local_seq

    def build_request(
        self,
        method: str,
        *,
        via: str,
        contact: str | None,
        cseq: int,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """An in-dialog request (RFC 3261 §12.2.1.1) with the given top Via and CSeq number."""
        if self.state is DialogState.TERMINATED and method not in ("ACK", "BYE"):
            raise LocalProtocolError(f"cannot send {method} in a terminated dialog")
        routes = self.route_set
        uri = self.remote_target
        route_values = list(routes)
        if routes:
            first = NameAddress.parse(routes[0])
            if ";lr" not in first.uri.lower():
                # Strict routing (RFC 3261 §12.2.1.1): the first route becomes the Request-URI and the remote
                # target goes last in Route.
                uri = first.uri
                route_values = [*routes[1:], f"<{self.remote_target}>"]
        fields: list[tuple[str, str]] = [("Via", via)]
        fields.extend(("Route", r) for r in route_values)
        fields.append(("Max-Forwards", "70"))
        fields.append(("From", f"{self.local_uri};tag={self.local_tag}"))
        fields.append(("To", f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri))
        fields.append(("Call-ID", self.call_id))
        fields.append(("CSeq", f"{cseq} {method}"))
        if contact is not None and method in ("INVITE", "SUBSCRIBE", "NOTIFY", "UPDATE", "REFER"):
            fields.append(("Contact", contact))  # target-refresh requests carry a Contact (§12.2.1.1)
        fields.extend(headers)
        if content_type is not None:
            fields.append(("Content-Type", content_type))
        return SipRequest(method=method, uri=uri, headers=Headers(fields), body=body)
