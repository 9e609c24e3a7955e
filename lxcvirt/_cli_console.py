"""``lxcvirt console``: attach to a container's console (see :mod:`lxcvirt.console`)."""

from __future__ import annotations

import click

from ._cli_common import State, complete_names


@click.command()
@click.argument("name", shell_complete=complete_names)
@click.option(
    "-e", "--escape", default="^]", show_default=True, metavar="KEY",
    help="Detach key, in hat notation (^a) or one character.",
)
@click.option("--force", is_flag=True, help="Take the console over from another session.")
@click.option(
    "--send", "send", multiple=True, metavar="TEXT",
    help="Send TEXT first (\\n \\r \\t \\e \\xHH understood); scripted mode.",
)
@click.option(
    "--expect", "expect", multiple=True, metavar="REGEX",
    help="Exit 0 once the console printed REGEX (several: in order); scripted mode.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
    help="End the session after SECONDS (exit 1 when an --expect was not seen).",
)
@click.pass_obj
def console(
    state: object, name: str, escape: str, force: bool, send: tuple[str, ...],
    expect: tuple[str, ...], timeout: float | None,
) -> int:
    """Attach to a running container's console.

    On a terminal: raw mode until the escape key (default ^], Ctrl+]).  Otherwise, or
    with --send/--expect: stdin is sent, the console's output goes to stdout.

    \b
    lxcvirt console web
    lxcvirt console web -e ^a
    lxcvirt console web --send 'uname -a\\n' --expect 'Linux' --timeout 10
    echo 'ps' | lxcvirt console web
    """
    from .console import attach

    assert isinstance(state, State)
    result = attach(
        state.host(), name, escape=escape, force=force, send=send, expect=expect,
        timeout=timeout,
    )
    return result.code
