"""What every ``lxcvirt`` command module shares: the global state passed through click's
context, JSON and message output, the ``--json`` option.  Imports only click at module
level, so loading it costs nothing at start-up; the command modules (``cli``, ``_cli_*``)
import it, and it imports none of them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

if TYPE_CHECKING:
    from .host import Host

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """Global options, passed to commands through click's context object."""

    def __init__(self, uri: str | None = None) -> None:
        self.uri = uri
        self.json = False
        #: --json-lines: one JSON object per line as each container is done.
        self.json_lines = False
        #: -q/--quiet: no result lines; errors only.
        self.quiet = False
        #: -v/--debug: libvirt calls logged, an internal error's traceback shown.
        self.debug = False
        self._host: Host | None = None

    def host(self, **kwargs: Any) -> Host:
        from .host import Host

        if self._host is None:
            self._host = Host(self.uri, **kwargs)
        return self._host

    def close(self) -> None:
        """Release the connection a command opened (in-process callers of ``main`` run
        many commands in one process)."""
        if self._host is not None:
            self._host.close()
            self._host = None


def shown(text: str) -> str:
    """``text`` safe to print on a terminal: a name read from the daemon may hold control
    characters (an escape sequence rewrites the screen), shown as ``\\x1b``-style escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def emit(data: object) -> None:
    """Print ``data`` as JSON (the ``--json`` output of every command)."""
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def note(message: str) -> None:
    """A line for the user on stderr, beside the command's own output."""
    click.echo(f"lxcvirt: {message}", err=True)


def want_json(state: Any, as_json: bool) -> bool:
    """True when JSON was asked for, by this command's ``--json`` or an earlier one;
    remembered on ``state`` so that an error is printed as JSON too."""
    wanted = bool(getattr(state, "json", False) or as_json)
    state.json = wanted
    return wanted


pass_state = click.make_pass_decorator(State)


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    # Noted while the arguments are parsed, before the command runs: an error the command
    # raises is then printed as JSON too (cli.main looks at the state, not at argv).
    state = ctx.find_object(State)
    if value and state is not None:
        state.json = True
    return value


def json_flag(help: str = "Print JSON for scripts.") -> Callable[[F], F]:
    """The ``--json`` option (the command gets it as ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=help, callback=_remember_json)


json_option = json_flag()


def _remember_json_lines(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    state = ctx.find_object(State)
    if value and state is not None:
        state.json = state.json_lines = True
    return value


#: ``--json`` and ``--json-lines`` of the commands that act on containers one by one.
report_json_options = [
    json_option,
    click.option("--json-lines", "json_lines", is_flag=True, expose_value=False,
                 callback=_remember_json_lines,
                 help="Print each container's outcome as one JSON line when it is done, "
                      "then the report without them."),
]


class Progress:
    """What a command acting on several containers says as each is done.

    Text: ``[i/N] line (at T s)`` on stdout, flushed line by line (also into a pipe or the
    journal), and on a terminal a bar on stderr below them; nothing with --quiet.
    --json-lines: each outcome as one JSON line, at once.  --json: nothing until the end.
    """

    BAR_WIDTH = 24

    def __init__(self, state: Any, total: int | None = None) -> None:
        import sys
        import threading
        import time

        self.quiet = bool(getattr(state, "quiet", False))
        self.lines = bool(getattr(state, "json_lines", False))
        self.json = bool(getattr(state, "json", False)) and not self.lines
        self.total = total
        self.done = 0
        self.began = time.monotonic()
        self.lock = threading.Lock()
        self.bar = (not (self.quiet or self.json or self.lines)) and sys.stderr.isatty()
        self._bar_shown = False

    @property
    def text(self) -> bool:
        """Whether text lines are printed (not JSON, not --quiet)."""
        return not (self.quiet or self.json or self.lines)

    def elapsed(self) -> float:
        import time

        return time.monotonic() - self.began

    def say(self, line: str) -> None:
        """A line of text that is not a container's (a waiting note)."""
        if self.text:
            with self.lock:
                self._clear_bar()
                click.echo(line)
                self._draw_bar()

    def item(self, line: str, outcome: dict[str, object], *, again: bool = False) -> None:
        """One container done (``again``: its outcome changed since it was said)."""
        with self.lock:
            if not again:
                self.done += 1
            if self.lines:
                click.echo(json.dumps(outcome))
            elif self.text:
                self._clear_bar()
                where = "" if again else f"[{self.done}/{self.total or '?'}] "
                click.echo(f"{where}{line} (at {self.elapsed():.1f} s)")
                self._draw_bar()

    def finish(self, report: dict[str, Any], label: str | None = None) -> None:
        """The end: the report (--json), the report without its containers
        (--json-lines), or a summary line: ``LABEL: 2 shut down, 1 failed (3 in 1.2 s)``
        (LABEL: the report's action)."""
        with self.lock:
            self._clear_bar()
            if self.lines:
                click.echo(json.dumps({k: v for k, v in report.items() if k != "containers"}))
            elif self.json:
                emit(report)
            elif not self.quiet:
                click.echo(summary_line(label or report["action"], report["counts"],
                                        len(report["containers"]), report["seconds"]))

    def _draw_bar(self) -> None:
        if not self.bar or not self.total:
            return
        filled = self.BAR_WIDTH * self.done // self.total
        click.echo(f"[{'#' * filled}{'.' * (self.BAR_WIDTH - filled)}] {self.done}/"
                   f"{self.total} {self.elapsed():.0f} s", nl=False, err=True)
        self._bar_shown = True

    def _clear_bar(self) -> None:
        if self._bar_shown:
            click.echo("\r\x1b[K", nl=False, err=True)
            self._bar_shown = False


