"""The lifecycle commands: define, create, start, stop, reboot, destroy, undefine, list,
status, dumpxml, exec."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from . import _cli_autostart as _autostart_cli
from ._cli_common import (
    Progress,
    State,
    complete_names,
    emit,
    json_option,
    limits_text,
    note,
    pass_state,
    report_json_options,
    shown,
    source_from,
    spec_flag_options,
    want_json,
    with_options,
)
from ._outcome import outcome

#: Seconds a stop waits before it says what it waits for.
WAIT_NOTE_AFTER = 3.0

_MODE_OPTION = click.option(
    "--mode", metavar="METHOD", default=None,
    help="How to ask init: initctl, a signal (SIGTERM, SIGRTMIN+3, ...), restart (reboot "
         "only); default: the spec's [init] setting, else auto.",
)


# --- lifecycle ------------------------------------------------------------------------

host_emulator_option = click.option(
    "--host-emulator", is_flag=True, help="Rewrite <emulator> to the host's LXC emulator."
)

#: What one container's verb returns: its outcome (see lxcvirt._outcome) and its text line.
Done = tuple[dict[str, object], str]


def each(state: State, names: tuple[str, ...], act: Callable[[str], Done], as_json: bool,
         action: str, *, many: bool = False) -> int | None:
    """Carry out ``action`` on every name, in the order given.

    Text: one name (and not ``many``, as --all is) is a single command (its error is the
    command's error, exit 1); with several each is said as it is done (see Progress) and
    the others go on.  JSON: always a report (lxcvirt._outcome.report), an outcome per
    name with ``ok`` and ``error``.  Exit 0 when all were done, 2 when some failed, 1 when
    every one did.
    """
    from ._outcome import outcome, report
    from .errors import LxcvirtError

    as_json = want_json(state, as_json)
    if len(names) == 1 and not many and not as_json:
        line = act(names[0])[1]
        if not state.quiet:
            click.echo(line)
        return None
    todo = list(dict.fromkeys(names))  # a name given twice is done once
    single = len(todo) == 1 and not many
    progress = Progress(state, len(todo))
    results: list[dict[str, object]] = []
    for name in todo:
        t0 = time.monotonic()
        try:
            data, line = act(name)
        except LxcvirtError as exc:
            lines = str(exc).splitlines() or [exc.kind]
            extra = {"hint": exc.hint} if exc.hint else {}
            data = outcome(name, action, "failed", ok=False, seconds=time.monotonic() - t0,
                           error=exc.kind, message=lines[0], **extra)
            hint = f" ({exc.hint})" if exc.hint else ""
            click.echo(f"lxcvirt: error: {lines[0]}{hint}", err=True)
            if single:  # the log tail of a failed start, as a single command says it
                for more in lines[1:]:
                    click.echo(more, err=True)
            line = f"{name}: failed"
        results.append(data)
        progress.item(line, data)
    out = report(action, results, seconds=progress.elapsed())
    progress.finish(out)
    return int(str(out["exit_code"]))


def _print_define(result: Any, show_diff: bool) -> None:
    click.echo(f"{result.name}: {result.action}")
    if result.restart_needed:
        click.echo(f"{result.name}: running; the new definition applies at the next start")
    if show_diff and result.diff:
        click.echo(result.diff, nl=False)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False, exists=True), required=False)
@host_emulator_option
@click.option("--diff", "show_diff", is_flag=True, help="Show what a redefinition changes.")
@spec_flag_options
@json_option
@pass_state
def define(
    state: State, source: str | None, host_emulator: bool, show_diff: bool, as_json: bool,
    flags: dict[str, Any],
) -> None:
    """Define (or redefine) a container from a spec or domain XML file, or spec flags."""
    result = state.host().define(source_from(source, flags), host_emulator=host_emulator)
    if want_json(state, as_json):
        emit(result.to_dict())
    else:
        _print_define(result, show_diff)


start_options = [
    click.option("--no-check", is_flag=True, help="Skip the host's required checks."),
    click.option(
        "--settle",
        type=click.FloatRange(min=0),
        default=0.5,
        show_default=True,
        help="Seconds to watch for an init that exits at once.",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=30.0,
        show_default=True,
        help="Seconds to wait for RUNNING.",
    ),
]


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_names)
@with_options(start_options)
@with_options(_autostart_cli.START_ALL_OPTIONS)
@with_options(report_json_options)
@pass_state
def start(
    state: State, names: tuple[str, ...], no_check: bool, settle: float, timeout: float,
    all_: bool, groups: tuple[str, ...], parallel: int | None, wait: float | None,
    ignore_auto: bool, boot: bool, config: str | None, as_json: bool,
) -> int | None:
    """Start defined containers and wait until they run, one after another (--all: the
    autostart set, in its order)."""
    rc = _autostart_cli.start_all_command(
        state, names[0] if names else None, all_=all_, groups=groups, parallel=parallel,
        ignore_auto=ignore_auto, boot=boot, config=config, no_check=no_check, settle=settle,
        timeout=timeout, as_json=as_json, wait=wait,
    )
    if rc is not None or not names:
        return rc
    from .host import start_retries

    host = state.host()

    def act(name: str) -> Done:
        now = host.status(name)
        if now.state == "running":  # as stop of a stopped one: done, and said
            return (outcome(name, "start", "already running", status=now.to_dict()),
                    f"{name}: already running (id {now.id})")
        t0 = time.monotonic()
        status = host.start(name, check=not no_check, settle=settle, timeout=timeout)
        result = "resumed" if now.state == "paused" else "started"
        again = start_retries(host.uri, name)
        return (outcome(name, "start", result, seconds=time.monotonic() - t0,
                        message=again, status=status.to_dict()),
                f"{name}: running (id {status.id})" + (f"; {again}" if again else ""))

    return each(state, names, act, as_json, "start")


@click.command()
@click.argument("source", type=click.Path(dir_okay=False, exists=True), required=False)
@host_emulator_option
@with_options(start_options)
@spec_flag_options
@json_option
@pass_state
def create(
    state: State,
    source: str | None,
    host_emulator: bool,
    no_check: bool,
    settle: float,
    timeout: float,
    as_json: bool,
    flags: dict[str, Any],
) -> None:
    """Define a container from a spec or XML file, or spec flags, and start it.

    A spec whose root filesystem says from = "debian/bookworm" gets that root built
    first when its folder does not exist yet (on a local daemon).
    """
    from .rootfs import ensure_roots_for

    src = source_from(source, flags)
    host = state.host()
    built = ensure_roots_for(src, local=host.is_local)
    result, status = host.create(
        src, host_emulator=host_emulator, check=not no_check, settle=settle, timeout=timeout,
    )
    if want_json(state, as_json):
        out = result.to_dict("create")
        out["status"] = status.to_dict()
        if built:
            out["rootfs"] = [r.to_dict() for r in built]
        emit(out)
    else:
        for r in built:
            how = "from the cache" if r.cache_hit else "built"
            click.echo(f"{result.name}: root {r.dest} made of {r.image} ({how}, {r.seconds:.1f} s)")
        _print_define(result, False)
        click.echo(f"{status.name}: running (id {status.id})")


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_names)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a graceful shutdown before destroying.",
)
@with_options(_autostart_cli.STOP_ALL_OPTIONS)
@_MODE_OPTION
@with_options(report_json_options)
@pass_state
def stop(
    state: State, names: tuple[str, ...], timeout: float, all_: bool, groups: tuple[str, ...],
    parallel: int | None, wait: float | None, mode: str | None, as_json: bool,
) -> int | None:
    """Shut a container down gracefully; destroy it after --timeout (--all: in reverse order).

    systemd is asked with SIGRTMIN+3, other inits with SIGTERM (and through initctl when
    the root has a sysvinit pipe), unless the spec's [init] halt or --mode says otherwise.
    """
    if mode is not None and all_:
        raise click.UsageError("--mode goes with one NAME, not --all")
    rc = _autostart_cli.stop_all_command(
        state, names[0] if names else None, all_=all_, groups=groups, parallel=parallel,
        timeout=timeout, as_json=as_json, wait=wait,
    )
    if rc is not None or not names:
        return rc
    host = state.host()

    def act(name: str) -> Done:
        import threading

        # A long graceful wait says what it waits for (on stderr, after a few seconds).
        timer = None
        if not (state.quiet or state.json) and timeout > WAIT_NOTE_AFTER:
            timer = threading.Timer(WAIT_NOTE_AFTER, note, [
                f"waiting for {name} to shut down (destroyed if still up after "
                f"{timeout:g} s)"])
            timer.daemon = True
            timer.start()
        try:
            result = host.stop(name, timeout=timeout, mode=mode)
        finally:
            if timer is not None:
                timer.cancel()
        if result.method:
            return result.to_dict(), (f"{name}: {result.how} in {result.seconds:.1f} s "
                                      f"({result.method})")
        return result.to_dict(), f"{name}: {result.how}"

    return each(state, names, act, as_json, "stop")


_NAMES = click.argument("names", nargs=-1, required=True, metavar="NAME...",
                        shell_complete=complete_names)
_SOME_NAMES = click.argument("names", nargs=-1, metavar="[NAME]...",
                             shell_complete=complete_names)
_ALL = click.option("--all", "all_", is_flag=True,
                    help="Every container this applies to (running, or suspended for resume).")


def _chosen(state: State, names: tuple[str, ...], all_: bool, verb: str,
            states: tuple[str, ...]) -> tuple[str, ...]:
    """The NAMEs given, or with --all every container in one of ``states``."""
    if names and all_:
        raise click.UsageError("give NAMEs or --all, not both")
    if not names and not all_:
        raise click.UsageError(f"give the NAME of a container to {verb}, or --all")
    if names:
        return names
    return tuple(s.name for s in state.host().list(all=False) if s.state in states)


@click.command()
@_NAMES
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for the container to come back.")
@_MODE_OPTION
@with_options(report_json_options)
@pass_state
def reboot(state: State, names: tuple[str, ...], timeout: float, mode: str | None,
           as_json: bool) -> int | None:
    """Reboot the system inside running containers (a new init; each keeps running).

    systemd is asked with SIGRTMIN+5; an init that knows no reboot request is stopped
    gracefully and started again.
    """
    host = state.host()

    def act(name: str) -> Done:
        result = host.reboot(name, timeout=timeout, mode=mode)
        return result.to_dict(), (f"{name}: {result.how} in {result.seconds:.1f} s "
                                  f"({result.method}), running (id {result.status.id})")

    return each(state, names, act, as_json, "reboot")


@click.command()
@_SOME_NAMES
@_ALL
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to wait for a graceful shutdown before destroying.")
@_MODE_OPTION
@click.option("--no-check", is_flag=True, help="Skip the host's required checks.")
@with_options(report_json_options)
@pass_state
def restart(state: State, names: tuple[str, ...], all_: bool, timeout: float,
            mode: str | None, no_check: bool, as_json: bool) -> int | None:
    """Stop running containers gracefully and start them again, in one step (a new
    instance that runs the stored definition: clears "restart needed")."""
    names = _chosen(state, names, all_, "restart", ("running",))
    host = state.host()

    def act(name: str) -> Done:
        result = host.restart(name, timeout=timeout, mode=mode, check=not no_check)
        return result.to_dict("restart"), (f"{name}: {result.how} in {result.seconds:.1f} s, "
                                           f"running (id {result.status.id})")

    return each(state, names, act, as_json, "restart", many=all_)


@click.command()
@_SOME_NAMES
@_ALL
@with_options(report_json_options)
@pass_state
def suspend(state: State, names: tuple[str, ...], all_: bool, as_json: bool) -> int | None:
    """Freeze every process of running containers (they keep their memory)."""
    return _freezer(state, names, all_, as_json, "suspend", ("running",))


@click.command()
@_SOME_NAMES
@_ALL
@with_options(report_json_options)
@pass_state
def resume(state: State, names: tuple[str, ...], all_: bool, as_json: bool) -> int | None:
    """Let suspended containers run again."""
    return _freezer(state, names, all_, as_json, "resume", ("paused",))


def _freezer(state: State, names: tuple[str, ...], all_: bool, as_json: bool, verb: str,
             states: tuple[str, ...]) -> int | None:
    names = _chosen(state, names, all_, verb, states)
    host = state.host()
    call = host.suspend if verb == "suspend" else host.resume

    def act(name: str) -> Done:
        before = host.status(name).state
        t0 = time.monotonic()
        status = call(name)
        done = {"suspend": ("paused", "suspended", "already suspended"),
                "resume": ("running", "resumed", "already running")}[verb]
        result = done[2] if before == done[0] else done[1]
        return (outcome(name, verb, result, seconds=time.monotonic() - t0,
                        status=status.to_dict()),
                f"{name}: {status.state}" + (f" ({result})" if before == done[0] else ""))

    return each(state, names, act, as_json, verb, many=all_)


@click.command()
@_NAMES
@with_options(report_json_options)
@pass_state
def destroy(state: State, names: tuple[str, ...], as_json: bool) -> int | None:
    """Stop containers at once."""
    host = state.host()

    def act(name: str) -> Done:
        if host.status(name).id is None:  # shut off: as stop says, already stopped
            return outcome(name, "destroy", "already stopped"), f"{name}: already stopped"
        return host.destroy(name).to_dict("destroy"), f"{name}: destroyed"

    return each(state, names, act, as_json, "destroy")


@click.command()
@_NAMES
@click.option("--force", is_flag=True, help="Stop a running container first.")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="With --force: seconds to wait for a graceful shutdown before destroying.")
@with_options(report_json_options)
@pass_state
def undefine(state: State, names: tuple[str, ...], force: bool, timeout: float,
             as_json: bool) -> int | None:
    """Remove containers' definitions."""
    host = state.host()

    def act(name: str) -> Done:
        t0 = time.monotonic()
        host.undefine(name, force=force, timeout=timeout)
        return (outcome(name, "undefine", "undefined", seconds=time.monotonic() - t0),
                f"{name}: undefined")

    return each(state, names, act, as_json, "undefine")


def _autostart_cell(s: Any) -> str:
    libvirt_flag = " + libvirt's flag" if s.libvirt_autostart else ""
    if s.problem is not None:
        return "? (broken: see below)"
    if s.autostart is not None and s.autostart.auto:
        return f"yes (priority {s.autostart.priority}){libvirt_flag}"
    return "libvirt's flag only" if s.libvirt_autostart else "-"


def _memory_cell(s: Any) -> str:
    from ._units import human_kib

    limit = human_kib(s.limits.get("memory_hard_limit", s.max_memory_kib))
    return f"{human_kib(s.memory_kib)} / {limit}" if s.id is not None else f"- / {limit}"


#: list's columns: key -> (header, the cell of one Status)
LIST_COLUMNS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "name": ("NAME", lambda s: shown(s.name)),
    "state": ("STATE", lambda s: s.state + (" (restart needed)" if s.restart_needed else "")
              + (" (monitor lost)" if s.monitor_lost else "")),
    "id": ("ID", lambda s: "-" if s.id is None else str(s.id)),
    "memory": ("MEMORY", _memory_cell),
    "ipv4": ("IPV4", lambda s: ",".join(s.ipv4) or "-"),
    "cpu": ("CPU TIME", lambda s: f"{s.cpu_time_ns / 1e9:.1f} s" if s.id is not None else "-"),
    "vcpus": ("VCPUS", lambda s: str(s.vcpus)),
    "autostart": ("AUTOSTART", _autostart_cell),
    "project": ("PROJECT", lambda s: shown(s.project or "-")),
}
DEFAULT_COLUMNS = "name,state,id,memory,ipv4,autostart,project"


