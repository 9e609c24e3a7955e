"""Hardened XML parsing: the one way lxcvirt reads XML (domain definitions, libvirt's
capabilities, its own metadata).

No DTD is loaded, no entity is resolved, nothing is fetched from the network, huge trees
are refused; a document with a DOCTYPE or an entity declaration is refused before the
parser sees it (XXE, billion laughs).  A leaf: it imports nothing of lxcvirt's but the
errors and the size cap.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from lxml import etree

from ._files import MAX_BYTES
from .errors import XMLError

MAX_XML_BYTES = MAX_BYTES

#: The XML declaration at the very start of a document (after a BOM).
_DECLARATION = re.compile(r"\A<\?xml\b[^>]*\?>")
_DECLARED_ENCODING = re.compile(rb"""\A<\?xml\b[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
#: Deeper than any domain XML: libxml2 would go to 256 levels by itself.
MAX_DEPTH = 64


def decode_xml(data: bytes, source: str = "<xml>") -> str:
    """The text of an XML document given as bytes, decoded as XML says: by its byte-order
    mark, else by its declaration's ``encoding``, else UTF-8 (and UTF-16 without a mark
    when the first character shows it).  Every check then sees the same text the parser
    does.  :class:`XMLError` for bytes that are not valid in that encoding."""
    encoding = "utf-8"
    body = data
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding, body = name, data[len(bom):]
            break
    else:
        if data[:2] == b"<\0":
            encoding = "utf-16-le"
        elif data[:2] == b"\0<":
            encoding = "utf-16-be"
        else:
            declared = _DECLARED_ENCODING.match(data.lstrip()[:200])
            if declared:
                encoding = declared.group(1).decode("ascii")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise XMLError(f"{source}: unknown encoding {encoding!r} in the XML declaration "
                       "(use UTF-8)") from None
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise XMLError(f"{source}:{line}: not valid {encoding} (byte {body[exc.start]:#04x}); "
                       "save the file as UTF-8") from None


def _undeclared(text: str) -> str:
    """``text`` without a leading BOM and XML declaration: it is decoded already, and lxml
    refuses text that still declares an encoding."""
    text = text.removeprefix("\ufeff")
    return _DECLARATION.sub("", text, count=1)


def hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


def xml_text(data: str | bytes, source: str = "<xml>") -> str:
    """The document as text, decoded (see :func:`decode_xml`) and without its declaration:
    what lxcvirt checks is what it hands to libvirt."""
    if isinstance(data, bytes):
        if len(data) > MAX_XML_BYTES:
            raise XMLError(f"{source}: larger than {MAX_XML_BYTES // 1024} KiB; "
                           "not a domain XML file")
        data = decode_xml(data, source)
    elif len(data) > MAX_XML_BYTES:
        raise XMLError(f"{source}: larger than {MAX_XML_BYTES // 1024} KiB; not a domain XML file")
    return _undeclared(data)


def parse_xml(data: str | bytes, source: str = "<xml>") -> Any:
    """Parse XML safely; return the root element.  Raises :class:`XMLError`.

    A document type declaration (and so any entity declaration) is refused: it is seen by
    the parser itself, after decoding, so text that merely looks like one (inside CDATA or
    a comment) is text, and no encoding hides one.
    """
    text = xml_text(data, source)
    at = _prolog_doctype(text)
    if at is not None:
        raise _doctype_error(source, text, at)
    try:
        root = etree.fromstring(text, hardened_parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 1
        raise XMLError(f"{source}:{line}: not well-formed XML: {exc.msg}") from exc
    except ValueError as exc:  # e.g. text lxml cannot take at all
        raise XMLError(f"{source}: not XML: {exc}") from exc
    if root is None:
        raise XMLError(f"{source}: empty document")
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.system_url or info.public_id:
        raise _doctype_error(source, text, max(text.find("<!DOCTYPE"), 0))
    depth = _depth(root)
    if depth > MAX_DEPTH:
        raise XMLError(f"{source}: elements nested {depth} deep; a domain XML is never "
                       f"deeper than {MAX_DEPTH}")
    return root


_PROLOG_ITEM = re.compile(r"\s+|<!--.*?-->|<\?.*?\?>", re.S)


def _prolog_doctype(text: str) -> int | None:
    """Where a document type declaration starts, or None: it can only stand in the
    prolog (before the root element, among comments and processing instructions), so
    "<!DOCTYPE" inside CDATA or a comment further on is text."""
    pos = 0
    while True:
        m = _PROLOG_ITEM.match(text, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
    return pos if text.startswith("<!DOCTYPE", pos) else None


def _doctype_error(source: str, text: str, at: int) -> XMLError:
    line = text.count("\n", 0, at) + 1
    return XMLError(f"{source}:{line}: <!DOCTYPE> is not allowed "
                    "(lxcvirt refuses DTDs and entity declarations; remove it)")


def _depth(root: Any) -> int:
    deepest = 0
    stack = [(root, 1)]
    while stack:
        el, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in el)
    return deepest
