"""AppTest for the Export page: preview, download, write to a path, and fresh subsets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import state
from backend.storage import Workspace, subsets
from tests.app.app_testkit import N_SAMPLES, metric_values


def export_page(app_on, workspace: Path) -> AppTest:
    return app_on(workspace, "views/export.py")


def test_export_previews_the_whole_dataset_and_offers_a_download(
    app_on, app_workspace: Path
) -> None:
    at = export_page(app_on, app_workspace)
    assert metric_values(at) == {"Rows": f"{N_SAMPLES}"}
    assert {"id", "path", "label", "split"} <= set(at.dataframe[0].value.columns)
    (button,) = at.get("download_button")
    assert button.label == "Download CSV"

    at.radio(key="export.format").set_value("parquet").run()
    assert at.get("download_button")[0].label == "Download PARQUET"


def test_a_subset_saved_elsewhere_shows_up_at_once(app_on, writable_workspace: Path) -> None:
    at = export_page(app_on, writable_workspace)
    assert at.selectbox(key="export.source").options == ["(whole dataset)"]

    ws = Workspace.open(writable_workspace)  # as a worker or the Explore page would
    subsets.save_subset(ws, "four", sorted(ws.sample_ids())[:4])
    at.run()
    assert "four" in at.selectbox(key="export.source").options
    at.selectbox(key="export.source").set_value("four").run()
    assert metric_values(at) == {"Rows": "4"}


def test_write_to_a_path_and_report_a_bad_one(app_on, app_workspace: Path, tmp_path: Path) -> None:
    at = export_page(app_on, app_workspace)
    out = tmp_path / "manifest.csv"
    at.text_input[0].input(str(out))
    at.button[0].click().run()
    assert not at.exception
    assert str(out) in at.success[0].value
    assert len(pd.read_csv(out)) == N_SAMPLES

    at.text_input[0].input(str(tmp_path / "missing-folder" / "m.csv"))
    at.button[0].click().run()
    assert "Could not write" in at.error[0].value and "does not exist" in at.error[0].value


def test_write_a_subset_with_soft_labels_for_distillation(app_on, writable_scored_workspace: Path,
                                                          tmp_path: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    samples = ws.samples(columns=["id", "label"]).sort_values("id")
    kept = samples.groupby("label").head(6)["id"].tolist()
    subsets.save_subset(ws, "half", kept)
    at = export_page(app_on, writable_scored_workspace)
    assert not at.checkbox  # soft labels need a subset: the whole dataset has no kept fraction
    at.selectbox(key="export.source").set_value("half").run()
    out = tmp_path / "half.csv"
    at.text_input[0].input(str(out))
    at.checkbox(key=state.EXPORT_SOFT_LABELS).check()
    at.button[0].click().run(timeout=120)
    assert not at.exception and not at.error
    assert str(out) in at.success[0].value
    written = pd.read_csv(out)
    classes = sorted(samples["label"].astype(str).unique())
    assert sorted(written["id"]) == sorted(kept)
    assert [f"teacher_logit_{c}" for c in classes] == [c for c in written.columns if c.startswith("teacher_logit_")]
    assert written["kd_weight"].to_numpy() == pytest.approx(1 - len(kept) / len(samples))  # the fraction removed
    assert (written["kd_temperature"] == 4.0).all()

    at.text_input[0].input(str(tmp_path / "missing-folder" / "half.csv"))
    at.button[0].click().run(timeout=120)
    assert "Could not write" in at.error[0].value
