"""Fuzzing lxcvirt's readers at scale: the strategies of tests/test_fuzz.py, thousands of
cases each, counted as accepted, refused (lxcvirt's own one-line error) or traceback.

    .venv/bin/python bench/fuzz_bench.py [-n CASES_PER_KIND] [--seed N]

Not a test: it prints the counts (tracebacks must be 0) and the first of each traceback.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fuzzing import (  # noqa: E402
    check_spec_dict,
    check_spec_text,
    check_xml,
    outcome,
    spec_dicts,
    spec_texts,
    xml_docs,
)
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def run(kind: str, strategy: st.SearchStrategy, check, cases: int, seed_value: int) -> None:  # type: ignore[no-untyped-def, type-arg]
    counts: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    first_traceback: dict[str, str] = {}

    @seed(seed_value)
    @settings(max_examples=cases, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def each(value: object) -> None:
        result, detail = outcome(lambda: check(value))
        counts[result] += 1
        if result == "refused":
            reasons[detail.split(":")[-1].strip()[:50]] += 1
        elif result == "traceback":
            first_traceback.setdefault(detail.strip().splitlines()[-1], detail)

    began = time.monotonic()
    each()
    took = time.monotonic() - began
    total = sum(counts.values())
    print(f"{kind:10} {total:6d} cases in {took:5.1f} s: accepted {counts['accepted']:5d}  "
          f"refused {counts['refused']:5d}  tracebacks {counts['traceback']}")
    for reason, n in reasons.most_common(5):
        print(f"           {n:5d}  refused: {reason}")
    for tb in first_traceback.values():
        print(tb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--cases", type=int, default=2000, help="cases per kind")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    run("spec data", spec_dicts, check_spec_dict, args.cases, args.seed)
    run("spec TOML", spec_texts, check_spec_text, args.cases, args.seed)
    run("XML", xml_docs, check_xml, args.cases, args.seed)


if __name__ == "__main__":
    main()
