"""Comparing and completing definitions: the diff define and apply show, and what libvirt
generated for a stored definition that a new one leaves out."""

from __future__ import annotations

import difflib
from typing import Any

from .._xml import parse_xml
from ..spec import METADATA_NS


def definition_diff(name: str, before: str, after: str) -> str:
    """A unified diff from the stored definition to the new one, as define and apply show."""
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"{name} (defined)",
            f"{name} (new)",
        )
    )


def keep_generated(root: Any, defined: str) -> bool:
    """Fill into ``root`` (a parsed new definition) what libvirt generated for the stored
    one, where the new XML leaves it out: the <uuid>, interface <mac> addresses, and the
    default <resource> partition.  True when something was added.

    libvirt invents a random uuid and MACs for XML without them, so the same file defined
    twice would otherwise be refused (a new uuid under a taken name) or show a MAC change.
    The first start of a container writes ``<resource><partition>/machine</partition>``
    into its stored definition; without it here, defining the same spec after a start
    would report a change that is only libvirt's default.  Used by :meth:`Host.define`
    and by ``lxcvirt apply`` when it plans.
    """
    from lxml import etree

    old = parse_xml(defined, "stored definition")
    changed = False
    uuid = old.findtext("uuid")
    if root.find("uuid") is None and uuid:
        name = root.find("name")
        el = etree.Element("uuid")
        el.text = uuid.strip()
        el.tail = name.tail if name is not None else None
        if name is not None:
            name.addnext(el)
        else:
            root.insert(0, el)
        changed = True
    new_ifaces = root.findall("devices/interface")
    old_ifaces = old.findall("devices/interface")
    for new, prev in zip(new_ifaces, old_ifaces, strict=False):
        mac = prev.find("mac")
        if new.find("mac") is None and mac is not None and new.get("type") == prev.get("type"):
            el = etree.Element("mac", address=mac.get("address", ""))
            el.tail = new.text
            new.insert(0, el)
            changed = True
    resource = old.find("resource")
    if (
        root.find("resource") is None
        and resource is not None
        and [(c.tag, (c.text or "").strip()) for c in resource] == [("partition", "/machine")]
    ):
        vcpu = root.find("vcpu")
        el = etree.fromstring(etree.tostring(resource))
        el.tail = vcpu.tail if vcpu is not None else None
        if vcpu is not None:
            vcpu.addnext(el)
        else:
            root.append(el)
        changed = True
    return changed


#: What libvirt adds to a running container's XML on its own (seen with libvirt 9.0):
#: attributes per element path, and elements to drop when the stored definition has none.
_RUNTIME_ATTRS = {
    ".": ("id",),
    "devices/interface/source": ("portid", "bridge"),
    "devices/console": ("tty",),
}
_RUNTIME_ELEMENTS = ("devices/interface/target", "devices/interface/guest",
                     "devices/console/source", ".//alias")


def _canonical(root: Any, stored: Any) -> bytes:
    """``root`` as bytes, without what libvirt adds at run time that ``stored`` (the
    persistent definition) does not itself say."""
    from lxml import etree

    tree = etree.fromstring(etree.tostring(root))
    # lxcvirt's own metadata (autostart, project) is written live too, and never needs a
    # restart to take effect.
    for el in tree.findall("metadata/{" + METADATA_NS + "}container"):
        el.getparent().remove(el)
    for path, attrs in _RUNTIME_ATTRS.items():
        targets = [tree] if path == "." else tree.findall(path)
        keep = [stored] if path == "." else stored.findall(path)
        for i, el in enumerate(targets):
            said = keep[i] if i < len(keep) else None
            for attr in attrs:
                if said is None or said.get(attr) is None:
                    el.attrib.pop(attr, None)
    # libvirt puts its default partition into the running definition, and into the stored
    # one while it runs, but a restarted libvirtd reads the stored one without it.
    resource = tree.find("resource")
    if stored.find("resource") is None and resource is not None and [
        (c.tag, (c.text or "").strip()) for c in resource
    ] == [("partition", "/machine")]:
        tree.remove(resource)
    for path in _RUNTIME_ELEMENTS:
        if stored.find(path) is not None and not path.startswith(".//"):
            continue  # written by the user: a difference there is a real one
        for el in tree.findall(path):
            el.getparent().remove(el)
    for el in tree.iter():
        el.tail = None
        if el.text is not None and not el.text.strip():
            el.text = None
    return bytes(etree.tostring(tree, method="c14n"))


def runs_old_definition(live: str, stored: str) -> bool:
    """True when a running container's definition (``live``) is not the one stored for
    its next start (``stored``): it was redefined since it started, and keeps running the
    old one until it is restarted."""
    live_root = parse_xml(live, "running definition")
    stored_root = parse_xml(stored, "stored definition")
    return _canonical(live_root, stored_root) != _canonical(stored_root, stored_root)
