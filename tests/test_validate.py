"""Validation: the invalid corpus, hardened parsing, hand-written XML accepted as it is."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import DATA

from lxcvirt._xml import parse_xml
from lxcvirt.errors import SpecError, ValidationError, XMLError
from lxcvirt.rendering import check_file
from lxcvirt.validate import check_domain_xml, libvirt_schema_path

INVALID = DATA / "invalid"
EXPECTED: dict[str, str] = tomllib.loads((INVALID / "expected.toml").read_text())
CORPUS = sorted(p for p in INVALID.iterdir() if "-invalid." in p.name)


def test_corpus_and_expectations_match() -> None:
    assert {p.name for p in CORPUS} == set(EXPECTED)


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_invalid_file_is_refused_with_its_message(path: Path) -> None:
    with pytest.raises((SpecError, XMLError)) as info:
        check_file(path)
    message = str(info.value)
    assert EXPECTED[path.name] in message
    assert str(path) in message  # errors name the file


def test_problems_carry_line_and_element() -> None:
    with pytest.raises(ValidationError) as info:
        check_file(INVALID / "hvm-os-invalid.xml")
    problem = info.value.problems[0]
    assert (problem.line, problem.element) == (5, "type")
    assert problem.file.endswith("hvm-os-invalid.xml")


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    # Three faults of three kinds in one file: all three are said, each with its line.
    doc = (INVALID / "initenv-ampersand-invalid.xml").read_text()
    doc = doc.replace("<name>x</name>", "<name>..</name>")
    doc = doc.replace("<memory>65536</memory>", "<memory>0</memory>")
    path = tmp_path / "three-invalid.xml"
    path.write_text(doc)
    with pytest.raises(ValidationError) as info:
        check_file(path)
    said = [p.message for p in info.value.problems]
    assert any("not a usable container name" in m for m in said), said
    assert any("<memory> is 0" in m for m in said), said
    assert any("must not contain '&'" in m for m in said), said


@pytest.mark.parametrize("name", ["libvirt-doc-app.xml", "libvirt-doc-rootfs.xml"])
def test_libvirt_documentation_examples_validate(name: str) -> None:
    checked = check_file(DATA / "xml" / name)
    assert checked.name == "vm1"


def test_hand_written_xml_is_kept_as_is() -> None:
    text = (DATA / "xml" / "libvirt-doc-app.xml").read_text()
    assert check_domain_xml(text, "x").xml == text


def test_xxe_never_reads_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    doc = (
        f'<!DOCTYPE d [<!ENTITY s SYSTEM "file://{secret}">]>'
        "<domain type='lxc'><name>&s;</name></domain>"
    )
    with pytest.raises(XMLError) as info:
        parse_xml(doc, "x.xml")
    assert "TOP-SECRET" not in str(info.value)
    assert "DOCTYPE" in str(info.value)


def test_huge_documents_are_refused() -> None:
    with pytest.raises(XMLError, match="larger than"):
        parse_xml(b"<a>" + b"x" * (5 * 1024 * 1024) + b"</a>", "big.xml")


def test_encoding_declaration_in_text_is_accepted() -> None:
    doc = (DATA / "xml" / "minimal.xml").read_text()
    assert check_domain_xml('<?xml version="1.0" encoding="UTF-8"?>\n' + doc).name == "minimal"


def test_libvirt_schema_layer_runs_when_installed() -> None:
    path = libvirt_schema_path()
    if path is None:
        pytest.skip("libvirt's domain.rng is not installed here")
    # Valid for our profile (which lets <features> through), invalid for libvirt's grammar.
    doc = (DATA / "xml" / "minimal.xml").read_text().replace(
        "<vcpu>", "<features><no-such-feature/></features>\n  <vcpu>"
    )
    check_domain_xml(doc, "f.xml", libvirt_schema=False)
    with pytest.raises(ValidationError, match="domain.rng"):
        check_domain_xml(doc, "f.xml")
