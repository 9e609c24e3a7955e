"""Living with containers: ``events`` (lifecycle events as they happen) and ``logs``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ._cli_common import complete_names, json_option, limits_text, shown, want_json


@click.command(name="events")
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_names)
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
@click.argument("name", shell_complete=complete_names)
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


def _duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {s}s" if minutes else f"{s}s"


@click.command(name="info")
@click.argument("name", shell_complete=complete_names)
@json_option
@click.pass_obj
def info(state: Any, /, name: str, as_json: bool) -> None:
    """Show one container in full: state, uptime, init pid, CPU time, memory used, limit
    and peak, each interface (MAC, addresses, traffic), mounts, limits, autostart."""
    from ._units import format_kib
    from .host import info as read_info

    i = read_info(state.host(), name)
    if want_json(state, as_json):
        click.echo(json.dumps(i.to_dict(), indent=2))
        return
    s = i.status
    d = i.to_dict()
    mem: Any = d["memory"]

    def kib(v: int | None) -> str:
        return "-" if v is None else format_kib(v)

    rows = [
        ("name", shown(s.name)),
        ("state", f"{s.state} ({s.reason})" + ("; restart needed" if s.restart_needed else "")),
        ("id", "-" if s.id is None else str(s.id)),
        ("init pid", "-" if i.init_pid is None else str(i.init_pid)),
        ("uptime", "-" if i.uptime_s is None else _duration(i.uptime_s)),
        ("cpu time", f"{s.cpu_time_ns / 1e9:.2f} s" + (
            "" if i.cpu_user_ns is None or i.cpu_system_ns is None else
            f" (user {i.cpu_user_ns / 1e9:.2f} s, system {i.cpu_system_ns / 1e9:.2f} s)")),
        ("memory", f"{kib(mem['used_kib'])} used, limit {kib(mem['limit_kib'])}, "
                   f"peak {kib(mem['peak_kib'])}"),
        ("vcpus", str(s.vcpus) + (f" (on CPUs {s.cpuset})" if s.cpuset else "")),
        ("limits", limits_text(s)),
        ("project", shown(s.project or "-")),
    ]
    a = s.autostart
    rows.append(("autostart", "-" if a is None else
                 f"{'yes' if a.auto else 'no'}, priority {a.priority}"))
    if s.oom_kills is not None:
        rows.append(("oom kills", str(s.oom_kills)))
    for label, value in rows:
        click.echo(f"{label + ':':<12}{value}")
    for n, itf in enumerate(i.interfaces):
        traffic = ("" if itf.rx_bytes is None else
                   f", rx {itf.rx_bytes} B, tx {itf.tx_bytes} B")
        click.echo(f"{'interface:' if n == 0 else '':<12}{itf.type} {shown(itf.source or '-')} "
                   f"{itf.mac or '-'} {', '.join(itf.addresses) or '-'}{traffic}")
    for n, m in enumerate(i.mounts):
        click.echo(f"{'mount:' if n == 0 else '':<12}{shown(m.source or m.type)} -> "
                   f"{shown(m.target)}{' (ro)' if m.readonly else ''}")


@click.command(name="edit")
@click.argument("name", shell_complete=complete_names)
@click.pass_obj
def edit(state: Any, /, name: str) -> int | None:
    """Edit a container's definition in $EDITOR (then $VISUAL, vi), like virsh edit:
    validated, the change shown, redefined; on an error it offers to edit again, and an
    invalid definition is never stored."""
    import os
    import shlex
    import subprocess
    import tempfile

    from .errors import LxcvirtError
    from .validate import check_domain_xml

    host = state.host()
    dom = host.domain(name)
    original = host.dumpxml(name, inactive=True)
    editor = shlex.split(os.environ.get("EDITOR") or os.environ.get("VISUAL") or "vi")
    with tempfile.TemporaryDirectory(prefix="lxcvirt-edit-") as folder:
        path = os.path.join(folder, f"{dom.name()}.xml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(original)
        while True:
            try:
                subprocess.run([*editor, path], check=True)
            except (OSError, subprocess.CalledProcessError) as exc:
                click.echo(f"lxcvirt: error: the editor {editor[0]} failed: {exc}; "
                           f"{name} is unchanged", err=True)
                return 1
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if text == original:
                click.echo(f"{name}: unchanged")
                return None
            try:
                checked = check_domain_xml(text, source=path)
                if checked.name != dom.name():
                    from .errors import SpecError

                    raise SpecError("name", f"edit cannot rename {name}; define a copy "
                                            "under the new name instead")
                result = host.define(text)
            except LxcvirtError as exc:
                click.echo(f"lxcvirt: error: {str(exc).splitlines()[0]}", err=True)
                for line in str(exc).splitlines()[1:]:
                    click.echo(f"  {line}", err=True)
                if not click.confirm("Edit again?", default=True, err=True):
                    click.echo(f"{name}: unchanged (nothing was stored)", err=True)
                    return 1
                continue
            if result.diff:
                click.echo(result.diff.rstrip("\n"))
            extra = "; restart needed (it runs the old definition)" \
                if result.restart_needed else ""
            click.echo(f"{name}: {result.action}{extra}")
            return None


@click.command(name="stats")
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_names)
@click.option("--interval", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              metavar="S", help="Seconds between samples.")
@click.option("--count", type=click.IntRange(min=1), default=None, metavar="N",
              help="Refresh N times, then stop (default: until interrupted; 1 with --json).")
@json_option
@click.pass_obj
def stats(state: Any, /, names: tuple[str, ...], interval: float, count: int | None,
          as_json: bool) -> None:
    """What running containers use, refreshed every --interval seconds: CPU (100 % is one
    CPU), memory / limit, network and block I/O per second.  --json: one measurement over
    one interval, for monitoring scripts."""
    import time

    from ._units import human_kib
    from .host import sample, usage

    as_json = want_json(state, as_json)
    host = state.host()
    if as_json and count is None:
        count = 1
    tty = sys.stdout.isatty()

    def rate(v: float | None) -> str:
        return "-" if v is None else f"{human_kib(int(v // 1024))}/s"

    before = sample(host, names)
    done = 0
    while count is None or done < count:
        time.sleep(interval)
        after = sample(host, names)
        rows = usage(before, after)
        before = after
        done += 1
        if as_json:
            click.echo(json.dumps([u.to_dict() for u in rows]))
            sys.stdout.flush()
            continue
        table = [("NAME", "CPU", "MEMORY", "NET RX", "NET TX", "BLOCK READ", "BLOCK WRITE")]
        table += [(shown(u.name), f"{u.cpu_percent:.1f}%",
                   f"{human_kib(u.memory_kib)} / {human_kib(u.limit_kib)}",
                   rate(u.rx_per_s), rate(u.tx_per_s), rate(u.read_per_s),
                   rate(u.write_per_s)) for u in rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        if tty:
            click.echo("\x1b[H\x1b[2J", nl=False)  # top-like: the screen redrawn
        for r in table:
            click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        sys.stdout.flush()