@click.command(name="list")
@click.option("--all", "all_", is_flag=True, help="Include containers that are not running.")
@click.option("--project", metavar="NAME", default=None,
              help="Only the containers of this project (see apply).")
@click.option("--columns", "-c", "columns", metavar="COLS", default=DEFAULT_COLUMNS,
              show_default=True,
              help=f"Columns, comma separated, of: {', '.join(LIST_COLUMNS)}.")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json", "csv"]),
              default="table", show_default=True)
@json_option
@pass_state
def list_(state: State, all_: bool, project: str | None, columns: str, fmt: str,
          as_json: bool) -> None:
    """List containers (running ones; --all for every defined one)."""
    import csv
    import io

    keys = [c.strip().lower() for c in columns.split(",") if c.strip()]
    unknown = [k for k in keys if k not in LIST_COLUMNS]
    if unknown or not keys:
        raise click.UsageError(f"unknown column {unknown[0]!r} (known: "
                               f"{', '.join(LIST_COLUMNS)})" if unknown else "no columns")
    statuses = state.host().list(all=all_)
    if project is not None:
        statuses = [s for s in statuses if s.project == project]
    if want_json(state, as_json) or fmt == "json":
        emit([s.to_dict() for s in statuses])
        return
    rows = [tuple(LIST_COLUMNS[k][0] for k in keys)]
    rows += [tuple(LIST_COLUMNS[k][1](s) for k in keys) for s in statuses]
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        click.echo(buf.getvalue(), nl=False)
    else:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for s in statuses:
        if s.problem is not None:
            note(f"{shown(s.name)}: broken: {shown(s.problem)} (redefine it from a good spec "
                 "or XML)")
        if s.monitor_lost is not None:
            note(f"{shown(s.name)}: monitor lost: {s.monitor_lost} (`lxcvirt stop` clears it)")


