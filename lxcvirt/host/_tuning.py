"""Changing a container's limits through libvirt's parameter calls (what ``virsh memtune``,
``schedinfo`` and ``blkiotune`` do): on the running container, in its stored definition,
or both, with what each value was before and is after."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import libvirt

from .._libvirt import Domain
from .._outcome import outcome
from ..errors import InvalidState, SpecError
from ..spec import Limits

if TYPE_CHECKING:
    from ._controller import Host

#: libvirt's "no limit" for a memory tunable, in KiB (VIR_DOMAIN_MEMORY_PARAM_UNLIMITED).
UNLIMITED_KIB = 9007199254740991

#: spec key -> (the libvirt call's group, its parameter name)
PARAMETERS: dict[str, tuple[str, str]] = {
    "memory_hard_limit": ("memory", "hard_limit"),
    "memory_soft_limit": ("memory", "soft_limit"),
    "swap_hard_limit": ("memory", "swap_hard_limit"),
    "cpu_shares": ("scheduler", "cpu_shares"),
    "cpu_period": ("scheduler", "vcpu_period"),
    "cpu_quota": ("scheduler", "vcpu_quota"),
    "blkio_weight": ("blkio", "weight"),
}
_LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE


@dataclass(frozen=True)
class Change:
    """One value set: where (``live`` or ``config``), what it was, what it is now."""

    key: str
    scope: str
    old: int | None
    new: int | None

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "scope": self.scope, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class TuneResult:
    name: str
    changes: tuple[Change, ...]

    def to_dict(self) -> dict[str, object]:
        changed = any(c.old != c.new for c in self.changes)
        return outcome(self.name, "set", "changed" if changed else "unchanged",
                       changes=[c.to_dict() for c in self.changes])


def check_values(values: Mapping[str, int]) -> dict[str, int]:
    """The values ``set`` takes, checked as a spec's ``[limits]`` checks them (memory in
    KiB, :data:`UNLIMITED_KIB` for no limit)."""
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise SpecError(unknown[0], f"cannot be changed this way (known: "
                                    f"{', '.join(PARAMETERS)})")
    if not values:
        raise SpecError("", "nothing to set: give at least one limit")
    Limits(**{k: v for k, v in values.items() if v != UNLIMITED_KIB})  # type: ignore[arg-type]
    return dict(values)


#: spec key -> where the definition keeps it (<section><child>)
_XML_PATHS: dict[str, tuple[str, str]] = {
    "memory_hard_limit": ("memtune", "hard_limit"),
    "memory_soft_limit": ("memtune", "soft_limit"),
    "swap_hard_limit": ("memtune", "swap_hard_limit"),
    "cpu_shares": ("cputune", "shares"),
    "cpu_period": ("cputune", "period"),
    "cpu_quota": ("cputune", "quota"),
    "blkio_weight": ("blkiotune", "weight"),
}


def read_live_limits(dom: Domain) -> dict[str, int | None]:
    """The values a running container has now (its cgroups, through libvirt's parameter
    calls); None for what the driver does not report.

    Never on a stopped container: libvirtd 9.0 crashes (a segfault that takes every
    connection down) when asked for the scheduler parameters of an inactive LXC domain,
    live or config alike.
    """
    groups: dict[str, dict[str, Any]] = {
        "memory": dom.memoryParameters(_LIVE),
        "scheduler": dom.schedulerParametersFlags(_LIVE),
    }
    try:
        groups["blkio"] = dom.blkioParameters(_LIVE)
    except InvalidState:
        # libvirt reads the weight first and refuses the whole call on a host whose I/O
        # scheduler has none (no BFQ): the weight is then not known, the rest is.
        groups["blkio"] = {}
    out: dict[str, int | None] = {}
    for key, (group, param) in PARAMETERS.items():
        value = groups[group].get(param)
        out[key] = value if isinstance(value, int) else None
    return out


def read_config_limits(root: Any) -> dict[str, int | None]:
    """The values a definition (a parsed domain XML) sets; None where it sets none."""
    from .._units import UnitError, parse_kib

    out: dict[str, int | None] = {}
    for key, (section, child) in _XML_PATHS.items():
        el = root.find(f"{section}/{child}")
        text = (el.text or "").strip() if el is not None else ""
        value: int | None = None
        if text:
            try:
                value = (parse_kib(f"{text}{el.get('unit', 'KiB')}") if section == "memtune"
                         else int(text))
            except (UnitError, ValueError):
                value = None
        out[key] = value
    return out


def _write_config(root: Any, values: Mapping[str, int]) -> None:
    from lxml import etree

    for key, value in values.items():
        section, child = _XML_PATHS[key]
        parent = root.find(section)
        if parent is None:
            parent = etree.SubElement(root, section)
        el = parent.find(child)
        if section == "memtune" and value >= UNLIMITED_KIB:
            if el is not None:
                parent.remove(el)
        else:
            if el is None:
                el = etree.SubElement(parent, child)
            el.text = str(value)
            if section == "memtune":
                el.set("unit", "KiB")
        if len(parent) == 0:
            root.remove(parent)


def set_limits(host: Host, name: str, values: Mapping[str, int], *,
               live: bool | None = None, config: bool | None = None) -> TuneResult:
    """Set ``values`` (spec keys of ``[limits]``) on ``name``.

    By default on the running container and in its definition (only the definition when
    it is stopped): a limit set live only is lost at the next start, and one set in the
    definition only waits for it.  The running container is changed through libvirt's
    memory, scheduler and blkio parameter calls (its cgroups); the definition is changed
    in its XML and redefined, as ``lxcvirt define`` would, so it is validated first.
    """
    from lxml import etree

    from .._xml import parse_xml

    values = check_values(values)
    dom = host.domain(name)
    active = bool(dom.isActive())
    if live is None and config is None:
        live, config = active, True
    live, config = bool(live), bool(config)
    if live and not active:
        raise InvalidState(f"{name} is not running: --live changes a running container",
                           hint="--config changes its definition, for the next start")
    changes: list[Change] = []
    if live:
        before = read_live_limits(dom)
        for group in ("memory", "scheduler", "blkio"):
            params = {PARAMETERS[k][1]: v for k, v in values.items()
                      if PARAMETERS[k][0] == group}
            if not params:
                continue
            if not dom.isActive():
                raise InvalidState(f"{name} stopped while its limits were being set")
            {"memory": dom.setMemoryParameters,
             "scheduler": dom.setSchedulerParametersFlags,
             "blkio": dom.setBlkioParameters}[group](params, _LIVE)
        after = read_live_limits(dom)
        changes += [Change(k, "live", before[k], after[k]) for k in values]
    if config:
        root = parse_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), name)
        before = read_config_limits(root)
        _write_config(root, values)
        host.define(etree.tostring(root, encoding="unicode"))
        after = read_config_limits(
            parse_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), name))
        changes += [Change(k, "config", before[k], after[k]) for k in values]
    return TuneResult(name, tuple(changes))


def without_limits(root: Any) -> Any:
    """A copy of a parsed domain without the limits :func:`set_limits` changes."""
    from lxml import etree

    copy = etree.fromstring(etree.tostring(root))
    for section, child in _XML_PATHS.values():
        for el in copy.findall(f"{section}/{child}"):
            el.getparent().remove(el)
    for section in {s for s, _ in _XML_PATHS.values()}:
        for el in copy.findall(section):
            if len(el) == 0:
                copy.remove(el)
    return copy


def live_changes(live: str, stored: str, new_root: Any) -> dict[str, int] | None:
    """What to set on a running container (its definition now: ``live``; its stored one:
    ``stored``) for it to run ``new_root``, given that ``new_root`` differs from
    ``stored`` in such limits only (the caller compares those two).  None when the
    running definition differs from the stored one in anything else, or when a limit
    goes back to the driver's default: then it needs a restart.  Empty: nothing to set."""
    from .._xml import parse_xml
    from ._definitions import _canonical

    live_root = without_limits(parse_xml(live, "running definition"))
    stored_root = without_limits(parse_xml(stored, "stored definition"))
    if _canonical(live_root, stored_root) != _canonical(stored_root, stored_root):
        return None
    before = read_config_limits(parse_xml(live, "running definition"))
    after = read_config_limits(new_root)
    out: dict[str, int] = {}
    for key in _XML_PATHS:
        if before[key] == after[key]:
            continue
        value = after[key]
        if value is None:
            if PARAMETERS[key][0] != "memory":
                return None  # back to the driver's default: only a restart says which
            value = UNLIMITED_KIB
        out[key] = value
    return out
