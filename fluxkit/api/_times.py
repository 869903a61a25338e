"""RFC 3339 timestamps for the API: strict parsing of query parameters, and the `...Z` form every response uses.

Strategy: a regular expression accepts exactly RFC 3339 §5.6 `date-time` (an offset is required; `T`/`Z` in either
case; fractional seconds cut to microseconds) and the fields are then checked by `datetime` itself, so any
failure is one `ValueError` with a message the API returns as a 400.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["format_time", "parse_time"]

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_time(text: str, *, name: str = "time") -> dt.datetime:
    """An aware UTC datetime from an RFC 3339 `date-time` such as `2026-02-11T10:00:00Z`.

    Raises:
        ValueError: anything else (no offset, a date alone, out-of-range fields, leap second 60).
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{name} must be an RFC 3339 time such as 2026-02-11T10:00:00Z, not {text[:64]!r}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        offset = dt.timedelta(0)
        if not zulu:
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError("offset out of range")
            offset = dt.timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
        when = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=dt.timezone(offset),
        )
        return when.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{name} is not a valid time ({exc}): {text[:64]!r}") from None


def format_time(when: dt.datetime) -> str:
    """`2026-02-11T10:00:00Z`, with `.ffffff` (trailing zeros dropped) only when there are fractional seconds."""
    utc = when.astimezone(dt.UTC) if when.tzinfo is not None else when
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"
