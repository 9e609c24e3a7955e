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
