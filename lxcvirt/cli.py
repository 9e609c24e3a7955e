"""The ``lxcvirt`` command: each command parses, calls one library function, prints.

Imports of the library (and so of libvirt, lxml, jinja2) happen inside the commands, so
``lxcvirt --help`` and quick commands start fast.

Exit codes: 0 ok, 1 error (including bad usage), 2 partial (a command acting on several
containers did some of it).  Errors are one line on stderr (``lxcvirt: error: ...``); with
``--json`` the error is also printed on stdout as ``{"error": kind, "message": ...}``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import cast

import click

from ._cli_common import State, emit
from .errors import EXIT_ERROR, LxcvirtError

# --- commands -------------------------------------------------------------------------
# Every command lives in a module of its own kind (_cli_specs, _cli_lifecycle, one per
# feature), imported only when the command is run (or listed by --help): a quick command
# like `list` does not pay for the others' imports.  The table names each command's
# module; the imports are plain ones, inside functions, so the import checks see them.


def _specs(name: str) -> click.Command:
    from . import _cli_specs

    return cast(click.Command, getattr(_cli_specs, name))


def _lifecycle(name: str) -> click.Command:
    from . import _cli_lifecycle

    return cast(click.Command, getattr(_cli_lifecycle, name))


def _feature(name: str) -> click.Command:
    if name == "apply":
        from ._cli_apply import apply

        return apply
    if name == "autostart":
        from ._cli_autostart import autostart

        return autostart
    if name == "check":
        from ._cli_checks import check

        return check
    if name == "console":
        from ._cli_console import console

        return console
    if name == "set":
        from ._cli_tuning import set_

        return set_
    if name in ("events", "logs", "info", "edit", "stats"):
        from . import _cli_day2

        return cast(click.Command, getattr(_cli_day2, name))
    from ._cli_rootfs import rootfs

    return rootfs


#: command -> (loader, the attribute it is under in its module)
_COMMANDS: dict[str, tuple[Callable[[str], click.Command], str]] = {
    "render": (_specs, "render"), "validate": (_specs, "validate"),
    **{c: (_lifecycle, c) for c in ("define", "create", "start", "stop", "reboot", "restart",
                                    "suspend", "resume", "destroy", "undefine", "status",
                                    "dumpxml")},
    "list": (_lifecycle, "list_"), "exec": (_lifecycle, "exec_"),
    **{c: (_feature, c) for c in ("apply", "autostart", "check", "console", "rootfs", "set",
                                  "events", "logs", "info", "edit", "stats")},
}


class _LazyGroup(click.Group):
    """A group whose commands load on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is not None and cmd_name not in self.commands:
            load, attr = entry
            self.add_command(load(attr), cmd_name)
        return super().get_command(ctx, cmd_name)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (in-process callers swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _versions(ctx: click.Context) -> None:
    """lxcvirt, libvirt-python, the libvirt library, and the daemon at the URI (-c, given
    before --version, else the default) when it answers."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    def dotted(n: int) -> str:
        return f"{n // 1_000_000}.{n // 1000 % 1000}.{n % 1000}"

    click.echo(f"lxcvirt {__version__}")
    try:
        click.echo(f"libvirt-python {version('libvirt-python')}")
    except PackageNotFoundError:
        click.echo("libvirt-python (version unknown)")
    import libvirt

    click.echo(f"libvirt library {dotted(libvirt.getVersion())}")
    from . import _libvirt
    from .errors import LxcvirtError

    uri = ctx.params.get("uri") or _libvirt.default_uri()
    try:
        conn = _libvirt.open_connection(uri, events=False)
        try:
            daemon = dotted(_libvirt.call("asking the daemon's version", conn.getLibVersion))
        finally:
            with _libvirt.ignored():
                conn.close()
        click.echo(f"libvirtd {daemon} ({uri})")
    except LxcvirtError as exc:
        click.echo(f"libvirtd: not reachable ({str(exc).splitlines()[0]})")
    ctx.exit(0)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--connect",
    "uri",
    metavar="URI",
    default=None,
    is_eager=True,  # read before --version, which asks that daemon
    help="libvirt URI (default: $LIBVIRT_DEFAULT_URI, then lxc:///).",
)
@click.option("-v", "--debug", is_flag=True,
              help="Print each libvirt call and its duration on stderr; and the traceback of "
                   "an internal error.")
@click.option("-q", "--quiet", is_flag=True,
              help="Say nothing but errors (the exit code tells the rest); no progress.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, _p, value: _versions(ctx) if value else None,
              help="Show lxcvirt's, libvirt-python's, libvirt's and the daemon's versions.")
@click.pass_context
def cli(ctx: click.Context, uri: str | None, debug: bool, quiet: bool) -> None:
    """Linux containers through libvirt's LXC driver."""
    state = ctx.ensure_object(State)
    state.uri = uri
    state.quiet = quiet
    if debug:
        state.debug = True
        logger = logging.getLogger("lxcvirt")
        if not any(h.get_name() == "lxcvirt-debug" for h in logger.handlers):
            handler = _StderrHandler()
            handler.set_name("lxcvirt-debug")
            handler.setFormatter(logging.Formatter("lxcvirt: debug: %(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)


# --- entry point ----------------------------------------------------------------------


@cli.command(name="help")
@click.argument("command", required=False, metavar="[COMMAND]")
@click.pass_context
def help_(ctx: click.Context, command: str | None) -> None:
    """Show the help of lxcvirt, or of one COMMAND (as COMMAND --help does)."""
    root = ctx.parent
    assert root is not None
    if command is None:
        click.echo(root.get_help())
        return
    cmd = cli.get_command(root, command)
    if cmd is None:
        raise click.UsageError(f"no command {command!r} (lxcvirt help lists them)")
    with click.Context(cmd, info_name=command, parent=root) as sub:
        click.echo(cmd.get_help(sub))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; never lets a traceback reach the user: expected errors are one line
    with their exit code, anything else one "internal error" line (the traceback before it
    with ``-v``; raised with ``LXCVIRT_DEBUG=1``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    state = State()
    try:
        return _main(args, state)
    finally:
        state.close()
        if state.debug:  # in-process callers: the next command is quiet again
            logger = logging.getLogger("lxcvirt")
            for h in [h for h in logger.handlers if h.get_name() == "lxcvirt-debug"]:
                logger.removeHandler(h)
            logger.setLevel(logging.NOTSET)


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
        if state.debug:  # -v: the traceback, on stderr only
            import traceback

            traceback.print_exc(file=sys.stderr)
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if state.json:
            emit({"error": "internal", "message": message})
        click.echo(f"lxcvirt: internal error: {message} (a bug in lxcvirt; run again with "
                   "-v to see the traceback, and report it)", err=True)
        return EXIT_ERROR
    return rv if isinstance(rv, int) else 0


def run() -> None:
    sys.exit(main())
