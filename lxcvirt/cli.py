"""The ``lxcvirt`` command: each command parses, calls one library function, prints.

Imports of the library (and so of libvirt, lxml, jinja2) happen inside the commands, so
``lxcvirt --help`` and quick commands start fast.

Exit codes: 0 ok, 1 error (including bad usage), 2 partial (a command acting on several
containers did some of it).  Errors are one line on stderr (``lxcvirt: error: ...``); with
``--json`` the error is also printed on stdout as ``{"error": kind, "message": ...}``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

import click

from . import _cli_autostart as _autostart_cli
from ._cli_common import (
    F,
    State,
    emit,
    json_option,
    note,
    pass_state,
    want_json,
    with_options,
)
from .errors import EXIT_ERROR, LxcvirtError

_MODE_OPTION = click.option(
    "--mode", metavar="METHOD", default=None,
    help="How to ask init: initctl, a signal (SIGTERM, SIGRTMIN+3, ...), restart (reboot "
         "only); default: the spec's [init] setting, else auto.",
)


# --- feature commands -----------------------------------------------------------------
# Larger features keep their (thin) commands in a module of their own, imported only when
# the command is run (or listed by --help), so a quick command like `list` does not pay
# for the others' imports.


def _check() -> click.Command:
    from ._cli_checks import check

    return check


def _apply() -> click.Command:
    from ._cli_apply import apply

    return apply


def _console() -> click.Command:
    from ._cli_console import console

    return console


def _autostart() -> click.Command:
    return _autostart_cli.autostart  # imported above: start and stop share its options


def _rootfs() -> click.Command:
    from ._cli_rootfs import rootfs

    return rootfs


class _LazyGroup(click.Group):
    """A group whose feature commands load on first use."""

    LAZY: dict[str, Callable[[], click.Command]] = {
        "apply": _apply, "autostart": _autostart, "check": _check, "console": _console,
        "rootfs": _rootfs,
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        load = self.LAZY.get(cmd_name)
        if load is not None and cmd_name not in self.commands:
            self.add_command(load(), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--connect",
    "uri",
    metavar="URI",
    default=None,
    help="libvirt URI (default: $LIBVIRT_DEFAULT_URI, then lxc:///).",
)
@click.version_option(package_name="lxcvirt", message="lxcvirt %(version)s")
@click.pass_context
def cli(ctx: click.Context, uri: str | None) -> None:
    """Linux containers through libvirt's LXC driver."""
    ctx.ensure_object(State).uri = uri


# --- specs and validation -------------------------------------------------------------

# A spec can come from flags instead of a file (like virt-install --container): these
# options build one through lxcvirt.load.spec_from_flags, with a TOML spec's checks.
_SPEC_FLAGS = [
    click.option("--name", "f_name", metavar="NAME", help="Build the spec from flags: its name."),
    click.option("--init", "f_init", metavar="PATH", help="With --name: the program run as init."),
    click.option("--arg", "f_args", multiple=True, metavar="ARG", help="An argument of init."),
    click.option("--env", "f_env", multiple=True, metavar="K=V", help="init's environment."),
    click.option("--root", "f_root", metavar="DIR", help="Host directory that is the root /."),
    click.option("--from", "f_image", metavar="IMAGE",
                 help="With --root: create builds DIR from IMAGE (debian/bookworm) if missing."),
    click.option("--mount", "f_mounts", multiple=True, metavar="SRC:DST[:ro]",
                 help="Bind a host directory."),
    click.option("--ram", "f_rams", multiple=True, metavar="DST:SIZE", help="A RAM filesystem."),
    click.option("--network", "f_networks", multiple=True, metavar="NET",
                 help="An interface on a libvirt network."),
    click.option("--bridge", "f_bridges", multiple=True, metavar="BR",
                 help="An interface on a host bridge."),
    click.option("--memory", "f_memory", metavar="SIZE", help="Memory, e.g. 256MiB."),
    click.option("--vcpu", "f_vcpus", type=click.IntRange(min=1), metavar="N", help="vCPUs."),
]


