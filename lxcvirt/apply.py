"""``lxcvirt apply``: make one or more hosts match a folder of specs, again and again, safely.

Two phases.  :func:`plan` reads and validates every file for every host and compares each
wanted definition with what libvirt has stored, changing nothing; one bad file raises and
nothing is touched.  :func:`apply` then acts item by item through :class:`~lxcvirt.host.Host`
(define, start, stop, undefine); a failure is recorded and the other containers go on.

The comparison of a wanted definition with libvirt's stored one is
:mod:`lxcvirt._compare`'s.

Plan items list their actions: ``build root`` (a spec's root ``from`` an image whose
folder is missing, built through :mod:`lxcvirt.rootfs` before the definition),
``create``, ``redefine`` (with a diff), ``autostart`` (only
lxcvirt's autostart metadata differs), ``restart``, ``start``, ``stop``, ``undefine``
(``--prune``); an item with no action is unchanged.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import _libvirt
from ._compare import compare
from .errors import (
    DaemonUnreachable,
    LxcvirtError,
    NotFound,
    Problem,
    Refused,
    SpecError,
    StartFailed,
    ValidationError,
    XMLError,
)
from .host import Host, LifecycleWatch, keep_generated, running_when_back, state_name
from .inventory import Inventory, load_inventory
from .metadata import read_autostart
from .rootfs import ensure_roots, needs_root
from .spec import Autostart, Container
from .validate import check_domain_xml, is_spec_path, read_xml_file

ROOTFS = "build root"
CREATE = "create"
REDEFINE = "redefine"
AUTOSTART = "autostart"
RESTART = "restart"
START = "start"
STOP = "stop"
UNDEFINE = "undefine"

#: Seconds an apply waits for a libvirtd it lost to answer again before it says "unknown".
RECONNECT_WAIT = 10.0
_INACTIVE = 2  # libvirt.VIR_DOMAIN_XML_INACTIVE (this module imports no libvirt)

# --- reading the files ---------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One file of the apply set: a spec or a domain XML file, read and checked offline."""

    path: str
    name: str
    state: str
    hosts: tuple[str, ...]
    spec: Container | None


def collect_files(paths: Iterable[str | Path], *, skip: Iterable[Path] = ()) -> list[Path]:
    """The spec (``*.toml``) and XML (``*.xml``) files named, folders read one level deep."""
    skipped = {p.resolve() for p in skip}
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir()
                if f.is_file() and f.suffix in (".toml", ".xml") and f.resolve() not in skipped
            )
            if not found:
                raise SpecError("", "no spec (*.toml) or domain XML (*.xml) files here",
                                source=str(p))
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif p.exists():
            raise SpecError("", "not a regular file or folder", source=str(p))
        else:
            raise SpecError("", "no such file or folder", source=str(p))
    unique: dict[Path, Path] = {}
    for f in out:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def read_source(path: Path) -> Source:
    """Load one file; raises SpecError / XMLError / ValidationError naming it."""
    if is_spec_path(path):
        from .load import load_spec

        spec = load_spec(path)
        return Source(str(path), spec.name, spec.state, spec.hosts, spec)
    checked = check_domain_xml(read_xml_file(path), str(path))
    return Source(str(path), checked.name, "running", (), None)


def _problems(path: str, exc: LxcvirtError) -> list[Problem]:
    if isinstance(exc, ValidationError):
        return list(exc.problems)
    msg = exc.message
    for prefix in (f"{path}: ", f"{path}:"):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
            break
    return [Problem(path, None, None, msg)]


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
            "current": self.current,
            "wanted": self.wanted,
            "actions": list(self.actions),
            "changed": self.changed,
            "restart_needed": self.restart_needed,
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

    @property
    def changed(self) -> bool:
        return any(i.changed for i in self.items)

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "uri": self.uri,
            "local": self.local,
            "error": self.error,
            "plan": [i.to_dict() for i in self.items],
        }


@dataclass(frozen=True)
class Plan:
    """Everything apply will do, per host; nothing has been changed yet."""

    hosts: tuple[HostPlan, ...]
    files: tuple[str, ...]
    prune: bool = False
    restart: bool = False
    _owned: tuple[Host, ...] = field(default=(), repr=False, compare=False)

    @property
    def changed(self) -> bool:
        return any(h.changed for h in self.hosts)

    @property
    def items(self) -> list[PlanItem]:
        return [i for h in self.hosts for i in h.items]

    def close(self) -> None:
        """Close the connections :func:`plan` opened itself."""
        for h in self._owned:
            h.close()

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to_dict(self) -> dict[str, object]:
        return {
            "files": list(self.files),
            "changed": self.changed,
            "hosts": [h.to_dict() for h in self.hosts],
        }


