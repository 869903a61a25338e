"""Safe, tolerant XML decoding for MANSCDP bodies (GB/T 28181-2016 6.10 charset, Appendix A XML).

Strategy, in order, so that no untrusted byte reaches expat before the cheap checks pass:

1. Size: a body over `max_size` bytes is refused before anything else.
2. Charset: a per-device override wins; otherwise UTF-8 when the XML declaration says so, else GB18030 (a superset
   of GB2312 and GBK: 6.10 says signalling "should" be GB2312, and rare characters such as 萳 need GB18030). The
   declaration may disagree with the bytes (the reference's field notes), so a body declared UTF-8 that is not
   valid UTF-8 is read as GB18030, and a body declared GB* whose non-ASCII bytes are valid UTF-8 *and* decode to
   CJK-range text only is read as UTF-8. Short GB2312 text is often valid UTF-8 by accident ("片" is C6 AC, which
   is UTF-8 for "Ƭ"), but then it decodes to two-byte sequences (U+0080..U+07FF: Latin, Greek, Cyrillic...),
   which a Chinese device's UTF-8 never holds: Chinese in UTF-8 is all three-byte sequences. Undecodable bytes
   become U+FFFD rather than failing the message.
3. Safety: the declaration is cut off, then any `<!` markup other than a comment or CDATA section is refused:
   no DOCTYPE, no ENTITY, hence no entity expansion at all (billion laughs, external entities).
4. Parse with xml.etree (expat, C). Only when that fails is the text repaired and parsed once more: Hikvision
   sends a bare `&` and a `<` inside `<Address>` (wvp's getRootElement works around the same), and some devices
   put control characters in names. The common, well-formed case pays nothing for the repairs.
5. Depth: the element tree may not be deeper than `max_depth` (MANSCDP needs 5: root, list, Item, Info, leaf).

Every failure is a ParseError.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = ["DEFAULT_MAX_BODY_SIZE", "DEFAULT_MAX_DEPTH", "decode_xml", "escape_text", "flatten", "python_codec"]

#: Largest MANSCDP body accepted (bytes). A 10000-item Catalog part (the Appendix N ceiling) is about 6 MB, but
#: real devices split far smaller; 4 MiB bounds memory while leaving room.
DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
#: Deepest element nesting accepted (MANSCDP uses 5 levels).
DEFAULT_MAX_DEPTH = 16

_PROLOG = re.compile(r"\A\s*<\?xml\b[^>]*?\?>")
_PROLOG_ENCODING = re.compile(rb"\A\s*<\?xml\b[^>]*?\bencoding\s*=\s*[\"']([A-Za-z0-9._:-]{1,40})[\"']")
_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)")
_STRAY_LT = re.compile(r"<(?![A-Za-z_/?!])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Free-text elements in which devices send raw markup characters (Hikvision <Address>).
_FREE_TEXT = re.compile(
    r"<(Address|Name|DeviceName|Owner|Manufacturer|Model|Firmware|Block|FilePath|AlarmDescription|Reason)>"
    r"(.*?)</\1>",
    re.DOTALL,
)
_UTF8_NAMES = frozenset({"utf-8", "utf8", "utf_8"})
#: Characters UTF-8 encodes in two bytes: GB2312 text misread as UTF-8 lands here.
_TWO_BYTE_UTF8 = re.compile("[\u0080-\u07ff]")
_CODECS = {"gb2312": "gb18030", "gbk": "gb18030", "gb18030": "gb18030", "cp936": "gb18030"}


def python_codec(charset: str) -> str:
    """The Python codec for a charset label; GB2312/GBK are read as their superset GB18030."""
    return _CODECS.get(charset.lower(), charset.lower())


def _decode(data: bytes, charset: str | None) -> tuple[str, str]:
    if charset is not None:
        codec = python_codec(charset)
        try:
            return data.decode(codec, errors="replace"), charset
        except LookupError:
            raise LocalProtocolError(f"unknown charset override {charset!r}") from None
    match = _PROLOG_ENCODING.match(data)
    declared = match.group(1).decode("ascii").lower() if match else None
    label = "UTF-8" if declared in _UTF8_NAMES else "GB18030"
    if not data.isascii():
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            label = "GB18030"
        else:
            # Declared UTF-8, or GB* bytes that are UTF-8 of plausible text (see the module docstring).
            if label == "UTF-8" or not _TWO_BYTE_UTF8.search(text):
                return text, "UTF-8"
    return data.decode("gb18030", errors="replace"), label


def _repair_free_text(match: re.Match[str]) -> str:
    tag, inner = match.group(1), match.group(2)
    if "<" not in inner and ">" not in inner:
        return match.group(0)
    return f"<{tag}>{inner.replace('<', '&lt;').replace('>', '&gt;')}</{tag}>"


def _repair(text: str) -> str:
    text = _CONTROL.sub("", text)
    text = _BARE_AMP.sub("&amp;", text)
    text = _FREE_TEXT.sub(_repair_free_text, text)
    return _STRAY_LT.sub("&lt;", text)


def _fromstring(text: str) -> ET.Element:
    parser = ET.XMLParser()
    parser.feed(text)
    return parser.close()


def _check_depth(root: ET.Element, max_depth: int) -> None:
    level = [root]
    for _ in range(max_depth):
        level = [child for element in level for child in element]
        if not level:
            return
    raise ParseError(f"MANSCDP XML nests deeper than {max_depth} elements")


def decode_xml(
    data: bytes,
    *,
    charset: str | None = None,
    max_size: int = DEFAULT_MAX_BODY_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[ET.Element, str]:
    """Decode and parse a MANSCDP body; returns the root element and the charset used.

    Raises:
        ParseError: oversize, DOCTYPE/ENTITY markup, XML that stays malformed after the repairs, or too deep.
        LocalProtocolError: an unknown charset override.
    """
    if len(data) > max_size:
        raise ParseError(f"MANSCDP body of {len(data)} bytes exceeds {max_size}")
    text, used = _decode(data, charset)
    match = _PROLOG.match(text)
    if match:
        text = text[match.end() :]
    start = text.find("<!")
    while start >= 0:
        if not (text.startswith("<!--", start) or text.startswith("<![CDATA[", start)):
            raise ParseError("MANSCDP XML with DOCTYPE/ENTITY declarations is refused", offset=start)
        start = text.find("<!", start + 2)
    try:
        root = _fromstring(text)
    except ET.ParseError:
        try:
            root = _fromstring(_repair(text))
        except ET.ParseError as exc:
            raise ParseError(f"malformed MANSCDP XML: {exc}") from None
    _check_depth(root, max_depth)
    if root.tag.startswith("{"):  # a namespace some devices add: MANSCDP elements are matched by local name
        for element in root.iter():
            element.tag = element.tag.rpartition("}")[2]
    return root, used


def flatten(element: ET.Element, prefix: str = "") -> list[tuple[str, str]]:
    """Leaf texts under `element` as (path, text), the path joined with "/" and starting at `element` itself."""
    path = prefix + element.tag
    if len(element) == 0:
        return [(path, (element.text or "").strip())]
    out: list[tuple[str, str]] = []
    for child in element:
        out += flatten(child, path + "/")
    return out


_INVALID_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape_text(text: str) -> str:
    """Escape character data; LocalProtocolError for characters XML 1.0 cannot carry."""
    if _INVALID_XML.search(text):
        raise LocalProtocolError(f"MANSCDP text {text!r} holds a character XML cannot carry")
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text
