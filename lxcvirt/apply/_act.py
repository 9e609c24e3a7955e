"""Carrying out a plan: each item's actions through the controller, the starts watched
for inits that exit at once, and what happened, per container."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .._outcome import outcome
from ..errors import (
    DaemonUnreachable,
    LxcvirtError,
    StartFailed,
)
from ..host import (
    RECONNECT_WAIT,
    Host,
    LifecycleWatch,
    deaths_since,
    init_gone,
    leave_shut_off,
    running_when_back,
    set_limits,
    start_retries,
)
from ..rootfs import ensure_roots
from ..spec import Autostart
from ._plan import (
    AUTOSTART,
    CREATE,
    DEFAULT_PARALLEL_HOSTS,
    LIMITS,
    PROJECT,
    REDEFINE,
    RESTART,
    ROOTFS,
    START,
    STOP,
    UNDEFINE,
    HostPlan,
    Plan,
    PlanItem,
    plan,
)

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
    #: The kind of ``error`` (as in lxcvirt.errors).
    kind: str | None = None
    #: Worth saying of what went well (a start made again after a lost monitor).
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def result(self) -> str:
        """failed, changed (something was done) or unchanged: what ``counts`` count."""
        return "failed" if not self.ok else "changed" if self.done else "unchanged"

    def describe(self) -> str:
        words = list(self.done) or ["unchanged"]
        if self.restart_needed:
            words.append("restart needed")
        text = ", ".join(words) + (f" ({self.note})" if self.note else "")
        if self.error is not None:
            text = f"FAILED: {self.error}" if not self.done else f"{text}; FAILED: {self.error}"
        return text

    def to_dict(self) -> dict[str, object]:
        return outcome(self.name, "apply", self.result, ok=self.ok, error=self.kind,
                       message=self.error or self.note, host=self.host, planned=list(self.planned),
                       done=list(self.done), restart_needed=self.restart_needed)


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
        from ..errors import EXIT_OK, EXIT_PARTIAL

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
            "notes": list(self.plan.notes),
            "project": self.plan.project,
            "hosts": hosts,
        }


def set_live_autostart(target: Host, name: str, autostart: Autostart) -> None:
    """Write autostart settings into a running container's live definition as well.

    A redefinition changes the persistent config only; without this, ``status`` (which
    reads the live XML) would show the old settings until the next start.  The metadata
    API of :mod:`lxcvirt.autostart` writes live and persistent config at once.
    """
    from .. import autostart as _autostart

    _autostart.update(
        target, name, auto=autostart.auto, priority=autostart.priority, time=autostart.time,
        groups=autostart.groups, after=autostart.after,
    )


def _act(
    target: Host, item: PlanItem, *, check: bool, timeout: float
) -> tuple[ItemResult, float | None]:
    """Carry out one item; returns the result and when it was started here (or None)."""
    done: list[str] = []
    note = ""
    diff = ""
    metadata_defined = False
    restart_needed = item.restart_needed
    started: float | None = None
    action = ""
    try:
        for action in item.actions:
            if action == ROOTFS and item.spec is not None:
                for built in ensure_roots(item.spec, local=target.is_local):
                    how = "from the cache" if built.cache_hit else "built"
                    done.append(f"root {built.dest} made of {built.image} ({how})")
            elif action in (AUTOSTART, PROJECT):
                if (action == AUTOSTART and item.current != "shut off"
                        and item.autostart is not None):
                    # live and persistent, through the metadata API; then the definition
                    set_live_autostart(target, item.name, item.autostart)
                if not metadata_defined:  # one definition for both
                    diff = target.define(item.xml).diff
                    metadata_defined = True
                done.append("autostart updated" if action == AUTOSTART
                            else f"project set to {item.project}")
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
            elif action == LIMITS:
                set_limits(target, item.name, item.live_limits, live=True, config=False)
                done.append("limits set live")
            elif action == STOP:
                how = target.stop(item.name, timeout=timeout).how
                done.append("stopped" if how == "shut down" else how)
            elif action == START:
                started = time.monotonic()
                target.start(item.name, check=check, settle=0)
                done.append("started")
                note = start_retries(target.uri, item.name)
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
                          restart_needed, diff, exc.kind), None
    except LxcvirtError as exc:
        return ItemResult(item.host, item.name, item.actions, tuple(done), str(exc),
                          restart_needed, diff, exc.kind), None
    return ItemResult(item.host, item.name, item.actions, tuple(done), None,
                      restart_needed, diff, note=note), started


def _settle(target: Host, watch: LifecycleWatch, results: dict[int, ItemResult],
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
            # A death counts from the last start on (start() starts a container again
            # when libvirtd lost its monitor), whatever libvirt says of its state after.
            since = deaths_since(target.uri, r.name, since)
            alive = not watch.died(r.name, since) and bool(
                target.domain(r.name).isActive()) and not init_gone(target, r.name)
        except DaemonUnreachable:
            # Lost libvirtd while watching: what runs once it is back decides.
            alive = running_when_back(target.uri, r.name,
                                      time.monotonic() + RECONNECT_WAIT) is not False
        except LxcvirtError:
            alive = False
        if not alive:
            leave_shut_off(target, r.name)
            err = StartFailed(f"{r.name} stopped right after it started: its init exited",
                              log_tail=target.log_tail(r.name))
            results[i] = ItemResult(r.host, r.name, r.planned, r.done, str(err),
                                    r.restart_needed, r.diff, err.kind)


def act_order(items: Sequence[PlanItem]) -> list[int]:
    """The order in which a host's items are carried out, as indices into ``items``.

    What ``stop --all`` and ``start --all`` would do: first the stops and removals, in the
    reverse of the autostart order; then the definitions that start nothing, in file
    order; last the starts and restarts, in the autostart order (higher ``priority``
    first, ``after`` before priority, ties by name).  A cycle in ``after`` leaves file
    order (``start --all`` names it)."""
    from ..autostart import Entry
    from ..autostart import plan as autostart_plan

    def ordered(idx: list[int], backwards: bool) -> list[int]:
        by_name = {items[i].name: i for i in idx}
        try:
            order = autostart_plan(
                [Entry(items[i].name, items[i].autostart or Autostart()) for i in idx],
                ignore_auto=True,
            ).order()
        except LxcvirtError:
            return idx
        found = [by_name[n] for n in order]
        return found[::-1] if backwards else found

    up = [i for i, it in enumerate(items) if START in it.actions or RESTART in it.actions]
    down = [i for i, it in enumerate(items) if i not in up
            and (STOP in it.actions or UNDEFINE in it.actions)]
    rest = [i for i in range(len(items)) if i not in up and i not in down]
    return ordered(down, True) + rest + ordered(up, False)


def _apply_host(hp: HostPlan, *, check: bool, settle: float, timeout: float) -> list[ItemResult]:
    if hp.error is not None or hp.target is None:
        return []
    target = hp.target
    results: dict[int, ItemResult] = {}
    started: list[tuple[int, float]] = []
    with LifecycleWatch(target.conn) as watch:
        for i in act_order(hp.items):
            item = hp.items[i]
            if not item.changed:
                results[i] = ItemResult(item.host, item.name, (), (), None,
                                        item.restart_needed)
                continue
            res, started_at = _act(target, item, check=check, timeout=timeout)
            if started_at is not None:
                started.append((i, started_at))
            results[i] = res
        _settle(target, watch, results, started, settle)
    # reported in file order
    return [results[i] for i in range(len(hp.items))]


def apply(
    the_plan: Plan,
    *,
    check: bool = True,
    settle: float = 0.5,
    timeout: float = 30.0,
    parallel_hosts: int | None = None,
) -> ApplyResult:
    """Carry out a plan.  Each container's failure is recorded and the others go on.

    ``check`` runs the host's required checks before the first start on each host;
    ``settle`` seconds are watched, once per host after all its starts, for inits that exit
    at once; ``timeout`` bounds each graceful stop before it turns into a destroy.
    """
    hps = list(the_plan.hosts)
    if parallel_hosts is None:
        parallel_hosts = DEFAULT_PARALLEL_HOSTS
    if len(hps) > 1:
        with ThreadPoolExecutor(max_workers=max(1, min(parallel_hosts, len(hps)))) as pool:
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
    wait: float = 0.0,
    lock: str | Path | None = None,
    project: str | None = None,
    parallel_hosts: int = DEFAULT_PARALLEL_HOSTS,
) -> ApplyResult:
    """Plan, then (unless ``dry_run_only``) apply: what ``lxcvirt apply`` does.

    One run at a time per host, with ``start --all`` and ``stop --all`` too (their lock,
    ``wait`` seconds for a holder, see :func:`plan`): two applies of one folder would
    otherwise both act on what the other is changing and report its work as failures.
    A dry run takes no lock.
    """
    with plan(
        paths, uri=uri, inventory=inventory, select=select, prune=prune,
        prune_match=prune_match, restart=restart, host_emulator=host_emulator,
        project=project, parallel_hosts=parallel_hosts, hold_lock=not dry_run_only,
        lock=lock, wait=wait,
    ) as p:
        if dry_run_only:
            return dry_run(p)
        return apply(p, check=check, settle=settle, timeout=timeout,
                     parallel_hosts=parallel_hosts)
