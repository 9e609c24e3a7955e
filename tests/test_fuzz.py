"""Property-based fuzzing of lxcvirt's readers (issue 12): specs as data and as TOML,
domain XML mutated, re-encoded and nested deep.  Only lxcvirt's own errors may come out;
and on a sample against the real daemon, what validate accepts libvirt defines and lxcvirt
reads back.  bench/fuzz_bench.py runs the same strategies at thousands of cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fuzzing import (
    check_spec_dict,
    check_spec_text,
    check_xml,
    near_valid_docs,
    outcome,
    spec_dicts,
    spec_texts,
    xml_docs,
)
from hypothesis import HealthCheck, given, settings

ACCEPTED: list[int] = []
PURE = settings(max_examples=250, derandomize=True, deadline=None, database=None)


@PURE
@given(spec_dicts)
def test_spec_data_gives_only_lxcvirt_errors(data: Any) -> None:
    kind, detail = outcome(lambda: check_spec_dict(data))
    assert kind != "traceback", detail


@PURE
@given(spec_texts)
def test_spec_text_gives_only_lxcvirt_errors(text: str) -> None:
    kind, detail = outcome(lambda: check_spec_text(text))
    assert kind != "traceback", detail


@PURE
@given(xml_docs)
def test_domain_xml_gives_only_lxcvirt_errors(doc: str | bytes) -> None:
    kind, detail = outcome(lambda: check_xml(doc))
    assert kind != "traceback", detail


@settings(max_examples=25, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=near_valid_docs)
def test_what_validate_accepts_libvirt_defines_and_lxcvirt_reads_back(
    host: Any, names: Callable[[str], str], busybox_root: Path, doc: str | bytes
) -> None:
    kind, _ = outcome(lambda: check_xml(doc))
    if kind != "accepted":
        return
    ACCEPTED.append(1)
    name = names("fz")
    checked = check_xml(doc)
    xml = re.sub(r"<name>[^<]*</name>", f"<name>{name}</name>", checked.xml, count=1)
    xml = xml.replace("dir='/var/tmp'", f"dir='{busybox_root}'")
    result = host.define(xml)
    try:
        assert result.name == name
        status = host.status(name)
        assert status.problem is None
        assert name in {s.name for s in host.list(all=True)}
    finally:
        host.undefine(name)


def test_the_daemon_sample_defined_some() -> None:
    # Runs after the sample (file order): a strategy that validate always refused would
    # make the test above prove nothing.
    assert len(ACCEPTED) >= 10, ACCEPTED
