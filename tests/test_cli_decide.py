"""``thresher decide`` and ``thresher decisions``: the issue's command forms, refusals naming the
bad id or label, undo, accept-suggestions and the log written in each format."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backend.cli import main
from backend.storage import Workspace, decisions, results, runs


@pytest.fixture
def ws_root(image_folder: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    assert main(["ingest", "--workspace", str(root), str(image_folder)]) == 0
    return root


def ids_by_label(root: Path) -> dict[str, list[str]]:
    samples = Workspace.open(root).samples(columns=["id", "label"]).sort_values("id")
    return samples.groupby("label")["id"].apply(list).to_dict()


def test_decide_forms_and_the_log(ws_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cats, dogs = ids_by_label(ws_root)["cat"], ids_by_label(ws_root)["dog"]
    w = ["-w", str(ws_root)]
    assert main(["decide", "relabel", *w, cats[0], cats[1], "--to", "dog", "--reason", "ears"]) == 0
    assert "relabel: 2 decision(s) written" in capsys.readouterr().out
    assert main(["decide", "keep", *w, dogs[0]]) == 0
    assert main(["decide", "drop", *w, dogs[1], "--reason", "blurry"]) == 0
    assert main(["decide", "unsure", *w, dogs[2]]) == 0
    assert main(["decide", "tag", *w, dogs[0], "--tag", "hard"]) == 0
    assert main(["decide", "untag", *w, dogs[0], "--tag", "hard"]) == 0
    assert main(["decide", "undo", *w]) == 0
    printed = capsys.readouterr().out
    assert "undid" in printed.splitlines()[-1] and "untag of" in printed.splitlines()[-1]
    assert "nan" not in printed and "- -> hard" in printed  # a tag has no old value: '-', not 'nan' (QA)
    ws = Workspace.open(ws_root)
    state = decisions.decided_states(ws).set_index("id")
    assert state.loc[cats[0], "current_label"] == "dog" and state.loc[dogs[1], "decision"] == "dropped"
    assert state.loc[dogs[0], "tags"] == "hard"  # the untag was undone

    for fmt in ("csv", "parquet", "jsonl"):
        out = tmp_path / f"log.{fmt}"
        assert main(["decisions", *w, "--format", fmt, "--out", str(out)]) == 0
        frame = {"csv": pd.read_csv, "parquet": pd.read_parquet,
                 "jsonl": lambda p: pd.read_json(p, lines=True)}[fmt](out)
        assert len(frame) == 8
        for column in ("decision_id", "sample_id", "action", "old_value", "new_value", "reason", "author", "time",
                       "source", "score_run"):
            assert column in frame.columns
    assert main(["decisions", *w]) == 0
    assert "relabel" in capsys.readouterr().out


def test_unknown_ids_and_labels_are_refused_naming_them(ws_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat = ids_by_label(ws_root)["cat"][0]
    assert main(["decide", "drop", "-w", str(ws_root), cat, "no-such-id"]) == 2
    assert "no-such-id" in capsys.readouterr().err
    assert main(["decide", "relabel", "-w", str(ws_root), cat, "--to", "horse"]) == 2
    assert "'horse' is not a class" in capsys.readouterr().err
    assert decisions.read_log(Workspace.open(ws_root)).empty


def test_accept_suggestions(ws_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = Workspace.open(ws_root)
    samples = ws.samples(columns=["id", "label"]).sort_values("id").reset_index(drop=True)
    other = {"cat": "dog", "dog": "cat"}
    run_id = runs.start_run(ws, "score", {})
    flagged = samples.index < 4
    results.write_label_issues(ws, run_id, pd.DataFrame({
        "id": samples["id"], "label_issue_score": [0.9, 0.8, 0.7, 0.2] + [0.1] * (len(samples) - 4),
        "is_label_issue": flagged, "detectors": "aum",
        "suggested_label": [other[lab] if f else lab for lab, f in zip(samples["label"], flagged, strict=True)]}))
    runs.finish_run(ws, run_id, {})
    assert main(["decide", "accept-suggestions", "-w", str(ws_root), "--min-score", "0.5", "--dry-run"]) == 0
    assert "3 sample(s)" in capsys.readouterr().out
    assert decisions.read_log(ws).empty
    assert main(["decide", "accept-suggestions", "-w", str(ws_root), "--min-score", "0.5"]) == 0
    assert "accepted 3 suggestion(s)" in capsys.readouterr().out
    log = decisions.read_log(ws)
    assert sorted(log["sample_id"]) == sorted(samples["id"].iloc[:3]) and set(log["source"]) == {"bulk"}
    assert json.dumps(log["score_run"].unique().tolist()) == json.dumps([run_id])