def _plan_one(
    target: Host, host_name: str, src: Source, *, restart: bool, host_emulator: bool
) -> PlanItem:
    prepared = target.prepare(
        src.spec if src.spec is not None else Path(src.path), host_emulator=host_emulator
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
    if src.spec is None and keep_generated(new_root, stored_xml):
        from lxml import etree

        xml = etree.tostring(new_root, encoding="unicode")
    cmp = compare(src.name, stored_xml, new_root)
    actions: list[str] = []
    restart_needed = False
    if cmp.changed or not persistent:
        actions.append(AUTOSTART if cmp.autostart_only and persistent else REDEFINE)
    if active and wanted == "stopped":
        actions.append(STOP)
    elif not active and wanted == "running":
        actions.append(START)
    elif active and REDEFINE in actions:
        if restart:
            actions.append(RESTART)
        else:
            restart_needed = True
    starting = START in actions or RESTART in actions
    if (starting and target.is_local and src.spec is not None
            and needs_root(src.spec, local=True)):
        actions.insert(0, ROOTFS)  # defined before, its root folder since removed
    return PlanItem(host_name, src.name, src.path, state_name(state), wanted, tuple(actions),
                    cmp.diff, restart_needed, autostart, xml, src.spec)


def _plan_prune(target: Host, host_name: str, keep: set[str], match: str | None) -> list[PlanItem]:
    items = []
    for st in target.list(all=True):
        if not st.managed or st.name in keep:
            continue
        if match is not None and not fnmatch.fnmatchcase(st.name, match):
            continue
        actions = ((STOP,) if st.running or st.id is not None else ()) + (UNDEFINE,)
        items.append(PlanItem(host_name, st.name, None, st.state, "absent", actions))
    return items


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
        from .inventory import is_uri

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
) -> Plan:
    """Read, validate and compare; change nothing.

    Targets: ``hosts`` (name -> :class:`Host`, used as given), else the ``select``ed hosts
    of ``inventory`` (all of them by default), else ``select`` as URIs, else ``uri``.
    Raises :class:`ValidationError` (every bad file, by name) before any host is asked to
    change anything; a host that cannot be reached gets a :class:`HostPlan` with ``error``.
    """
    inv: Inventory | None = None
    owned: list[Host] = []
    if hosts is not None:
        chosen = [(n, h.uri) for n, h in hosts.items()]
        targets = dict(hosts)
    else:
        pairs, inv = _targets(uri, inventory, select)
        chosen = pairs
        targets = {}
    skip = [Path(inv.source)] if inv is not None and inv.source != "<inventory>" else []
    files = collect_files(paths, skip=skip)
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

    def plan_host(name: str, host_uri: str) -> HostPlan:
        target = targets.get(name)
        if target is None:
            target = Host(host_uri)
            owned.append(target)
        items: list[PlanItem] = []
        try:
            target.conn  # noqa: B018 - connect now: an unreachable host is reported as such
            for src in per_host[name]:
                try:
                    items.append(_plan_one(target, name, src, restart=restart,
                                           host_emulator=host_emulator))
                except (SpecError, XMLError, Refused) as exc:
                    # Refused: e.g. an emulator this host has not
                    problems.extend(_problems(src.path, exc))
            if prune:
                keep = {s.name for s in per_host[name]}
                items.extend(_plan_prune(target, name, keep, prune_match))
        except LxcvirtError as exc:
            return HostPlan(name, host_uri, (), str(exc).splitlines()[0],
                            target.is_local, target)
        return HostPlan(name, host_uri, tuple(items), None, target.is_local, target)

    if len(chosen) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(chosen))) as pool:
            host_plans = list(pool.map(lambda p: plan_host(*p), chosen))
    else:
        host_plans = [plan_host(n, u) for n, u in chosen]
    if problems:
        for opened in owned:
            opened.close()
        raise ValidationError(problems)
    return Plan(tuple(host_plans), tuple(str(f) for f in files), prune, restart, tuple(owned))


# --- acting ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemResult:
    """What apply did to one container: ``done`` lists what happened, in order."""

    host: str
    name: str
    planned: tuple[str, ...]
    done: tuple[str, ...]
    error: str | None = None
    restart_needed: bool = False
    diff: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        words = list(self.done) or ["unchanged"]
        if self.restart_needed:
            words.append("restart needed")
        text = ", ".join(words)
        if self.error is not None:
            text = f"FAILED: {self.error}" if not self.done else f"{text}; FAILED: {self.error}"
        return text

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "name": self.name,
            "planned": list(self.planned),
            "done": list(self.done),
            "ok": self.ok,
            "error": self.error,
            "restart_needed": self.restart_needed,
        }


