"""AppTest for the Export page: the curated preview, dropped samples out or in, the download, write
into the export folder (nothing outside it, an existing file only when confirmed) with its
provenance, the image folder, fresh subsets and decisions, and a score run's scores."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from app import data, export_data, state
from app.components import export_panel
from backend.storage import Workspace, decisions, export_paths, provenance, runs, subsets
from tests.app.app_testkit import N_SAMPLES, metric_values


def export_page(app_on, workspace: Path) -> AppTest:
    return app_on(workspace, "views/export.py")


def path_box(at: AppTest, subset: str | None = None, fmt: str = "csv"):
    return at.text_input(key=f"export.path.{subset}.{fmt}")


def click(at: AppTest, label: str, timeout: float | None = None) -> AppTest:
    next(b for b in at.button if b.label == label).click().run(timeout=timeout)
    return at


def test_export_previews_the_whole_dataset_and_offers_a_download(
    app_on, app_workspace: Path
) -> None:
    at = export_page(app_on, app_workspace)
    assert metric_values(at) == {"Rows": f"{N_SAMPLES}", "Relabeled": "0", "Dropped": "0"}
    columns = list(at.dataframe[0].value.columns)
    assert columns[:7] == ["id", "path", "label", "original_label", "split", "decision", "tags"]
    (button,) = at.get("download_button")  # no score run: no scores download either
    assert button.label == "Download CSV"
    assert "No score run yet" in at.info[0].value

    at.radio(key="export.format").set_value("parquet").run()
    assert at.get("download_button")[0].label == "Download PARQUET"


def test_decisions_show_at_once_and_dropped_samples_are_left_out(app_on, writable_workspace: Path) -> None:
    at = export_page(app_on, writable_workspace)
    ws = Workspace.open(writable_workspace)  # as the Review page or the CLI would
    ids = sorted(ws.sample_ids())
    given = ws.samples(columns=["id", "label"]).set_index("id")["label"]
    other = next(label for label in sorted(set(given)) if label != given[ids[0]])
    decisions.decide(ws, "relabel", [ids[0]], to=other)
    decisions.decide(ws, "drop", ids[1:3])
    at.run()
    assert metric_values(at) == {"Rows": f"{N_SAMPLES - 2}", "Relabeled": "1", "Dropped": "2 left out"}
    shown = at.dataframe[0].value.set_index("id")
    assert shown.loc[ids[0], "label"] == other and shown.loc[ids[0], "original_label"] == given[ids[0]]
    assert not set(ids[1:3]) & set(shown.index)

    at.toggle(key=state.EXPORT_INCLUDE_DROPPED).set_value(True).run()
    assert metric_values(at)["Rows"] == f"{N_SAMPLES}" and metric_values(at)["Dropped"] == "2 included"
    # the download carries the same rows, and Parquet its provenance record
    at.radio(key="export.format").set_value("parquet").run()
    table = pq.read_table(io.BytesIO(data.export_bytes(str(writable_workspace), None, "parquet", False)))
    assert len(table) == N_SAMPLES - 2
    record = json.loads(table.schema.metadata[provenance.PARQUET_KEY])
    assert record["decisions"]["dropped_left_out"] == 2 and record["file"] is None


def test_a_subset_saved_elsewhere_shows_up_at_once(app_on, writable_workspace: Path) -> None:
    at = export_page(app_on, writable_workspace)
    assert at.selectbox(key="export.source").options == ["(whole dataset)"]

    ws = Workspace.open(writable_workspace)  # as a worker or the Explore page would
    subsets.save_subset(ws, "four", sorted(ws.sample_ids())[:4])
    at.run()
    assert "four" in at.selectbox(key="export.source").options
    at.selectbox(key="export.source").set_value("four").run()
    assert metric_values(at)["Rows"] == "4"


def test_write_into_the_export_folder_with_its_provenance(app_on, writable_workspace: Path) -> None:
    at = export_page(app_on, writable_workspace)
    folder = writable_workspace / "exports"
    assert path_box(at).value == "manifest.csv" and any(str(folder) in c.value for c in at.caption)
    click(at, "Write file")
    assert not at.exception and not at.error
    out = folder / "manifest.csv"
    assert f"to `{out}`. Provenance: `{out}.provenance.json`" in at.success[0].value  # code spans: shown as typed
    assert len(pd.read_csv(out)) == N_SAMPLES
    assert json.loads((folder / "manifest.csv.provenance.json").read_text())["rows"] == N_SAMPLES

    path_box(at).input("runs/second.csv")  # a path inside the folder: its subfolders are made
    click(at, "Write file")
    assert not at.error and len(pd.read_csv(folder / "runs" / "second.csv")) == N_SAMPLES


def test_an_existing_file_is_replaced_only_when_confirmed(app_on, writable_workspace: Path) -> None:
    at = export_page(app_on, writable_workspace)
    out = writable_workspace / "exports" / "taken.csv"
    out.parent.mkdir()
    out.write_text("precious\n")
    path_box(at).input("taken.csv")
    click(at, "Write file")
    assert not at.success and out.read_text() == "precious\n"
    assert f"`{out}` exists already" in at.warning[0].value and export_panel.REPLACE_LABEL in at.warning[0].value
    at.checkbox(key=state.EXPORT_REPLACE).check()
    click(at, "Write file")
    assert not at.warning and len(pd.read_csv(out)) == N_SAMPLES


def test_nothing_is_written_outside_the_export_folder(app_on, writable_workspace: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15: the page wrote any path the server could write: an arbitrary file, through a
    symbolic link, onto a device, into the workspace's own tables."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    folder = writable_workspace / "exports"
    folder.mkdir()
    (folder / "link.csv").symlink_to(victim)
    (folder / "out").symlink_to(tmp_path)
    os.mkfifo(folder / "pipe.csv")
    lance = writable_workspace / "lance"
    before = sorted(p.name for p in lance.rglob("*"))
    at = export_page(app_on, writable_workspace)
    at.checkbox(key=state.EXPORT_REPLACE).check()  # even with the replace box ticked
    for name, why in ((str(victim), "outside the export folder"), ("../victim.txt", "climbs out"),
                      (str(lance / "samples.lance" / "x.csv"), "outside the export folder"),
                      ("../lance/x.csv", "climbs out"), ("link.csv", "symbolic link"),
                      ("out/victim.txt", "symbolic link out of the export folder"), ("pipe.csv", "FIFO"),
                      ("/dev/null", "outside the export folder")):
        path_box(at).input(name)
        click(at, "Write file")
        assert not at.success and why in at.error[0].value, (name, at.error[0].value)
    assert victim.read_text() == "keep me\n" and sorted(p.name for p in lance.rglob("*")) == before

    # an export folder configured into the tables is refused too
    monkeypatch.setenv(export_paths.EXPORT_DIR_ENV, str(lance))
    at = export_page(app_on, writable_workspace)
    click(at, "Write file")
    assert "own lance" in at.error[0].value and sorted(p.name for p in lance.rglob("*")) == before


def test_the_export_folder_can_be_configured(app_on, app_workspace: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(export_paths.EXPORT_DIR_ENV, str(tmp_path / "shared"))
    at = export_page(app_on, app_workspace)
    click(at, "Write file")
    assert not at.error and len(pd.read_csv(tmp_path / "shared" / "manifest.csv")) == N_SAMPLES
    assert not (app_workspace / "exports").exists()


def test_an_image_folder_is_written_not_downloaded(app_on, writable_workspace: Path) -> None:
    at = export_page(app_on, writable_workspace)
    at.radio(key="export.format").set_value("imagefolder").run()
    assert not at.get("download_button") or all("scores" in b.label for b in at.get("download_button"))
    assert any("cannot be downloaded" in c.value for c in at.caption)
    out = writable_workspace / "exports" / "folder"
    path_box(at, fmt="imagefolder").input("folder")
    click(at, "Write folder")
    assert not at.exception and not at.error
    assert f"Wrote {N_SAMPLES} files to `{out}`. Provenance: `{out / 'provenance.json'}`" in at.success[0].value
    files = list(out.rglob("*.png"))
    assert len(files) == N_SAMPLES and all(p.is_symlink() for p in files)

    copies = out.parent / "copies"
    path_box(at, fmt="imagefolder").input("copies")
    at.checkbox(key=state.EXPORT_COPY).check()
    click(at, "Write folder")
    assert not any(p.is_symlink() for p in copies.rglob("*.png")) and len(list(copies.rglob("*.png"))) == N_SAMPLES
    click(at, "Write folder")  # the folder exists now
    assert "not an empty folder" in at.error[0].value


def test_the_scores_of_a_score_run_can_be_downloaded(app_on, scored_workspace: Path) -> None:
    at = export_page(app_on, scored_workspace)
    run_id = runs.latest_run(Workspace.open(scored_workspace), "score")["run_id"]
    assert at.selectbox(key=state.EXPORT_SCORE_RUN).value == run_id
    at.radio(key=state.EXPORT_SCORE_FORMAT).set_value("jsonl").run()
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download CSV", "Download scores JSONL"]
    table = pd.read_json(io.BytesIO(export_data.scores_bytes(str(scored_workspace), run_id, "jsonl")), lines=True)
    assert len(table) == N_SAMPLES and {"el2n_score", "aum_score", "label_issue_score"} <= set(table.columns)
    assert not [c for c in table.columns if c.endswith("_score_score")]


def test_write_a_subset_with_soft_labels_for_distillation(app_on, writable_scored_workspace: Path,
                                                          tmp_path: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    samples = ws.samples(columns=["id", "label"]).sort_values("id")
    kept = samples.groupby("label").head(6)["id"].tolist()
    subsets.save_subset(ws, "half", kept)
    at = export_page(app_on, writable_scored_workspace)
    assert not any(c.key == state.EXPORT_SOFT_LABELS for c in at.checkbox)  # the whole dataset has no kept fraction
    at.selectbox(key="export.source").set_value("half").run()
    out = writable_scored_workspace / "exports" / "half.csv"
    assert path_box(at, "half").value == "manifest-half.csv"
    path_box(at, "half").input("half.csv")
    at.checkbox(key=state.EXPORT_SOFT_LABELS).check()
    click(at, "Write file", timeout=120)
    assert not at.exception and not at.error
    assert str(out) in at.success[0].value and "provenance" in at.success[0].value.lower()
    written = pd.read_csv(out)
    classes = sorted(samples["label"].astype(str).unique())
    assert sorted(written["id"]) == sorted(kept)
    assert [f"teacher_logit_{c}" for c in classes] == [c for c in written.columns if c.startswith("teacher_logit_")]
    assert written["kd_weight"].to_numpy() == pytest.approx(1 - len(kept) / len(samples))  # the fraction removed
    assert (written["kd_temperature"] == 4.0).all()
    assert json.loads(Path(f"{out}.provenance.json").read_text())["soft_labels"]["kd_temperature"] == 4.0

    click(at, "Write file", timeout=120)  # the file exists now: asked first, no probe trained
    assert "exists already" in at.warning[0].value


def test_a_preview_row_opens_the_sample_view(app_on, app_workspace: Path) -> None:
    at = export_page(app_on, app_workspace)
    first = at.dataframe[0].value["id"].iloc[0]
    at.session_state["export.preview"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    texts = " ".join(m.value for m in at.markdown)
    assert f"**{first}**" in texts and "Decision history" in texts


def test_a_preview_row_shows_the_latest_score_runs_scores(app_on, scored_workspace: Path) -> None:
    """The sample view from the preview used to get no score run: "No score run stored scores"."""
    at = export_page(app_on, scored_workspace)
    at.session_state["export.preview"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    assert not any("No score run stored scores" in c.value for c in at.caption)
    assert any("score" in list(d.value.columns) and len(d.value) for d in at.dataframe[1:])