def spec_flag_options(fn: F) -> F:
    """Add the spec flags; the command gets them together as ``flags``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags = {k[2:]: kwargs.pop(k) for k in list(kwargs) if k.startswith("f_")}
        return fn(*args, flags=flags, **kwargs)

    return with_options(_SPEC_FLAGS)(cast(F, wrapper))


def _source(path: str | None, flags: dict[str, Any]) -> Any:
    """The file given, or the spec the flags build (one of the two, never both)."""
    given = {k: v for k, v in flags.items() if v not in (None, ())}
    if path is not None and given:
        raise click.UsageError("give a spec or XML file, or spec flags (--name ...), not both")
    if path is not None:
        return path
    if "name" not in given or "init" not in given:
        raise click.UsageError(
            "give a spec or XML file, or build a spec with --name NAME --init PATH [--root DIR ...]"
        )
    from .load import spec_from_flags

    if "vcpus" in given:
        given["vcpu"] = given.pop("vcpus")
    return spec_from_flags(**given)



@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False), required=False)
@click.option("--emulator", metavar="PATH", help="Use this <emulator> instead of the host's.")
@click.option("--offline", is_flag=True, help="Do not ask the daemon for its emulator.")
@spec_flag_options
@pass_state
def render(
    state: State, spec: str | None, emulator: str | None, offline: bool, flags: dict[str, Any]
) -> None:
    """Print the domain XML for SPEC (a TOML file) or for spec flags, like virt-install
    --print-xml.

    \b
    lxcvirt render web.toml
    lxcvirt render --name web --init /bin/sh --root /srv/web --memory 128MiB --network default
    """
    from .rendering import render_file

    rendered = render_file(
        _source(spec, flags), uri=state.uri, emulator=emulator, offline=offline
    )
    if rendered.note:
        for line in rendered.note.splitlines():
            note(line)
    click.echo(rendered.xml, nl=False)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@json_option
@pass_state
def validate(state: State, files: Sequence[str], as_json: bool) -> int:
    """Check specs (.toml) and domain XML files; exit 1 when any is invalid."""
    from .rendering import check_files

    results = check_files(files)
    if want_json(state, as_json):
        emit(
            [
                {"file": f, "valid": err is None,
                 "warnings": [w.to_dict() for w in warns]}
                | ({} if err is None else _error_dict(err))
                for f, err, warns in results
            ]
        )
    else:
        for f, err, warns in results:
            for w in warns:
                where = w.file if w.line is None else f"{w.file}:{w.line}"
                click.echo(f"{where}: warning: {w.message}", err=True)
            if err is None:
                click.echo(f"{f}: valid")
            else:
                for line in str(err).splitlines():
                    click.echo(line if line.startswith(f) else f"{f}: {line}", err=True)
    return 0 if all(err is None for _, err, _w in results) else EXIT_ERROR


def _error_dict(err: Exception) -> dict[str, object]:
    if isinstance(err, LxcvirtError):
        return err.to_dict()
    return {"error": "error", "message": str(err)}


# --- lifecycle ------------------------------------------------------------------------

host_emulator_option = click.option(
    "--host-emulator", is_flag=True, help="Rewrite <emulator> to the host's LXC emulator."
)


def _print_define(result: Any, show_diff: bool) -> None:
    click.echo(f"{result.name}: {result.action}")
    if result.restart_needed:
        click.echo(f"{result.name}: running; the new definition applies at the next start")
    if show_diff and result.diff:
        click.echo(result.diff, nl=False)


@cli.command()
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
    result = state.host().define(_source(source, flags), host_emulator=host_emulator)
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


@cli.command()
@click.argument("name", required=False)
@with_options(start_options)
@with_options(_autostart_cli.START_ALL_OPTIONS)
@json_option
@pass_state
def start(
    state: State, name: str | None, no_check: bool, settle: float, timeout: float,
    all_: bool, groups: tuple[str, ...], parallel: int | None, ignore_auto: bool, boot: bool,
    config: str | None, as_json: bool,
) -> int | None:
    """Start a defined container and wait until it runs (--all: the autostart set, in order)."""
    rc = _autostart_cli.start_all_command(
        state, name, all_=all_, groups=groups, parallel=parallel, ignore_auto=ignore_auto,
        boot=boot, config=config, no_check=no_check, settle=settle, timeout=timeout,
        as_json=as_json,
    )
    if rc is not None or name is None:
        return rc
    status = state.host().start(name, check=not no_check, settle=settle, timeout=timeout)
    if want_json(state, as_json):
        emit(status.to_dict())
    else:
        click.echo(f"{name}: running (id {status.id})")
    return None


@cli.command()
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

    src = _source(source, flags)
    host = state.host()
    built = ensure_roots_for(src, local=host.is_local)
    result, status = host.create(
        src, host_emulator=host_emulator, check=not no_check, settle=settle, timeout=timeout,
    )
    if want_json(state, as_json):
        out: dict[str, object] = {"define": result.to_dict(), "status": status.to_dict()}
        if built:
            out["rootfs"] = [r.to_dict() for r in built]
        emit(out)
    else:
        for r in built:
            how = "from the cache" if r.cache_hit else "built"
            click.echo(f"{result.name}: root {r.dest} made of {r.image} ({how}, {r.seconds:.1f} s)")
        _print_define(result, False)
        click.echo(f"{status.name}: running (id {status.id})")


@cli.command()
@click.argument("name", required=False)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a graceful shutdown before destroying.",
)
@with_options(_autostart_cli.STOP_ALL_OPTIONS)
@_MODE_OPTION
@json_option
@pass_state
def stop(
    state: State, name: str | None, timeout: float, all_: bool, groups: tuple[str, ...],
    parallel: int | None, mode: str | None, as_json: bool,
) -> int | None:
    """Shut a container down gracefully; destroy it after --timeout (--all: in reverse order).

    systemd is asked with SIGRTMIN+3, other inits through initctl and SIGTERM, unless the
    spec's [init] halt or --mode says otherwise.
    """
    if mode is not None and all_:
        raise click.UsageError("--mode goes with one NAME, not --all")
    rc = _autostart_cli.stop_all_command(
        state, name, all_=all_, groups=groups, parallel=parallel, timeout=timeout,
        as_json=as_json,
    )
    if rc is not None or name is None:
        return rc
    result = state.host().stop(name, timeout=timeout, mode=mode)
    if want_json(state, as_json):
        emit(result.to_dict())
    elif result.method:
        click.echo(f"{name}: {result.how} in {result.seconds:.1f} s ({result.method})")
    else:
        click.echo(f"{name}: {result.how}")
    return None


@cli.command()
@click.argument("name")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for the container to come back.")
@_MODE_OPTION
@json_option
@pass_state
def reboot(state: State, name: str, timeout: float, mode: str | None, as_json: bool) -> None:
    """Reboot the system inside a running container (a new init; it keeps running).

    systemd is asked with SIGRTMIN+5; an init that knows no reboot request is stopped
    gracefully and started again.
    """
    result = state.host().reboot(name, timeout=timeout, mode=mode)
    if want_json(state, as_json):
        emit(result.to_dict())
    else:
        click.echo(f"{name}: {result.how} in {result.seconds:.1f} s ({result.method}), "
                   f"running (id {result.status.id})")


@cli.command()
@click.argument("name")
@json_option
@pass_state
def destroy(state: State, name: str, as_json: bool) -> None:
    """Stop a container at once."""
    result = state.host().destroy(name)
    if want_json(state, as_json):
        emit(result.to_dict())
    else:
        click.echo(f"{name}: destroyed")


@cli.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Stop a running container first.")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True)
@json_option
@pass_state
def undefine(state: State, name: str, force: bool, timeout: float, as_json: bool) -> None:
    """Remove a container's definition."""
    state.host().undefine(name, force=force, timeout=timeout)
    if want_json(state, as_json):
        emit({"name": name, "undefined": True})
    else:
        click.echo(f"{name}: undefined")


