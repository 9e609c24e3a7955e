"""Reading domain XML safely and checking it is a domain libvirt's LXC driver will take.

Three layers, each reporting file, line, element and what to do:

1. checks the grammar cannot say well (domain and OS type, one root mount, absolute paths,
   a pty console) — they run first because their messages are the clearest;
2. lxcvirt's LXC-profile RelaxNG schema, ``schemas/lxc-domain.rng``;
3. libvirt's own ``domain.rng`` when it is installed (``/usr/share/libvirt/schemas``).

Parsing is hardened: no DTD is loaded, no entity is resolved, nothing is fetched from the
network, huge trees are refused; a document with a DOCTYPE or an entity declaration is
refused before the parser sees it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from ._files import read_capped
from ._resources import resource_dir
from ._units import UnitError, parse_kib
from ._xml import hardened_parser, parse_xml, xml_text
from .errors import Problem, SpecError, ValidationError, XMLError
from .spec import (
    CRASH_ACTIONS,
    LIFECYCLE_ACTIONS,
    UNESCAPED_BY_LIBVIRT,
    UNESCAPED_HINT,
    check_name,
)

LIBVIRT_SCHEMA_DIRS = ("/usr/share/libvirt/schemas",)
PROFILE_SCHEMA = "lxc-domain.rng"

# --- layer 1: checks the grammar cannot express well -----------------------------------


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else str(tag)


def _limits(root: Any, problem: Callable[[Any, str], Problem]) -> Iterator[Problem]:
    """What libvirt refuses at define time that the grammar lets through (each tried
    against libvirt 9.0): the name rules specs follow, no <init>, a size of 0 or over
    2^53 - 1 KiB, no vCPU, an <idmap> that leaves root unmapped."""
    name_el = root.find("name")
    if name_el is not None:
        try:
            check_name(name_el.text or "")
        except SpecError as exc:
            yield problem(name_el, exc.message)
    os_el = root.find("os")
    if os_el is not None and os_el.find("init") is None:
        yield problem(os_el, "no <init>: libvirt's LXC driver needs the program to run as "
                             "the container's init (add <init>/sbin/init</init>)")
    for tag in ("memory", "currentMemory"):
        el = root.find(tag)
        if el is None:
            continue
        try:
            kib = parse_kib(f"{(el.text or '').strip()}{el.get('unit') or ''}")
        except UnitError as exc:
            yield problem(el, f"<{tag}>: {exc}")
            continue
        if kib == 0 and tag == "memory":
            yield problem(el, "<memory> is 0; give the container some memory")
    vcpu = root.find("vcpu")
    if vcpu is not None:
        if (vcpu.text or "").strip() == "0":
            yield problem(vcpu, "<vcpu> is 0; a container needs at least one")
        current = vcpu.get("current")
        if current is not None and current.strip().isdigit() and int(current) < 1:
            yield problem(vcpu, f"<vcpu current='{current}'>: at least one vCPU must be "
                                "online; drop current or make it 1 or more")
    idmap = root.find("idmap")
    if idmap is not None:
        for kind in ("uid", "gid"):
            if not any((el.get("start") or "").strip() == "0" for el in idmap.findall(kind)):
                yield problem(idmap, f"the <idmap> maps no {kind} 0: libvirt refuses a "
                                     f"container whose root is not mapped (add <{kind} "
                                     "start='0' target='...' count='...'/>)")


def _semantic(root: Any, source: str) -> Iterator[Problem]:
    def problem(el: Any, msg: str) -> Problem:
        return Problem(source, el.sourceline, _local(el.tag), msg)

    if _local(root.tag) != "domain":
        yield problem(root, "the root element must be <domain type='lxc'>")
        return
    dtype = root.get("type")
    if dtype != "lxc":
        yield problem(
            root,
            f"domain type is {dtype!r}; libvirt's LXC driver takes only type='lxc' "
            "(write <domain type='lxc'>)",
        )
    yield from _limits(root, problem)
    os_type = root.find("os/type")
    if os_type is not None and (os_type.text or "").strip() != "exe":
        yield problem(
            os_type,
            f"OS type is {(os_type.text or '').strip()!r}; containers run a program: "
            "write <type>exe</type> and name it in <init>",
        )
    for xpath, what in (
        ("os/init", "init program"),
        ("os/initdir", "init working directory"),
        ("devices/emulator", "emulator"),
    ):
        for el in root.findall(xpath):
            text = (el.text or "").strip()
            if not text.startswith("/"):
                yield problem(el, f"the {what} must be an absolute path, got {text!r}")
    for el in root.findall("os/initarg"):
        if not el.text:
            yield problem(el, "an empty <initarg> is refused by libvirt; leave it out")
    for el in root.findall("os/initenv"):
        if not el.text:
            name = el.get("name")
            yield problem(el, f"<initenv name='{name}'> has no value; libvirt refuses that")
    for tag in ("os/initenv", "os/inituser", "os/initgroup"):
        for el in root.findall(tag):
            if any(c in (el.text or "") for c in UNESCAPED_BY_LIBVIRT):
                yield problem(el, UNESCAPED_HINT)
    roots = []
    targets: dict[str, Any] = {}
    for fs in root.findall("devices/filesystem"):
        target = fs.find("target")
        if target is None or target.get("dir") is None:
            yield problem(fs, "a <filesystem> needs <target dir='/path'/>")
            continue
        tdir = target.get("dir")
        if not tdir.startswith("/"):
            yield problem(target, f"target dir must be an absolute path, got {tdir!r}")
        norm = tdir.rstrip("/") or "/"
        if norm == "/":
            roots.append(fs)
        elif norm in targets:
            yield problem(
                target, f"two filesystems mount on {norm} (first at line {targets[norm]})"
            )
        targets.setdefault(norm, target.sourceline)
        src = fs.find("source")
        if (fs.get("type") or "mount") == "mount" and src is not None:
            sdir = src.get("dir")
            if sdir is not None and not sdir.startswith("/"):
                yield problem(src, f"source dir must be an absolute host path, got {sdir!r}")
    for extra in roots[1:]:
        yield problem(
            extra,
            f"a second root filesystem (target dir '/'; the first is at line "
            f"{roots[0].sourceline}); keep one",
        )
    for tag, allowed in (
        ("on_poweroff", LIFECYCLE_ACTIONS),
        ("on_reboot", LIFECYCLE_ACTIONS),
        ("on_crash", CRASH_ACTIONS),
    ):
        for el in root.findall(tag):
            value = (el.text or "").strip()
            if value not in allowed:
                yield problem(el, f"{value!r} is not an action; use one of {', '.join(allowed)}")
    consoles = root.findall("devices/console")
    devices = root.find("devices")
    if devices is not None and not consoles:
        yield problem(
            devices,
            "no <console>: libvirt's LXC driver needs one; add <console type='pty'/> to <devices>",
        )
    for con in consoles:
        if con.get("type") != "pty":
            yield problem(
                con,
                f"console type is {con.get('type')!r}; the LXC driver supports only "
                "<console type='pty'/>",
            )


# --- layers 2 and 3: RelaxNG ----------------------------------------------------------


@cache
def _profile_schema() -> Any:
    path = resource_dir("schemas") / PROFILE_SCHEMA
    return etree.RelaxNG(etree.parse(str(path), hardened_parser()))


def libvirt_schema_path() -> Path | None:
    override = os.environ.get("LXCVIRT_LIBVIRT_SCHEMA_DIR")
    for d in (override,) if override else LIBVIRT_SCHEMA_DIRS:
        p = Path(d) / "domain.rng"
        if p.is_file():
            return p
    return None


@cache
def _libvirt_schema(path: str) -> Any:
    # domain.rng includes its siblings by relative href; the parser reads them from disk
    # (no network), which is what we want here.
    return etree.RelaxNG(etree.parse(path, hardened_parser()))


_DEVICE_HINT = "the LXC driver takes filesystem, interface, hostdev, disk and console devices"
# RelaxNG's messages, said in words a user can act on.  libxml2 reports a failure once
# where it happened and again for every enclosing element ("failed to validate
# content"); those echoes are dropped when a more specific message exists.
_REWRITES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"^Element devices has extra content: (\S+)"),
     lambda m: f"<{m.group(1)}> is not a device libvirt's LXC driver supports ({_DEVICE_HINT})"),
    (re.compile(r"^Element (\S+) has extra content: (\S+)"),
     lambda m: f"<{m.group(2)}> is not allowed inside <{m.group(1)}> in an LXC domain"),
    (re.compile(r"^Extra element (\S+) in interleave"),
     lambda m: f"<{m.group(1)}> is not allowed here, or appears more than once"),
    (re.compile(r"^Expecting element (\S+), got (\S+)"),
     lambda m: f"expected <{m.group(1)}> here, found <{m.group(2)}>"),
    (re.compile(r"^Element (\S+) failed to validate attributes"),
     lambda m: f"<{m.group(1)}> has an attribute that is missing, unknown or has a bad value"),
)
_ECHOES = re.compile(r"failed to validate content|Invalid sequence in interleave|"
                     r"Expecting an element .*, got nothing")


def _rng_problems(schema: Any, root: Any, source: str, which: str) -> Iterator[Problem]:
    if schema.validate(root):
        return
    entries = list(schema.error_log)
    specific = [e for e in entries if not _ECHOES.search(e.message)]
    seen: set[tuple[int, str]] = set()
    for entry in specific or entries:
        message = entry.message.rstrip(".")
        for pattern, say in _REWRITES:
            m = pattern.search(message)
            if m:
                message = say(m)
                break
        key = (entry.line, message)
        if key in seen:
            continue
        seen.add(key)
        element = None
        if entry.path:
            element = entry.path.rsplit("/", 1)[-1].split("[", 1)[0] or None
        yield Problem(
            source,
            entry.line if entry.line > 0 else None,
            element,
            f"{message} ({which}; see the examples in README.md)",
        )


@dataclass(frozen=True)
class Checked:
    """A validated domain: its parsed root, name and the XML text."""

    root: Any
    name: str
    xml: str
    source: str
    #: What is valid but probably not meant (see :func:`warnings`).
    warnings: tuple[Problem, ...] = ()


def check_domain_xml(
    data: str | bytes, source: str = "<xml>", *, libvirt_schema: bool = True
) -> Checked:
    """Validate domain XML through all layers; return it parsed, or raise ValidationError."""
    root = parse_xml(data, source)
    # Every problem of the file at once: the checks beyond the grammar and the profile's
    # grammar (libvirt's own schema, slower and saying the same louder, only when both
    # pass).
    problems = list(_semantic(root, source))
    said = {(p.line, p.element) for p in problems}  # the grammar's word on those is noise
    problems += [p for p in _rng_problems(_profile_schema(), root, source, "lxcvirt LXC profile")
                 if (p.line, p.element) not in said]
    if not problems and libvirt_schema:
        path = libvirt_schema_path()
        if path is not None:
            problems = list(
                _rng_problems(_libvirt_schema(str(path)), root, source, f"libvirt {path.name}")
            )
    if problems:
        raise ValidationError(problems)
    text = xml_text(data, source)
    return Checked(root=root, name=root.findtext("name") or "", xml=text, source=source,
                   warnings=tuple(warnings(root, source)))


SHARED_NETWORK_WARNING = (
    "the container shares the host's network namespace (no <interface>, no "
    "<features><privnet/>): it sees the host's interfaces and, as root, can reconfigure "
    "them; add <features><privnet/> for a namespace with only lo, or an <interface> "
    "(in a spec: leave out host_network)"
)


def warnings(root: Any, source: str) -> Iterator[Problem]:
    """Valid, but probably not what the author meant."""
    devices = root.find("devices")
    if (root.find("features/privnet") is None
            and (devices is None or devices.find("interface") is None)):
        yield Problem(source, root.sourceline, "domain", SHARED_NETWORK_WARNING)


def is_spec_path(path: str | Path) -> bool:
    return str(path).endswith(".toml")


def read_xml_file(path: str | Path) -> bytes:
    """A domain XML file's bytes (size-capped); XMLError naming it when it can't be read."""
    try:
        return read_capped(path)
    except OSError as exc:
        raise XMLError(f"{path}: cannot read: {exc.strerror or exc}") from exc
