"""Comparing two runs, and deleting one: on two score runs written through storage with known
flags, scores and collapse metrics (no probes), and through the CLI."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.jobs.run_compare import _top_overlap, compare_runs, compare_scores, report
from backend.storage import Workspace, results, runs
from backend.storage.errors import ConflictError, StorageError
from tests.app.app_testkit import build_workspace, collapse_rows

N = 36  # app_testkit's workspace: 3 classes x 12 images


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Run a flags samples 0-3, run b 2-5 (b suggests another label for sample 3); el2n equal,
    aum reversed; only a stores sim; b's collapse has imbalance ratio 2 instead of 1."""
    base = tmp_path_factory.mktemp("compare")
    ws = Workspace.open(build_workspace(base / "ws", base / "images"))
    samples = ws.samples(columns=["id", "label"]).sort_values("id").reset_index(drop=True)
    ids, labels = samples["id"].tolist(), samples["label"].to_numpy()
    classes = sorted(set(labels))
    made = []
    for name, flagged, probe, ratio in (("a", range(0, 4), "mlp", 1.0), ("b", range(2, 6), "linear", 2.0)):
        run_id = runs.start_run(ws, "score", {"probe": {"kind": probe}, "folds": 5}, embedding_key="pixels-8", seed=0)
        is_issue = np.isin(np.arange(N), list(flagged))
        suggested = labels.copy()
        suggested[is_issue] = classes[0] if name == "a" else classes[1]
        suggested[2] = "stripe"  # the same suggestion for sample 2 in both runs
        results.write_label_issues(ws, run_id, pd.DataFrame({
            "id": ids, "label_issue_score": np.where(is_issue, 0.9, 0.1) + 0.001 * np.arange(N),
            "is_label_issue": is_issue, "suggested_label": suggested, "detectors": "",
        }))  # fmt: skip
        scores = {"el2n": np.arange(N, dtype=float), "aum": np.arange(N) * (1.0 if name == "a" else -1.0)}
        if name == "a":
            scores["sim"] = np.ones(N)
        results.write_scores(ws, run_id, ids, scores)
        results.write_collapse(ws, run_id, collapse_rows(classes, ratio))
        runs.finish_run(ws, run_id, {"n_label_issues": int(is_issue.sum())})
        made.append(run_id)
    return ws.root, made[0], made[1]


def test_flags_scores_collapse_and_settings_compared(two_runs) -> None:
    root, a, b = two_runs
    cmp = compare_runs(Workspace.open(root), a, b)
    assert cmp.kind == "score"
    assert cmp.flags == {"samples_in_both": N, "flagged_a": 4, "flagged_b": 4, "flagged_by_both": 2,
                         "only_a": 2, "only_b": 2, "jaccard": pytest.approx(2 / 6),
                         "same_suggestion_when_both_flag": 0.5}  # fmt: skip
    assert len(cmp.flag_changes) == 4 and set(cmp.flag_changes.columns) >= {"id", "label", "is_label_issue_a"}
    scores = cmp.scores.set_index("name")
    assert list(scores.index) == ["aum", "el2n"]  # sim: run a only
    assert scores.loc["el2n", "spearman"] == pytest.approx(1.0) and scores.loc["el2n", "top_overlap"] == 1.0
    assert scores.loc["aum", "spearman"] == pytest.approx(-1.0) and scores.loc["aum", "top_overlap"] == 0.0
    collapse = cmp.collapse.set_index("metric")
    assert collapse.loc["imbalance_ratio", "difference"] == pytest.approx(1.0)
    assert collapse.loc["nc1", "difference"] == pytest.approx(0.0)
    assert cmp.collapse_sources == ("probe_final", "probe_final")
    settings = cmp.settings.set_index("field")
    assert settings.loc["created_at", "same"]  # times differ between any two runs: not counted
    assert not settings.loc["config.probe.kind", "same"] and settings.loc["config.probe.kind", "b"] == "linear"
    assert settings.loc["config.folds", "same"] and settings.loc["kind", "same"]
    text = report(cmp)
    assert "config.probe.kind: mlp  ->  linear" in text and "Jaccard 0.333" in text
    assert "imbalance_ratio" in text and "spearman -1.000" in text


def test_hardest_overlap_follows_each_score_orientation() -> None:
    wide_a = pd.DataFrame({"id": list("abcdefghij"), "aum": np.arange(10.0), "knn_vote_score": np.arange(10.0)})
    wide_b = wide_a.assign(aum=[0.0, 9, 8, 7, 6, 5, 4, 3, 2, 1], knn_vote_score=[0.0, 1, 2, 3, 4, 5, 6, 7, 9, 8])
    table = compare_scores(wide_a, wide_b, top_fraction=0.1).set_index("name")
    assert table.loc["aum", "top_overlap"] == 1.0  # low AUM = hard: sample a in both
    assert table.loc["knn_vote_score", "top_overlap"] == 0.0  # high = worse: j in a, i in b