@dataclass(frozen=True)
class ApplyResult:
    """The plan and what happened; ``exit_code`` is 0, or 2 when anything failed."""

    plan: Plan
    results: tuple[ItemResult, ...]
    dry_run: bool = False

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if not r.ok]

    @property
    def host_errors(self) -> list[HostPlan]:
        return [h for h in self.plan.hosts if h.error is not None]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.host_errors

    @property
    def changed(self) -> bool:
        return any(r.done for r in self.results) if not self.dry_run else self.plan.changed

    @property
    def exit_code(self) -> int:
        from .errors import EXIT_OK, EXIT_PARTIAL

        return EXIT_OK if self.ok else EXIT_PARTIAL

    def counts(self) -> dict[str, int]:
        """Containers changed (or to change, in a dry run), unchanged and failed; a host
        that could not be read counts once as failed."""
        done = {(r.host, r.name): r for r in self.results}
        counts = {"changed": 0, "unchanged": 0, "failed": 0}
        for hp in self.plan.hosts:
            if hp.error is not None:
                counts["failed"] += 1
                continue
            for item in hp.items:
                res = done.get((hp.host, item.name))
                if res is not None and not res.ok:
                    counts["failed"] += 1
                elif item.changed:
                    counts["changed"] += 1
                else:
                    counts["unchanged"] += 1
        return counts

    def to_dict(self) -> dict[str, object]:
        by_host: dict[str, list[dict[str, object]]] = {}
        for r in self.results:
            by_host.setdefault(r.host, []).append(r.to_dict())
        hosts = []
        for h in self.plan.hosts:
            d = h.to_dict()
            d["results"] = by_host.get(h.host, [])
            hosts.append(d)
        return {
            "dry_run": self.dry_run,
            "changed": self.changed,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "files": list(self.plan.files),
            "hosts": hosts,
        }


def set_live_autostart(target: Host, name: str, autostart: Autostart) -> None:
    """Write autostart settings into a running container's live definition as well.

    A redefinition changes the persistent config only; without this, ``status`` (which
    reads the live XML) would show the old settings until the next start.  The metadata
    API of :mod:`lxcvirt.autostart` writes live and persistent config at once.
    """
    from . import autostart as _autostart

    _autostart.update(
        target, name, auto=autostart.auto, priority=autostart.priority, time=autostart.time,
        groups=autostart.groups, after=autostart.after,
    )


def _act(
    target: Host, item: PlanItem, *, check: bool, timeout: float
) -> tuple[ItemResult, float | None]:
    """Carry out one item; returns the result and when it was started here (or None)."""
    done: list[str] = []
    diff = ""
    restart_needed = item.restart_needed
    started: float | None = None
    action = ""
    try:
        for action in item.actions:
            if action == ROOTFS and item.spec is not None:
                for built in ensure_roots(item.spec, local=target.is_local):
                    how = "from the cache" if built.cache_hit else "built"
                    done.append(f"root {built.dest} made of {built.image} ({how})")
            elif action == AUTOSTART:
                if item.current != "shut off" and item.autostart is not None:
                    # live and persistent, through the metadata API; then the definition
                    set_live_autostart(target, item.name, item.autostart)
                res = target.define(item.xml)
                diff = res.diff
                done.append("autostart updated")
            elif action in (CREATE, REDEFINE):
                res = target.define(item.xml)
                diff = res.diff
                done.append(res.action)
            elif action == RESTART:
                target.stop(item.name, timeout=timeout)
                started = time.monotonic()  # after the stop: its event is not a death
                target.start(item.name, check=check, settle=0)
                done.append("restarted")
                restart_needed = False
            elif action == STOP:
                how = target.stop(item.name, timeout=timeout).how
                done.append("stopped" if how == "shut down" else how)
            elif action == START:
                started = time.monotonic()
                target.start(item.name, check=check, settle=0)
                done.append("started")
            elif action == UNDEFINE:
                target.undefine(item.name, force=True, timeout=timeout)
                done.append("undefined")
    except DaemonUnreachable as exc:
        # libvirtd went away mid-action: a start or stop may have happened all the same.
        # Ask again once it is back; never report as failed what is as asked.
        want = {START: True, RESTART: True, STOP: False}.get(action)
        running = None if want is None else running_when_back(
            target.uri, item.name, time.monotonic() + RECONNECT_WAIT)
        if want is not None and running == want:
            done.append({START: "started", RESTART: "restarted", STOP: "stopped"}[action]
                        + " (read again after libvirtd came back)")
            return ItemResult(item.host, item.name, item.actions, tuple(done), None,
                              restart_needed and action != RESTART, diff), None
        error = str(exc) if running is not None else f"{exc}; its state is unknown"
        return ItemResult(item.host, item.name, item.actions, tuple(done), error,
                          restart_needed, diff), None
    except LxcvirtError as exc:
        return ItemResult(item.host, item.name, item.actions, tuple(done), str(exc),
                          restart_needed, diff), None
    return ItemResult(item.host, item.name, item.actions, tuple(done), None,
                      restart_needed, diff), started


