"""``manifest_preview``: the Export page's counts and first rows, counted and paged in DuckDB,
equal to what :func:`manifest_frame` (the whole manifest in pandas) gives, for the dataset and a
subset, dropped samples left out and included; and ``collapse_samples`` / ``scores_shape`` read
in DuckDB against their pandas references."""

from __future__ import annotations

import pandas as pd
import pytest

from backend.storage import Workspace, results, runs, subsets
from backend.storage.export import manifest_frame, manifest_preview
from backend.storage.score_export import (
    NC_SAMPLE_SCORES,
    collapse_samples,
    scores_frame,
    scores_shape,
)
from tests.storage.test_export_curated import _decide


@pytest.fixture
def ws(scored_ws: Workspace) -> Workspace:
    return scored_ws


def _reference(ws: Workspace, subset: str | None, include_dropped: bool, limit: int):
    everything = manifest_frame(ws, subset=subset, include_dropped=True)
    rows = manifest_frame(ws, subset=subset, include_dropped=include_dropped)
    relabeled = int((rows["label"].astype(str) != rows["original_label"].astype(str)).sum())
    return len(rows), relabeled, int((everything["decision"] == "dropped").sum()), rows.head(limit)


@pytest.mark.parametrize("include_dropped", [False, True])
def test_the_preview_counts_and_pages_what_the_manifest_holds(ws: Workspace, include_dropped: bool) -> None:
    who = _decide(ws)
    ids = sorted(ws.sample_ids())
    subsets.save_subset(ws, "some", [*who["relabeled"], *who["dropped"], *ids[-5:]])
    for subset in (None, "some"):
        for limit in (3, 1000):
            shown = manifest_preview(ws, subset=subset, include_dropped=include_dropped, limit=limit)
            n_rows, relabeled, dropped, head = _reference(ws, subset, include_dropped, limit)
            assert (shown.rows, shown.relabeled, shown.dropped) == (n_rows, relabeled, dropped)
            assert shown.relabeled == 2 and shown.dropped == 2
            pd.testing.assert_frame_equal(shown.head, head, check_dtype=False)


def test_the_preview_of_a_workspace_without_decisions(ws: Workspace) -> None:
    shown = manifest_preview(ws, limit=5)
    n_rows, relabeled, dropped, head = _reference(ws, None, False, 5)
    assert (shown.rows, shown.relabeled, shown.dropped) == (n_rows, 0, 0)
    pd.testing.assert_frame_equal(shown.head, head, check_dtype=False)


def _pandas_collapse_samples(ws: Workspace, run_id: str) -> pd.DataFrame:
    """The pandas implementation ``collapse_samples`` had (every score pivoted)."""
    wide = results.read_scores(ws, run_id)
    frame = ws.samples(columns=["id", "label", "split", "path"]).merge(wide[["id", *NC_SAMPLE_SCORES]], on="id")
    return frame.sort_values(["nc_distance_ratio", "id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def test_collapse_samples_and_scores_shape_match_pandas(ws: Workspace) -> None:
    run_id = runs.list_runs(ws, "score").iloc[0]["run_id"]
    if not set(NC_SAMPLE_SCORES) <= set(results.read_scores(ws, run_id).columns):
        pytest.skip("the fixture's score run stores no per-sample collapse distances")
    pd.testing.assert_frame_equal(collapse_samples(ws, run_id), _pandas_collapse_samples(ws, run_id),
                                  check_dtype=False)
    assert scores_shape(ws, run_id) == scores_frame(ws, run_id).shape
    whole = collapse_samples(ws, run_id)
    pd.testing.assert_frame_equal(collapse_samples(ws, run_id, limit=3), whole.head(3))
    ratios = results.read_score(ws, run_id, "nc_distance_ratio").to_pandas()  # what the page's median counts
    assert sorted(ratios["id"]) == sorted(whole["id"])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_streamed_export_writes_what_the_whole_frame_writes(ws: Workspace, tmp_path, monkeypatch,
                                                               fmt: str) -> None:
    import io
    import json

    import pyarrow.parquet as pq

    from backend.storage import export, provenance

    _decide(ws)
    subsets.save_subset(ws, "some", sorted(ws.sample_ids())[::2])
    monkeypatch.setattr(export, "STREAM_ROWS", 7)  # several batches on the small workspace
    for subset in (None, "some"):
        for include_dropped in (False, True):
            rows, reference = export.curated_export(ws, fmt, subset=subset, include_dropped=include_dropped)
            whole = export.to_bytes(rows, fmt, reference)
            written = export.export_manifest(ws, fmt, tmp_path / f"{subset}-{include_dropped}.{fmt}", subset=subset,
                                             include_dropped=include_dropped)
            record = json.loads(written.provenance_path.read_text())
            for key in ("rows", "decisions", "subset", "what", "format"):
                assert record[key] == reference[key]
            assert written.rows == len(rows)
            if fmt != "parquet":
                assert written.path.read_bytes() == whole
                continue
            streamed, expected = pq.read_table(written.path), pq.read_table(io.BytesIO(whole))
            assert str(streamed.schema.remove_metadata()) == str(expected.schema.remove_metadata())
            assert streamed.to_pandas().equals(expected.to_pandas())
            assert json.loads(streamed.schema.metadata[provenance.PARQUET_KEY])["decisions"] == reference["decisions"]


def test_a_streamed_export_writes_integer_columns_with_gaps_as_the_whole_frame_does(ws: Workspace, tmp_path,
                                                                                    monkeypatch) -> None:
    """Samples imported as vectors only have no width: pandas holds the whole column as floats,
    so every batch must write floats too, also the batches without a gap."""
    import numpy as np

    from backend.jobs.ingest_job import ingest
    from backend.storage import export

    vectors = tmp_path / "vectors.npz"
    np.savez(vectors, id=np.array(["zz-1", "zz-2"]), label=np.array(["circle", "square"]),
             embedding=np.eye(2, 4, dtype=np.float32))
    ingest(ws, vectors, embeddings=True)
    monkeypatch.setattr(export, "STREAM_ROWS", 5)  # the gaps sort last: the first batches have none
    for fmt in ("csv", "jsonl"):
        rows, record = export.curated_export(ws, fmt)
        assert rows["width"].isna().sum() == 2
        written = export.export_manifest(ws, fmt, tmp_path / f"gaps.{fmt}")
        assert written.path.read_bytes() == export.to_bytes(rows, fmt, record)
