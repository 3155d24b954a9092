"""AppTest for the Overview's data-health parts: the Subsets section (compare, rename, delete)
and the latest ingest's report."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import state
from backend.jobs.ingest_job import ingest
from backend.storage import Workspace, subsets
from backend.storage.errors import StorageError
from tests.app.app_testkit import metric_values
from tests.conftest import write_png


@pytest.fixture
def two_subsets(writable_workspace: Path) -> tuple[Path, list[str]]:
    """"older": the first 8 samples by id, "newer": samples 4-13 (4 in both)."""
    ws = Workspace.open(writable_workspace)
    ids = sorted(ws.sample_ids())
    subsets.save_subset(ws, "older", ids[:8])
    subsets.save_subset(ws, "newer", ids[4:14])
    return writable_workspace, ids


def subsets_text(at: AppTest) -> str:
    return " ".join(e.value for e in [*at.success, *at.error, *at.caption])


def test_two_subsets_compared(app_on, two_subsets) -> None:
    root, ids = two_subsets
    at = app_on(root)
    listed = at.dataframe[-2].value  # the list, then the per-class comparison
    assert listed["name"].tolist() == ["newer", "older"] and listed["n"].tolist() == [10, 8]
    assert at.selectbox(key=state.SUBSETS_COMPARE_A).value == "older"  # the newest as b
    shown = metric_values(at)
    assert (shown["In a"], shown["In b"], shown["In both"]) == ("8", "10", "4")
    assert shown["Only a / only b"] == "4 / 6" and shown["Jaccard"] == f"{4 / 14:.2f}"
    by_class = at.dataframe[-1].value
    assert list(by_class.columns) == ["class", "in a", "in b", "in both"]
    assert by_class["in both"].sum() == 4 and by_class["in a"].sum() == 8

    at.selectbox(key=state.SUBSETS_COMPARE_A).set_value("newer").run()
    assert "Pick two different subsets." in at.info[0].value


def test_rename_a_subset_and_refuse_a_taken_name(app_on, two_subsets) -> None:
    root, ids = two_subsets
    at = app_on(root)
    assert at.button(key="subsets.rename_button").disabled  # no new name yet
    at.selectbox(key=state.SUBSETS_RENAME_FROM).set_value("older")
    at.text_input(key=state.SUBSETS_RENAME_TO).input("newer").run()
    at.button(key="subsets.rename_button").click().run()
    assert "Nothing was renamed" in at.error[0].value and "a subset named 'newer' exists" in at.error[0].value
    at.text_input(key=state.SUBSETS_RENAME_TO).input("first eight").run()
    at.button(key="subsets.rename_button").click().run()
    assert not at.exception
    assert at.success[0].value == "Renamed subset 'older' to 'first eight' (8 samples)."
    ws = Workspace.open(root)
    assert subsets.subset_names(ws) == ["first eight", "newer"]
    assert sorted(subsets.subset_ids(ws, "first eight")) == ids[:8]
    assert set(at.dataframe[-2].value["name"]) == {"first eight", "newer"}  # listed at once
    assert metric_values(at)["Subsets"] == "2"


def test_delete_a_subset_only_after_confirming_that_subset(app_on, two_subsets) -> None:
    root, _ = two_subsets
    at = app_on(root)
    at.selectbox(key=state.SUBSETS_DELETE).set_value("older").run()
    assert at.button(key="subsets.delete_button").disabled
    at.checkbox(key=f"{state.SUBSETS_DELETE_CONFIRM}.older").check().run()
    at.selectbox(key=state.SUBSETS_DELETE).set_value("newer").run()
    assert at.button(key="subsets.delete_button").disabled  # the tick was for "older"
    at.checkbox(key=f"{state.SUBSETS_DELETE_CONFIRM}.newer").check().run()
    at.button(key="subsets.delete_button").click().run()
    assert not at.exception
    assert at.success[0].value == "Deleted subset 'newer' (10 samples)."
    ws = Workspace.open(root)
    assert subsets.subset_names(ws) == ["older"]
    assert ws.read("activity")["action"].tolist()[-1] == "delete_subset"
    assert "Comparing needs two saved subsets." in subsets_text(at)
    assert metric_values(at)["Subsets"] == "1"
    with pytest.raises(StorageError):
        subsets.subset_ids(ws, "newer")


def test_no_subsets_says_how_to_make_one(app_on, app_workspace: Path) -> None:
    at = app_on(app_workspace)
    assert "No subsets yet" in subsets_text(at)
    assert not at.tabs


def write_folder_with_problems(folder: Path) -> None:
    """Four good PNGs in two classes, two corrupt ones and a text file."""
    for label in ("cat", "dog"):
        for i in range(2):
            write_png(folder / label / f"{label}{i}.png", 60 * i + (100 if label == "dog" else 0))
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (folder / "dog" / "half.png").write_bytes(b"\x89PNG\r\n\x1a\n also not an image")
    (folder / "dog" / "notes.txt").write_text("not an image")


def test_the_latest_ingest_report_counts_skipped_files_per_reason(app_on, tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True)
    write_folder_with_problems(tmp_path / "images")
    result = ingest(ws, tmp_path / "images")
    at = app_on(ws.root)
    assert not at.exception
    reasons = at.dataframe[0].value
    assert reasons.values.tolist() == [["corrupt image", 2], ["not an image file", 1]]
    text = " ".join(c.value for c in at.caption)
    assert f"Run `{result.run_id}` (done)" in text and "4 samples ingested, 3 files skipped" in text
    assert str(result.report_path) in text
    problems = at.expander[0]
    assert "Every problem (3" in problems.label
    assert {Path(p).name for p in problems.dataframe[0].value["path"]} == {"broken.png", "half.png", "notes.txt"}

    clean = tmp_path / "clean"
    write_png(clean / "cat" / "extra.png", 30)
    ingest(ws, clean)  # a later ingest with nothing skipped replaces the report shown
    at.run()
    text = " ".join(c.value for c in at.caption)
    assert "1 samples ingested, 0 files skipped" in text and "Every file was read" in text
    assert not at.expander


def test_a_failed_ingest_shows_its_error_and_report(app_on, tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True)
    folder = tmp_path / "junk"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with pytest.raises(Exception, match="no sample could be ingested"):
        ingest(ws, folder)
    at = app_on(ws.root)
    assert not at.exception
    assert "no sample could be ingested" in at.error[0].value
    assert at.dataframe[0].value.values.tolist() == [["corrupt image", 1]]
    assert "no samples yet" in at.info[0].value


def test_no_ingest_yet(app_on, empty_workspace: Path) -> None:
    at = app_on(empty_workspace)
    assert "No ingest yet." in [c.value for c in at.caption]
