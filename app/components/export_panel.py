"""The Export page's parts: what to export, the curated preview, the download, the write-to-file
form, and a score run's scores."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import data, export_data, state
from app.components.markdown_text import code, md
from app.components.metric_row import metric_row
from backend.storage import StorageError, Workspace, export, export_paths, provenance
from backend.storage.export import FILE_FORMATS, FORMATS
from backend.storage.export_paths import OutputExistsError

WHOLE_DATASET = "(whole dataset)"
MIME_TYPES = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/jsonl",
}
PREVIEW_ROWS = 20
REPLACE_LABEL = "Replace the file if it exists"
FORMAT_HELP = (
    "csv, parquet, jsonl: one row per sample; label is the current label (after relabel decisions), "
    "original_label the ingested one, plus decision and tags. imagefolder: OUT/[split/]label/<file>, "
    "written on the server into the export folder (symbolic links to the images, or copies)."
)


def choose_source(subset_names: list[str]) -> str | None:
    """The subset to export, or ``None`` for the whole dataset."""
    choice = st.selectbox(
        "Rows",
        [WHOLE_DATASET, *subset_names],
        key=state.EXPORT_SOURCE,
        help="The whole dataset, or a saved subset (a prune, or a selection from Explore or Review).",
    )
    return None if choice == WHOLE_DATASET else choice


def choose_format() -> str:
    return st.radio("Format", FILE_FORMATS, horizontal=True, key=state.EXPORT_FORMAT, help=FORMAT_HELP)


def include_dropped() -> bool:
    return st.toggle(
        "Include dropped samples",
        key=state.EXPORT_INCLUDE_DROPPED,
        help="Samples dropped by a decision are left out of every export; on, they are written with "
        "decision = dropped (`thresher export --include-dropped`).",
    )


def file_stem(subset: str | None) -> str:
    return "manifest" if subset is None else "manifest-" + subset.replace(" ", "_")


def exported_rows(frame: pd.DataFrame, *, with_dropped: bool) -> pd.DataFrame:
    """The rows an export writes: ``frame`` (every row, :func:`app.data.manifest`) less the
    dropped samples unless ``with_dropped``."""
    return frame if with_dropped else frame[frame["decision"] != "dropped"].reset_index(drop=True)


def preview(shown: export.ManifestPreview, *, with_dropped: bool, root: str | None = None) -> None:
    """Counts (rows written, relabeled, dropped) and the first rows, curated columns first
    (``shown``: :func:`app.export_data.manifest_preview`); with ``root``, clicking a row opens that
    sample's view."""
    dropped = "0" if not shown.dropped else f"{shown.dropped:,} " + ("included" if with_dropped else "left out")
    metric_row([("Rows", f"{shown.rows:,}"), ("Relabeled", f"{shown.relabeled:,}"), ("Dropped", dropped)])
    head = shown.head.head(PREVIEW_ROWS).reset_index(drop=True)
    if root is None:
        st.dataframe(head, hide_index=True)
    else:
        from app.components.sample_view import clickable_table

        score_runs = data.score_runs(root)  # newest first: the sample view shows the latest run's scores
        clickable_table(root, head, key="export.preview",
                        score_run=None if score_runs.empty else str(score_runs.iloc[0]["run_id"]))
    if shown.rows > PREVIEW_ROWS:
        st.caption(f"First {PREVIEW_ROWS} of {shown.rows:,} rows.")


def download(root: str, subset: str | None, fmt: str, *, with_dropped: bool) -> None:
    if fmt not in FORMATS:
        st.caption("An image folder is a folder of files on the server: write it below (it cannot be downloaded).")
        return
    st.download_button(
        f"Download {fmt.upper()}",
        data=export_data.manifest_download(root, subset, fmt, with_dropped),
        file_name=f"{file_stem(subset)}.{fmt}",
        mime=MIME_TYPES[fmt],
        on_click="ignore",
        key="export.download",
        help="Parquet carries the provenance record (workspace, subset, the run that made it, decisions "
        "applied, code version, time) in its metadata; a file written below has it beside it too.",
    )


SOFT_LABELS_HELP = (
    "Adds what you need to distil in your own training (Ben-Baruch et al. 2024): teacher_logit_<class> "
    "columns from the engine's probe trained on the subset's whole pool, kd_weight (the fraction the "
    "subset removes) and kd_temperature. Trains probes in a child process (seconds for thousands of rows). "
    "Same as `thresher export --subset NAME --soft-labels`."
)


