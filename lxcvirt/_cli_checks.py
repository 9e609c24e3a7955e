"""``lxcvirt check``: predict whether a container will really start on this host."""

from __future__ import annotations

from typing import Any

import click

from ._cli_common import emit, json_option, want_json

_LABELS = {"fail": "FAIL", "warn": "WARN", "unknown": "UNKNOWN", "ok": "OK"}


@click.command(name="check")
@click.option(
    "--spec",
    type=click.Path(dir_okay=False, exists=True),
    help="Also check what this spec needs (its networks and bridges; for an [idmap] "
    "spec its network namespace, root folder, user namespaces and systemd cgroup).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True),
    help="Read /proc and /sys under DIR instead of / (fixture trees); no daemon checks.",
)
@click.option("--no-probe", is_flag=True, help="Do not create probe cgroups.")
@click.option("--problems", is_flag=True, help="Print only what is not ok.")
@json_option
@click.pass_obj
def check(
    state: Any, spec: str | None, root: str | None, no_probe: bool, problems: bool,
    as_json: bool,
) -> int:
    """Check the host and the daemon; exit 1 when a check fails.

    \b
    Levels: FAIL (a container will not start), WARN (it starts, something is missing),
    UNKNOWN (not checkable: a remote URI, files only root may read), OK.  --json says
    the same levels in lower case.
    """
    from .checks import run_checks

    host = None if root is not None else state.host()
    report = run_checks(host, root=root or "/", spec=spec, probe=not no_probe)
    if want_json(state, as_json):
        emit(report.to_dict())
        return report.exit_code
    width = max((len(f.check) for f in report.findings), default=0)
    for f in report.findings:
        if problems and f.level == "ok":
            continue
        click.echo(f"{_LABELS[f.level]:<7} {f.check:<{width}}  {f.what}")
        pad = " " * (width + 10)
        if f.level != "ok" and f.why:
            click.echo(f"{pad}why: {f.why}")
        if f.level != "ok" and f.fix:
            click.echo(f"{pad}fix: {f.fix}")
    c = report.counts()
    click.echo(
        f"verdict: {report.verdict} ({c['fail']} fail, {c['warn']} warn, "
        f"{c['unknown']} unknown, {c['ok']} ok)"
    )
    return report.exit_code
