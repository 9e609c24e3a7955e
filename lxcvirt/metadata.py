"""lxcvirt's ``<metadata>`` element: written by the same template partial the domain uses,
read back by namespace URI (never by prefix: libvirt may rewrite prefixes).

A domain rendered from a spec carries ``<lxcvirt:managed/>`` inside the element: lxcvirt
created it, and ``apply --prune`` touches nothing else.  Setting autostart on a container
defined by hand adds the element but not the mark.
"""

from __future__ import annotations

from typing import Any

from .errors import SpecError, XMLError
from .spec import METADATA_NS, METADATA_PREFIX, Autostart

_Q = "{" + METADATA_NS + "}"
#: The key libvirt's metadata API stores our element under (its prefix).
METADATA_KEY = METADATA_PREFIX


def metadata_xml(autostart: Autostart) -> str:
    """The ``<lxcvirt:container>`` element, for ``virDomainSetMetadata``."""
    from .rendering import environment  # jinja2 loads only when settings are written

    template = environment().get_template("partials/lxcvirt.xml.j2")
    return template.render(
        ns=METADATA_NS, autostart=autostart, init=None, managed=False, project=None
    ).strip()


def find_container_element(root: Any) -> Any | None:
    """Our element inside a parsed ``<domain>`` (or the element itself), or None."""
    if root.tag == _Q + "container":
        return root
    return root.find(f"metadata/{_Q}container")


def _yes(value: str | None, key: str) -> bool:
    if value in ("yes", "true", "1"):
        return True
    if value in (None, "no", "false", "0"):
        return False
    raise XMLError(f"lxcvirt metadata: autostart {key}={value!r} is not yes/no")


def _int(value: str | None, key: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise XMLError(f"lxcvirt metadata: autostart {key}={value!r} is not an integer") from exc


def read_autostart(root: Any) -> Autostart | None:
    """The autostart settings stored in a parsed domain, or None when it has none."""
    container = find_container_element(root)
    if container is None:
        return None
    el = container.find(_Q + "autostart")
    if el is None:
        return Autostart()
    try:
        return Autostart(
            auto=_yes(el.get("auto"), "auto"),
            priority=_int(el.get("priority"), "priority", 0),
            time=_int(el.get("time"), "time", 0),
            groups=tuple(g.get("name", "") for g in el.findall(_Q + "group")),
            after=tuple(a.get("name", "") for a in el.findall(_Q + "after")),
        )
    except SpecError as exc:
        # Written by hand or by another tool: what a spec refuses is broken here.
        raise XMLError(f"lxcvirt metadata: {exc}") from None


def read_init_methods(root: Any) -> tuple[str, str]:
    """The (halt, reboot) methods stored in a parsed domain; ("auto", "auto") without."""
    from ._initsignals import AUTO, check_method

    container = find_container_element(root)
    el = None if container is None else container.find(_Q + "init")
    if el is None:
        return AUTO, AUTO
    try:
        return (check_method(el.get("halt", AUTO), reboot=False),
                check_method(el.get("reboot", AUTO), reboot=True))
    except ValueError as exc:
        raise XMLError(f"lxcvirt metadata: <init>: {exc}") from exc


def is_managed(root: Any) -> bool:
    """True when lxcvirt created the domain from a spec (its mark is in the metadata)."""
    container = find_container_element(root)
    return container is not None and container.find(_Q + "managed") is not None


def read_project(root: Any) -> str | None:
    """The project ``lxcvirt apply`` recorded in a parsed domain, or None."""
    container = find_container_element(root)
    el = None if container is None else container.find(_Q + "project")
    return None if el is None else (el.get("name") or None)
