"""Shared fixtures.

Daemon tests run against the real libvirtd on ``$LXCVIRT_TEST_URI`` (default lxc:///).
When it does not answer they are skipped on a developer's machine and FAIL under
``CI=true``: a CI run that skipped them would prove nothing.

Every container a test makes is named ``lxcvirt-test-<pid>-<n>-<label>`` through the
``names`` fixture and is destroyed and undefined afterwards, pass or fail.  Leftovers of
test processes that died (their pid is gone) are removed at session start.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
TEST_PREFIX = "lxcvirt-test-"
URI = os.environ.get("LXCVIRT_TEST_URI", "lxc:///")
_counter = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regenerate",
        action="store_true",
        default=False,
        help="Rewrite golden files from the current output (review the diff by hand).",
    )


@pytest.fixture(scope="session")
def regenerate(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--regenerate"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _remove(conn: Any, name: str) -> None:
    import libvirt

    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError:
        pass
    with contextlib.suppress(libvirt.libvirtError):
        dom.undefine()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def libvirt_conn() -> Iterator[Any]:
    """A raw libvirt connection to the test daemon (skip, or fail under CI, without one)."""
    try:
        import libvirt

        from lxcvirt._libvirt import ensure_event_loop

        ensure_event_loop()
        conn = libvirt.open(URI)
    except Exception as exc:  # noqa: BLE001 - any failure means "no daemon"
        msg = f"no libvirtd answering on {URI}: {exc} (run scripts/host-setup)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    # Clean up after test runs that died: their pid is in the name.
    for dom in conn.listAllDomains(0):
        m = re.match(rf"{TEST_PREFIX}(\d+)-", dom.name())
        if m and not _pid_alive(int(m.group(1))):
            _remove(conn, dom.name())
    yield conn
    conn.close()


@pytest.fixture
def host(libvirt_conn: Any) -> Iterator[Any]:
    """A :class:`lxcvirt.Host` on the test daemon, with host checks off by default."""
    from lxcvirt.host import Host

    h = Host(URI, preflight=lambda _h: None)
    yield h
    h.close()


@pytest.fixture
def names(libvirt_conn: Any) -> Iterator[Callable[[str], str]]:
    """``names("web")`` gives a unique container name; all are removed after the test."""
    made: list[str] = []

    def make(label: str = "c") -> str:
        name = f"{TEST_PREFIX}{os.getpid()}-{next(_counter)}-{label}"
        made.append(name)
        return name

    yield make
    for name in made:
        _remove(libvirt_conn, name)


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root filesystem shared by the session's containers."""
    from lxcvirt._busybox import make_rootfs

    return make_rootfs(tmp_path_factory.mktemp("rootfs"))


#: An init that exits on SIGTERM at once (so graceful stops are fast) and otherwise idles.
TERM_INIT = ("/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done")
#: An init that ignores SIGTERM: only destroy stops it (tests the forced path).
STUBBORN_INIT = ("/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done")


def busybox_spec(name: str, root: Path, *, init: tuple[str, ...] = TERM_INIT, **kw: Any) -> Any:
    """A spec for a private-root busybox container."""
    from lxcvirt.spec import Container, Filesystem, Init

    return Container(
        name=name,
        init=Init(init[0], args=init[1:]),
        memory=kw.pop("memory", "64MiB"),
        filesystems=(Filesystem(target="/", source=str(root)), *kw.pop("filesystems", ())),
        **kw,
    )


# Provisional: replaced by the rootfs module's cached builder.
_DEBIAN_SRC = Path("/tmp/deb-test")


@pytest.fixture
def debian_root(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``debian_root(name)``: a fresh copy of a cached Debian bookworm root for ``name``."""
    import shutil
    import subprocess

    made: list[Path] = []

    def make(name: str, *, idmap_base: int | None = None) -> Path:
        dest = tmp_path / f"debian-{len(made)}"
        subprocess.run(["cp", "-a", str(_DEBIAN_SRC), str(dest)], check=True)
        (dest / "etc" / "hostname").write_text(name[:63] + "\n")
        made.append(dest)
        return dest

    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)
