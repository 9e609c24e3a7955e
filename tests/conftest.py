"""Shared fixtures.

Daemon tests run against the real libvirtd on ``$LXCVIRT_TEST_URI`` (default lxc:///).
When it does not answer they are skipped on a developer's machine and FAIL under
``CI=true``: a CI run that skipped them would prove nothing.

The ``daemon`` marker is not written by hand: every test whose fixtures (directly or
through other fixtures) include one of ``DAEMON_FIXTURES`` gets it at collection, so
``pytest -m "not daemon"`` runs exactly the tests that need no libvirtd.  A test that
reaches a daemon without a connection object (the CLI in a subprocess, a private daemon
from tests/plain_daemon.py) asks for ``libvirt_conn`` all the same, even unused: that
is how it is marked, and skipped (or failed under CI) when the daemon is missing.

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


#: Fixtures that need the real libvirtd.  Every fixture that opens libvirt (``host``,
#: ``names``, the test modules' own, test_remote's second daemon) depends on
#: ``libvirt_conn``, so its name is found in ``item.fixturenames``, which is the whole
#: fixture closure of a test.  tests/test_markers.py checks the rule.
DAEMON_FIXTURES = frozenset({"libvirt_conn"})


#: A test on a Debian root is slow whatever it does (a copy of the cached tree, most boot
#: systemd: 8 to 25 s each); other slow tests carry ``slow`` by hand.
SLOW_FIXTURES = frozenset({"debian_cache"})


def needs_daemon(item: pytest.Item) -> bool:
    return not DAEMON_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Derived, not written by hand: a hand-written marker drifted from what tests really
    # use (daemon tests left unmarked ran under -m "not daemon", pure ones were skipped).
    for item in items:
        if needs_daemon(item):
            item.add_marker(pytest.mark.daemon)
        if not SLOW_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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


# --- Debian roots ------------------------------------------------------------------------
#: Where test roots are copied: not under pytest's /tmp/pytest-of-root (mode 0700), which
#: the mapped root of an idmap container could not pass through.
ROOTS_DIR = Path(os.environ.get("LXCVIRT_TEST_ROOTS", "/var/tmp/lxcvirt-test-roots"))
DEBIAN_IMAGE = "debian/bookworm"


def _remove_tree(path: Path) -> None:
    import shutil

    # As root, rmtree removes trees owned by any (shifted) uid.
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def debian_cache() -> str:
    """Make sure lxcvirt's cache holds the customised Debian bookworm tree: built once per
    machine (about 20 s, then it survives across runs); a copy is about a second.  Skips
    when it cannot be built, and FAILS under CI=true."""
    from lxcvirt.errors import LxcvirtError
    from lxcvirt.rootfs import ensure_cached

    ROOTS_DIR.mkdir(parents=True, exist_ok=True)
    ROOTS_DIR.chmod(0o755)
    for old in ROOTS_DIR.iterdir():  # left by test runs that died
        m = re.match(r"(\d+)-", old.name)
        if m and not _pid_alive(int(m.group(1))):
            _remove_tree(old)
    try:
        key, _was_cached = ensure_cached(DEBIAN_IMAGE)
    except LxcvirtError as exc:
        msg = f"cannot build the {DEBIAN_IMAGE} root (host-setup installs mmdebstrap): {exc}"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return key


@pytest.fixture
def debian_root(debian_cache: str) -> Iterator[Callable[..., Path]]:
    """``make(name, *, idmap_base=None) -> Path``: a fresh copy of the cached customised
    Debian bookworm root for container ``name`` (its hostname; ownership shifted to
    ``idmap_base``..+65535 when given), in a folder of its own, removed after the test."""
    import tempfile

    from lxcvirt.rootfs import create, idmap_from_base

    made: list[Path] = []

    def make(name: str, *, idmap_base: int | None = None) -> Path:
        base = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=ROOTS_DIR))
        base.chmod(0o755)  # mkdtemp makes it 0700: an idmap container's root must pass
        made.append(base)
        idmap = None if idmap_base is None else idmap_from_base(idmap_base)
        return create(DEBIAN_IMAGE, base / name, hostname=name, idmap=idmap).dest

    yield make
    for base in made:
        _remove_tree(base)
