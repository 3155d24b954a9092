"""End to end on real data: digits features -> score -> prune -> export (the issue-3 CLI contract)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from backend.cli import main
from backend.scoring.pruning.registry import recommended_scorers
from backend.storage import Workspace, results, runs, subsets

N = 450
NOISY = 45


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, Path]:
    """450 digits with 10% of labels flipped to another class, ingested as features and scored."""
    tmp = tmp_path_factory.mktemp("score")
    digits = load_digits()
    rng = np.random.default_rng(0)
    x, y = digits.data[:N] / 16.0, digits.target[:N].copy()
    noisy = rng.choice(N, NOISY, replace=False)
    y[noisy] = (y[noisy] + rng.integers(1, 10, NOISY)) % 10
    pd.DataFrame({"id": [f"d{i:04d}" for i in range(N)], "label": y, "embedding": list(x.astype(np.float32)),
                  "split": ["train" if i % 4 else "test" for i in range(N)]}).to_parquet(tmp / "digits.parquet")
    ws = tmp / "ws"
    assert main(["ingest", "--workspace", str(ws), "--embeddings", str(tmp / "digits.parquet")]) == 0
    assert main(["score", "--workspace", str(ws)]) == 0
    return ws, np.sort(noisy), tmp


def test_score_run_stores_everything(scored) -> None:
    ws_path, noisy, _ = scored
    ws = Workspace.open(ws_path)
    run = runs.latest_run(ws, "score")
    assert run["summary"]["n_samples"] == N and run["config"]["classes"] == [str(c) for c in range(10)]
    verdict = results.read_label_issues(ws, run["run_id"])
    assert len(verdict) == N and verdict["label_issue_score"].between(0, 1).all()
    flagged = set(verdict.loc[verdict["is_label_issue"], "id"])
    truth = {f"d{i:04d}" for i in noisy}
    precision = len(flagged & truth) / max(len(flagged), 1)
    recall = len(flagged & truth) / len(truth)
    assert precision > 0.7 and recall > 0.7, (precision, recall)
    wide = results.read_scores(ws, run["run_id"])
    assert set(recommended_scorers()) <= set(wide.columns) and len(wide) == N
    collapse = results.read_collapse(ws, run["run_id"])
    assert {"embeddings", "probe", "probe_final"} <= set(collapse["source"])
    # per sample: distance to the own vs the nearest other class mean, on the probe's features
    assert run["summary"]["nc_sample_source"] == "probe_final"
    ratio = wide.set_index("id")["nc_distance_ratio"]
    np.testing.assert_allclose(ratio, wide.set_index("id")["nc_own_distance"] / wide.set_index("id")["nc_other_distance"])
    is_noisy = ratio.index.isin([f"d{i:04d}" for i in noisy])
    assert ratio[is_noisy].median() > 2 * ratio[~is_noisy].median()  # a flipped label sits far from its class


def test_prune_default_and_named_methods(scored, capsys: pytest.CaptureFixture[str]) -> None:
    ws_path, _, _ = scored
    ws = Workspace.open(ws_path)
    assert main(["prune", "--workspace", str(ws_path), "--ratio", "0.5", "--name", "half"]) == 0
    assert "removed" in capsys.readouterr().out
    assert abs(len(subsets.subset_ids(ws, "half")) - N // 2) <= 10
    assert main(["prune", "--workspace", str(ws_path), "--method", "ccs:aum", "--ratio", "0.3", "--name", "ccs",
                 "--seed", "1"]) == 0
    assert abs(len(subsets.subset_ids(ws, "ccs")) - round(0.7 * N)) <= 10
    assert main(["prune", "--workspace", str(ws_path), "--method", "d2:ensemble", "--ratio", "0.6", "--name", "d2"]) == 0
    assert abs(len(subsets.subset_ids(ws, "d2")) - round(0.4 * N)) <= 10
    assert main(["prune", "--workspace", str(ws_path), "--method", "random", "--ratio", "0.2", "--name", "tr",
                 "--split", "train", "--per-class", "balanced"]) == 0
    kept = set(subsets.subset_ids(ws, "tr"))
    split = ws.samples(columns=["id", "split"]).set_index("id")["split"]
    assert {split[i] for i in kept} == {"train"}
    # a clash never overwrites silently; bad arguments explain themselves
    assert main(["prune", "--workspace", str(ws_path), "--ratio", "0.9", "--name", "half"]) == 2
    assert "exists" in capsys.readouterr().err and abs(len(subsets.subset_ids(ws, "half")) - N // 2) <= 10
    assert main(["prune", "--workspace", str(ws_path), "--method", "nope", "--ratio", "0.5", "--name", "x"]) == 2
    assert "unknown pruning method" in capsys.readouterr().err
    assert main(["prune", "--workspace", str(ws_path), "--ratio", "1.0", "--name", "x"]) == 2
    assert "ratio" in capsys.readouterr().err


def test_prune_removes_flagged_label_issues_first(scored, capsys: pytest.CaptureFixture[str]) -> None:
    """Hardness scores rank the flipped labels hardest: keep-hard on EL2N keeps most of them
    unless the verdict's flags go first (the default), which keeps almost none."""
    ws_path, noisy, _ = scored
    ws = Workspace.open(ws_path)
    wrong = {f"d{i:04d}" for i in noisy}
    base = ["prune", "--workspace", str(ws_path), "--ratio", "0.5", "--method", "keep_hard:el2n"]
    capsys.readouterr()
    assert main([*base, "--name", "hard-clean"]) == 0
    out = capsys.readouterr().out
    run = runs.latest_run(ws, "prune")
    n_first = run["summary"]["n_label_issues_removed"]
    assert run["config"]["label_issues"] == "exclude" and n_first > 0.7 * len(wrong)
    assert n_first == run["summary"]["n_label_issues_flagged"] and run["summary"]["label_issue_verdict"] == "used"
    assert f"{n_first} flagged label issues removed first" in out and "note:" not in out
    # removing less than what is flagged: the method chooses nothing, and the user is told
    assert main(["prune", "--workspace", str(ws_path), "--ratio", "0.05", "--method", "keep_hard:el2n",
                 "--name", "tiny"]) == 0
    assert "chose nothing" in capsys.readouterr().out
    assert runs.latest_run(ws, "prune")["summary"]["exclusions_fill_budget"] is True
    assert main([*base, "--name", "hard-noisy", "--label-issues", "keep"]) == 0
    assert runs.latest_run(ws, "prune")["summary"]["n_label_issues_removed"] == 0
    clean, noisy_kept = (set(subsets.subset_ids(ws, n)) for n in ("hard-clean", "hard-noisy"))
    assert len(clean) == len(noisy_kept) == N // 2
    assert len(noisy_kept & wrong) > 0.8 * len(wrong)  # nearly every flipped label is "hard"
    assert len(clean & wrong) < 0.2 * len(wrong)


