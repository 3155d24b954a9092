"""Property test (Hypothesis) of manifest parsing: any CSV text with columns path, label [, split,
id] gives either a clean ``SourceError`` or candidates, never a crash; and the candidates are
sound: unique ids, a non-empty label without line breaks or control characters, a path inside the manifest's folder, one of the
known splits, each from a row of the file."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.ingest.candidates import normalise_split
from backend.ingest.folder import SourceError
from backend.ingest.manifest import read_manifest
from backend.ingest.report import IngestReport, has_control_characters

#: Text a hostile or careless manifest holds: separators, quotes, line breaks, markup, path tricks.
PIECES = st.sampled_from([",", '"', "'", "\n", "\r", "\t", " ", "../", "/", "\\", "..", ".", "<b>", "</a>", "é",
                          "猫", "\u202e", "\x00", "\x7f", "=cmd|", "NaN", "null", "train", "val", "TEST", "a.png",
                          "img/1.jpg", "~", "$HOME", "%s", "{}", ";"])
FIELD = st.lists(st.one_of(PIECES, st.text(max_size=4)), max_size=5).map("".join)
COLUMNS = st.lists(st.sampled_from(["split", "id", "extra", " path ", "label "]), unique=True, max_size=3).flatmap(
    lambda optional: st.permutations(["path", "label", *optional]))


@st.composite
def manifests(draw) -> str:
    """CSV text: a header naming path, label and some of split, id (and noise), then rows written
    by the csv module (quoted as needed) or, sometimes, raw lines that break the quoting."""
    columns = draw(COLUMNS)
    rows = draw(st.lists(st.lists(FIELD, min_size=len(columns), max_size=len(columns)), max_size=8))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(columns)
    writer.writerows(rows)
    text = buffer.getvalue()
    if draw(st.booleans()):  # a hand-edited file: raw lines, stray quotes, short or long rows
        text += "\n".join(draw(st.lists(FIELD, max_size=3)))
    return text


@settings(max_examples=50, deadline=None)
@given(manifests())
def test_any_manifest_text_gives_candidates_or_a_clean_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.csv"
        path.write_text(text, encoding="utf-8")
        report = IngestReport()
        try:
            candidates = read_manifest(path, report)
        except SourceError as exc:
            assert str(exc) and str(path) in str(exc)
            return
        base = path.parent.resolve()
        ids = [c.id for c in candidates]
        assert len(ids) == len(set(ids))
        for cand in candidates:
            assert cand.label and cand.label == cand.label.strip() and not has_control_characters(cand.label)
            assert Path(cand.path).resolve().is_relative_to(base), cand.path
            assert cand.split == normalise_split(cand.split)
            assert cand.row is not None and cand.row >= 1
        assert all(problem.row is None or problem.row >= 1 for problem in report.problems)
