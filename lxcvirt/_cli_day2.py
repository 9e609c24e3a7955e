"""Living with containers: ``events`` (lifecycle events as they happen) and ``logs``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ._cli_common import json_option, shown, want_json


@click.command(name="events")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, metavar="S",
              help="Stop after S seconds (default: until interrupted).")
@click.option("--count", type=click.IntRange(min=1), default=None, metavar="N",
              help="Stop after N events.")
@json_option
@click.pass_obj
def events(state: Any, /, names: tuple[str, ...], timeout: float | None, count: int | None,
           as_json: bool) -> None:
    """Print lifecycle events as they happen, one line each (JSON lines with --json), of
    every container or of the NAMEs given, like virsh event --loop."""
    from .host import events as watch

    as_json = want_json(state, as_json)
    for ev in watch(state.host(), names, timeout=timeout, count=count):
        if as_json:
            click.echo(json.dumps(ev.to_dict()))
        else:
            click.echo(f"{ev.stamp} {shown(ev.name)}: {ev.event} ({ev.detail})")
        sys.stdout.flush()  # each line as it happens, also into a pipe or the journal


def _tail(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


@click.command(name="logs")
@click.argument("name")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True,
              help="How many of the last lines to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing what is written.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, hidden=True)
@click.pass_obj
def logs(state: Any, /, name: str, lines: int, follow: bool, interval: float) -> None:
    """Show a container's libvirt log (/var/log/libvirt/lxc/NAME.log on the daemon's
    host): each start, how libvirt ran it, its controller's errors.  -f follows it."""
    import os
    import time

    from .errors import HostError
    from .host import LXC_LOG_DIR

    host = state.host()
    dom = host.domain(name)  # it exists (and its real name, for the file)
    if not host.is_local:
        raise HostError(f"the log of {name} is a file on the host of {host.uri}",
                        hint="run lxcvirt logs on that host")
    path = LXC_LOG_DIR / f"{dom.name()}.log"
    try:
        # Never through a symlink planted in the log folder; never hang on a FIFO.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if not follow:
            click.echo(f"lxcvirt: {name} has no log yet (it has not been started)", err=True)
            return
        fd = -1
    except OSError as exc:
        raise HostError(f"cannot read {path}: {exc.strerror or exc}") from None
    out = sys.stdout.buffer
    try:
        if fd >= 0:
            import stat

            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise HostError(f"{path} is not a regular file")
            size = os.fstat(fd).st_size
            start = max(0, size - 1024 * 1024)  # the last MiB holds the last lines
            os.lseek(fd, start, os.SEEK_SET)
            out.write(_tail(os.read(fd, size - start + 1), lines))
            out.flush()
        while follow:
            time.sleep(interval)
            if fd < 0:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                                 | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
            here = os.lseek(fd, 0, os.SEEK_CUR)
            if os.fstat(fd).st_size < here:  # truncated: from its start again
                os.lseek(fd, 0, os.SEEK_SET)
            while chunk := os.read(fd, 65536):
                out.write(chunk)
            out.flush()
    finally:
        if fd >= 0:
            os.close(fd)
