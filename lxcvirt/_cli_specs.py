"""``render`` and ``validate``: specs (files or flags) to domain XML, and checking files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from ._cli_common import (
    State,
    emit,
    json_option,
    note,
    pass_state,
    source_from,
    spec_flag_options,
    want_json,
)
from .errors import EXIT_ERROR, LxcvirtError

# --- specs and validation -------------------------------------------------------------

@click.command()
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
        source_from(spec, flags), uri=state.uri, emulator=emulator, offline=offline
    )
    if rendered.note:
        for line in rendered.note.splitlines():
            note(line)
    click.echo(rendered.xml, nl=False)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@json_option
@pass_state
def validate(state: State, files: Sequence[str], as_json: bool) -> int:
    """Check specs (.toml) and domain XML files; exit 1 when any is invalid."""
    from .rendering import check_files

    results = check_files(files)
    if want_json(state, as_json):
        checked: list[dict[str, object]] = [
            {"file": f, "valid": err is None, "error": None, "message": None,
             "warnings": [w.to_dict() for w in warns]}
            | ({} if err is None else _error_dict(err))
            for f, err, warns in results
        ]
        bad = sum(1 for f in checked if not f["valid"])
        emit({"ok": bad == 0, "exit_code": EXIT_ERROR if bad else 0,
              "counts": {"valid": len(checked) - bad, "invalid": bad}, "files": checked})
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
    return {"error": "file", "message": str(err)}
