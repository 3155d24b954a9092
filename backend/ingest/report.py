"""The ingest report: one line per skipped file, row or column, saying what to do about it."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Control characters, and the bidirectional overrides / isolates / marks that can make a label
#: read as another one on screen (U+202E turns "gpj.exe" around).
_CONTROL = re.compile("[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown(text: str | os.PathLike) -> str:
    """``text`` safe to print and to store as UTF-8: the bytes of a file name that is not UTF-8
    (Python keeps them as lone surrogates) become ``\\xNN`` and control characters (a line
    break in a folder name) ``\\n``, ``\\t`` or ``\\xNN``."""
    text = os.fspath(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a lone surrogate that no file name produced
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def has_control_characters(text: str) -> bool:
    """A line break, tab, other control character or bidirectional override: not allowed in a label."""
    return _CONTROL.search(text) is not None


@dataclass(frozen=True)
class Problem:
    """Something that was not ingested (or was ingested with a caveat)."""

    source: str  # the folder or manifest being read
    row: int | None  # 1-based data row of a manifest; None for folders and whole-file problems
    path: str  # the file concerned ("" for a column problem)
    problem: str  # what is wrong, in words
    action: str  # what happened: "skipped" | "ignored column" | "updated" | "kept stored" | "note" | ...


@dataclass
class IngestReport:
    problems: list[Problem] = field(default_factory=list)

    def add(self, source: str | os.PathLike, problem: str, *, row: int | None = None,
            path: str | os.PathLike = "", action: str = "skipped") -> None:
        """Record one problem; paths and text are stored as :func:`shown` (printable UTF-8)."""
        self.problems.append(Problem(shown(source), row, shown(path), shown(problem), action))

    @property
    def skipped(self) -> list[Problem]:
        return [p for p in self.problems if p.action == "skipped"]

    def reasons(self) -> dict[str, int]:
        """How many samples were skipped for each kind of problem (the text before any ':')."""
        counts: dict[str, int] = {}
        for p in self.skipped:
            key = p.problem.split(":")[0]
            counts[key] = counts.get(key, 0) + 1
        return counts

    def lines(self) -> list[str]:
        out = []
        for p in self.problems:
            where = p.path or p.source
            if p.row is not None:
                where = f"{p.source} row {p.row}" + (f" ({p.path})" if p.path else "")
            out.append(f"{where}: {p.problem} [{p.action}]")
        return out

    @classmethod
    def read_csv(cls, path: Path) -> IngestReport:
        """The report :meth:`write_csv` wrote to ``path``."""
        with path.open(newline="") as fh:
            return cls([Problem(r["source"], int(r["row"]) if r["row"] else None, r["path"], r["problem"],
                                r["action"]) for r in csv.DictReader(fh)])  # fmt: skip

    def write_csv(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["source", "row", "path", "problem", "action"])
            writer.writeheader()
            for p in self.problems:
                writer.writerow(asdict(p))
        return path
