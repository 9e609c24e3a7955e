"""Hardened XML parsing: the one way lxcvirt reads XML (domain definitions, libvirt's
capabilities, its own metadata).

No DTD is loaded, no entity is resolved, nothing is fetched from the network, huge trees
are refused; a document with a DOCTYPE or an entity declaration is refused before the
parser sees it (XXE, billion laughs).  A leaf: it imports nothing of lxcvirt's but the
errors and the size cap.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from ._files import MAX_BYTES
from .errors import XMLError

MAX_XML_BYTES = MAX_BYTES

_DTD_MARKERS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


def parse_xml(data: str | bytes, source: str = "<xml>") -> Any:
    """Parse XML text safely; return the root element.  Raises :class:`XMLError`."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_XML_BYTES:
        raise XMLError(f"{source}: larger than {MAX_XML_BYTES // 1024} KiB; not a domain XML file")
    marker = _DTD_MARKERS.search(raw)
    if marker:
        line = raw.count(b"\n", 0, marker.start()) + 1
        raise XMLError(
            f"{source}:{line}: <!{marker.group(1).decode().upper()}> is not allowed "
            "(lxcvirt refuses DTDs and entity declarations; remove it)"
        )
    if isinstance(data, str) and raw.lstrip().startswith(b"<?xml"):
        # lxml refuses str input with an encoding declaration; hand it the bytes.
        data = raw
    try:
        root = etree.fromstring(data, hardened_parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 1
        raise XMLError(f"{source}:{line}: not well-formed XML: {exc.msg}") from exc
    if root is None:
        raise XMLError(f"{source}: empty document")
    return root