@click.command()
@click.argument("name", shell_complete=complete_names)
@json_option
@pass_state
def status(state: State, name: str, as_json: bool) -> None:
    """Show one container's state, reason, id, memory and autostart settings (--json:
    everything `info` says as well)."""
    if want_json(state, as_json):
        from .host import info

        emit(info(state.host(), name).to_dict())
        return
    s = state.host().status(name, monitor=True)
    click.echo(f"name:       {shown(s.name)}")
    click.echo(f"uuid:       {s.uuid}")
    click.echo(f"state:      {s.state} ({s.reason})"
               + ("; restart needed: redefined since it started" if s.restart_needed else ""))
    click.echo(f"id:         {'-' if s.id is None else s.id}")
    if s.monitor_lost:
        click.echo(f"monitor:    LOST: {s.monitor_lost}; `lxcvirt stop {shown(s.name)}` "
                   "still stops it (signals from the host), then start it again")
    click.echo(f"memory:     {s.memory_kib} KiB (max {s.max_memory_kib} KiB)")
    click.echo(f"vcpus:      {s.vcpus}" + (f" (on CPUs {s.cpuset})" if s.cpuset else ""))
    click.echo(f"cpu time:   {s.cpu_time_ns / 1e9:.2f} s")
    click.echo(f"limits:     {limits_text(s)}")
    if s.oom_kills is not None:
        click.echo(f"oom kills:  {s.oom_kills}")
    click.echo(f"ipv4:       {', '.join(s.ipv4) or '-'}")
    click.echo(f"persistent: {'yes' if s.persistent else 'no'}")
    click.echo(f"project:    {shown(s.project or '-')}")
    a = s.autostart
    if s.libvirt_autostart:
        click.echo("libvirt:    its own autostart flag is on (virsh autostart): libvirtd starts "
                   "it at its own start; `lxcvirt autostart import` takes it over")
    if s.problem is not None:
        click.echo(f"problem:    {s.problem}")
        click.echo("autostart:  ? (unreadable; redefine it from a good spec or XML)")
    elif a is None:
        click.echo("autostart:  - (not managed by lxcvirt)")
    else:
        click.echo(
            f"autostart:  {'yes' if a.auto else 'no'}, priority {a.priority}, time {a.time} s, "
            f"groups {','.join(a.groups) or '-'}, after {','.join(a.after) or '-'}"
        )


