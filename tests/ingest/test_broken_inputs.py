"""Every case of the broken-input corpus (:mod:`tests.ingest.corpus`) through the real ingest: the
report names each bad file or row with its reason, nothing else is skipped, and every good input
is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.ingest.folder import SourceError
from backend.ingest.report import IngestReport, Problem
from backend.jobs.ingest_job import ingest, ingest_logits
from backend.storage import Workspace
from backend.storage.model_outputs import read_logits
from tests.ingest.corpus import CASES, Case, Expect


def _matches(problem: Problem, expect: Expect) -> bool:
    reasons = (expect.reason,) if isinstance(expect.reason, str) else expect.reason
    return (all(r in problem.problem for r in reasons) and problem.action == expect.action
            and (expect.path is None or expect.path in problem.path)
            and (expect.row is None or problem.row == expect.row))


def _run(case: Case, ws: Workspace, source: Path) -> tuple[IngestReport, set[str]]:
    """(the report, the names of what was kept: file names, or ids for features and logits)."""
    if case.kind == "logits":
        name, _, _, report = ingest_logits(ws, source)
        return report, set(read_logits(ws, name)[0])
    before = ws.sample_ids() if case.kind == "embeddings" else set()
    options = {"allow_outside_root": True} if case.allow_outside_root else {}
    if case.kind == "embeddings":
        result = ingest(ws, source, embeddings=True, embedding_key=case.embedding_key, **options)
        kept = set(ws.load_embeddings(result.embedding_key)[0]) & ws.sample_ids()
    else:
        result = ingest(ws, source, **options)
        kept = {Path(p).name for p in ws.samples(columns=["path"])["path"]}
    assert result.n_ingested == (len(case.kept) if case.n_kept is None else case.n_kept)
    assert IngestReport.read_csv(result.report_path).problems == result.report.problems  # the kept report
    assert before <= ws.sample_ids()
    return result.report, kept


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_input(case: Case, tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True)
    source = case.build(tmp_path)
    if case.prepare is not None:
        case.prepare(ws, tmp_path)
    if case.error is not None:
        with pytest.raises(SourceError, match=case.error):
            _run(case, ws, source)
        if case.check is not None:
            case.check(ws, tmp_path)
        return
    report, kept = _run(case, ws, source)
    lines = "\n".join(report.lines())
    for expect in case.reported:
        assert any(_matches(p, expect) for p in report.problems), f"{expect} not in:\n{lines}"
    expected_skips = sum(e.action == "skipped" for e in case.reported)
    assert len(report.skipped) == expected_skips, lines  # nothing good was skipped
    assert set(case.kept) <= kept, f"lost: {set(case.kept) - kept}"
    for line in report.lines():
        line.encode("utf-8")  # printable: names that are not UTF-8 are shown with escapes
    if case.check is not None:
        case.check(ws, tmp_path)


def test_the_corpus_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)