def write_to_path(root: str, ws: Workspace, subset: str | None, fmt: str, *, with_dropped: bool) -> None:
    """A name box and a button that write the export into the export folder
    (:func:`backend.storage.export_paths.export_folder`) with its provenance record beside it,
    showing the absolute paths written or the error in full. Nothing is written outside that
    folder, and an existing file only after the replace box is ticked. An image folder may be
    copies; a subset's table may carry soft labels for distillation (``--soft-labels``)."""
    is_folder = fmt == "imagefolder"
    folder = export_paths.export_folder(ws)
    st.caption(f"Written on the server into the export folder `{folder}` (`thresher app --export-dir DIR` "
               "chooses another).")
    with st.form("export.write_form"):
        name = st.text_input(
            "Folder name" if is_folder else "File name",
            value=file_stem(subset) if is_folder else f"{file_stem(subset)}.{fmt}",
            key=f"export.path.{subset}.{fmt}",
            help=("A new (or empty) folder in the export folder." if is_folder else
                  "A file name, or a path inside the export folder (its subfolders are made as needed).")
            + " The provenance record is written beside it.",
        )
        replace = not is_folder and st.checkbox(REPLACE_LABEL, key=state.EXPORT_REPLACE)
        copy = is_folder and st.checkbox(
            "Copy the image files (default: symbolic links)", key=state.EXPORT_COPY
        )
        soft = subset is not None and not is_folder and st.checkbox(
            "With soft labels for distillation", key=state.EXPORT_SOFT_LABELS, help=SOFT_LABELS_HELP
        )
        submitted = st.form_submit_button("Write folder" if is_folder else "Write file")
    if not submitted:
        return
    try:
        target = export_paths.check_output(name, overwrite=replace, inside=folder, folder=is_folder)
        if not is_folder:  # its provenance record goes beside it: checked before anything is written
            export_paths.check_output(provenance.sidecar_path(target, fmt), overwrite=replace)
        if soft:
            with st.spinner("Training the teacher probe…"):
                written = data.write_soft_labels(root, subset, fmt, str(target), include_dropped=with_dropped,
                                                 overwrite=replace)
            st.success(f"Wrote {code(written)}. Provenance: {code(provenance.sidecar_path(written, fmt))}.")
            return
        result = data.write_manifest(root, subset, fmt, str(target), include_dropped=with_dropped, copy=copy,
                                     overwrite=replace)
    except OutputExistsError as exc:
        st.warning(f"`{exc.path}` exists already. Tick '{REPLACE_LABEL}' and write again to replace it, or give "
                   "another name.")
        return
    except (StorageError, OSError) as exc:
        st.error(f"Could not write {md(repr(name.strip()))}: {md(exc)}")
        return
    what = "files" if is_folder else "rows"
    st.success(f"Wrote {result.rows:,} {what} to {code(result.path)}. Provenance: {code(result.provenance_path)}.")


def scores_section(root: str, score_runs: pd.DataFrame) -> None:
    """Pick a score run; download its scores (verdict and every score, one row per sample)."""
    st.subheader("Scores")
    if score_runs.empty:
        st.info("No score run yet: `thresher score --workspace W` computes the label-issue verdict and the "
                "pruning scores.")
        return
    run_column, format_column = st.columns([2, 1])
    run_id = run_column.selectbox(
        "Score run", score_runs["run_id"].tolist(), key=state.EXPORT_SCORE_RUN, help="Newest first."
    )
    fmt = format_column.radio("Scores format", FORMATS, horizontal=True, key=state.EXPORT_SCORE_FORMAT)
    n_rows, n_columns = export_data.scores_shape(root, run_id)
    st.caption(f"{n_rows:,} rows × {n_columns} columns: the verdict (label_issue_score, is_label_issue, "
               "suggested_label, detectors), each pruning score as <name>_score, each label-noise detector's "
               "as <detector>_issue_score and, when the run checked dataset health, its flags and scores "
               "(is_outlier / outlier_score, is_blurry / blurry_score, duplicates, split leaks: is_split_leak and "
               "split_leak_source, the train sample each copies; …). "
               "Same as `thresher export --what scores`.")
    st.download_button(
        f"Download scores {fmt.upper()}",
        data=export_data.deferred(export_data.scores_bytes, root, run_id, fmt),
        file_name=f"scores-{run_id}.{fmt}",
        mime=MIME_TYPES[fmt],
        on_click="ignore",
        key="export.scores_download",
    )
