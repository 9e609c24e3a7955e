"""``lxcvirt rootfs``: make root filesystems (``create``), hand one to an idmap's ids
(``shift``), list images and cached builds (``images``)."""

from __future__ import annotations

from typing import Any

import click

from ._cli_common import emit, json_option, note, want_json

_BASE_HELP = "Map container ids 0..65535 to host ids N..N+65535 (an unprivileged container)."


def _packages(value: tuple[str, ...]) -> list[str]:
    return [p.strip() for item in value for p in item.split(",") if p.strip()]


@click.group(name="rootfs")
def rootfs() -> None:
    """Root filesystems: Debian (built with mmdebstrap, cached) and busybox."""


@rootfs.command(name="create")
@click.argument("image")
@click.argument("dest", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--include", multiple=True, metavar="PKG,...", help="Extra Debian packages.")
@click.option("--hostname", metavar="NAME", help="The container's hostname (default: DIR's name).")
@click.option("--refresh", is_flag=True, help="Rebuild the cached tree first.")
@click.option("--idmap-base", type=click.IntRange(min=1), metavar="N", help=_BASE_HELP)
@json_option
@click.pass_obj
def create(
    state: Any, image: str, dest: str, include: tuple[str, ...], hostname: str | None,
    refresh: bool, idmap_base: int | None, as_json: bool,
) -> None:
    """Make a bootable root filesystem of IMAGE in DIR (a new or empty folder).

    \b
    IMAGE: debian/RELEASE (debian/bookworm, debian/trixie, ...) or busybox.
    A first Debian build takes about 20 s; later ones copy the cached tree (about 1 s).

    \b
    lxcvirt rootfs create debian/bookworm /var/lib/lxcvirt/web
    lxcvirt rootfs create debian/bookworm /srv/db --include postgresql --hostname db
    """
    from . import rootfs as _rootfs

    result = _rootfs.create(
        image, dest, include=_packages(include), hostname=hostname, refresh=refresh,
        idmap=None if idmap_base is None else _rootfs.idmap_from_base(idmap_base),
        on_build=lambda what: note(f"building {what} (downloads packages: ~20 s)"),
    )
    if want_json(state, as_json):
        emit(result.to_dict())
        return
    how = "from the cache" if result.cache_hit else "built"
    if result.cache_key is None:
        how = "made"
    click.echo(
        f"{result.dest}: {result.image} (hostname {result.hostname}), {how} "
        f"in {result.seconds:.1f} s"
    )
    if result.shifted is not None:
        click.echo(f"{result.dest}: owned by host ids from {idmap_base}")


@rootfs.command(name="build")
@click.argument("image")
@click.option("--include", multiple=True, metavar="PKG,...", help="Extra Debian packages.")
@click.option("--refresh", is_flag=True, help="Rebuild even when it is cached.")
@json_option
@click.pass_obj
def build(state: Any, image: str, include: tuple[str, ...], refresh: bool, as_json: bool) -> None:
    """Build IMAGE into the cache only (e.g. while provisioning), so later creates copy it."""
    from . import rootfs as _rootfs

    key, hit = _rootfs.ensure_cached(
        image, include=_packages(include), refresh=refresh,
        on_build=lambda what: note(f"building {what} (downloads packages: ~20 s)"),
    )
    if want_json(state, as_json):
        emit({"image": image, "cache_key": key, "cache_hit": hit})
    else:
        click.echo(f"{image}: {'already cached' if hit else 'built'} ({key})")


@rootfs.command(name="shift")
@click.argument("dest", metavar="DIR", type=click.Path(file_okay=False, exists=True))
@click.option("--idmap-base", type=click.IntRange(min=1), metavar="N", required=True,
              help=_BASE_HELP)
@json_option
@click.pass_obj
def shift(state: Any, dest: str, idmap_base: int, as_json: bool) -> None:
    """Hand the existing root DIR to an idmap: ids 0..65535 become N..N+65535.

    Setuid bits and file capabilities are kept; ids outside 0..65535 (for example ones
    shifted before) are left as they are.
    """
    from . import rootfs as _rootfs

    result = _rootfs.shift(dest, _rootfs.idmap_from_base(idmap_base))
    if want_json(state, as_json):
        emit({"dest": dest, **result.to_dict()})
        return
    click.echo(f"{dest}: {result.entries} entries now owned from host id {idmap_base}")
    if result.caps_dropped:
        click.echo(f"{dest}: {result.caps_dropped} file capabilities could not be kept")


@rootfs.command(name="images")
@json_option
@click.pass_obj
def images(state: Any, as_json: bool) -> None:
    """List the images lxcvirt can make and the builds in its cache."""
    from . import rootfs as _rootfs

    known = _rootfs.images()
    if want_json(state, as_json):
        emit([i.to_dict() for i in known])
        return
    for info in known:
        if not info.cached:
            click.echo(f"{info.name}")
        for c in info.cached:
            extra = f"  +{','.join(c.extra)}" if c.extra else ""
            click.echo(f"{info.name}  cached {c.key}  built {c.built}{extra}")