def test_hardest_overlap_counts_ties_as_shared_not_by_row_order() -> None:
    """SemDeDup's 0/1 leaves 90 tied "hardest" samples in each run, 80 of them the same: the
    overlap is the share of tied samples in common (80 / 90), not 0 as row order would give nor
    80 / 81 / 10 as independent random tie-breaking would; two equal constant scores agree (1),
    a constant score against an informative one is chance (k / n)."""
    ids = [f"s{i:03d}" for i in range(100)]
    dup_a, dup_b = np.zeros(100), np.zeros(100)
    dup_a[:10], dup_b[50:60] = 1.0, 1.0
    informative = np.where(np.arange(100) < 10, 5.0, 0.0)
    wide_a = pd.DataFrame({"id": ids, "semdedup": dup_a, "forgetting": np.zeros(100), "el2n": np.zeros(100)})
    wide_b = pd.DataFrame({"id": ids, "semdedup": dup_b, "forgetting": np.zeros(100), "el2n": informative})
    table = compare_scores(wide_a, wide_b).set_index("name")
    assert table.loc["semdedup", "top_overlap"] == pytest.approx(80 / 90)
    assert table.loc["forgetting", "top_overlap"] == 1.0
    assert table.loc["el2n", "top_overlap"] == pytest.approx(0.1)
    assert table.loc["forgetting", "spearman"] is None or np.isnan(table.loc["forgetting", "spearman"])


def _reference_overlap(hard_a: np.ndarray, hard_b: np.ndarray, k: int) -> float:
    """Slow: each run's P(in the hardest k) over every order its ties can be broken in (all
    permutations as tie-breakers), then sum(min) / k."""
    n = hard_a.size
    counts = np.zeros((2, n))
    perms = list(itertools.permutations(range(n)))
    for side, hard in enumerate((hard_a, hard_b)):
        for perm in perms:
            order = sorted(range(n), key=lambda i: (hard[i], perm[i]), reverse=True)
            counts[side, order[:k]] += 1
    weights = counts / len(perms)
    return float(np.minimum(weights[0], weights[1]).sum() / k)


def test_hardest_overlap_matches_a_brute_force_reference() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(4, 8))
        hard_a, hard_b = rng.integers(0, 3, n).astype(float), rng.integers(0, 3, n).astype(float)
        fraction = float(rng.choice([0.2, 0.4, 0.5]))
        k = int(round(fraction * n))
        if k < 1:
            continue
        assert _top_overlap(hard_a, hard_b, fraction) == pytest.approx(_reference_overlap(hard_a, hard_b, k))
        assert _top_overlap(hard_a, hard_a, fraction) == 1.0


def test_no_sample_judged_by_both_is_no_agreement(two_runs) -> None:
    root, a, _ = two_runs
    ws = Workspace.open(root)
    empty = runs.start_run(ws, "score", {})
    runs.finish_run(ws, empty, {})
    try:
        cmp = compare_runs(ws, a, empty)
        assert cmp.flags["samples_in_both"] == 0 and cmp.flags["jaccard"] is None
        assert cmp.scores.empty and cmp.collapse is None
        assert "Jaccard n/a" in report(cmp)
    finally:
        runs.delete_run(ws, empty)


def test_compare_refuses_other_kinds_the_same_run_and_unfinished_runs(two_runs) -> None:
    root, a, _ = two_runs
    ws = Workspace.open(root)
    project = runs.list_runs(ws, "project")["run_id"].iloc[0]
    with pytest.raises(StorageError, match="is a score run and .* a project run; compare two runs of one kind"):
        compare_runs(ws, a, project)
    with pytest.raises(StorageError, match="two different runs"):
        compare_runs(ws, a, a)
    running = runs.start_run(ws, "score", {})
    try:
        with pytest.raises(StorageError, match="is running: only finished runs"):
            compare_runs(ws, a, running)
    finally:
        runs.delete_run(ws, running, force=True)


def test_delete_refuses_a_running_run_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True)
    running = runs.start_run(ws, "score", {})
    with pytest.raises(ConflictError, match="still running .* --force"):
        runs.delete_run(ws, running)
    assert main(["runs", "--workspace", str(ws.root), "--delete", running]) == 2
    assert "still running" in capsys.readouterr().err
    assert main(["runs", "--workspace", str(ws.root), "--force"]) == 2
    assert "--force only goes with --delete" in capsys.readouterr().err
    assert main(["runs", "--workspace", str(ws.root), "--kind", "score", "--delete", running]) == 2
    assert "--kind filters the list of runs" in capsys.readouterr().err
    assert main(["runs", "--workspace", str(ws.root), "--delete", running, "--force"]) == 0
    assert runs.list_runs(ws).empty


