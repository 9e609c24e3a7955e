"""The autostart plan: which containers, in which order, in which waves.  Pure logic on
plain data (no libvirt), so it is tested with plain data too.

Rules:

* only containers with ``auto`` on, unless ``ignore_auto``;
* higher ``priority`` first; equal priority by name;
* ``after`` wins over priority: a container never starts before one it follows, even when
  that one has a lower priority (names outside the run are ignored, and noted);
* a wave is the set of containers of one priority whose dependencies are all placed; its
  members have no ordering between them and may start in parallel;
* ``groups``: passes in the order given, each container once; ``""`` means "no group",
  names match exactly (no prefixes);
* a cycle in ``after`` is a :class:`~lxcvirt.errors.SpecError` naming it, and so is an
  ``after`` that points into a group run later.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import SpecError
from ..spec import Autostart


def settings_dict(a: Autostart) -> dict[str, object]:
    return {"auto": a.auto, "priority": a.priority, "time": a.time,
            "groups": list(a.groups), "after": list(a.after)}


@dataclass(frozen=True)
class Entry:
    """One container as the planner sees it."""

    name: str
    settings: Autostart = field(default_factory=Autostart)
    running: bool = False
    #: Its libvirt state ("running", "shut off", ...), as list says.
    state: str = ""


@dataclass(frozen=True)
class Wave:
    """Containers of one priority with no ordering between them."""

    priority: int
    names: tuple[str, ...]
    #: The ``--group`` pass this wave belongs to (None: no --group given).
    group: str | None = None


@dataclass(frozen=True)
class Plan:
    waves: tuple[Wave, ...]
    entries: Mapping[str, Entry]
    #: Things worth saying that do not stop the run (an ``after`` outside the run, ...).
    notes: tuple[str, ...] = ()

    def order(self) -> list[str]:
        return [n for w in self.waves for n in w.names]

    def follows(self, name: str) -> tuple[str, ...]:
        """The containers of this plan ``name`` must wait for."""
        return tuple(a for a in self.entries[name].settings.after if a in self.entries)

    def reversed(self) -> Plan:
        """The stop order: last started, first stopped."""
        return Plan(tuple(reversed(self.waves)), self.entries, self.notes)

    def to_list(self) -> list[dict[str, object]]:
        out = []
        for i, w in enumerate(self.waves):
            for n in w.names:
                e = self.entries[n]
                out.append({"name": n, "wave": i, "state": e.state,
                            "autostart": settings_dict(e.settings)})
        return out


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle in ``name -> names it follows`` as ``[a, b, ..., a]``, or None.

    Edges to names outside ``graph`` are ignored.  Deterministic: names are visited in order.
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    for start in sorted(graph):
        if colour[start] != white:
            continue
        path: list[str] = [start]
        colour[start] = grey
        stack: list[Iterator[str]] = [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                stack.pop()
                continue
            if nxt not in colour:
                continue
            if colour[nxt] == grey:
                return path[path.index(nxt):] + [nxt]
            if colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def _select(
    entries: Sequence[Entry], groups: Sequence[str] | None, ignore_auto: bool
) -> list[tuple[str | None, list[Entry]]]:
    candidates = [e for e in entries if ignore_auto or e.settings.auto]
    if groups is None:
        return [(None, candidates)]
    passes: list[tuple[str | None, list[Entry]]] = []
    taken: set[str] = set()
    for g in dict.fromkeys(groups):  # a group named twice is one pass
        members = [
            e for e in candidates
            if e.name not in taken and (g in e.settings.groups if g else not e.settings.groups)
        ]
        taken.update(e.name for e in members)
        passes.append((g, members))
    return passes


def plan(
    entries: Iterable[Entry],
    *,
    groups: Sequence[str] | None = None,
    ignore_auto: bool = False,
) -> Plan:
    """The start order for ``entries``; raise :class:`SpecError` on a cycle in ``after``."""
    all_entries = list(entries)
    known = {e.name for e in all_entries}
    passes = _select(all_entries, groups, ignore_auto)
    selected = {e.name: e for _, members in passes for e in members}
    cycle = find_cycle({n: e.settings.after for n, e in selected.items()})
    if cycle:
        raise SpecError("autostart.after", f"cycle: {' -> '.join(cycle)}; nothing was started")
    notes = []
    for e in selected.values():
        for a in e.settings.after:
            if a not in selected:
                why = "is not defined" if a not in known else "is not part of this run"
                notes.append(f"{e.name} follows {a}, which {why}; not waiting for it")
    pass_of = {e.name: i for i, (_, members) in enumerate(passes) for e in members}
    waves: list[Wave] = []
    for i, (group, members) in enumerate(passes):
        for e in members:
            for a in e.settings.after:
                if pass_of.get(a, i) > i:
                    raise SpecError(
                        "autostart.after",
                        f"{e.name} (group {group or '(none)'}) follows {a}, whose group comes "
                        "later in the --group order; list that group first",
                    )
        waves.extend(_waves(members, group))
    return Plan(tuple(waves), selected, tuple(notes))


def _waves(members: Sequence[Entry], group: str | None) -> list[Wave]:
    left = {e.name: e for e in members}
    waves = []
    while left:
        ready = [
            e for e in left.values() if not any(a in left for a in e.settings.after)
        ]
        assert ready, "find_cycle() let a cycle through"
        top = max(e.settings.priority for e in ready)
        names = tuple(sorted(e.name for e in ready if e.settings.priority == top))
        waves.append(Wave(top, names, group))
        for n in names:
            del left[n]
    return waves