def test_prune_options_reach_the_procedure(scored, capsys: pytest.CaptureFixture[str]) -> None:
    ws_path, _, _ = scored
    ws = Workspace.open(ws_path)
    base = ["prune", "--workspace", str(ws_path), "--ratio", "0.5"]
    assert main([*base, "--method", "d2:aum", "--name", "d2-plain"]) == 0
    assert main([*base, "--method", "d2:aum", "--name", "d2-weak", "--option", "gamma_reverse=20",
                 "--option", "k=5"]) == 0
    assert set(subsets.subset_ids(ws, "d2-weak")) != set(subsets.subset_ids(ws, "d2-plain"))
    run = runs.latest_run(ws, "prune")
    assert run["config"]["options"]["d2"] == {"gamma_reverse": 20.0, "k": 5}
    assert main([*base, "--name", "sims-knee", "--option", "knee=0.4"]) == 0  # the default's own
    capsys.readouterr()
    # a wrong key or value is refused before anything is written, naming what is known
    n_runs = len(runs.list_runs(ws, "prune"))
    assert main([*base, "--method", "d2:aum", "--name", "bad", "--option", "gama=3"]) == 2
    assert "gamma_reverse (default 1.0)" in capsys.readouterr().err
    assert main([*base, "--method", "ccs:aum", "--name", "bad", "--option", "n_strata=0"]) == 2
    assert "n_strata must be >= 1" in capsys.readouterr().err
    assert "bad" not in subsets.subset_names(ws) and len(runs.list_runs(ws, "prune")) == n_runs
    sims_run = runs.list_runs(ws, "prune")["config"].iloc[0]  # newest first: the sims-knee prune
    assert sims_run["options"]["sims"]["params"]["knee"] == 0.4  # structured, not a repr
    with pytest.raises(SystemExit):
        main([*base, "--name", "bad", "--option", "knee"])
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_export_scores_and_collapse(scored) -> None:
    ws_path, _, tmp = scored
    out = tmp / "scores.csv"
    assert main(["export", "--workspace", str(ws_path), "--what", "scores", "--format", "csv", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert len(frame) == N
    assert {"id", "label", "suggested_label", "label_issue_score", "is_label_issue"} <= set(frame.columns)
    assert {f"{name}_score" for name in recommended_scorers()} <= set(frame.columns)
    # the detectors' stored `<detector>_score` become `<detector>_issue_score`, never `_score_score`
    assert not [c for c in frame.columns if c.endswith("_score_score")]
    assert {"confident_learning_issue_score", "knn_vote_issue_score", "aum_issue_score", "aum_score"} <= set(frame.columns)
    assert json.loads((tmp / "scores.csv.provenance.json").read_text())["score_run"]["kind"] == "score"
    out = tmp / "collapse.json"
    assert main(["export", "--workspace", str(ws_path), "--what", "collapse", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    for key in ("nc1", "equinorm", "equiangularity", "max_angle", "etf_distance", "nc3", "nc4"):
        assert isinstance(payload[key], float), key
    assert payload["headline_source"] == "probe_final"
    assert len(payload["sources"]["probe_curve"]["nc1"]) > 1
    subset_out = tmp / "kept.csv"
    assert main(["prune", "--workspace", str(ws_path), "--ratio", "0.4", "--name", "kept"]) == 0
    assert main(["export", "--workspace", str(ws_path), "--subset", "kept", "--format", "csv",
                 "--out", str(subset_out)]) == 0
    assert len(pd.read_csv(subset_out)) == len(subsets.subset_ids(Workspace.open(ws_path), "kept"))


def test_imported_logits_and_classifier_feed_the_scorers(scored, capsys: pytest.CaptureFixture[str]) -> None:
    ws_path, _, tmp = scored
    ws = Workspace.open(ws_path)
    ids, unit, norms = ws.load_embeddings("imported-digits")
    labels = ws.samples(columns=["id", "label"]).set_index("id").loc[list(ids), "label"].astype(int).to_numpy()
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(10, unit.shape[1])).astype(np.float32)
    rows = []
    for epoch in range(4):
        logits = (unit * norms[:, None]) @ weights.T + epoch * 2.0 * np.eye(10)[labels]
        rows += [{"id": i, "epoch": epoch, "logits": row.tolist()} for i, row in zip(ids, logits, strict=True)]
    pd.DataFrame(rows).to_parquet(tmp / "mine.parquet")
    np.savez(tmp / "clf.npz", weights=weights, bias=np.zeros(10), classes=np.array([str(c) for c in range(10)]))
    assert main(["ingest", "--workspace", str(ws_path), "--logits", str(tmp / "mine.parquet")]) == 0
    assert main(["ingest", "--workspace", str(ws_path), "--classifier", str(tmp / "clf.npz"),
                 "--embedding-key", "imported-digits"]) == 0
    assert main(["score", "--workspace", str(ws_path), "--scorers", "el2n,forgetting,aum,sim",
                 "--logits", "mine", "--classifier", "clf"]) == 0
    run = runs.latest_run(ws, "score")
    assert run["summary"]["probe_source"] == "imported:mine"
    wide = results.read_scores(ws, run["run_id"])
    assert {"el2n", "forgetting", "aum", "sim"} <= set(wide.columns)
    # the imported logits grow the true-class margin every epoch: nothing is ever forgotten
    assert (wide["forgetting"] <= 1).mean() > 0.5
    sources = set(results.read_collapse(ws, run["run_id"])["source"])
    assert "imported:clf" in sources
    # the per-sample distances follow the headline: the embeddings the imported classifier reads
    from backend.scoring.neural_collapse import sample_mean_distances

    assert run["summary"]["nc_sample_source"] == "imported:clf"
    expected = sample_mean_distances(unit * norms[:, None], labels, n_classes=10).ratio
    np.testing.assert_allclose(wide.set_index("id").loc[list(ids), "nc_distance_ratio"], expected, rtol=1e-5)
    # wrong names are refused before anything runs: no run is recorded
    n_runs = len(runs.list_runs(ws, "score"))
    capsys.readouterr()
    assert main(["score", "--workspace", str(ws_path), "--scorers", "el2n", "--classifier", "nope"]) == 2
    assert "no classifier named 'nope' (stored: clf)" in capsys.readouterr().err
    assert main(["score", "--workspace", str(ws_path), "--scorers", "el2n", "--logits", "nope"]) == 2
    assert "no imported logits named 'nope' (stored: mine)" in capsys.readouterr().err
    np.savez(tmp / "clf9.npz", weights=weights[:9], bias=np.zeros(9), classes=np.array([str(c) for c in range(9)]))
    assert main(["ingest", "--workspace", str(ws_path), "--classifier", str(tmp / "clf9.npz"),
                 "--embedding-key", "imported-digits"]) == 0
    capsys.readouterr()
    assert main(["score", "--workspace", str(ws_path), "--scorers", "el2n", "--classifier", "clf9"]) == 2
    assert "classifier 'clf9' has no row for the classes ['9']" in capsys.readouterr().err
    assert len(runs.list_runs(ws, "score")) == n_runs


def test_evaluate_says_what_a_subset_costs(scored, capsys: pytest.CaptureFixture[str]) -> None:
    ws_path, _, _ = scored
    ws = Workspace.open(ws_path)
    assert main(["prune", "--workspace", str(ws_path), "--method", "random", "--ratio", "0.5", "--name", "ev",
                 "--split", "train"]) == 0
    assert main(["evaluate", "--workspace", str(ws_path), "--subset", "ev", "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "split 'train', as pruned by prune-" in out and "this subset + KD" in out and "Ben-Baruch" in out
    run = runs.latest_run(ws, "evaluate")
    summary = run["summary"]
    assert summary["pool"].startswith("split 'train', as pruned by")
    n_train = int((ws.samples(columns=["split"])["split"] == "train").sum())
    assert run["config"]["subset"] == "ev" and summary["split"] == "train"
    assert summary["n_pool"] == n_train and summary["n_kept"] == len(subsets.subset_ids(ws, "ev"))
    assert summary["folds"] == 3 and 0 < summary["kd_weight"] < 1
    assert set(summary["accuracy"]) == {"full", "subset", "subset_kd", "random", "random_kd"}
    assert all(40 < a <= 100 for a in summary["accuracy"].values())
    assert set(summary["recall_by_class"]["subset"]) == {str(c) for c in range(10)}
    # a hand-made subset is evaluated against every sample
    subsets.save_subset(ws, "hand", sorted(ws.sample_ids())[: N // 3])
    assert main(["evaluate", "--workspace", str(ws_path), "--subset", "hand", "--folds", "2", "--kd-weight", "0.5"]) == 0
    summary = runs.latest_run(ws, "evaluate")["summary"]
    assert summary["n_pool"] == N and summary["split"] is None and summary["kd_weight"] == 0.5
    assert "a subset saved from selection" in summary["pool"]
    # refusals name the problem and record no run, not even a failed one
    before = len(runs.list_runs(ws, "evaluate"))
    subsets.save_subset(ws, "everything", sorted(ws.sample_ids()))
    subsets.save_subset(ws, "single", sorted(ws.sample_ids())[:1])
    split = ws.samples(columns=["id", "split"]).set_index("id")["split"]
    strays = sorted(split[split == "test"].index)[:2]  # pruned from 'train', then edited to hold 2 test samples
    record = subsets.subset_record(ws, "ev")
    subsets.save_subset(ws, "ev-edited", [*record.ids, *strays], origin="prune", run_id=record.run_id)
    for args, message in [
        (["--subset", "ev-edited"], "samples of subset 'ev-edited' are not in split 'train'"),
        (["--subset", "nope"], "no subset named 'nope'"),
        (["--subset", "ev", "--folds", "1"], "--folds must be at least 2"),
        (["--subset", "ev", "--folds", "100000"], "folds must be between 2 and the pool's"),
        (["--subset", "everything"], "keeps 450 of the 450 samples"),
        (["--subset", "single"], "has no kept sample to train on"),
        (["--subset", "ev", "--temperature", "nan"], "--temperature must be a number > 0"),
    ]:
        assert main(["evaluate", "--workspace", str(ws_path), *args]) == 2, args
        assert message in capsys.readouterr().err, args
    assert len(runs.list_runs(ws, "evaluate")) == before


def test_export_soft_labels_for_distillation(scored, capsys: pytest.CaptureFixture[str]) -> None:
    ws_path, _, tmp = scored
    ws = Workspace.open(ws_path)
    # flagged samples kept on purpose: to see the teacher's soft labels correct flipped labels
    assert main(["prune", "--workspace", str(ws_path), "--ratio", "0.7", "--name", "soft", "--split", "train",
                 "--label-issues", "keep"]) == 0
    out = tmp / "soft.parquet"
    assert main(["export", "--workspace", str(ws_path), "--subset", "soft", "--soft-labels", "--format", "parquet",
                 "--out", str(out)]) == 0
    assert "with soft labels over 10 classes" in capsys.readouterr().out
    frame = pd.read_parquet(out)
    kept = set(subsets.subset_ids(ws, "soft"))
    assert set(frame["id"]) == kept and len(frame) == len(kept)
    predicted = frame[[f"teacher_logit_{c}" for c in range(10)]].to_numpy().argmax(axis=1)
    truth = load_digits().target[[int(i[1:]) for i in frame["id"]]]
    flipped = truth != frame["label"].astype(int).to_numpy()
    # keeping the flagged samples, the keep-hard default keeps most flipped labels, and the teacher
    # names their true class: its soft labels correct them, the effect Ben-Baruch et al. credit KD
    # with on noisy data
    assert flipped.sum() >= 10 and (predicted == truth).mean() > 0.95
    assert (predicted[flipped] == truth[flipped]).mean() > 0.8
    n_train = int((ws.samples(columns=["split"])["split"] == "train").sum())
    assert frame["kd_weight"].unique().tolist() == [round(1 - len(kept) / n_train, 4)]
    assert frame["kd_temperature"].unique().tolist() == [4.0]
    assert main(["export", "--workspace", str(ws_path), "--soft-labels", "--out", str(tmp / "x.csv")]) == 2
    assert "--soft-labels goes with --what manifest and --subset" in capsys.readouterr().err
    assert not (tmp / "x.csv").exists()
