"""The Export page's parts: what to export, a preview, the download and the write-to-file form."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app import data, state
from backend.storage import StorageError
from backend.storage.export import FORMATS

WHOLE_DATASET = "(whole dataset)"
MIME_TYPES = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/jsonl",
}
PREVIEW_ROWS = 20


def choose_source(subset_names: list[str]) -> str | None:
    """The subset to export, or ``None`` for the whole dataset."""
    choice = st.selectbox(
        "Rows",
        [WHOLE_DATASET, *subset_names],
        key=state.EXPORT_SOURCE,
        help="The whole dataset, or a subset saved on the Explore page.",
    )
    return None if choice == WHOLE_DATASET else choice


def choose_format() -> str:
    return st.radio("Format", FORMATS, horizontal=True, key=state.EXPORT_FORMAT)


def file_stem(subset: str | None) -> str:
    return "manifest" if subset is None else "manifest-" + subset.replace(" ", "_")


def preview(frame: pd.DataFrame) -> None:
    st.metric("Rows", f"{len(frame):,}")
    st.dataframe(frame.head(PREVIEW_ROWS), hide_index=True)
    if len(frame) > PREVIEW_ROWS:
        st.caption(f"First {PREVIEW_ROWS} of {len(frame):,} rows.")


def download(root: str, subset: str | None, fmt: str) -> None:
    st.download_button(
        f"Download {fmt.upper()}",
        data=data.export_bytes(root, subset, fmt),
        file_name=f"{file_stem(subset)}.{fmt}",
        mime=MIME_TYPES[fmt],
        on_click="ignore",
        key="export.download",
    )


SOFT_LABELS_HELP = (
    "Adds what you need to distil in your own training (Ben-Baruch et al. 2024): teacher_logit_<class> "
    "columns from the engine's probe trained on the subset's whole pool, kd_weight (the fraction the "
    "subset removes) and kd_temperature. Trains probes in a child process (seconds for thousands of rows). "
    "Same as `thresher export --subset NAME --soft-labels`."
)


def write_to_path(root: str, workspace_root: Path, subset: str | None, fmt: str) -> None:
    """A path box and a button that writes the file there, with any error shown in full; for a
    subset, optionally with soft labels for distillation (``thresher export --soft-labels``)."""
    default = str(workspace_root / f"{file_stem(subset)}.{fmt}")
    with st.form("export.write_form"):
        out = st.text_input(
            "Write to file",
            value=default,
            key=f"export.path.{subset}.{fmt}",
            help="An absolute path; the folder must exist. An existing file is replaced.",
        )
        soft = subset is not None and st.checkbox(
            "With soft labels for distillation", key=state.EXPORT_SOFT_LABELS, help=SOFT_LABELS_HELP
        )
        submitted = st.form_submit_button("Write file")
    if not submitted:
        return
    out = out.strip()
    if not out:
        st.error("Give a file path to write to.")
        return
    try:
        if soft:
            with st.spinner("Training the teacher probe…"):
                written = data.write_soft_labels(root, subset, fmt, out)
        else:
            written = data.write_manifest(root, subset, fmt, out)
    except (StorageError, OSError) as exc:
        st.error(f"Could not write {out}: {exc}")
        return
    st.success(f"Wrote {written}.")
