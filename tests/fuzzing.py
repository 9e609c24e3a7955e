"""Generated hostile input for lxcvirt's readers: specs (as data and as TOML text) and
domain XML (mutated, re-encoded, nested deep), shared by tests/test_fuzz.py and
bench/fuzz_bench.py.

Every input goes through :func:`outcome`, which runs what ``lxcvirt validate`` runs and
says "accepted", "refused" (one of lxcvirt's own errors, as the CLI prints it) or
"traceback" (anything else: a bug).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from lxcvirt.errors import LxcvirtError
from lxcvirt.load import load_spec_text, spec_from_dict
from lxcvirt.rendering import render
from lxcvirt.validate import Checked, check_domain_xml

EMULATOR = "/usr/lib/libvirt/libvirt_lxc"

BASE_SPEC: dict[str, Any] = {
    "name": "fuzz",
    "memory": "64MiB",
    "vcpu": 1,
    "init": {"path": "/bin/sh", "args": ["-c", "sleep 1"], "env": {"LANG": "C"}},
    "filesystem": [{"source": "/var/tmp", "target": "/"}],
    "interface": [{"type": "network", "source": "default"}],
}

BASE_XML = """<domain type='lxc'>
  <name>fuzz</name>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os>
    <type>exe</type>
    <init>/bin/sh</init>
    <initarg>-c</initarg>
    <initarg>sleep 1</initarg>
    <initenv name='LANG'>C</initenv>
  </os>
  <devices>
    <filesystem type='mount'>
      <source dir='/var/tmp'/>
      <target dir='/'/>
    </filesystem>
    <console type='pty'/>
  </devices>
</domain>
"""

#: Text that has broken lxcvirt or libvirt before, or is meant to.
NASTY = [
    "]]>", "&", "<", ">", "&amp;", "<![CDATA[", "<!DOCTYPE x>", "<!ENTITY e 'x'>", "&e;",
    "\x00", "\x1b[2J", "\u009b", "\t", "\n", "\r", "..", "/", "é", "\ufeff", "\U0001f600",
    "\ud800", "9" * 30, "-1", "0", "2" * 17, "EiB", "PiB", " ", "", "%s", "{{x}}", "{% x %}",
]

texts = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.builds(lambda a, b: a + b, st.sampled_from(NASTY), st.text(max_size=10)),
)
scalars = st.one_of(
    texts, st.integers(), st.integers(min_value=2**50, max_value=2**70), st.booleans(),
    st.floats(allow_nan=True), st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)


def _set_path(data: Any, path: list[Any], value: Any) -> Any:
    """``data`` with the item at ``path`` (keys or indices, clamped) replaced."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(data, dict):
        keys = list(data)
        k = keys[key % len(keys)] if isinstance(key, int) and keys else key
        out = dict(data)
        out[k] = _set_path(data.get(k), rest, value)
        return out
    if isinstance(data, list) and data:
        out_list = list(data)
        i = key % len(out_list) if isinstance(key, int) else 0
        out_list[i] = _set_path(out_list[i], rest, value)
        return out_list
    return value


spec_dicts = st.builds(
    _set_path,
    st.just(BASE_SPEC),
    st.lists(st.one_of(st.integers(min_value=0, max_value=20), texts), min_size=1,
             max_size=3),
    values,
)


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"x"'


def _spec_toml(data: dict[str, Any], deep: int) -> str:
    lines = []
    for k, v in data.items():
        if isinstance(v, (dict, list)):
            continue
        lines.append(f"{k} = {_toml_value(v)}")
    lines.append("[init]")
    lines.append('path = "/bin/sh"')
    if deep:
        lines.append("args = " + "[" * deep + "]" * deep)
    return "\n".join(lines) + "\n"


spec_texts = st.one_of(
    st.builds(_spec_toml, spec_dicts, st.sampled_from([0, 0, 3, 50, 600, 5000])),
    st.builds(lambda t, cut, junk: t[:cut] + junk + t[cut:],
              st.just(_spec_toml(BASE_SPEC, 0)), st.integers(0, 120), texts),
)


def _mutate(doc: str, at: int, cut: int, insert: str) -> str:
    at %= len(doc)
    return doc[:at] + insert + doc[at + cut:]


ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "latin-1", "utf-32", "cp1252"]


def _encode(doc: str, encoding: str, declare: str | None) -> bytes:
    if declare is not None:
        doc = f'<?xml version="1.0" encoding="{declare}"?>\n' + doc
    return doc.encode(encoding, errors="replace")


xml_docs = st.one_of(
    st.builds(_mutate, st.just(BASE_XML), st.integers(0, 10**6), st.integers(0, 8),
              st.one_of(texts, st.sampled_from([
                  "<initenv name='X'>a]]&gt;b</initenv>", "<!DOCTYPE d>",
                  "<memory unit='EiB'>9</memory>", "<vcpu current='0'>1</vcpu>",
                  "<idmap><uid start='1' target='1' count='1'/></idmap>",
                  "<a>" * 100 + "</a>" * 100, "<![CDATA[<!DOCTYPE x>]]>",
                  "<type arch='aarch64'>exe</type>", "<!-- ]]> -->",
              ]))),
    st.builds(_encode, st.just(BASE_XML), st.sampled_from(ENCODINGS),
              st.one_of(st.none(), st.sampled_from(ENCODINGS + ["bogus", "UTF-8"]))),
    st.builds(lambda n: "<domain type='lxc'>" + "<x>" * n + "</x>" * n + "</domain>",
              st.integers(0, 3000)),
)


def _with_env(value: str) -> str:
    from xml.sax.saxutils import escape

    return BASE_XML.replace("<initenv name='LANG'>C</initenv>",
                            f"<initenv name='LANG'>{escape(value)}</initenv>")


#: Documents near a valid one (other encodings, odd init environment values): most pass
#: validation, so they are what the daemon sample defines.
near_valid_docs = st.one_of(
    st.builds(_encode, st.just(BASE_XML), st.sampled_from(ENCODINGS),
              st.one_of(st.none(), st.sampled_from(ENCODINGS))),
    st.builds(_with_env, texts.filter(bool)),
)


def outcome(fn: Callable[[], Any]) -> tuple[str, str]:
    """("accepted" | "refused" | "traceback", detail) for one input."""
    try:
        fn()
    except LxcvirtError as exc:
        return "refused", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    except Exception:  # noqa: BLE001 - exactly what this counts
        return "traceback", traceback.format_exc()
    return "accepted", ""


def check_spec_dict(data: Any) -> Checked:
    return check_domain_xml(render(spec_from_dict(data), emulator=EMULATOR), "<fuzz spec>")


def check_spec_text(text: str) -> Checked:
    return check_domain_xml(render(load_spec_text(text), emulator=EMULATOR), "<fuzz spec>")


def check_xml(doc: str | bytes) -> Checked:
    return check_domain_xml(doc, "<fuzz xml>")