def summary_line(action: str, counts: dict[str, int], total: int, seconds: float) -> str:
    """``stop: 2 shut down, 1 failed (3 in 1.2 s)``."""
    said = ", ".join(f"{n} {r}" for r, n in counts.items())
    if not total:
        return f"nothing to {action.split()[0]}"
    return f"{action}: {said} ({total} in {seconds:.1f} s)"


def with_options(options: list[Any]) -> Callable[[F], F]:
    """Apply a list of click options (decorators) to a command, in order."""

    def deco(fn: F) -> F:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return deco


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
    click.option("--mount", "f_mounts", multiple=True, metavar="SRC:DST[:ro|:rw]",
                 help="Bind a host directory."),
    click.option("--ram", "f_rams", multiple=True, metavar="DST:SIZE", help="A RAM filesystem."),
    click.option("--network", "f_networks", multiple=True, metavar="NET",
                 help="An interface on a libvirt network."),
    click.option("--bridge", "f_bridges", multiple=True, metavar="BR",
                 help="An interface on a host bridge."),
    click.option("--memory", "f_memory", metavar="SIZE", help="Memory, e.g. 256MiB."),
    click.option("--vcpu", "f_vcpus", type=click.IntRange(min=1), metavar="N", help="vCPUs."),
    click.option("--address", "f_addresses", multiple=True, metavar="ADDR/PREFIX",
                 help="A static address of the first interface (10.0.3.5/24)."),
    click.option("--gateway", "f_gateway", metavar="IP",
                 help="A default route of the first interface."),
    click.option("--device", "f_devices", multiple=True, metavar="PATH[:char]",
                 help="Pass a host block (or :char) device in."),
    click.option("--memory-limit", "f_memory_hard_limit", metavar="SIZE",
                 help="Memory hard limit (<memtune>): the OOM killer acts above it."),
    click.option("--memory-soft-limit", "f_memory_soft_limit", metavar="SIZE",
                 help="Memory the container is pushed back to under pressure."),
    click.option("--swap-limit", "f_swap_hard_limit", metavar="SIZE",
                 help="Memory plus swap hard limit."),
    click.option("--cpu-shares", "f_cpu_shares", type=int, metavar="N",
                 help="Relative CPU weight (default 1024)."),
    click.option("--cpu-period", "f_cpu_period", type=int, metavar="US",
                 help="CPU bandwidth period in microseconds."),
    click.option("--cpu-quota", "f_cpu_quota", type=int, metavar="US",
                 help="CPU time per period in microseconds (-1: none)."),
    click.option("--cpuset", "f_cpuset", metavar="CPUS", help="Host CPUs it may use (0-3,6)."),
    click.option("--blkio-weight", "f_blkio_weight", type=int, metavar="N",
                 help="Relative block I/O weight (100-1000)."),
    click.option("--capabilities", "f_capabilities", metavar="POLICY",
                 help="Capability policy: default, allow or deny."),
    click.option("--cap-drop", "f_cap_drop", multiple=True, metavar="CAP",
                 help="Drop a capability (mknod, sys_admin, ...)."),
    click.option("--cap-add", "f_cap_add", multiple=True, metavar="CAP",
                 help="Keep a capability libvirt's policy would drop."),
]


