"""The plan: what each host has against what the files want, and the actions that close
the gap; nothing is changed while planning."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import _libvirt
from .._compare import compare
from .._xml import parse_xml
from ..errors import (
    LockHeld,
    LxcvirtError,
    NotFound,
    Problem,
    Refused,
    SpecError,
    ValidationError,
    XMLError,
)
from ..host import (
    Host,
    keep_generated,
    live_changes,
    runs_old_definition,
    state_name,
    without_limits,
)
from ..inventory import Inventory, load_inventory
from ..metadata import read_autostart, read_project
from ..rootfs import needs_root
from ..spec import Autostart, Container, check_project
from ._sources import Source, _problems, collect_files, read_source, subfolders

ROOTFS = "build root"
CREATE = "create"
REDEFINE = "redefine"
AUTOSTART = "autostart"
#: Only the project in lxcvirt's metadata changes (a container adopted into a project).
PROJECT = "project"
#: A running container's changed limits set live (no restart needed).
LIMITS = "set limits live"
RESTART = "restart"
START = "start"
STOP = "stop"
UNDEFINE = "undefine"

#: Hosts planned and applied at once (each on its own connection and thread); a slow or
#: dead host holds up only its own thread.
DEFAULT_PARALLEL_HOSTS = 8
_INACTIVE = 2  # libvirt.VIR_DOMAIN_XML_INACTIVE (this module imports no libvirt)


# --- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanItem:
    """What apply will do to one container on one host."""

    host: str
    name: str
    source: str | None  # the file; None for a container only --prune knows of
    current: str  # "absent", "running", "shut off", ...
    wanted: str  # "running" | "stopped" | "defined" | "absent"
    actions: tuple[str, ...] = ()
    diff: str = ""
    restart_needed: bool = False
    autostart: Autostart | None = None
    xml: str = field(default="", repr=False, compare=False)
    spec: Container | None = field(default=None, repr=False, compare=False)
    #: The project the new definition records.
    project: str | None = None
    #: With LIMITS: what to set on the running container (spec keys of [limits]).
    live_limits: Mapping[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def describe(self) -> str:
        words = list(self.actions) or ["unchanged"]
        if self.restart_needed:
            words.append("restart needed")
        return ", ".join(words)

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "name": self.name,
            "source": self.source,
            # One vocabulary with list's "state": what the spec's "stopped" means.
            "state": self.current,
            "wanted": "shut off" if self.wanted == "stopped" else self.wanted,
            "actions": list(self.actions),
            "changed": self.changed,
            "restart_needed": self.restart_needed,
            "live_limits": dict(self.live_limits),
            "diff": self.diff,
        }


@dataclass(frozen=True)
class HostPlan:
    """The plan for one host; ``error`` when the host could not be read."""

    host: str
    uri: str
    items: tuple[PlanItem, ...]
    error: str | None = None
    local: bool = True
    target: Host | None = field(default=None, repr=False, compare=False)
    #: The kind of ``error`` (as in lxcvirt.errors).
    kind: str | None = None

    @property
    def changed(self) -> bool:
        return any(i.changed for i in self.items)

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "uri": self.uri,
            "local": self.local,
            "error": (self.kind or "host") if self.error is not None else None,
            "message": self.error,
            "plan": [i.to_dict() for i in self.items],
        }


@dataclass(frozen=True)
class Plan:
    """Everything apply will do, per host; nothing has been changed yet."""

    hosts: tuple[HostPlan, ...]
    files: tuple[str, ...]
    prune: bool = False
    restart: bool = False
    project: str | None = None
    _owned: tuple[Host, ...] = field(default=(), repr=False, compare=False)
    #: The run locks held for its hosts (``plan(hold_lock=True)``), let go by close().
    _locks: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False,
                                         compare=False)
    #: Things worth saying that change nothing (folders inside the folders applied).
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(h.changed for h in self.hosts)

    @property
    def items(self) -> list[PlanItem]:
        return [i for h in self.hosts for i in h.items]

    def close(self) -> None:
        """Close the connections :func:`plan` opened itself and let go of its locks."""
        for h in self._owned:
            h.close()
        self._locks.close()

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to_dict(self) -> dict[str, object]:
        return {
            "files": list(self.files),
            "notes": list(self.notes),
            "project": self.project,
            "changed": self.changed,
            "hosts": [h.to_dict() for h in self.hosts],
        }


def _plan_one(
    target: Host, host_name: str, src: Source, *, restart: bool, host_emulator: bool,
    project: str | None = None,
) -> PlanItem:
    spec = src.spec
    if spec is not None and project is not None:
        spec = replace(spec, project=project)
    prepared = target.prepare(
        spec if spec is not None else Path(src.path), host_emulator=host_emulator
    )
    new_root, xml = prepared.root, prepared.xml
    wanted = src.state
    autostart = read_autostart(new_root)
    try:
        dom = target.domain(src.name)
    except NotFound:
        first = (CREATE, START) if wanted == "running" else (CREATE,)
        if src.spec is not None and needs_root(src.spec, local=target.is_local):
            first = (ROOTFS, *first)
        return PlanItem(host_name, src.name, src.path, "absent", wanted, first,
                        autostart=autostart, xml=xml, spec=src.spec)
    with _libvirt.converted(f"reading {src.name}"):
        stored_xml = str(dom.XMLDesc(_INACTIVE))
        state = int(dom.state()[0])
        active = bool(dom.isActive())
        persistent = bool(dom.isPersistent())
        live_xml = str(dom.XMLDesc(0)) if active and persistent else ""
    if src.spec is None and keep_generated(new_root, stored_xml):
        from lxml import etree

        xml = etree.tostring(new_root, encoding="unicode")
    cmp = compare(src.name, stored_xml, new_root)
    actions: list[str] = []
    restart_needed = False
    live_limits: dict[str, int] = {}
    if cmp.changed and cmp.autostart_only and persistent:
        # Only lxcvirt's metadata differs: say which part of it.
        stored_root = parse_xml(stored_xml, f"{src.name} (defined)")
        if read_autostart(stored_root) != autostart:
            actions.append(AUTOSTART)
        if read_project(stored_root) != read_project(new_root):
            actions.append(PROJECT)
        if not actions:
            actions.append(AUTOSTART)
    elif cmp.changed or not persistent:
        actions.append(REDEFINE)
    if active and wanted == "stopped":
        actions.append(STOP)
    elif not active and wanted == "running":
        actions.append(START)
    elif active and (REDEFINE in actions
                     or (live_xml and runs_old_definition(live_xml, stored_xml))):
        # Redefined now, or by an earlier apply (or by hand) while it ran: it still runs
        # the old definition until it is restarted, however many applies come between;
        # unless limits libvirt changes live are all that differ.
        tunable = _live_changes(src.name, live_xml, stored_xml, new_root) if live_xml else None
        if tunable:
            actions.append(LIMITS)
            live_limits = tunable
        elif tunable is None and restart:
            actions.append(RESTART)
        elif tunable is None:
            restart_needed = True
    starting = START in actions or RESTART in actions
    if (starting and target.is_local and src.spec is not None
            and needs_root(src.spec, local=True)):
        actions.insert(0, ROOTFS)  # defined before, its root folder since removed
    return PlanItem(host_name, src.name, src.path, state_name(state), wanted, tuple(actions),
                    cmp.diff, restart_needed, autostart, xml, src.spec, read_project(new_root),
                    live_limits)


def _live_changes(name: str, live_xml: str, stored_xml: str,
                  new_root: Any) -> dict[str, int] | None:
    """The limits to set live when they are all a running container lacks of the new
    definition (see :func:`lxcvirt.host.live_changes`), else None."""
    from lxml import etree

    stored = etree.tostring(without_limits(parse_xml(stored_xml, f"{name} (defined)")),
                            encoding="unicode")
    if compare(name, stored, without_limits(new_root)).changed:
        return None
    return live_changes(live_xml, stored_xml, new_root)


def _plan_prune(target: Host, host_name: str, keep: set[str], match: str | None,
                project: str | None = None) -> list[PlanItem]:
    """Containers of ``project`` on the host that no file names any more.  Ones made by
    ``create``/``define``, by hand or by another project (another folder, another team)
    are never touched."""
    items = []
    for st in target.list(all=True):
        if not st.managed or st.name in keep or st.project is None or st.project != project:
            continue
        if match is not None and not fnmatch.fnmatchcase(st.name, match):
            continue
        actions = ((STOP,) if st.running or st.id is not None else ()) + (UNDEFINE,)
        items.append(PlanItem(host_name, st.name, None, st.state, "absent", actions))
    return items


def default_project(paths: Sequence[Path]) -> str:
    """The project of an apply that names none: the folder applied (for files, the folder
    they are in), as its name and a short digest of its absolute path, so two folders
    called ``specs`` on one host are two projects: ``specs-1a2b3c4d``."""
    folders = sorted({str((p if p.is_dir() else p.parent).resolve()) for p in paths}) or ["."]
    where = Path(folders[0]) if len(folders) == 1 else Path(os.path.commonpath(folders))
    digest = hashlib.sha256("\0".join(folders).encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9_.:@+-]", "-", where.name or "root").lstrip("._:@+-") or "root"
    return f"{stem[:80]}-{digest}"


def _targets(
    uri: str | None,
    inventory: Inventory | str | Path | None,
    select: Sequence[str],
) -> tuple[list[tuple[str, str]], Inventory | None]:
    inv = inventory
    if inv is not None and not isinstance(inv, Inventory):
        inv = load_inventory(inv)
    if inv is not None:
        if uri is not None:
            raise SpecError("", "give either a URI (-c) or an inventory, not both")
        return inv.select(select), inv
    if select:
        from ..inventory import is_uri

        bad = [s for s in select if not is_uri(s)]
        if bad:
            raise SpecError("", f"host {bad[0]!r} needs an inventory (--inventory FILE) "
                            "or write it as a libvirt URI")
        return [(s, s) for s in dict.fromkeys(select)], None
    u = uri or _libvirt.default_uri()
    return [(u, u)], None


def plan(
    paths: Iterable[str | Path],
    *,
    uri: str | None = None,
    inventory: Inventory | str | Path | None = None,
    select: Sequence[str] = (),
    hosts: Mapping[str, Host] | None = None,
    prune: bool = False,
    prune_match: str | None = None,
    restart: bool = False,
    host_emulator: bool = False,
    project: str | None = None,
    parallel_hosts: int = DEFAULT_PARALLEL_HOSTS,
    hold_lock: bool = False,
    lock: str | Path | None = None,
    wait: float = 0.0,
) -> Plan:
    """Read, validate and compare; change nothing.

    ``hold_lock``: take each host's run lock (the one ``start --all`` and ``stop --all``
    take, see :func:`lxcvirt.autostart.lock_path`; ``lock`` names its file, ``wait``
    seconds for a holder) before reading it, and hold it until the plan is closed, so
    that no other run changes a host between its plan and its apply.  With one host, a
    lock held by another run raises :class:`LockHeld`; with several, that host's plan
    has the reason as its ``error`` and the others go on.

    Every container a spec makes belongs to ``project`` (else the inventory's, else one
    named after the folder applied, see :func:`default_project`); ``prune`` removes only
    containers of that project.

    Targets: ``hosts`` (name -> :class:`Host`, used as given), else the ``select``ed hosts
    of ``inventory`` (all of them by default), else ``select`` as URIs, else ``uri``.
    Raises :class:`ValidationError` (every bad file, by name) before any host is asked to
    change anything; a host that cannot be reached gets a :class:`HostPlan` with ``error``.
    """
    inv: Inventory | None = None
    if hosts is not None:
        chosen = [(n, h.uri) for n, h in hosts.items()]
        targets = dict(hosts)
    else:
        pairs, inv = _targets(uri, inventory, select)
        chosen = pairs
        targets = {}
    skip = [Path(inv.source)] if inv is not None and inv.source != "<inventory>" else []
    given = [Path(p) for p in paths]
    files = collect_files(given, skip=skip)
    if project is None:
        project = inv.project if inv is not None and inv.project else default_project(given)
    project = check_project(project, "project")
    problems: list[Problem] = []
    sources: list[Source] = []
    for f in files:
        try:
            sources.append(read_source(f))
        except LxcvirtError as exc:
            problems.extend(_problems(str(f), exc))
    host_names = [n for n, _ in chosen]
    per_host: dict[str, list[Source]] = {n: [] for n in host_names}
    seen: dict[tuple[str, str], str] = {}
    for src in sources:
        if src.hosts and inv is None and hosts is None:
            problems.append(Problem(src.path, None, None,
                                    f"hosts: names hosts {', '.join(src.hosts)}; "
                                    "pass an inventory (--inventory FILE) that defines them"))
            continue
        known = inv.names if inv is not None else tuple(host_names)
        unknown = [h for h in src.hosts if h not in known]
        if unknown:
            problems.append(Problem(src.path, None, None,
                                    f"hosts: {unknown[0]!r} is not in the inventory "
                                    f"(known: {', '.join(known)})"))
            continue
        for h in src.hosts or host_names:
            if h not in per_host:
                continue  # a host not selected this run
            other = seen.get((h, src.name))
            if other is not None:
                problems.append(Problem(src.path, None, None,
                                        f"container {src.name!r} is also defined by {other}"))
                continue
            seen[(h, src.name)] = src.path
            per_host[h].append(src)
    if problems:
        raise ValidationError(problems)

    locks = contextlib.ExitStack()
    refused = _take_locks(chosen, locks, lock, wait) if hold_lock else {}

    def plan_host(name: str, host_uri: str) -> tuple[HostPlan, list[Problem], Host | None]:
        # Run in a thread per host: it returns what it found, sharing nothing.
        found: list[Problem] = []
        if name in refused:
            return HostPlan(name, host_uri, (), refused[name], kind="locked"), found, None
        target = targets.get(name)
        opened = None
        if target is None:
            target = opened = Host(host_uri)
        items: list[PlanItem] = []
        try:
            target.conn  # noqa: B018 - connect now: an unreachable host is reported as such
            for src in per_host[name]:
                try:
                    items.append(_plan_one(target, name, src, restart=restart,
                                           host_emulator=host_emulator, project=project))
                except (SpecError, XMLError, Refused) as exc:
                    # Refused: e.g. an emulator this host has not
                    found.extend(_problems(src.path, exc))
            if prune:
                keep = {s.name for s in per_host[name]}
                items.extend(_plan_prune(target, name, keep, prune_match, project))
        except LxcvirtError as exc:
            return (HostPlan(name, host_uri, (), str(exc).splitlines()[0], target.is_local,
                             target, exc.kind), found, opened)
        return HostPlan(name, host_uri, tuple(items), None, target.is_local, target), found, opened

    try:
        if len(chosen) > 1:
            with ThreadPoolExecutor(max_workers=max(1, min(parallel_hosts, len(chosen)))) as pool:
                planned = list(pool.map(lambda p: plan_host(*p), chosen))  # in the given order
        else:
            planned = [plan_host(n, u) for n, u in chosen]
    except BaseException:
        locks.close()
        raise
    host_plans = [hp for hp, _, _ in planned]
    owned = [h for _, _, h in planned if h is not None]
    problems = [p for _, found, _ in planned for p in found]
    if problems:
        for opened in owned:
            opened.close()
        locks.close()
        raise ValidationError(problems)
    notes = tuple(f"{d}: a folder inside the folder applied, not read (apply reads the "
                  "files of a folder, not its subfolders; name it to apply it)"
                  for d in subfolders(given))
    return Plan(tuple(host_plans), tuple(str(f) for f in files), prune, restart, project,
                tuple(owned), locks, notes)


def _take_locks(chosen: Sequence[tuple[str, str]], locks: contextlib.ExitStack,
                lock: str | Path | None, wait: float) -> dict[str, str]:
    """Take the run lock of every host in ``chosen`` into ``locks`` (a host named twice
    shares one), all within one ``wait``; returns the hosts refused, with why."""
    from ..autostart import lock_path, run_lock

    deadline = time.monotonic() + max(0.0, wait)
    refused: dict[str, str] = {}
    taken: dict[Path, str | None] = {}
    try:
        for name, host_uri in chosen:
            where = lock_path(lock, host_uri)
            if where in taken:
                if taken[where] is not None:
                    refused[name] = str(taken[where])
                continue
            try:
                locks.enter_context(run_lock(
                    lock, uri=host_uri, wait=max(0.0, deadline - time.monotonic()),
                    what="apply"))
                taken[where] = None
            except LockHeld as exc:
                if len(chosen) == 1:
                    raise
                taken[where] = refused[name] = str(exc).splitlines()[0]
    except BaseException:
        locks.close()
        raise
    return refused
