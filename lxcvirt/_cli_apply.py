"""``lxcvirt apply``: make the host(s) match a folder of specs and domain XML files."""

from __future__ import annotations

from typing import Any

import click

from ._cli_common import complete_hosts, emit, json_flag, note, want_json


def _print_item(prefix: str, item: Any, text: str, diff: str) -> None:
    click.echo(f"{prefix}{item.name}: {text}")
    for line in diff.splitlines():
        click.echo(f"{prefix}  {line}")


def _print(result: Any, many_hosts: bool) -> None:
    by_key = {(r.host, r.name): r for r in result.results}
    for hp in result.plan.hosts:
        prefix = ""
        where = hp.host if hp.host == hp.uri else f"{hp.host} ({hp.uri})"
        if many_hosts or hp.error is not None:
            # A host that could not be read says why, even when it is the only one.
            failed = "" if hp.error is None else f" FAILED: {hp.error}"
            click.echo(f"host {where}:{failed}")
            prefix = "  "
        if hp.error is not None:
            continue
        for item in hp.items:
            res = by_key.get((hp.host, item.name))
            if result.dry_run or res is None:
                text = item.describe() if not item.changed else f"would {item.describe()}"
                _print_item(prefix, item, text, item.diff)
            else:
                _print_item(prefix, item, res.describe(), item.diff)
    counts = result.counts()
    if result.plan.project is not None:
        click.echo(f"project: {result.plan.project}")
    if result.dry_run:
        click.echo(
            f"plan: {counts['changed']} to change, {counts['unchanged']} unchanged"
            + (f", {counts['failed']} host(s) unreachable" if counts["failed"] else "")
            + " (dry run: nothing was changed)"
        )
    elif not result.plan.changed and result.ok:
        click.echo(f"no changes: {counts['unchanged']} unchanged")
    else:
        click.echo(
            f"applied: {counts['changed']} changed, {counts['unchanged']} unchanged, "
            f"{counts['failed']} failed"
        )


@click.command(name="apply")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--dry-run", is_flag=True, help="Print the plan only; change nothing.")
@click.option(
    "--prune",
    is_flag=True,
    help="Remove containers lxcvirt created that no file names any more (stopped first).",
)
@click.option(
    "--prune-match",
    metavar="GLOB",
    help="With --prune: only containers whose name matches GLOB (e.g. 'web-*').",
)
@click.option(
    "--restart", is_flag=True, help="Restart running containers whose definition changed."
)
@click.option(
    "-i", "--inventory", type=click.Path(dir_okay=False), is_eager=True,
    help="TOML file: host name = URI."
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="NAME|URI",
    shell_complete=complete_hosts,
    help="Apply on this host only (repeatable; default: every inventory host).",
)
@click.option(
    "--host-emulator", is_flag=True, help="Rewrite <emulator> in XML files to each host's."
)
@click.option("--no-check", is_flag=True, help="Skip the hosts' required checks before starts.")
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Seconds to watch started containers for an init that exits at once.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a graceful stop before destroying.",
)
@click.option(
    "--project", metavar="NAME", default=None,
    help="The project the containers belong to (default: the inventory's `project`, else "
         "the folder's name and a digest of its path); --prune removes only its own.",
)
@click.option(
    "--parallel-hosts", type=click.IntRange(min=1), default=8, show_default=True, metavar="N",
    help="Hosts worked on at once (with an inventory); a slow or dead one holds up only itself.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Wait this long for another apply, start --all or stop --all to finish "
         "(default: refuse at once, naming it).",
)
@json_flag("Print the plan and results as JSON.")
@click.pass_obj
def apply(
    state: Any,
    paths: tuple[str, ...],
    dry_run: bool,
    prune: bool,
    prune_match: str | None,
    restart: bool,
    inventory: str | None,
    hosts: tuple[str, ...],
    host_emulator: bool,
    no_check: bool,
    settle: float,
    timeout: float,
    wait: float,
    project: str | None,
    parallel_hosts: int,
    as_json: bool,
) -> int:
    """Make the host match PATHS: spec files, domain XML files, or folders of them.

    Everything is read and validated first; one bad file changes nothing. Then per
    container: create, redefine (diff shown), autostart change, start, stop, or unchanged.
    A running container whose definition changed keeps running ("restart needed") unless
    --restart. Exit 0 when all went well (also when nothing needed changing), 1 when the
    input is invalid (nothing changed), 2 when some containers or hosts failed.

    \b
    lxcvirt apply specs/ --dry-run
    lxcvirt apply specs/ --prune
    lxcvirt apply -i hosts.toml --host web1 specs/
    """
    from .apply import run
    from .errors import LxcvirtError

    if prune_match is not None and not prune:
        raise click.BadParameter("--prune-match needs --prune", param_hint="--prune-match")
    try:
        result = run(
            paths,
            uri=state.uri,
            inventory=inventory,
            select=hosts,
            dry_run_only=dry_run,
            prune=prune,
            prune_match=prune_match,
            restart=restart,
            host_emulator=host_emulator,
            check=not no_check,
            settle=settle,
            timeout=timeout,
            wait=wait,
            project=project,
            parallel_hosts=parallel_hosts,
        )
    except LxcvirtError:
        click.echo("lxcvirt: apply: nothing was changed", err=True)
        raise
    for line in result.plan.notes:
        if not state.quiet:
            note(f"note: {line}")
    if want_json(state, as_json):
        emit(result.to_dict())
    elif not state.quiet:
        _print(result, inventory is not None or len(result.plan.hosts) > 1)
    else:
        for r in result.failed:  # --quiet: errors only
            click.echo(f"lxcvirt: error: {r.name}: {r.error}", err=True)
        for hp in result.host_errors:
            click.echo(f"lxcvirt: error: host {hp.host}: {hp.error}", err=True)
    return int(result.exit_code)
