"""The ``daemon`` marker follows the fixtures a test uses (tests/conftest.py), never a
hand-written mark: ``pytest -m "not daemon"`` must run only tests that need no libvirtd,
and ``-m daemon`` every test that does.  The suite is collected in a subprocess, as a
user's ``-m`` selection would see it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

#: Whatever the rule, these reach the daemon: through ``host``/``names``, through a raw
#: connection only, through a fixture of their module, through a private daemon.
KNOWN_DAEMON = [
    "tests/test_lifecycle.py::test_start_then_graceful_stop",
    "tests/test_libvirt_errors.py::test_daemon_not_found",
    "tests/test_libvirt_errors.py::test_daemon_unknown_element_on_raw_define",
    "tests/test_autostart_cli.py::test_unknown_container",
    "tests/test_os_containers.py::test_no_interface_means_only_lo",
    "tests/test_rootfs.py::test_spec_from_builds_the_root_at_create",
    "tests/test_lifecycle_docs.py::test_doc_application_container",
    "tests/test_checks.py::test_a_plain_second_daemon_fails_as_predicted",
    "tests/test_remote.py::test_apply_start_status_list_over_tcp",
]
#: ...and these need none, though their modules are mostly about the daemon.
KNOWN_PURE = [
    "tests/test_lifecycle.py::test_only_unix_sockets_pass_namespace_fds[lxc:///-True]",
    "tests/test_cli_lifecycle.py::test_bad_usage_exits_1",
    "tests/test_cli_lifecycle.py::test_cli_settle_default_is_the_library_default",
    "tests/test_readme.py::test_readme_has_the_examples",
    "tests/test_libvirt_errors.py::test_unreachable_daemon",
    "tests/test_autostart_cli.py::test_usage_errors[neither]",
    "tests/test_checks.py::test_enforce_runs_once_per_process",
    "tests/test_render.py::test_golden[app-container]",
]

#: Run in a subprocess: lists every collected test with its marker, whether its fixture
#: closure holds ``libvirt_conn``, and whether its body or a fixture of its closure
#: reaches a daemon by itself (see ``reaches`` below).
AUDIT = r"""
import ast, inspect, json, sys, textwrap
import pytest

OPENS = {"open", "openReadOnly", "openAuth", "plain_daemon", "restartable_daemon"}

def reaches(func, *, names_uri):
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in OPENS and (
                f.attr in ("plain_daemon", "restartable_daemon")
                or getattr(f.value, "id", "") == "libvirt"
            ):
                return True
            if isinstance(f, ast.Name) and f.id in ("plain_daemon", "restartable_daemon"):
                return True
        if names_uri and isinstance(node, ast.Name) and node.id == "URI":
            return True
    return False

class Audit:
    def pytest_collection_finish(self, session):
        out = []
        for item in session.items:
            # pytest's own record of the fixtures a test resolves (the closure).
            defs = item._fixtureinfo.name2fixturedefs
            by_fixture = any(
                reaches(d.func, names_uri=False) for ds in defs.values() for d in ds
            )
            out.append({
                "id": item.nodeid,
                "marked": item.get_closest_marker("daemon") is not None,
                "conn": "libvirt_conn" in item.fixturenames,
                "reaches": by_fixture or reaches(item.function, names_uri=True),
            })
        print("AUDIT " + json.dumps(out))

pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests"], plugins=[Audit()])
"""


def collect(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         *args, "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {line for line in proc.stdout.splitlines() if line.startswith("tests/")}


def test_daemon_and_pure_tests_land_on_their_side() -> None:
    daemon, pure = collect("-m", "daemon"), collect("-m", "not daemon")
    assert not daemon & pure
    assert daemon | pure == collect()
    assert [t for t in KNOWN_DAEMON if t not in daemon] == []
    assert [t for t in KNOWN_PURE if t not in pure] == []


def test_the_marker_is_the_fixture_rule_and_covers_every_way_in() -> None:
    proc = subprocess.run([sys.executable, "-c", AUDIT], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("AUDIT ")), None)
    assert line is not None, proc.stdout + proc.stderr
    items = json.loads(line[len("AUDIT "):])
    assert len(items) > 300
    assert [i["id"] for i in items if i["marked"] != i["conn"]] == []
    # A test that opens libvirt, starts a private daemon or names the test daemon's URI
    # (say for the CLI in a subprocess) without asking for libvirt_conn would run under
    # -m "not daemon" and fail, not skip, where no daemon answers.
    assert [i["id"] for i in items if i["reaches"] and not i["conn"]] == []


def test_tests_on_a_debian_root_are_slow() -> None:
    slow = collect("-m", "slow")
    assert "tests/test_rootfs.py::test_cached_debian_root" in slow  # no daemon, still slow
    assert "tests/test_os_containers.py::test_reboot_runs_a_new_init" in slow  # by a fixture
    assert "tests/test_rootfs.py::test_cold_build_into_an_empty_cache" in slow  # by hand


def test_no_module_marks_daemon_by_hand() -> None:
    by_hand = []
    for path in sorted(TESTS.glob("*.py")):
        if path.name == "conftest.py":  # where the marker is derived
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Attribute) and node.attr == "daemon"
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "mark"):
                by_hand.append(f"{path.name}:{node.lineno}")
    assert by_hand == []
