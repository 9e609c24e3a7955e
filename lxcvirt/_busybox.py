"""A tiny root filesystem built from the static busybox, for the demo and the tests.

``python -m lxcvirt._busybox DIR`` makes (or refreshes) one: ``bin/busybox`` with applet
symlinks, and the empty ``proc sys dev tmp etc root`` folders libvirt mounts over.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
APPLETS = (
    "sh", "ash", "ls", "ps", "cat", "echo", "sleep", "true", "false", "id", "env", "pwd",
    "mkdir", "rm", "touch", "hostname", "mount", "kill", "grep", "head", "tail", "wc",
    "stty", "tty", "date", "uname", "printf", "test", "[", "seq", "dd", "yes", "ip", "ifconfig",
    "whoami", "getty", "setsid", "cttyhack", "sync", "umount", "chmod", "ln",
)
DIRS = ("bin", "proc", "sys", "dev", "tmp", "etc", "root", "run", "var")


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    raise FileNotFoundError("no busybox found; install the busybox-static package")


def make_rootfs(root: str | os.PathLike[str]) -> Path:
    """Create or refresh a busybox root filesystem at ``root``; return its path."""
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    # The root must be searchable by every uid (exec --user), whatever made the folder.
    base.chmod(0o755)
    for d in DIRS:
        (base / d).mkdir(parents=True, exist_ok=True)
    target = base / "bin" / "busybox"
    src = find_busybox()
    if not target.exists() or target.stat().st_size != src.stat().st_size:
        shutil.copy2(src, target)
    for applet in APPLETS:
        link = base / "bin" / applet
        if not link.is_symlink():
            if link.exists():
                link.unlink()
            link.symlink_to("busybox")
    passwd = base / "etc" / "passwd"
    if not passwd.exists():
        passwd.write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        (base / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return base


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python -m lxcvirt._busybox",
                                 description="Make a busybox root filesystem in DIR.")
    ap.add_argument("dir", metavar="DIR")
    print(make_rootfs(ap.parse_args().dir))
