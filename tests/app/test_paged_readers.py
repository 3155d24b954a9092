"""The readers that count, select and join in DuckDB so that a page at a million samples never
copies a whole table: each against the pandas reference it replaces, on the session's scored
workspace (a fake score run with NaN-free scores, a flagged minority and a NaN semdedup gap)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from app import curation_data, data, prune_data
from app.components import prune_panel, review_panel, score_charts
from backend.storage import Workspace, decisions


def _score_run(root: str) -> str:
    return data.score_runs(root).iloc[0]["run_id"]


def test_flagged_issues_are_the_flagged_rows_of_label_issues_with_their_probability(scored_workspace: Path) -> None:
    root = str(scored_workspace)
    run_id = _score_run(root)
    everything = data.label_issues(root, run_id)
    reference = everything[everything["is_label_issue"].fillna(False).astype(bool)].reset_index(drop=True)
    scores = data.sample_scores(root, run_id)[["id", "suggested_probability"]]
    reference = reference.merge(scores, on="id", how="left")
    flagged = curation_data.flagged_issues(root, run_id)
    assert 0 < len(flagged) < len(everything)
    pd.testing.assert_frame_equal(flagged, reference, check_dtype=False)


def test_the_queue_over_flagged_rows_matches_the_queue_over_every_row(writable_scored_workspace: Path) -> None:
    root = str(writable_scored_workspace)
    run_id = _score_run(root)
    first = curation_data.flagged_issues(root, run_id)["id"].iloc[0]
    decisions.decide(Workspace.open(root), "keep", [first], source="cli")
    chosen = review_panel.IssueFilter()
    reference = review_panel.apply_filter(curation_data.issues_with_decisions(root, run_id), chosen)
    mine = review_panel.apply_filter(curation_data.flagged_with_decisions(root, run_id), chosen)
    assert mine.loc[mine["id"] == first, "decision"].item() == "kept"
    pd.testing.assert_frame_equal(mine.drop(columns="suggested_probability"), reference, check_dtype=False)


def test_issue_choices_offer_the_same_classes_and_detectors(scored_workspace: Path) -> None:
    root = str(scored_workspace)
    run_id = _score_run(root)
    everything = data.label_issues(root, run_id)
    choices = curation_data.issue_choices(root, run_id)
    assert len(choices) <= len(everything)
    assert set(choices["label"].fillna("(none)")) == set(everything["label"].fillna("(none)"))
    assert review_panel.detector_names(choices) == review_panel.detector_names(everything)


def test_pool_summary_counts_what_the_pool_holds(scored_workspace: Path) -> None:
    root = str(scored_workspace)
    run_id = _score_run(root)
    pool = prune_data.prune_pool(root, run_id)
    summary = prune_data.pool_summary(root, run_id)
    assert summary.n == len(pool)
    for split, n in pool["split"].value_counts(dropna=False).items():
        assert summary.count(None if pd.isna(split) else split) == n
    assert summary.count("no-such-split") == 0
    assert set(summary.scores) == set(prune_panel.score_columns(pool))
    assert set(summary.stored) == set(pool.columns) - {"id", "label", "split"}


def test_pool_summary_leaves_out_a_score_with_a_gap(writable_scored_workspace: Path) -> None:
    from backend.storage import results, runs

    ws = Workspace.open(writable_scored_workspace)
    ids = sorted(ws.sample_ids())
    run_id = runs.start_run(ws, "score", {"scorers": ["el2n", "aum"]})
    gap = np.ones(len(ids))
    gap[3] = np.nan
    results.write_scores(ws, run_id, ids, {"el2n": np.linspace(0, 1, len(ids)), "aum": gap})
    runs.finish_run(ws, run_id, {})
    summary = prune_data.pool_summary(str(ws.root), run_id)
    assert summary.scores == ("el2n",) and set(summary.stored) == {"aum", "el2n"}
    assert summary.n == len(ids)


def test_scores_of_some_ids_are_their_rows_of_the_whole_score_frame(scored_workspace: Path) -> None:
    root = str(scored_workspace)
    run_id = _score_run(root)
    everything = data.sample_scores(root, run_id)
    ids = tuple(everything["id"].iloc[[5, 0, 3]]) + ("no such sample", everything["id"].iloc[0])
    mine = data.scores_of(root, run_id, ids).sort_values("id").reset_index(drop=True)
    reference = everything[everything["id"].isin(ids)].sort_values("id").reset_index(drop=True)
    assert len(mine) == 3 and list(mine.columns) == list(everything.columns)
    pd.testing.assert_frame_equal(mine, reference, check_dtype=False)
    assert data.scores_of(root, run_id, ()).empty


def test_review_table_readers_match_the_pandas_filter(writable_scored_workspace: Path) -> None:
    root = str(writable_scored_workspace)
    run_id = _score_run(root)
    everything = data.label_issues(root, run_id)
    relabeled = everything["id"].iloc[0]
    new_label = next(c for c in everything["label"].dropna().unique() if c != everything["label"].iloc[0])
    decisions.decide(Workspace.open(root), "relabel", [relabeled], to=str(new_label), source="cli")
    issues = curation_data.issues_with_decisions(root, run_id)
    assert issues.loc[issues["id"] == relabeled, "current_label"].item() == new_label
    classes = tuple(sorted(everything["label"].fillna("(none)").astype(str).unique())[:2])
    detectors = tuple(review_panel.detector_names(everything)[:1])
    assert classes and detectors
    filters = [
        review_panel.IssueFilter(),
        review_panel.IssueFilter(threshold=0.4, max_score=0.9),
        review_panel.IssueFilter(include_unflagged=True),
        review_panel.IssueFilter(include_unflagged=True, classes=classes),
        review_panel.IssueFilter(detectors=detectors),
        review_panel.IssueFilter(threshold=0.2, include_unflagged=True, classes=classes, detectors=detectors),
        review_panel.IssueFilter(threshold=1.0, max_score=1.0),
    ]
    n_shown = set()
    for chosen in filters:
        reference = review_panel.apply_filter(issues, chosen)
        n_shown.add(len(reference))
        args = review_panel.filter_args(chosen)
        rows = curation_data.shown_issues(root, run_id, *args)
        pd.testing.assert_frame_equal(rows, reference[rows.columns.tolist()], check_dtype=False)
        assert list(rows.columns) == list(everything.columns)
        lazy = review_panel.csv_bytes(lambda: curation_data.shown_issues(root, run_id, *args))  # noqa: B023
        assert lazy == review_panel.csv_bytes(reference)
        head = curation_data.shown_issues(root, run_id, *args, limit=3)
        pd.testing.assert_frame_equal(head, rows.head(3), check_dtype=False)
        counts = curation_data.issue_counts(root, run_id, *args)
        assert (counts.scored, counts.shown) == (len(everything), len(reference))
        assert counts.flagged == int(everything["is_label_issue"].fillna(False).sum())
        totals = everything["label"].fillna("(none)").astype(str).value_counts()
        assert counts.totals.sort_index().to_dict() == totals.sort_index().to_dict()
        given = reference["label"].fillna("(none)").astype(str)
        assert counts.by_class.to_dict() == given.value_counts().to_dict()
        suggested = reference["suggested_label"].fillna("(none)").astype(str)
        pairs = pd.crosstab(given, suggested).stack()
        assert {k: v for k, v in pairs.items() if v} == {
            (r.label, r.suggested_label): r.n for r in counts.confusion.itertuples()}
        if len(reference):
            bars = score_charts.counts_by_class(counts.by_class, counts.totals)
            assert bars.to_json() == score_charts.flagged_by_class(reference, totals).to_json()
            heat = score_charts.confusion_of_counts(counts.confusion).data[0]
            table = pd.crosstab(given, suggested).reindex(index=list(heat.y), columns=list(heat.x))
            assert np.array_equal(np.asarray(heat.z), table.to_numpy())
    assert len(n_shown) > 3
