"""An installed wheel carries templates/ and schemas/: built here, installed into a fresh
virtualenv, and run from a folder outside the source tree, it renders and validates."""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys, lxcvirt
from lxcvirt._resources import resource_dir
assert sys.prefix in lxcvirt.__file__, lxcvirt.__file__
assert sys.prefix in str(resource_dir("templates")), resource_dir("templates")
spec = lxcvirt.load_spec(sys.argv[1])
checked = lxcvirt.check_domain_xml(lxcvirt.render(spec), "wheel")
print(checked.name)
"""


@pytest.mark.slow
def test_wheel_renders_and_validates_outside_the_tree(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(dist), str(REPO)],
        check=True, cwd=tmp_path,
    )
    (wheel,) = dist.glob("lxcvirt-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # The fresh venv gets its dependencies from ours (a .pth line, which does not run our
    # venv's own .pth files: the editable install of the source tree stays out of it).
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    Path(purelib, "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
         str(wheel)],
        check=True, cwd=tmp_path,
    )
    spec = REPO / "tests" / "data" / "specs" / "mounts.toml"
    out = subprocess.run(
        [py, "-c", SCRIPT, str(spec)], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "mounts"
    cli = subprocess.run(
        [venv / "bin" / "lxcvirt", "validate", str(spec)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert cli.returncode == 0, cli.stderr


def test_every_package_is_listed_for_the_wheel() -> None:
    """A package missing from setup.cfg's ``packages`` is left out of the wheel: an
    installed lxcvirt then fails to import it."""
    import configparser

    repo = Path(__file__).resolve().parent.parent
    cfg = configparser.ConfigParser()
    cfg.read(repo / "setup.cfg")
    listed = {p.strip() for p in cfg["options"]["packages"].split(",")}
    found = {".".join(init.parent.relative_to(repo).parts)
             for init in (repo / "lxcvirt").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
