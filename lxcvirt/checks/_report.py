"""What the checks found: one Finding per check, and the Report that ranks them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["fail", "warn", "ok", "unknown"]
LEVELS: tuple[Level, ...] = ("fail", "warn", "unknown", "ok")


@dataclass(frozen=True)
class Finding:
    """One check's outcome: what was seen, why it matters, what to do."""

    check: str
    level: Level
    what: str
    why: str = ""
    fix: str = ""
    #: A failing required check stops ``start`` (see :func:`enforce`).
    required: bool = False

    @property
    def message(self) -> str:
        parts = [self.what]
        if self.why:
            parts.append(self.why)
        text = ": ".join(parts)
        return f"{text}; fix: {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "level": self.level,
            "required": self.required,
            "what": self.what,
            "why": self.why,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Report:
    """All findings of one run, worst first."""

    layout: str
    findings: tuple[Finding, ...]

    @property
    def verdict(self) -> Level:
        levels = {f.level for f in self.findings}
        # Not checkable is not passing: a report with unknowns says so in its verdict.
        for level in ("fail", "warn", "unknown"):
            if level in levels:
                return level
        return "ok"

    @property
    def failed(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "fail")

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def get(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)

    def counts(self) -> dict[str, int]:
        return {lv: sum(f.level == lv for f in self.findings) for lv in LEVELS}

    def to_dict(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "layout": self.layout,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
        }


# --- the checks -------------------------------------------------------------------------