def spec_flag_options(fn: F) -> F:
    """Add the spec flags; the command gets them together as ``flags``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags = {k[2:]: kwargs.pop(k) for k in list(kwargs) if k.startswith("f_")}
        return fn(*args, flags=flags, **kwargs)

    return with_options(_SPEC_FLAGS)(cast(F, wrapper))


def source_from(path: str | None, flags: dict[str, Any]) -> Any:
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


def limits_text(s: Any) -> str:
    """The limits a status shows, in the words of the spec, with use next to memory."""
    from ._units import format_kib

    lim = s.limits
    parts = []
    if "memory_hard_limit" in lim:
        parts.append(f"memory {format_kib(lim['memory_hard_limit'])} "
                     f"(using {format_kib(s.memory_kib)})" if s.running
                     else f"memory {format_kib(lim['memory_hard_limit'])}")
    for key, label in (("memory_soft_limit", "soft"), ("swap_hard_limit", "memory+swap")):
        if key in lim:
            parts.append(f"{label} {format_kib(lim[key])}")
    for key, label in (("cpu_shares", "cpu shares"), ("cpu_quota", "cpu quota"),
                       ("cpu_period", "period"), ("blkio_weight", "blkio weight")):
        if key in lim:
            unit = " µs" if key in ("cpu_quota", "cpu_period") else ""
            parts.append(f"{label} {lim[key]}{unit}")
    return ", ".join(parts) or "-"


def _statuses(ctx: click.Context) -> list[Any]:
    """Every container on the daemon at -c (or the default URI), for completion; none,
    never an error, when it does not answer."""
    from .errors import LxcvirtError
    from .host import Host

    root = ctx.find_root()
    uri = root.params.get("uri") if root is not None else None
    try:
        with Host(uri, preflight=lambda _h: None) as host:
            return host.list(all=True)
    except (LxcvirtError, OSError):
        return []


def complete_names(ctx: click.Context, _param: click.Parameter,
                   incomplete: str) -> list[Any]:
    """Shell completion of container names."""
    from click.shell_completion import CompletionItem

    found = sorted(s.name for s in _statuses(ctx))
    return [CompletionItem(n) for n in found if n.startswith(incomplete)]


def complete_groups(ctx: click.Context, _param: click.Parameter,
                    incomplete: str) -> list[Any]:
    """Shell completion of autostart groups: those the containers on the daemon name."""
    from click.shell_completion import CompletionItem

    groups = {g for s in _statuses(ctx) if s.autostart is not None for g in s.autostart.groups}
    return [CompletionItem(g) for g in sorted(groups) if g.startswith(incomplete)]


def complete_hosts(ctx: click.Context, _param: click.Parameter,
                   incomplete: str) -> list[Any]:
    """Shell completion of --host: the host names of the inventory given with -i."""
    from click.shell_completion import CompletionItem

    from .errors import LxcvirtError
    from .inventory import load_inventory

    path = ctx.params.get("inventory")
    if not path:
        return []
    try:
        names = load_inventory(path).names
    except (LxcvirtError, OSError):
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]
