"""SIP header names and the case-insensitive, order-keeping, immutable multi-dict of a message (RFC 3261 §7.3).

Strategy: `Headers` holds the fields as one tuple of `(name, value)` pairs, in wire order, plus a dict from the
lower-case name to the indices of its fields, built once. Names are canonicalised when the pairs are made (compact
forms expanded, RFC 3261 §7.3.3 and the IANA registry; known names spelt as the RFCs spell them), so lookups are
one dict probe and serialization writes full names. A repeated header stays repeated and a comma-joined one stays
joined; `get_list` splits comma-separated values (outside quotes and angle brackets, RFC 3261 §7.3.1) for callers
that want one element per value (Via, Route, Record-Route, Contact...).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fluxkit.errors import LocalProtocolError

__all__ = ["COMPACT_FORMS", "Headers", "canonical_name", "split_comma_list"]

#: RFC 3261 §7.3.3 and later RFCs (IANA "Header Fields" registry): compact form -> full name.
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN = [
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Language",
    "CSeq",
    "Date",
    "Error-Info",
    "Expires",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Organization",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "Record-Route",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Subscription-State",
    "Timestamp",
    "Unsupported",
    "User-Agent",
    "Warning",
    "WWW-Authenticate",
    "RAck",
    "RSeq",
    "Min-SE",
    "Path",
    "P-Asserted-Identity",
    "Privacy",
    "Replaces",
    "SIP-ETag",
    "SIP-If-Match",
    *COMPACT_FORMS.values(),
]

# lower-case spelling (and compact form) -> canonical spelling
_CANONICAL = {name.lower(): name for name in _KNOWN}
_CANONICAL.update(COMPACT_FORMS)
_CANONICAL_GET = _CANONICAL.get
# Names as they are usually sent (canonical spelling, or a compact form) -> canonical; the parser's fast path.
_FAST_NAMES = {name: name for name in _KNOWN}
_FAST_NAMES.update(COMPACT_FORMS)
_FAST_NAMES.update({name.lower(): name for name in _KNOWN if name.lower() not in COMPACT_FORMS})


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name: compact forms expanded, known names as the RFCs spell them."""
    return _CANONICAL_GET(name.lower(), name)


def split_comma_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes or `<...>` (RFC 3261 §7.3.1)."""
    if "," not in value:
        return [value]
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    parts: list[str] = []
    start = 0
    in_quote = in_angle = escaped = False
    for i, ch in enumerate(value):  # only reached for values holding both a comma and a quote/angle bracket
        if escaped:
            escaped = False
        elif in_quote:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif in_angle:
            in_angle = ch != ">"
        elif ch == "<":
            in_angle = True
        elif ch == ",":
            part = value[start:i].strip()
            if part:
                parts.append(part)
            start = i + 1
    last = value[start:].strip()
    if last:
        parts.append(last)
    return parts


def _check_field(name: str, value: str) -> None:
    if not name or any(c in name for c in " \t\r\n:") or "\r" in value or "\n" in value:
        raise LocalProtocolError(f"invalid header field {name!r}: {value!r}")


class Headers:
    """Immutable, case-insensitive multi-dict of header fields in wire order.

    Construct from `(name, value)` pairs (names canonicalised, CR/LF refused), or from already-canonical pairs
    with `Headers._trusted` (the parser). Equality is by the ordered pairs.
    """

    __slots__ = ("_fields", "_index_cache")

    _fields: tuple[tuple[str, str], ...]
    _index_cache: dict[str, list[int]] | None

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        pairs = []
        for name, value in fields:
            _check_field(name, value)
            pairs.append((canonical_name(name), value))
        self._fields = tuple(pairs)
        self._index_cache = None

    @property
    def _index(self) -> dict[str, list[int]]:
        # Built on first lookup: a parsed message whose headers are never looked up pays nothing for it.
        index = self._index_cache
        if index is None:
            index = {}
            for i, (name, _) in enumerate(self._fields):
                key = name.lower()
                slot = index.get(key)
                if slot is None:
                    index[key] = [i]
                else:
                    slot.append(i)
            self._index_cache = index
        return index

    @classmethod
    def _trusted(cls, fields: tuple[tuple[str, str], ...]) -> Headers:
        """Wrap already canonical, already checked pairs (the parser's output) without re-checking them."""
        self = cls.__new__(cls)
        self._fields = fields
        self._index_cache = None
        return self

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        """All `(name, value)` pairs in wire order."""
        return self._fields

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header (compact or full name, any case), or `default`."""
        slot = self._index.get(name.lower()) or self._index.get(canonical_name(name).lower())
        return self._fields[slot[0]][1] if slot else default

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, one per header line, in order."""
        slot = self._index.get(canonical_name(name).lower())
        return [self._fields[i][1] for i in slot] if slot else []

    def get_list(self, name: str) -> list[str]:
        """Every comma-separated element of every line of a header, in order (for Via, Route, Contact...)."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(split_comma_list(value))
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_name(name).lower() in self._index

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._fields == other._fields
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields)

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)!r})"

    def with_added(self, name: str, value: str) -> Headers:
        """A copy with one more field at the end."""
        return Headers((*self._fields, (name, value)))

    def with_prepended(self, name: str, value: str) -> Headers:
        """A copy with one more field first (a new top Via, for instance)."""
        return Headers(((name, value), *self._fields))

    def without(self, name: str) -> Headers:
        """A copy without any field of that name."""
        key = canonical_name(name).lower()
        return Headers(f for f in self._fields if f[0].lower() != key)

    def with_replaced(self, name: str, value: str) -> Headers:
        """A copy where the first field of that name holds `value` and later ones are gone (appended if absent)."""
        key = canonical_name(name).lower()
        out: list[tuple[str, str]] = []
        done = False
        for field in self._fields:
            if field[0].lower() == key:
                if not done:
                    out.append((field[0], value))
                    done = True
            else:
                out.append(field)
        if not done:
            out.append((name, value))
        return Headers(out)
