"""``lxcvirt autostart ...`` and the ``--all`` forms of ``start`` / ``stop``.

``autostart NAME [options]`` and ``autostart list`` share one group: a first word that is
a subcommand runs it, anything else is a container name (see :class:`AutostartGroup`).
Only click and the standard library are imported here; the library loads inside commands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from ._cli_common import (
    Progress,
    complete_groups,
    complete_names,
    emit,
    json_option,
    shown,
    want_json,
)

#: Options only ``autostart NAME`` takes: seeing one after ``list`` / ``import`` means the
#: user has a container of that name.
_SETTING_OPTIONS = ("--enable", "--disable", "--priority", "--time", "--after",
                    "--clear-groups", "--clear-after")


def comma_list(_ctx: Any, _param: Any, value: tuple[str, ...]) -> tuple[str, ...]:
    """A repeatable option that also takes comma lists (``-g web,db`` as ``lxc-autostart
    -g`` does); ``''`` alone still means "no group"."""
    out: list[str] = []
    for item in value:
        out += [""] if item == "" else [p.strip() for p in item.split(",") if p.strip()]
    return tuple(out)


def _settings_line(a: Any) -> str:
    return (f"{'yes' if a.auto else 'no'}, priority {a.priority}, time {a.time} s, "
            f"groups {','.join(a.groups) or '-'}, after {','.join(a.after) or '-'}")


class AutostartGroup(click.Group):
    """Subcommands by name; any other first word is the NAME of ``autostart NAME``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        first = args[0] if args else ""
        if first in self.commands:
            if any(a.split("=")[0] in _SETTING_OPTIONS for a in args[1:]):
                raise click.UsageError(
                    f"'{first}' is the `autostart {first}` subcommand, so a container "
                    f"named {first!r} cannot be changed with `lxcvirt autostart`; rename it "
                    f"(virsh domrename {first} NEWNAME)"
                )
            return super().resolve_command(ctx, args)
        if first.startswith("-"):
            return super().resolve_command(ctx, args)
        return "NAME", settings_command, args

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The group's options and commands, then what ``autostart NAME`` takes (--enable,
        --priority, ...), which are not options of the group itself."""
        super().format_options(ctx, formatter)
        sub = click.Context(settings_command, info_name="NAME", parent=ctx)
        records = [p.get_help_record(sub) for p in settings_command.get_params(sub)
                   if isinstance(p, click.Option)]
        with formatter.section("Options of autostart NAME"):
            formatter.write_dl([r for r in records if r is not None])


@click.group(cls=AutostartGroup, invoke_without_command=False, no_args_is_help=True,
             subcommand_metavar="NAME [OPTIONS] | list | import")
def autostart() -> None:
    """Ordered autostart settings, stored inside each container's domain XML.

    \b
    lxcvirt autostart NAME                     show NAME's settings
    lxcvirt autostart NAME --enable --priority 10 --time 5 --group web --after db
    lxcvirt autostart list [--group G] [--json]  the order `start --all` would use
    lxcvirt autostart import [NAME]...         take over libvirt's own autostart flag

    Then `lxcvirt start --all` / `lxcvirt stop --all` act on them in order.
    """


@click.command(name="autostart NAME")
# The command's own word is "NAME" already (see AutostartGroup), so the argument shows no
# metavar: the usage reads "lxcvirt autostart NAME [OPTIONS]".
@click.argument("name", metavar="", shell_complete=complete_names)
@click.option("--enable/--disable", "auto", default=None,
              help="Turn autostart on or off for NAME.")
@click.option("--priority", type=int, help="Higher starts first (default 0).")
@click.option("--time", "time_", type=click.IntRange(min=0), metavar="S",
              help="Seconds to wait for NAME to run before going on (0: don't wait).")
@click.option("--group", "groups", multiple=True, metavar="G", callback=comma_list,
              shell_complete=complete_groups,
              help="Member of group G (repeat, or G1,G2; replaces the list).")
@click.option("--clear-groups", is_flag=True, help="Member of no group.")
@click.option("--after", "after", multiple=True, metavar="NAME", callback=comma_list,
              help="Start only after NAME (repeat, or N1,N2; replaces the list).")
@click.option("--clear-after", is_flag=True, help="Follow no other container.")
@json_option
@click.pass_obj
def settings_command(
    obj: Any, name: str, auto: bool | None, priority: int | None, time_: int | None,
    groups: tuple[str, ...], clear_groups: bool, after: tuple[str, ...], clear_after: bool,
    as_json: bool,
) -> None:
    """Show or change NAME's autostart settings."""
    from .autostart import update

    if groups and clear_groups:
        raise click.UsageError("--group and --clear-groups contradict each other")
    if after and clear_after:
        raise click.UsageError("--after and --clear-after contradict each other")
    result = update(
        obj.host(), name, auto=auto, priority=priority, time=time_,
        groups=() if clear_groups else (groups or None),
        after=() if clear_after else (after or None),
    )
    if want_json(obj, as_json):
        emit(result.to_dict())
        return
    click.echo(f"{name}: {_settings_line(result.settings)}")
    if result.libvirt_flag:
        click.echo(f"lxcvirt: note: libvirt's own autostart flag is on for {name} as well; "
                   "`lxcvirt autostart import` turns it off", err=True)


