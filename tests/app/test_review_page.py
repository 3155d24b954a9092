"""AppTest and unit tests for the Review page: flagged samples, filters, saving and the CSV."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from app import state
from app.components.review_panel import (
    IssueFilter,
    apply_filter,
    csv_bytes,
    detector_names,
    table_key,
)
from backend.storage import Workspace, subsets
from tests.app.app_testkit import CLASSES, FLAGGED_PER_CLASS, N_FLAGGED, N_SAMPLES, metric_values


def review_page(app_on, workspace: Path, view: str = "Table") -> AppTest:
    at = app_on(workspace, "views/review.py")
    if view != "Queue":
        at.session_state[state.REVIEW_VIEW] = view
        at.run()
        assert not at.exception, at.exception
    return at


def tick(at: AppTest, rows: list[int]) -> list[str]:
    """Tick ``rows`` of the table as a user would; returns their ids."""
    table = at.dataframe[0].value
    at.session_state[table_key(table["id"])] = {
        "edited_rows": {r: {"tick": True} for r in rows}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception, at.exception
    return table["id"].iloc[rows].tolist()


def test_review_lists_the_flagged_samples_most_suspicious_first(
    app_on, scored_workspace: Path
) -> None:
    at = review_page(app_on, scored_workspace)
    assert at.title[0].value == "Review label issues"
    assert metric_values(at) == {
        "Scored samples": f"{N_SAMPLES}",
        "Flagged": f"{N_FLAGGED}",
        "Flagged share": f"{100 * N_FLAGGED / N_SAMPLES:.1f}%",
        "Shown": f"{N_FLAGGED}",
    }
    assert len(at.get("plotly_chart")) == 2  # flagged per class, given x suggested
    table = at.dataframe[0].value
    assert list(table.columns[:5]) == ["tick", "image", "id", "label", "suggested_label"]
    assert not table["tick"].any()
    assert len(table) == N_FLAGGED
    assert table["label_issue_score"].is_monotonic_decreasing
    assert (table["label"] != table["suggested_label"]).all()
    assert table["image"].str.startswith("data:image/png;base64,").all()
    (download,) = at.get("download_button")
    assert download.label == f"Download {N_FLAGGED} rows (CSV)"
    assert any("Tick rows in the table" in c.value for c in at.main.caption)


def test_review_filters_by_threshold_class_and_detector(app_on, scored_workspace: Path) -> None:
    at = review_page(app_on, scored_workspace)
    at.multiselect(key=state.REVIEW_CLASSES).select(CLASSES[0]).run()
    assert metric_values(at)["Shown"] == f"{FLAGGED_PER_CLASS}"
    at.multiselect(key=state.REVIEW_CLASSES).unselect(CLASSES[0])
    at.multiselect(key=state.REVIEW_DETECTORS).select("aum").run()
    shown = at.dataframe[0].value
    assert len(shown) == N_FLAGGED // 2 and (shown["detectors"] == "aum").all()

    at.multiselect(key=state.REVIEW_DETECTORS).unselect("aum")
    at.toggle(key=state.REVIEW_INCLUDE_UNFLAGGED).set_value(True).run()
    assert metric_values(at)["Shown"] == f"{N_SAMPLES}"
    at.slider(key=state.REVIEW_SCORE_RANGE).set_value((1.0, 1.0)).run()
    assert not at.exception
    assert metric_values(at)["Shown"] == "0"
    assert "No sample passes these filters" in at.info[0].value


def test_ticked_rows_are_saved_as_a_review_subset(app_on, writable_scored_workspace: Path) -> None:
    at = review_page(app_on, writable_scored_workspace)
    ticked = tick(at, [0, 2])
    assert at.text_input(key=state.REVIEW_SUBSET_NAME).value == "to-relabel"
    (save,) = [b for b in at.button if b.label.startswith("Save")]
    assert save.label == "Save 2 samples"
    save.click().run()
    assert not at.exception
    assert "Saved subset 'to-relabel' (2 samples)" in at.success[0].value
    ws = Workspace.open(writable_scored_workspace)
    assert sorted(subsets.subset_ids(ws, "to-relabel")) == sorted(ticked)
    saved = subsets.list_subsets(ws).set_index("name")
    assert saved.loc["to-relabel", "origin"] == "review"

    at.checkbox(key=state.REVIEW_SAVE_ALL).check().run()  # every shown sample, same name
    save_button(at).click().run()
    assert "exists" in at.error[0].value and "Nothing was saved" in at.error[0].value
    at.checkbox(key=state.REVIEW_OVERWRITE).check()
    save_button(at).click().run()
    assert f"Replaced subset 'to-relabel' ({N_FLAGGED} samples)" in at.success[0].value
    assert len(subsets.subset_ids(ws, "to-relabel")) == N_FLAGGED


def save_button(at: AppTest):
    return next(b for b in at.button if b.label.startswith("Save"))


def test_ticks_follow_the_samples_when_a_filter_changes(app_on, writable_scored_workspace: Path) -> None:
    """Bug: ticked rows followed the row position; after a filter change "Save 2 samples" saved
    two samples the user never ticked."""
    at = review_page(app_on, writable_scored_workspace)
    ticked = tick(at, [1, 3])
    at.multiselect(key=state.REVIEW_CLASSES).select(CLASSES[2]).run()
    table = at.dataframe[0].value
    assert set(table.loc[table["tick"], "id"]) == set(ticked) & set(table["id"])
    assert not set(table.loc[table["tick"], "id"]) - set(ticked)
    save_button(at).click().run()
    assert not at.exception
    ws = Workspace.open(writable_scored_workspace)
    assert sorted(subsets.subset_ids(ws, "to-relabel")) == sorted(ticked)


def issues_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "label": ["cat", "dog", "cat", None],
            "split": ["train"] * 4,
            "path": [None] * 4,
            "label_issue_score": [0.9, 0.7, 0.4, 0.2],
            "is_label_issue": [True, True, False, True],
            "suggested_label": ["dog", "cat", "cat", "cat"],
            "detectors": ["cl,knn", "aum", "", None],
        }
    )


def test_the_table_shows_each_samples_decision_and_current_label(app_on, writable_scored_workspace: Path) -> None:
    """QA: decided rows looked exactly like undecided ones."""
    from backend.storage import decisions

    at = review_page(app_on, writable_scored_workspace)
    table = at.dataframe[0].value
    relabeled, dropped = table["id"].iloc[0], table["id"].iloc[1]
    ws = Workspace.open(writable_scored_workspace)
    decisions.decide(ws, "relabel", [relabeled], to=str(table["suggested_label"].iloc[0]))
    decisions.decide(ws, "drop", [dropped])
    at.run()
    shown = at.dataframe[0].value.set_index("id")
    assert shown.loc[relabeled, "decision"] == "relabeled"
    assert shown.loc[relabeled, "current_label"] == table["suggested_label"].iloc[0] != shown.loc[relabeled, "label"]
    assert shown.loc[dropped, "decision"] == "dropped" and shown.loc[dropped, "current_label"] == shown.loc[dropped, "label"]
    rest = shown.drop(index=[relabeled, dropped])
    assert (rest["decision"] == "").all() and (rest["current_label"] == rest["label"]).all()


def test_apply_filter_and_detector_names() -> None:
    issues = issues_frame()
    assert detector_names(issues) == ["aum", "cl", "knn"]
    assert apply_filter(issues, IssueFilter())["id"].tolist() == ["a", "b", "d"]
    assert apply_filter(issues, IssueFilter(threshold=0.5))["id"].tolist() == ["a", "b"]
    assert apply_filter(issues, IssueFilter(include_unflagged=True))["id"].tolist() == list("abcd")
    assert apply_filter(issues, IssueFilter(classes=("(none)",)))["id"].tolist() == ["d"]
    assert apply_filter(issues, IssueFilter(detectors=("knn", "aum")))["id"].tolist() == ["a", "b"]


def test_csv_has_the_verdict_columns() -> None:
    rows = pd.read_csv(io.BytesIO(csv_bytes(issues_frame())))
    assert list(rows.columns[:6]) == [
        "id",
        "label",
        "suggested_label",
        "label_issue_score",
        "is_label_issue",
        "detectors",
    ]
    assert len(rows) == 4