@click.command()
@click.argument("name", shell_complete=complete_names)
@click.option("--inactive", is_flag=True, help="The persistent definition, not the live one.")
@pass_state
def dumpxml(state: State, name: str, inactive: bool) -> None:
    """Print a container's domain XML."""
    click.echo(state.host().dumpxml(name, inactive=inactive), nl=False)


def _env_pair(value: str) -> tuple[str, str]:
    name, sep, val = value.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{value!r}: write NAME=VALUE")
    return name, val


@click.command(name="exec")
@click.argument("name", shell_complete=complete_names)
@click.option("--user", "-u", metavar="USER", help="User (name or uid) inside the container.")
@click.option("--cwd", metavar="DIR", help="Working directory inside the container.")
@click.option("--env", "-e", "env", multiple=True, metavar="K=V", help="Set a variable.")
@click.option("--tty", "-t", is_flag=True,
              help="A terminal of the container's own (interactive shells, job control).")
@click.option("--interactive", "-i", is_flag=True,
              help="Keep stdin open (always so; accepted for the habit of -it).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_state
def exec_(
    state: State, name: str, user: str | None, cwd: str | None, env: tuple[str, ...],
    tty: bool, interactive: bool, command: tuple[str, ...],
) -> int:
    """Run COMMAND inside a running container; exit with its status.

    \b
    lxcvirt exec web -- ps -ef
    """
    from .exec import run

    pairs = dict(_env_pair(e) for e in env)
    return run(state.host(), name, list(command), user=user, cwd=cwd, env=pairs, tty=tty)
