"""Lock files opened as root never follow what someone planted (issue 12, items 7, 10)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lxcvirt._pidlock import PidLock, UnsafeLock
from lxcvirt.autostart import run_lock
from lxcvirt.console import ConsoleLock
from lxcvirt.errors import ConfigError, ConsoleError, LockHeld


def test_a_symlink_at_the_lock_path_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    lock = tmp_path / "run" / "autostart.lock"
    lock.parent.mkdir()
    lock.symlink_to(victim)
    with pytest.raises(ConfigError, match="is a symbolic link"), run_lock(lock):
        pass
    assert victim.read_text() == "precious\n"


def test_a_symlink_at_the_console_lock_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "web.lock").symlink_to(victim)
    cl = ConsoleLock("web", tmp_path)
    if cl.path != tmp_path / "web.lock":
        cl.path.parent.mkdir(parents=True, exist_ok=True)
        cl.path.unlink(missing_ok=True)
        cl.path.symlink_to(victim)
    with pytest.raises(ConsoleError, match="symbolic link"):
        cl.acquire()
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("kind", ["fifo", "hardlink", "other-owner"])
def test_a_lock_path_that_is_not_our_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x.lock"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "hardlink":
        os.link(victim, path)
    else:
        path.write_text("")
        os.chown(path, 65534, 65534)
    with pytest.raises(UnsafeLock):
        PidLock(path).try_acquire()
    assert victim.read_text() == "precious\n"


def test_a_world_writable_folder_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(UnsafeLock, match="writable by anyone"):
        PidLock(folder / "x.lock").try_acquire()
    folder.chmod(0o1777)  # /tmp's way: fine
    lock = PidLock(folder / "x.lock")
    assert lock.try_acquire()
    lock.release()


def test_the_lock_still_works_and_says_held(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    with run_lock(path), pytest.raises(LockHeld), run_lock(path):
        pass