def _settle(target: Host, watch: LifecycleWatch, results: list[ItemResult],
            started: list[tuple[int, float]], settle: float) -> None:
    """Watch the containers started here, all in one window of ``settle`` seconds after
    the last start: an init that exits at once makes libvirt's create() succeed all the
    same."""
    if settle <= 0 or not started:
        return
    names = [(results[i].name, t) for i, t in started]
    watch.wait_window(max(t for _, t in started) + settle, names)
    for i, since in started:
        r = results[i]
        try:
            alive = not watch.died(r.name, since) and bool(target.domain(r.name).isActive())
        except DaemonUnreachable:
            # Lost libvirtd while watching: what runs once it is back decides.
            alive = running_when_back(target.uri, r.name,
                                      time.monotonic() + RECONNECT_WAIT) is not False
        except LxcvirtError:
            alive = False
        if not alive:
            err = StartFailed(f"{r.name} stopped right after it started: its init exited",
                              log_tail=target.log_tail(r.name))
            results[i] = ItemResult(r.host, r.name, r.planned, r.done, str(err),
                                    r.restart_needed, r.diff)


def _apply_host(hp: HostPlan, *, check: bool, settle: float, timeout: float) -> list[ItemResult]:
    if hp.error is not None or hp.target is None:
        return []
    target = hp.target
    results: list[ItemResult] = []
    started: list[tuple[int, float]] = []
    with LifecycleWatch(target.conn) as watch:
        for item in hp.items:
            if not item.changed:
                results.append(
                    ItemResult(item.host, item.name, (), (), None, item.restart_needed)
                )
                continue
            res, started_at = _act(target, item, check=check, timeout=timeout)
            if started_at is not None:
                started.append((len(results), started_at))
            results.append(res)
        _settle(target, watch, results, started, settle)
    return results


def apply(
    the_plan: Plan,
    *,
    check: bool = True,
    settle: float = 0.5,
    timeout: float = 30.0,
) -> ApplyResult:
    """Carry out a plan.  Each container's failure is recorded and the others go on.

    ``check`` runs the host's required checks before the first start on each host;
    ``settle`` seconds are watched, once per host after all its starts, for inits that exit
    at once; ``timeout`` bounds each graceful stop before it turns into a destroy.
    """
    hps = list(the_plan.hosts)
    if len(hps) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(hps))) as pool:
            per = list(pool.map(
                lambda hp: _apply_host(hp, check=check, settle=settle, timeout=timeout), hps))
    else:
        per = [_apply_host(hp, check=check, settle=settle, timeout=timeout) for hp in hps]
    return ApplyResult(the_plan, tuple(r for rs in per for r in rs))


def dry_run(the_plan: Plan) -> ApplyResult:
    """The plan as a result with nothing done (``--dry-run``)."""
    return ApplyResult(the_plan, (), dry_run=True)


def run(
    paths: Iterable[str | Path],
    *,
    uri: str | None = None,
    inventory: str | Path | None = None,
    select: Sequence[str] = (),
    dry_run_only: bool = False,
    prune: bool = False,
    prune_match: str | None = None,
    restart: bool = False,
    host_emulator: bool = False,
    check: bool = True,
    settle: float = 0.5,
    timeout: float = 30.0,
) -> ApplyResult:
    """Plan, then (unless ``dry_run_only``) apply: what ``lxcvirt apply`` does."""
    with plan(
        paths, uri=uri, inventory=inventory, select=select, prune=prune,
        prune_match=prune_match, restart=restart, host_emulator=host_emulator,
    ) as p:
        if dry_run_only:
            return dry_run(p)
        return apply(p, check=check, settle=settle, timeout=timeout)
