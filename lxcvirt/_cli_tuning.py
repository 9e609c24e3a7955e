"""``lxcvirt set``: change a container's limits, running and/or in its definition."""

from __future__ import annotations

from typing import Any

import click

from ._cli_common import complete_names, emit, json_option, want_json

#: flag -> spec key of [limits]
_FLAGS = {
    "memory_limit": "memory_hard_limit",
    "memory_soft_limit": "memory_soft_limit",
    "swap_limit": "swap_hard_limit",
    "cpu_shares": "cpu_shares",
    "cpu_period": "cpu_period",
    "cpu_quota": "cpu_quota",
    "blkio_weight": "blkio_weight",
}
_SIZES = ("memory_hard_limit", "memory_soft_limit", "swap_hard_limit")


def _shown(key: str, value: int | None) -> str:
    from ._units import format_kib
    from .host import UNLIMITED_KIB

    if key in _SIZES:  # no memory limit is no limit
        return "unlimited" if value is None or value >= UNLIMITED_KIB else format_kib(value)
    return "-" if value is None else str(value)


@click.command(name="set")
@click.argument("name", shell_complete=complete_names)
@click.option("--memory-limit", metavar="SIZE", help="Memory hard limit, or 'unlimited'.")
@click.option("--memory-soft-limit", metavar="SIZE", help="Memory soft limit, or 'unlimited'.")
@click.option("--swap-limit", metavar="SIZE", help="Memory plus swap limit, or 'unlimited'.")
@click.option("--cpu-shares", type=int, metavar="N", help="Relative CPU weight.")
@click.option("--cpu-period", type=int, metavar="US", help="CPU bandwidth period (µs).")
@click.option("--cpu-quota", type=int, metavar="US", help="CPU time per period (µs, -1: none).")
@click.option("--blkio-weight", type=int, metavar="N", help="Relative block I/O weight.")
@click.option("--live", is_flag=True, help="Only the running container.")
@click.option("--config", is_flag=True, help="Only the stored definition (next start).")
@json_option
@click.pass_obj
def set_(state: Any, /, name: str, live: bool, config: bool, as_json: bool,
         **flags: str | int | None) -> None:
    """Change limits of container NAME, as virsh memtune, schedinfo and blkiotune do.

    \b
    By default on the running container and in its definition (only the definition
    when it is stopped); each value is reported with what it was before.
    """
    from ._units import UnitError, parse_kib
    from .errors import SpecError
    from .host import UNLIMITED_KIB, set_limits

    values: dict[str, int] = {}
    for flag, value in flags.items():
        if value is None:
            continue
        key = _FLAGS[flag]
        if key in _SIZES:
            text = str(value)
            if text.lower() in ("unlimited", "none", "-1"):
                values[key] = UNLIMITED_KIB
                continue
            try:
                values[key] = parse_kib(text)
            except UnitError as exc:
                raise SpecError("--" + flag.replace("_", "-"), str(exc)) from None
        else:
            values[key] = int(value)
    if not values:
        raise SpecError("", "nothing to set: give at least one limit (e.g. --memory-limit "
                            "512MiB, --cpu-shares 512)")
    try:
        result = set_limits(state.host(), name, values, live=live or None,
                            config=config or None)
    except SpecError as exc:
        key = exc.key.removeprefix("limits.")
        named = next((f for f, k in _FLAGS.items() if k == key), None)
        if named is None:
            raise
        raise SpecError("--" + named.replace("_", "-"), exc.detail) from None
    if want_json(state, as_json):
        emit(result.to_dict())
        return
    for c in result.changes:
        click.echo(f"{name}: {c.key} {_shown(c.key, c.old)} -> {_shown(c.key, c.new)} "
                   f"({c.scope})")
