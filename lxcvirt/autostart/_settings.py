"""Autostart settings on a domain, through libvirt's metadata API: read, update, erase,
and every container with its settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import libvirt

from .. import _libvirt
from .._libvirt import Domain
from ..errors import (
    NotFound,
    SpecError,
    XMLError,
)
from ..host import state_name
from ..spec import METADATA_NS, Autostart
from ._plan import Entry, find_cycle, settings_dict

if TYPE_CHECKING:
    from ..host import Host


_Q = "{" + METADATA_NS + "}"
_NO_METADATA = getattr(libvirt, "VIR_ERR_NO_DOMAIN_METADATA", 80)
_META = libvirt.VIR_DOMAIN_METADATA_ELEMENT
_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
_LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE


# --- settings through the metadata API ---------------------------------------------------
# libvirt hands our element back without its namespace and wants it that way on input
# (it adds xmlns itself from the uri and key arguments; a declaration of our own makes
# virDomainSetMetadata fail with "failed to create a new XML namespace").


def _qualify(root: Any) -> Any:
    for el in root.iter():
        if isinstance(el.tag, str) and not el.tag.startswith("{"):
            el.tag = _Q + el.tag
    return root


def _unqualified_text(root: Any) -> str:
    from copy import deepcopy

    from lxml import etree

    copy = deepcopy(root)
    for el in copy.iter():
        if isinstance(el.tag, str) and el.tag.startswith(_Q):
            el.tag = el.tag[len(_Q):]
    etree.cleanup_namespaces(copy)
    return str(etree.tostring(copy, encoding="unicode"))


def _read_element(dom: Domain, name: str, flags: int) -> Any | None:
    """Our ``<container>`` element (namespaced again), or None when the domain has none."""
    from .._xml import parse_xml

    try:
        with _libvirt.converted(f"reading the autostart settings of {name}"):
            text = dom.metadata(_META, METADATA_NS, flags)
    except NotFound as exc:
        if exc.code == _NO_METADATA:
            return None
        raise
    return _qualify(parse_xml(text, f"{name}: lxcvirt metadata"))


def _flags(dom: Domain, name: str) -> tuple[int, int]:
    """(flags to read with, flags to write with) for this domain's current state."""
    with _libvirt.converted(f"reading the state of {name}"):
        persistent = bool(dom.isPersistent())
        active = bool(dom.isActive())
    write = (_CONFIG if persistent else 0) | (_LIVE if active else 0)
    # The persistent config is what the next boot uses; a transient domain has only live.
    return (_CONFIG if persistent else _LIVE), write


def _settings_of(element: Any | None) -> Autostart:
    from ..metadata import read_autostart

    if element is None:
        return Autostart()
    return read_autostart(element) or Autostart()


def get(host: Host, name: str) -> Autostart:
    """A container's settings (the defaults when it has none)."""
    dom = host.domain(name)
    read, _ = _flags(dom, name)
    return _settings_of(_read_element(dom, name, read))


def write(host: Host, name: str, settings: Autostart | None) -> None:
    """Replace (``None``: remove) our ``<autostart>`` child, keeping anything else ours."""
    from .._xml import parse_xml
    from ..metadata import metadata_xml

    dom = host.domain(name)
    read, write = _flags(dom, name)
    element = _read_element(dom, name, read)
    if element is None:
        if settings is None:
            return
        from lxml import etree

        element = etree.Element(_Q + "container", nsmap={None: METADATA_NS})
    old = element.find(_Q + "autostart")
    if old is not None:
        element.remove(old)
    if settings is not None:
        fresh = parse_xml(metadata_xml(settings), "autostart settings").find(_Q + "autostart")
        element.insert(0, fresh)
    with _libvirt.converted(f"writing the autostart settings of {name}"):
        if len(element) == 0 and not element.attrib:
            # Nothing of ours is left: erase the element (the metadata API's erase).
            dom.setMetadata(_META, None, None, METADATA_NS, write)
        else:
            dom.setMetadata(_META, _unqualified_text(element), "lxcvirt", METADATA_NS, write)


@dataclass(frozen=True)
class SetResult:
    """What ``autostart NAME`` reports."""

    name: str
    settings: Autostart
    changed: bool
    #: libvirt's own autostart flag is on as well (the daemon starts it unordered).
    libvirt_flag: bool

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "autostart": settings_dict(self.settings),
                "changed": self.changed, "libvirt_autostart": self.libvirt_flag}


def update(
    host: Host,
    name: str,
    *,
    auto: bool | None = None,
    priority: int | None = None,
    time: int | None = None,
    groups: Sequence[str] | None = None,
    after: Sequence[str] | None = None,
) -> SetResult:
    """Change the given settings (``None`` keeps one); refuse an ``after`` that makes a cycle."""
    current = get(host, name)
    changes: dict[str, Any] = {}
    if auto is not None:
        changes["auto"] = auto
    if priority is not None:
        changes["priority"] = priority
    if time is not None:
        changes["time"] = time
    if groups is not None:
        changes["groups"] = tuple(groups)
    if after is not None:
        changes["after"] = tuple(after)
    new = replace(current, **changes) if changes else current
    if new.after != current.after:
        graph = {e.name: e.settings.after for e in entries(host)}
        graph[name] = new.after
        cycle = find_cycle(graph)
        if cycle and name in cycle:
            raise SpecError("autostart.after", f"would make a cycle: {' -> '.join(cycle)}")
    if new != current:
        write(host, name, new)
    flag = bool(_libvirt.call(f"reading libvirt's autostart flag of {name}",
                              host.domain(name).autostart))
    return SetResult(name, new, new != current, flag)


def erase(host: Host, name: str) -> None:
    """Remove the settings (the container falls back to the defaults: auto off)."""
    write(host, name, None)


# --- what is there ----------------------------------------------------------------------


_INACTIVE = (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED)


def entries(host: Host) -> list[Entry]:
    """Every container on the host with its settings and whether it runs."""
    doms = _libvirt.call("listing containers", host.conn.listAllDomains, 0)
    out = []
    for dom in doms:
        try:
            name = str(dom.name())
            read, _ = _flags(dom, name)
            settings = _settings_of(_read_element(dom, name, read))
            with _libvirt.converted(f"reading the state of {name}"):
                st = int(dom.state()[0])
        except NotFound:
            continue  # undefined while we looked
        except XMLError as exc:
            raise XMLError(f"{dom.name()}: {exc}") from exc
        out.append(Entry(name, settings, st not in _INACTIVE, state_name(st)))
    return sorted(out, key=lambda e: e.name)