@cli.command(name="list")
@click.option("--all", "all_", is_flag=True, help="Include containers that are not running.")
@json_option
@pass_state
def list_(state: State, all_: bool, as_json: bool) -> None:
    """List containers (running ones; --all for every defined one)."""
    statuses = state.host().list(all=all_)
    if want_json(state, as_json):
        emit([s.to_dict() for s in statuses])
        return
    rows = [("NAME", "STATE", "ID", "MEMORY", "IPV4", "AUTOSTART")]
    for s in statuses:
        auto = "-"
        if s.problem is not None:
            auto = "? (broken: see below)"
        elif s.autostart is not None and s.autostart.auto:
            auto = f"yes (priority {s.autostart.priority})"
        rows.append(
            (s.name, s.state, "-" if s.id is None else str(s.id), f"{s.memory_kib} KiB",
             ",".join(s.ipv4) or "-", auto)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for s in statuses:
        if s.problem is not None:
            note(f"{s.name}: broken: {s.problem} (redefine it from a good spec or XML)")


@cli.command()
@click.argument("name")
@json_option
@pass_state
def status(state: State, name: str, as_json: bool) -> None:
    """Show one container's state, reason, id, memory and autostart settings."""
    s = state.host().status(name)
    if want_json(state, as_json):
        emit(s.to_dict())
        return
    click.echo(f"name:       {s.name}")
    click.echo(f"uuid:       {s.uuid}")
    click.echo(f"state:      {s.state} ({s.reason})")
    click.echo(f"id:         {'-' if s.id is None else s.id}")
    click.echo(f"memory:     {s.memory_kib} KiB (max {s.max_memory_kib} KiB)")
    click.echo(f"vcpus:      {s.vcpus}")
    click.echo(f"ipv4:       {', '.join(s.ipv4) or '-'}")
    click.echo(f"persistent: {'yes' if s.persistent else 'no'}")
    a = s.autostart
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


@cli.command()
@click.argument("name")
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


@cli.command(name="exec")
@click.argument("name")
@click.option("--user", "-u", metavar="USER", help="User (name or uid) inside the container.")
@click.option("--cwd", metavar="DIR", help="Working directory inside the container.")
@click.option("--env", "-e", "env", multiple=True, metavar="K=V", help="Set a variable.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_state
def exec_(
    state: State, name: str, user: str | None, cwd: str | None, env: tuple[str, ...],
    command: tuple[str, ...],
) -> int:
    """Run COMMAND inside a running container; exit with its status.

    \b
    lxcvirt exec web -- ps -ef
    """
    from .exec import run

    pairs = dict(_env_pair(e) for e in env)
    return run(state.host(), name, list(command), user=user, cwd=cwd, env=pairs)


# --- entry point ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; never lets a traceback reach the user: expected errors are one line
    with their exit code, anything else one "internal error" line (the traceback with
    ``LXCVIRT_DEBUG=1``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    state = State()
    try:
        return _main(args, state)
    finally:
        state.close()


def _main(args: list[str], state: State) -> int:
    try:
        rv = cli.main(args=args, prog_name="lxcvirt", standalone_mode=False, obj=state)
    except LxcvirtError as exc:
        if state.json:
            emit(exc.to_dict())
        lines = str(exc).splitlines() or [exc.kind]
        hint = f" ({exc.hint})" if exc.hint else ""
        click.echo(f"lxcvirt: error: {lines[0]}{hint}", err=True)
        for line in lines[1:]:
            click.echo(line, err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        # Usage errors exit 1 like every other error: 2 means "partial" here.
        exc.show()
        return EXIT_ERROR
    except click.exceptions.Abort:
        click.echo("lxcvirt: aborted", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("lxcvirt: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - the one place a bug meets the user
        if os.environ.get("LXCVIRT_DEBUG"):
            raise
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if state.json:
            emit({"error": "internal", "message": message})
        click.echo(f"lxcvirt: internal error: {message} (a bug in lxcvirt; run again with "
                   "LXCVIRT_DEBUG=1 to see the traceback, and report it)", err=True)
        return EXIT_ERROR
    return rv if isinstance(rv, int) else 0


def run() -> None:
    sys.exit(main())