@autostart.command(name="list")
@click.option("--group", "groups", multiple=True, metavar="G", callback=comma_list,
              shell_complete=complete_groups,
              help="Only group G (repeat or G1,G2: in this order; '' = no group).")
@click.option("--ignore-auto", is_flag=True, help="Include containers with auto off.")
@json_option
@click.pass_obj
def list_command(obj: Any, groups: tuple[str, ...], ignore_auto: bool, as_json: bool) -> None:
    """The order `start --all` would use: name, priority, time, groups, after."""
    from .autostart import entries, plan

    the_plan = plan(entries(obj.host()), groups=groups or None, ignore_auto=ignore_auto)
    if want_json(obj, as_json):
        emit(the_plan.to_list())
        return
    rows = [("NAME", "PRIORITY", "TIME", "GROUPS", "AFTER", "WAVE")]
    for i, w in enumerate(the_plan.waves):
        for n in w.names:
            a = the_plan.entries[n].settings
            rows.append((shown(n), str(a.priority), str(a.time), ",".join(a.groups) or "-",
                         ",".join(a.after) or "-", str(i)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for note in the_plan.notes:
        click.echo(f"lxcvirt: note: {note}", err=True)


@autostart.command(name="import")
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_names)
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@json_option
@click.pass_obj
def import_command(obj: Any, names: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Take over containers that have libvirt's own autostart flag.

    Sets auto on in lxcvirt's settings (keeping priority, time, groups) and turns libvirt's
    flag off, so libvirtd no longer starts them unordered when it starts.
    """
    from .autostart import import_libvirt_autostart

    done = import_libvirt_autostart(obj.host(), names or None, dry_run=dry_run)
    if want_json(obj, as_json):
        emit([d.to_dict() for d in done])
        return
    if not done:
        click.echo("no container has libvirt's autostart flag")
    for d in done:
        verb = "would take over" if dry_run else "taken over"
        click.echo(f"{d.name}: {verb} ({_settings_line(d.settings)})")


# --- start --all / stop --all (options added to the `start` and `stop` commands) --------

def _common(action: str) -> list[Callable[[Any], Any]]:
    return [
        click.option("--all", "all_", is_flag=True,
                     help=f"{action.capitalize()} the autostart set in order (see `autostart`)."),
        click.option("--group", "groups", multiple=True, metavar="G", callback=comma_list,
              shell_complete=complete_groups,
                     help="With --all: only group G (repeat or G1,G2: in this order; '' = "
                          "no group)."),
        click.option("--parallel", type=click.IntRange(min=1), default=None, metavar="N",
                     help="With --all: at most N at once within a priority level (default 10)."),
        click.option("--wait", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
                     help="With --all: wait this long for another run (apply, start --all, "
                          "stop --all) to finish; default: refuse at once."),
    ]


START_ALL_OPTIONS = [
    *_common("start"),
    click.option("--ignore-auto", is_flag=True,
                 help="With --all: also containers whose autostart is off."),
    click.option("--boot", is_flag=True,
                 help="With --all: obey the system switch (autostart = false: do nothing)."),
    click.option("--config", "config", metavar="FILE", default=None,
                 help="Configuration file (default $LXCVIRT_CONFIG, /etc/lxcvirt/lxcvirt.conf)."),
]
STOP_ALL_OPTIONS = _common("stop")


def with_options(options: Sequence[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def deco(fn: Any) -> Any:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return deco


def _print_report(report: Any, progress: _Progress) -> int:
    quiet = progress.p.quiet
    for note in report.notes:
        if not quiet:
            click.echo(f"lxcvirt: note: {note}", err=True)
    for o in report.outcomes:
        # Said as it happened; again only what changed since (an init that exited
        # within the settle window turns "started" into "failed").
        if progress.shown.get(o.name) != o.result:
            progress.p.item(_line(o), o.to_dict(), again=o.name in progress.shown)
    out = report.to_dict()
    progress.p.finish(out, f"{report.action} --all")
    if report.failed:
        bad = len(report.failed)
        click.echo(f"lxcvirt: {bad} of {len(report.outcomes)} containers did not "
                   f"{report.action}", err=True)
    return int(report.exit_code)


def _check_all(name: str | None, all_: bool, extra: dict[str, Any], verb: str) -> None:
    if name is not None and all_:
        raise click.UsageError("give a NAME or --all, not both")
    used = [k for k, v in extra.items() if v]
    if not all_ and used:
        flag = "--" + used[0].replace("_", "-")
        raise click.UsageError(f"{flag} goes with --all")
    if name is None and not all_:
        raise click.UsageError(f"give the NAME of a container to {verb}, or --all")


def start_all_command(
    state: Any, name: str | None, *, all_: bool, groups: tuple[str, ...],
    parallel: int | None, ignore_auto: bool, boot: bool, config: str | None,
    no_check: bool, settle: float, timeout: float, as_json: bool, wait: float | None = None,
) -> int | None:
    """``lxcvirt start --all``; returns None when it is a plain ``start NAME``."""
    _check_all(name, all_, {"group": groups, "parallel": parallel, "ignore_auto": ignore_auto,
                            "boot": boot, "config": config, "wait": wait}, "start")
    if not all_:
        return None
    from .autostart import DEFAULT_PARALLEL, start_all

    as_json = want_json(state, as_json)
    if boot:
        from .autostart import boot_switch

        switch = boot_switch(config)
        for note in switch.notes:
            click.echo(f"lxcvirt: note: {note}", err=True)
        if not switch.allowed:
            if as_json:
                from ._outcome import report as outcome_report

                emit(outcome_report("start", [], seconds=0.0, notes=[switch.reason],
                                    skipped=True))
            else:
                click.echo(f"lxcvirt: {switch.reason}")
            return 0
    host = state.host()
    progress = _Progress(state, "start")
    report = start_all(
        host, groups=groups or None, ignore_auto=ignore_auto,
        parallel=parallel or DEFAULT_PARALLEL, timeout=timeout, settle=settle,
        check=not no_check, progress=progress, on_plan=progress.plan, wait=wait or 0.0,
    )
    return _print_report(report, progress)


class _Progress:
    """start --all / stop --all as it happens: ``[i/N] NAME: result in S s (at T s)``
    (see lxcvirt._cli_common.Progress)."""

    def __init__(self, state: Any, action: str, timeout: float | None = None) -> None:
        self.p = Progress(state)
        self.action = action
        self.timeout = timeout
        self.shown: dict[str, str] = {}

    def plan(self, total: int) -> None:
        self.p.total = total
        if total and self.action == "stop" and self.timeout:
            self.p.say(f"stopping {total}: each gracefully, destroyed if still up after "
                       f"{self.timeout:g} s")

    def __call__(self, o: Any) -> None:
        self.shown[o.name] = o.result
        self.p.item(_line(o), o.to_dict())


def _line(o: Any) -> str:
    extra = f": {o.reason}" if o.reason else ""
    went = " (went on after its time)" if o.went_on else ""
    return f"{shown(o.name)}: {o.result}{went} in {o.seconds:.2f} s{shown(extra)}"


def stop_all_command(
    state: Any, name: str | None, *, all_: bool, groups: tuple[str, ...],
    parallel: int | None, timeout: float, as_json: bool, wait: float | None = None,
) -> int | None:
    """``lxcvirt stop --all``; returns None when it is a plain ``stop NAME``."""
    _check_all(name, all_, {"group": groups, "parallel": parallel, "wait": wait}, "stop")
    if not all_:
        return None
    from .autostart import DEFAULT_PARALLEL, stop_all

    as_json = want_json(state, as_json)
    host = state.host()
    progress = _Progress(state, "stop", timeout)
    report = stop_all(host, groups=groups or None, parallel=parallel or DEFAULT_PARALLEL,
                      timeout=timeout, progress=progress, on_plan=progress.plan,
                      wait=wait or 0.0)
    return _print_report(report, progress)
