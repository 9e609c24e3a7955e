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


def _venv_with(wheel: Path, tmp_path: Path) -> Path:
    """A fresh virtualenv with ``wheel`` installed; its dependencies come from ours (a
    .pth line, which does not run our venv's own .pth files: the editable install of the
    source tree stays out of it)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    Path(purelib, "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--no-deps", str(wheel)], check=True, cwd=tmp_path)
    return venv


@pytest.mark.slow
def test_wheel_renders_and_validates_outside_the_tree(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(dist), str(REPO)],
        check=True, cwd=tmp_path,
    )
    (wheel,) = dist.glob("lxcvirt-*.whl")
    venv = _venv_with(wheel, tmp_path)
    py = venv / "bin" / "python"
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


USER_SCRIPT = """
from lxcvirt import Container, Filesystem, Host, Init, Limits, Status


def make(name: str) -> Container:
    return Container(name=name, init=Init("/sbin/init"), limits=Limits(cpu_shares=512),
                     filesystems=(Filesystem(target="/", source="/srv/" + name),))


def running(host: Host) -> list[str]:
    statuses: list[Status] = host.list(all=False)
    return [s.name for s in statuses if s.running]
"""


@pytest.mark.slow
def test_sdist_and_wheel_carry_what_users_need_and_type_check(tmp_path: Path) -> None:
    """python -m build makes both; the sdist has README, LICENSE, contrib/, examples/,
    scripts/ and the tests; the wheel py.typed, templates and schemas; twine check passes;
    a user script type-checks with mypy --strict against the installed wheel (and one with
    a type error does not)."""
    import tarfile
    import zipfile

    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist),
                    str(REPO)], check=True, capture_output=True, cwd=tmp_path)
    (sdist,) = dist.glob("lxcvirt-*.tar.gz")
    (wheel,) = dist.glob("lxcvirt-*.whl")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for wanted in ("README.md", "LICENSE", "contrib/systemd/lxcvirt-autostart.service",
                   "contrib/libvirt-hooks/lxcvirt-cgroup", "scripts/host-setup",
                   "scripts/test", "tests/conftest.py", ".ci/run", "templates/domain.xml.j2",
                   "schemas/lxc-domain.rng", "schemas/json/report.schema.json",
                   "lxcvirt/py.typed", "man/lxcvirt.1"):
        assert wanted in names, wanted
    assert any(n.startswith("examples/") and not n.endswith("/") for n in names)
    assert not any("__pycache__" in n for n in names)
    with zipfile.ZipFile(wheel) as whl:
        inside = set(whl.namelist())
    for wanted in ("lxcvirt/py.typed", "lxcvirt/templates/domain.xml.j2",
                   "lxcvirt/templates/partials/tune.xml.j2", "lxcvirt/schemas/lxc-domain.rng",
                   "lxcvirt/schemas/json/commands.json", "lxcvirt/schemas/json/report.schema.json",
                   "lxcvirt/host/_tuning.py"):
        assert wanted in inside, wanted
    assert any(n.endswith("licenses/LICENSE") for n in inside)
    assert any(n.endswith(".data/data/share/man/man1/lxcvirt.1") for n in inside)
    checked = subprocess.run([sys.executable, "-m", "twine", "check", str(sdist), str(wheel)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # a user script against the installed wheel
    py = _venv_with(wheel, tmp_path) / "bin" / "python"
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(USER_SCRIPT)
    bad.write_text(USER_SCRIPT + "\nmake(3)\n")

    def mypy(script: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
             "--python-executable", str(py), str(script)],
            capture_output=True, text=True, cwd=tmp_path, check=False)

    ok = mypy(good)
    assert ok.returncode == 0, ok.stdout
    wrong = mypy(bad)
    assert wrong.returncode == 1 and 'incompatible type "int"' in wrong.stdout, wrong.stdout


def test_the_shipped_man_page_is_the_clis() -> None:
    """man/lxcvirt.1 is what lxcvirt._man makes of the CLI now: regenerate it with
    `python -m lxcvirt._man > man/lxcvirt.1` after changing a command or its help."""
    from lxcvirt._man import render_man

    page = render_man()
    assert (REPO / "man" / "lxcvirt.1").read_text() == page
    for command in ("apply", "start", "set", "stats", "events", "edit", "autostart list"):
        assert f'.SS "lxcvirt {command} ' in page, command
    assert "\\-\\-memory\\-limit" in page  # options, with roff's minus signs