def test_cli_compare(two_runs, capsys: pytest.CaptureFixture[str]) -> None:
    root, a, b = two_runs
    assert main(["runs", "--workspace", str(root), "--compare", a, b]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"score runs  a = {a}  b = {b}") and "flagged: a 4, b 4, both 2" in out
    assert main(["runs", "--workspace", str(root), "--compare", a, "score-20990101-000000-abcdef"]) == 2
    assert "no run 'score-20990101-000000-abcdef'" in capsys.readouterr().err


def test_prune_runs_compare_their_kept_sets(two_runs, capsys: pytest.CaptureFixture[str]) -> None:
    from backend.jobs.prune_job import prune

    root, score_run, _ = two_runs
    ws = Workspace.open(root)
    # flagged samples kept, so that keep-hard and keep-easy halves are complements
    hard = prune(ws, name="hard half", ratio=0.5, method="keep_hard:el2n", score_run=score_run,
                 label_issues="keep").run_id
    easy = prune(ws, name="easy half", ratio=0.5, method="keep_easy:el2n", score_run=score_run,
                 label_issues="keep").run_id
    again = prune(ws, name="hard again", ratio=0.5, method="keep_hard:el2n", score_run=score_run,
                 label_issues="keep").run_id
    cmp = compare_runs(ws, hard, easy)
    assert cmp.kept == {"kept_a": N // 2, "kept_b": N // 2, "kept_by_both": 0, "only_a": N // 2,
                        "only_b": N // 2, "jaccard": 0.0}  # fmt: skip
    assert cmp.kept_by_class["kept_a"].sum() == N // 2 and (cmp.kept_by_class["kept_by_both"] == 0).all()
    assert cmp.flags is None and cmp.scores is None
    assert compare_runs(ws, hard, again).kept["jaccard"] == 1.0
    prune(ws, name="hard half", ratio=0.7, method="random", score_run=score_run, overwrite=True)
    replaced = compare_runs(ws, hard, easy)
    assert replaced.kept is None and "('hard half') was deleted or replaced" in replaced.kept_note
    assert main(["runs", "--workspace", str(root), "--compare", easy, again]) == 0
    assert f"kept samples: a {N // 2}, b {N // 2}, both 0" in capsys.readouterr().out


def test_identical_runs_with_heavily_tied_scores_compare_as_identical(two_runs) -> None:
    """Forgetting counts and SemDeDup's 0/1 are mostly ties at the hardest-10 % cut: two runs
    that stored the same values agree completely (overlap 1, Spearman 1), not by chance."""
    rng = np.random.default_rng(7)
    ids = [f"s{i:03d}" for i in range(200)]
    wide = pd.DataFrame({"id": ids, "forgetting": rng.integers(0, 3, 200).astype(float),
                         "semdedup": (rng.random(200) < 0.7).astype(float), "sim": np.ones(200)})  # fmt: skip
    table = compare_scores(wide, wide.sample(frac=1.0, random_state=3)).set_index("name")
    assert (table["top_overlap"] == 1.0).all(), table
    assert table.loc["forgetting", "spearman"] == 1.0 and table.loc["semdedup", "spearman"] == 1.0
    root, a, _ = two_runs
    ws = Workspace.open(root)
    copy = runs.start_run(ws, "score", {"probe": {"kind": "mlp"}, "folds": 5}, embedding_key="pixels-8", seed=0)
    try:
        results.write_scores(ws, copy, *_scores_of(results.read_scores(ws, a)))
        results.write_label_issues(ws, copy, results.read_label_issues(ws, a))
        runs.finish_run(ws, copy, {})
        scores = compare_runs(ws, a, copy).scores.set_index("name")
        assert (scores["top_overlap"] == 1.0).all(), scores  # sim: all ones, a 36-way tie
        assert (scores["spearman"].dropna() == 1.0).all() and pd.isna(scores.loc["sim", "spearman"])
    finally:
        runs.delete_run(ws, copy)


def _scores_of(wide: pd.DataFrame) -> tuple[list[str], dict[str, np.ndarray]]:
    return wide["id"].tolist(), {name: wide[name].to_numpy() for name in wide.columns if name != "id"}


def _pandas_flags(ws: Workspace, run_a: str, run_b: str) -> tuple[dict, pd.DataFrame]:
    """The comparison of flags as it was before it moved to DuckDB: both runs' whole verdicts
    merged in pandas (the reference the paged DuckDB version must equal)."""
    from backend.storage import subsets

    cols = ["id", "is_label_issue", "suggested_label", "label_issue_score"]
    va, vb = (results.read_label_issues(ws, r)[cols] for r in (run_a, run_b))
    both = va.merge(vb, on="id", suffixes=("_a", "_b"))
    fa, fb = both["is_label_issue_a"].astype(bool), both["is_label_issue_b"].astype(bool)
    agree = both[fa & fb]
    flags = {"samples_in_both": len(both), **subsets.agreement(fa.to_numpy(), fb.to_numpy(), "flagged"),
             "same_suggestion_when_both_flag": (float((agree["suggested_label_a"] == agree["suggested_label_b"]).mean())
                                                if len(agree) else None)}  # fmt: skip
    changed = both[fa != fb].merge(ws.samples(columns=["id", "label"]), on="id", how="left")
    changed = changed[["id", "label", "is_label_issue_a", "suggested_label_a", "label_issue_score_a",
                       "is_label_issue_b", "suggested_label_b", "label_issue_score_b"]]  # fmt: skip
    order = (changed["label_issue_score_a"] - changed["label_issue_score_b"]).abs()
    changed = changed.assign(_order=order.to_numpy()).sort_values(["_order", "id"], ascending=[False, True])
    return flags, changed.drop(columns="_order").reset_index(drop=True)


def test_stored_comparison_equals_the_pandas_reference(two_runs) -> None:
    """Two runs that scored different samples, in different orders, over two commits, with NaN,
    inf and ties, and verdicts with missing suggestions, a NaN score and tied changes: the
    comparison read slice by slice (scores) and counted in DuckDB (flags, a page of the changes)
    equals the old pandas computation over both runs' whole frames."""
    from backend.jobs.run_compare import compare_flags, compare_stored_scores

    root, _, _ = two_runs
    ws = Workspace.open(root)
    ids = sorted(ws.samples(columns=["id"])["id"])
    rng = np.random.default_rng(11)
    made, owns, bad = [], [], set()
    try:
        for name in ("c", "d"):
            run_id = runs.start_run(ws, "score", {}, seed=0)
            made.append(run_id)
            own = ids if name == "c" else list(rng.permutation(ids)[:30])  # d: 30 samples, shuffled
            ties = rng.integers(0, 3, len(own)).astype(float)
            el2n = rng.random(len(own))
            el2n[:3] = [np.nan, np.inf, 0.5]
            owns.append(set(own))
            bad |= set(own[:2])
            results.write_scores(ws, run_id, own, {"el2n": el2n, "forgetting": ties, "sim": np.ones(len(own))})
            later = list(rng.permutation(ids))  # a second commit, all samples in another order
            results.write_scores(ws, run_id, later, {"aum": np.round(rng.normal(size=len(ids)), 1)})
            flagged = rng.random(len(own)) < 0.4
            score = np.round(rng.random(len(own)), 1)  # rounded: tied changes, ordered by id
            score[1] = np.nan
            suggested = np.where(rng.random(len(own)) < 0.5, "stripe", None)
            results.write_label_issues(ws, run_id, pd.DataFrame({
                "id": own, "label_issue_score": score, "is_label_issue": flagged, "suggested_label": suggested,
                "detectors": ""}))  # fmt: skip
            runs.finish_run(ws, run_id, {})
        run_c, run_d = made
        stored = compare_stored_scores(ws, run_c, run_d)
        reference = compare_scores(results.read_scores(ws, run_c), results.read_scores(ws, run_d))
        assert list(stored["name"]) == ["aum", "el2n", "forgetting", "sim"]
        pd.testing.assert_frame_equal(stored, reference)
        assert stored.set_index("name").loc["el2n", "n"] == len((owns[0] & owns[1]) - bad) < 30  # less NaN, inf
        flags, changed = compare_flags(ws, run_c, run_d, max_changes=4)
        flags_ref, changed_ref = _pandas_flags(ws, run_c, run_d)
        assert flags == flags_ref and flags["samples_in_both"] == 30 and flags["only_a"] + flags["only_b"] > 4
        pd.testing.assert_frame_equal(changed, changed_ref.head(4), check_dtype=False)
        _, every = compare_flags(ws, run_c, run_d, max_changes=1000)
        pd.testing.assert_frame_equal(every, changed_ref, check_dtype=False)  # NaN change last
        cmp = compare_runs(ws, run_c, run_d, max_changes=4)
        assert len(cmp.flag_changes) == 4 and cmp.flag_changes_total == len(changed_ref)
        assert f"(largest score change first, 4 of {len(changed_ref)})" in report(cmp)
    finally:
        for run_id in made:
            runs.delete_run(ws, run_id)
