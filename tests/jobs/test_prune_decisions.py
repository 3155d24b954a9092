"""Decisions outrank the prune: dropped samples are in no pruned subset, pinned (``keep``) ones
are in every one, relabeled ones are pruned under their new label. The real prune job on the
app tests' small workspace (36 images of 3 classes, a consistent fake score run)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.jobs.prune_job import prune
from backend.storage import Workspace, decisions, results, runs, subsets
from backend.storage.errors import StorageError
from tests.app.app_testkit import N_FLAGGED, N_SAMPLES


@pytest.fixture
def ws(scored_ws: Workspace) -> Workspace:
    return scored_ws


def _verdict(ws: Workspace) -> pd.DataFrame:
    run = runs.latest_run(ws, "score")
    return ws.samples(columns=["id", "label", "split"]).merge(results.read_label_issues(ws, run["run_id"]), on="id")


def test_dropped_samples_are_in_no_subset_and_count_as_removed(ws: Workspace) -> None:
    ids = sorted(ws.sample_ids())
    dropped = ids[:3]
    decisions.decide(ws, "drop", dropped)
    everything = prune(ws, name="all", ratio=0.0, method="random", label_issues="keep")
    assert set(subsets.subset_ids(ws, "all")) == set(ids) - set(dropped)  # ratio 0 keeps all but the dropped
    assert (everything.n_kept, everything.n_removed, everything.n_dropped_by_decision) == (N_SAMPLES - 3, 3, 3)
    half = prune(ws, name="half", ratio=0.5, method="keep_hard:el2n", label_issues="keep")
    kept = set(subsets.subset_ids(ws, "half"))
    assert len(kept) == N_SAMPLES // 2 and not kept & set(dropped)  # the ratio is of the whole pool
    summary = runs.get_run(ws, half.run_id)["summary"]
    assert (summary["n_dropped_by_decision"], summary["n_pinned"], summary["n_removed"]) == (3, 0, N_SAMPLES // 2)
    assert summary["decisions_seq"] == 3


def test_pinned_samples_are_kept_even_when_flagged_or_duplicated(ws: Workspace) -> None:
    verdict = _verdict(ws)
    flagged = sorted(verdict.loc[verdict["is_label_issue"], "id"])
    scores = results.read_scores(ws, runs.latest_run(ws, "score")["run_id"])
    duplicates = sorted(scores.loc[scores["semdedup"] > 0.5, "id"])
    easiest = scores.sort_values("el2n")["id"].iloc[:2].tolist()  # keep-hard would drop these
    pinned = sorted({flagged[0], duplicates[0], *easiest})
    without = prune(ws, name="before", ratio=0.5, method="keep_hard:el2n", dedup=True)
    assert not set(pinned) & set(subsets.subset_ids(ws, "before"))
    assert without.n_pinned == 0
    decisions.decide(ws, "keep", pinned)
    result = prune(ws, name="after", ratio=0.5, method="keep_hard:el2n", dedup=True)
    kept = set(subsets.subset_ids(ws, "after"))
    assert set(pinned) <= kept and len(kept) == N_SAMPLES // 2  # pinned samples take kept slots
    assert result.n_pinned == len(pinned) and not result.pinned_fill_budget
    assert not (set(flagged) - set(pinned)) & kept  # the other flags are still removed first


def test_more_pinned_than_the_budget_keeps_every_pinned_sample(ws: Workspace, capsys) -> None:
    ids = sorted(ws.sample_ids())
    decisions.decide(ws, "keep", ids[:6])
    decisions.decide(ws, "drop", ids[6:8])
    assert main(["prune", "--workspace", str(ws.root), "--ratio", "0.9", "--name", "tiny"]) == 0  # keeps 4
    out = capsys.readouterr().out
    assert sorted(subsets.subset_ids(ws, "tiny")) == ids[:6]
    assert "decisions: 6 samples pinned by keep decisions, 2 dropped by decisions" in out
    assert "pinned by keep decisions fill the whole budget" in out
    assert runs.latest_run(ws, "prune")["summary"]["pinned_fill_budget"] is True


def test_the_cli_reports_pinned_and_dropped(ws: Workspace, capsys) -> None:
    ids = sorted(ws.sample_ids())
    decisions.decide(ws, "keep", ids[10:13])
    decisions.decide(ws, "drop", ids[20:22])
    assert main(["prune", "--workspace", str(ws.root), "--ratio", "0.5", "--name", "half"]) == 0
    out = capsys.readouterr().out
    assert "3 samples pinned by keep decisions, 2 dropped by decisions" in out
    kept = set(subsets.subset_ids(ws, "half"))
    assert set(ids[10:13]) <= kept and not kept & set(ids[20:22]) and len(kept) == N_SAMPLES // 2


def test_decisions_outside_the_split_do_not_enter_it(ws: Workspace) -> None:
    samples = ws.samples(columns=["id", "split"]).sort_values("id")
    test_ids = samples.loc[samples["split"] == "test", "id"].tolist()
    train_ids = samples.loc[samples["split"] == "train", "id"].tolist()
    decisions.decide(ws, "keep", [test_ids[0], train_ids[0]])
    decisions.decide(ws, "drop", [test_ids[1], train_ids[1]])
    result = prune(ws, name="train-half", ratio=0.5, method="random", split="train", label_issues="keep")
    kept = set(subsets.subset_ids(ws, "train-half"))
    assert kept <= set(train_ids) and train_ids[0] in kept and train_ids[1] not in kept
    assert (result.n_pinned, result.n_dropped_by_decision, result.n_kept) == (1, 1, len(train_ids) // 2)


def test_relabeled_samples_are_pruned_under_their_current_label(ws: Workspace) -> None:
    samples = ws.samples(columns=["id", "label"]).sort_values("id")
    circles = samples.loc[samples["label"] == "circle", "id"].tolist()
    decisions.decide(ws, "relabel", circles[:6], to="square")  # circle 6, square 18, stripe 12
    result = prune(ws, name="half", ratio=0.5, method="random", label_issues="keep")
    current = decisions.curated_samples(ws, ["id", "label"]).set_index("id")["label"]
    kept = subsets.subset_ids(ws, "half")
    assert current[kept].value_counts().to_dict() == {"circle": 3, "square": 9, "stripe": 6}  # proportional
    assert result.n_relabeled == 6


def test_a_relabeled_sample_is_not_removed_as_a_label_issue(ws: Workspace) -> None:
    verdict = _verdict(ws)
    fixed = verdict[verdict["is_label_issue"]].sort_values("id").iloc[0]
    decisions.decide(ws, "relabel", [fixed["id"]], to=fixed["suggested_label"])
    result = prune(ws, name="half", ratio=0.5, method="keep_hard:el2n")
    assert result.n_label_issues_flagged == N_FLAGGED - 1
    assert result.n_label_issues_removed == N_FLAGGED - 1


def test_an_undone_drop_is_prunable_again_and_a_fully_dropped_pool_is_refused(ws: Workspace) -> None:
    ids = sorted(ws.sample_ids())
    decisions.decide(ws, "drop", ids[:1])
    decisions.undo(ws)
    prune(ws, name="all", ratio=0.0, method="random", label_issues="keep")
    assert len(subsets.subset_ids(ws, "all")) == N_SAMPLES
    samples = ws.samples(columns=["id", "split"])
    decisions.decide(ws, "drop", samples.loc[samples["split"] == "test", "id"].tolist())
    with pytest.raises(StorageError, match="every one of the 12 samples to prune is dropped"):
        prune(ws, name="none", ratio=0.5, split="test")
    assert "none" not in subsets.subset_names(ws)


def test_a_hand_selection_may_hold_dropped_samples(ws: Workspace) -> None:
    ids = sorted(ws.sample_ids())
    decisions.decide(ws, "drop", ids[:2])
    subsets.save_subset(ws, "picked", ids[:5])
    assert sorted(subsets.subset_ids(ws, "picked")) == ids[:5]
    assert np.isin(ids[:2], list(decisions.dropped_ids(ws))).all()


def test_duplicate_rows_keep_one_per_group_or_none_beside_a_pinned_one() -> None:
    from backend.jobs.prune_job import duplicate_rows

    keys = pd.Series(["g1", "g1", "g1", "g2", "g2", np.nan], index=["c", "a", "b", "e", "d", "f"])
    assert duplicate_rows(keys, set()).tolist() == [True, False, True, True, False, False]  # a and d stay
    assert duplicate_rows(keys, {"g2"}).tolist() == [True, False, True, True, True, False]  # g2 holds a pinned one


def test_dedup_removes_the_score_runs_duplicate_groups_not_semdedups_marks(ws: Workspace) -> None:
    """QA: "Remove near-duplicates first" removed SemDeDup's marks (80 % of the demo digits at its
    cosine of 0.95) while the Duplicates page and the Overview counted 4 near duplicates. It now
    removes the run's duplicate groups (the health stage's), one kept per group."""
    run_id = runs.latest_run(ws, "score")["run_id"]
    ids = sorted(ws.sample_ids())
    near = np.full(len(ids), np.nan)
    near[[0, 1, 2]], near[[3, 4]] = 0, 1
    exact = np.full(len(ids), np.nan)
    exact[[3, 4]] = 0
    results.write_scores(ws, run_id, ids, {"near_duplicate_group": near, "duplicate_group": exact})
    result = prune(ws, name="deduped", ratio=0.5, method="random", label_issues="keep", dedup=True)
    kept = set(subsets.subset_ids(ws, "deduped"))
    assert result.n_duplicates_removed == 3 and not {ids[1], ids[2], ids[4]} & kept
    semdedup = set(results.read_scores(ws, run_id).query("semdedup > 0.5")["id"])
    assert semdedup != {ids[1], ids[2], ids[4]}  # what it removed before: other samples
    decisions.decide(ws, "keep", [ids[3]])  # a kept copy: the rest of its group goes
    again = prune(ws, name="deduped2", ratio=0.5, method="random", label_issues="keep", dedup=True)
    kept = set(subsets.subset_ids(ws, "deduped2"))
    assert ids[3] in kept and ids[4] not in kept and again.n_duplicates_removed == 3
