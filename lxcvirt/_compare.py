"""Would this definition change anything?  A comparison of a wanted domain with the one
libvirt has stored, made without defining anything.

libvirt has no "would this definition change anything" call, so the comparison is ours:
the new XML is filled in with the defaults libvirt adds when it stores a definition
(``<currentMemory>``, ``<clock offset='utc'>``, ``arch``, ``placement='static'``, a console
``<target type='lxc'>``, ...), both trees are put in one canonical form, and the two texts
are compared and diffed.  Anything else the stored definition has and the new one lacks
counts as a change, so a doubt ends in a redefinition (which :meth:`Host.define` then
reports truthfully), never in a change left out.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .host import definition_diff


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _kib(text: str | None, unit: str | None) -> str | None:
    from ._units import UnitError, parse_kib

    try:
        return str(parse_kib(f"{(text or '').strip()}{unit or ''}"))
    except UnitError:
        return None


# Elements whose text and unit attribute are a size (libvirt's scaled integers).
_SIZED = {"memory", "currentMemory", "maxMemory", "memtune/hard_limit", "memtune/soft_limit",
          "memtune/swap_hard_limit", "memtune/min_guarantee"}
# Text compared exactly; every other leaf's text is compared stripped.
_EXACT_TEXT = {"description", "title", "os/initarg", "os/initenv"}


def _normalise(el: Any, path: str = "") -> None:
    """In place: drop comments and layout whitespace, write sizes in KiB."""
    for child in list(el):
        if not isinstance(child.tag, str):  # a comment or processing instruction
            el.remove(child)
    if len(el):
        el.text = None
    elif path not in _EXACT_TEXT and el.text is not None:
        el.text = el.text.strip() or None
    el.tail = None
    if path in _SIZED:
        kib = _kib(el.text, el.get("unit"))
        if kib is not None:
            el.text, el.attrib["unit"] = kib, "KiB"
    if path == "devices/filesystem/source" and el.get("usage") is not None:
        kib = _kib(el.get("usage"), el.get("units"))
        if kib is not None:
            el.attrib["usage"], el.attrib["units"] = kib, "KiB"
    for child in el:
        _normalise(child, f"{path}/{_local(child.tag)}" if path else _local(child.tag))


# Attributes libvirt writes when a definition leaves them out: (path, attribute) -> test.
_DEFAULT_ATTRS: dict[tuple[str, str], Callable[[str], bool]] = {
    ("vcpu", "placement"): lambda v: v == "static",
    ("os/type", "arch"): lambda v: True,  # the host's architecture
    ("devices/filesystem", "accessmode"): lambda v: v == "passthrough",
    ("devices/filesystem", "type"): lambda v: v == "mount",
    ("devices/console", "type"): lambda v: v == "pty",
    ("devices/interface/source", "portgroup"): lambda v: False,
}


# Elements libvirt writes with these values when a definition leaves them out.
_DEFAULT_TEXT = {
    "vcpu": "1",
    "on_poweroff": "destroy",
    "on_reboot": "restart",
    "on_crash": "destroy",
}


def _default_child(path: str, el: Any, new_root: Any) -> bool:
    """Is the stored-only element ``el`` at ``path`` what libvirt adds by itself?"""
    if path in _DEFAULT_TEXT:
        return len(el) == 0 and (el.text or "").strip() == _DEFAULT_TEXT[path]
    if path == "clock":
        return bool(el.get("offset") == "utc" and len(el) == 0)
    if path == "devices/console/target":
        return bool(el.get("type") == "lxc")
    if path == "devices/emulator":
        return True  # a definition without one gets the host's
    if path == "resource":
        return [c.text for c in el] == ["/machine"]
    if path == "seclabel":
        return bool(el.get("type") in ("none", "dynamic"))
    return False


def _merge_defaults(new: Any, stored: Any, new_root: Any, path: str = "") -> None:
    for key, value in stored.attrib.items():
        test = _DEFAULT_ATTRS.get((path, key))
        if key not in new.attrib and test is not None and test(value):
            new.set(key, value)
    new_tags: dict[str, list[Any]] = {}
    for child in new:
        new_tags.setdefault(child.tag, []).append(child)
    stored_tags: dict[str, list[Any]] = {}
    for child in stored:
        stored_tags.setdefault(child.tag, []).append(child)
    for tag, stored_children in stored_tags.items():
        sub = f"{path}/{_local(tag)}" if path else _local(tag)
        mine = new_tags.get(tag, [])
        for n, s in zip(mine, stored_children, strict=False):
            _merge_defaults(n, s, new_root, sub)
        if not mine:
            for s in stored_children:
                if _default_child(sub, s, new_root):
                    new.append(copy.deepcopy(s))
    # libvirt writes elements in its own order; follow the stored one, same-tag order kept.
    order = {tag: i for i, tag in enumerate(stored_tags)}
    children = list(new)
    children.sort(key=lambda c: order.get(c.tag, len(order)))
    for c in children:
        new.append(c)  # re-appending moves it


def canonical(root: Any) -> str:
    """A domain tree as text in one stable layout (after :func:`_normalise`)."""
    from lxml import etree

    tree = copy.deepcopy(root)
    etree.indent(tree, space="  ")
    return str(etree.tostring(tree, encoding="unicode")) + "\n"


@dataclass(frozen=True)
class Comparison:
    """What redefining a stored domain with a new XML would change."""

    changed: bool
    autostart_only: bool
    diff: str


def compare(name: str, stored_xml: str, new_root: Any) -> Comparison:
    """Compare libvirt's stored (inactive) XML with a new, validated definition."""
    from ._xml import parse_xml

    stored = parse_xml(stored_xml, f"{name} (defined)")
    _normalise(stored)
    expected = copy.deepcopy(new_root)
    _normalise(expected)
    memory = expected.find("memory")
    if memory is not None and expected.find("currentMemory") is None:
        # libvirt sets the current balloon to <memory> when a definition gives none.
        current = copy.deepcopy(memory)
        current.tag = "currentMemory"
        memory.addnext(current)
    _merge_defaults(expected, stored, expected)
    before, after = canonical(stored), canonical(expected)
    if before == after:
        return Comparison(False, False, "")
    diff = definition_diff(name, before, after)
    for tree in (stored, expected):
        for meta in tree.findall("metadata"):
            tree.remove(meta)
    autostart_only = canonical(stored) == canonical(expected)
    return Comparison(True, autostart_only, diff)
