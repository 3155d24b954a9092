"""The Review page's parts: filters over a run's label-issue verdicts, the summary, the table of
suspicious samples with row selection, saving them as a subset, and the CSV download."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from app import data, state
from app.components import score_charts
from app.components.metric_row import metric_row
from app.components.palette import natural_order
from app.components.subset_form import SaveFormKeys, save_subset_form

if TYPE_CHECKING:
    from app.curation_data import IssueCounts

#: Rows the table shows (with thumbnails); the download and "save all shown" cover every row.
MAX_ROWS = 1000
#: Rows visible without scrolling the table.
VISIBLE_ROWS = 12
THUMBNAIL_SIZE = 48
ROW_HEIGHT = THUMBNAIL_SIZE + 4
SAVE_KEYS = SaveFormKeys("review.save_form", state.REVIEW_SUBSET_NAME, state.REVIEW_OVERWRITE)
CSV_COLUMNS = [
    "id",
    "label",
    "suggested_label",
    "label_issue_score",
    "is_label_issue",
    "detectors",
    "split",
    "path",
]


@dataclass(frozen=True)
class IssueFilter:
    """Which verdicts the page shows: score at least ``threshold``; flagged ones only unless
    ``include_unflagged``; given label in ``classes`` and any of ``detectors`` (empty = all)."""

    threshold: float = 0.0
    include_unflagged: bool = False
    classes: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    max_score: float = 1.0


def _detector_sets(issues: pd.DataFrame) -> dict[str, set[str]]:
    """{distinct ``detectors`` text: the detector names in it}. A run has a handful of distinct
    texts however many rows it has, so every rerun parses those, not one per sample."""
    texts = issues["detectors"].fillna("").unique()
    return {t: {d.strip() for d in t.split(",")} - {""} for t in texts}


def detector_names(issues: pd.DataFrame) -> list[str]:
    """Every detector named in the run's ``detectors`` column, sorted."""
    return sorted(set().union(*_detector_sets(issues).values())) if len(issues) else []


def filter_args(chosen: IssueFilter) -> tuple:
    """``chosen`` as the positional arguments of ``curation_data.issue_counts`` / ``shown_issues``
    (threshold, max_score, include_unflagged, classes, detectors): plain values, cache keys."""
    return (float(chosen.threshold), float(chosen.max_score), bool(chosen.include_unflagged),
            tuple(chosen.classes), tuple(chosen.detectors))


def apply_filter(issues: pd.DataFrame, chosen: IssueFilter) -> pd.DataFrame:
    """The rows of ``issues`` that ``chosen`` lets through, in the same order."""
    score = issues["label_issue_score"].fillna(0.0)
    mask = (score >= chosen.threshold) & (score <= chosen.max_score)
    if not chosen.include_unflagged:
        mask &= issues["is_label_issue"].fillna(False).astype(bool)
    if chosen.classes:
        mask &= issues["label"].fillna("(none)").astype(str).isin(chosen.classes)
    if chosen.detectors:
        wanted = set(chosen.detectors)
        matching = [text for text, found in _detector_sets(issues).items() if found & wanted]
        mask &= issues["detectors"].fillna("").isin(matching)
    return issues[mask.to_numpy()].reset_index(drop=True)


def choose_filter(issues: pd.DataFrame) -> IssueFilter:
    threshold_column, class_column, detector_column = st.columns(3)
    threshold, max_score = threshold_column.slider(
        "Label-issue score",
        0.0,
        1.0,
        (0.0, 1.0),
        step=0.01,
        key=state.REVIEW_SCORE_RANGE,
        help="label_issue_score in [0, 1]: higher = more likely mislabeled (the estimated probability that the given label is wrong).",
    )
    classes = class_column.multiselect(
        "Given label",
        natural_order(issues["label"].fillna("(none)").unique()),
        key=state.REVIEW_CLASSES,
        placeholder="all classes",
    )
    detectors = detector_column.multiselect(
        "Flagged by",
        detector_names(issues),
        key=state.REVIEW_DETECTORS,
        placeholder="any detector",
        help="Show samples that any of the chosen detectors flagged.",
    )
    in_queue = st.session_state.get(state.REVIEW_VIEW, "Queue") != "Table"  # the queue holds the flagged only
    include_unflagged = threshold_column.toggle(
        "Include unflagged samples",
        key=state.REVIEW_INCLUDE_UNFLAGGED,
        disabled=in_queue,
        help="Samples the combined verdict did not flag, ranked by the same label-issue score"
        + (" (in the Table view: the queue holds the flagged samples)." if in_queue else "."),
    )
    return IssueFilter(threshold, include_unflagged, tuple(classes), tuple(detectors), max_score)


def summary(counts: IssueCounts) -> None:
    """Scored, flagged and shown samples (``counts``: ``curation_data.issue_counts``)."""
    cells = [
        ("Scored samples", f"{counts.scored:,}"),
        ("Flagged", f"{counts.flagged:,}"),
        ("Flagged share", f"{100 * counts.flagged / max(counts.scored, 1):.1f}%"),
        ("Shown", f"{counts.shown:,}"),
    ]
    metric_row(cells)


def charts(counts: IssueCounts) -> None:
    """The shown samples by given class and the given x suggested heatmap, from the counts."""
    if not counts.shown:
        st.info("No sample passes these filters: lower the threshold or clear a filter.")
        return
    left, right = st.columns(2)
    left.plotly_chart(score_charts.counts_by_class(counts.by_class, counts.totals), key="review.by_class")
    right.plotly_chart(score_charts.confusion_of_counts(counts.confusion), key="review.confusion")


def table_frame(shown: pd.DataFrame) -> pd.DataFrame:
    """What the table shows of the first :data:`MAX_ROWS` rows, a thumbnail first; with the
    decisions' ``current_label`` and ``decision`` (``review_queue.with_decisions``) when ``shown``
    has them."""
    head = shown.head(MAX_ROWS)
    table = pd.DataFrame(
        {
            "image": [data.thumbnail_uri(p, THUMBNAIL_SIZE) for p in head["path"]],
            "id": head["id"],
            "label": head["label"],
            "suggested_label": head["suggested_label"],
            "label_issue_score": head["label_issue_score"],
            "detectors": head["detectors"],
            "split": head["split"],
        }
    )
    if "decision" in head.columns:
        table.insert(4, "current_label", head["current_label"])
        table.insert(5, "decision", head["decision"].astype(object).where(head["decision"].notna(), ""))
    return table.reset_index(drop=True)


def table_key(ids: pd.Series) -> str:
    """The editor's widget key: one per list of shown ids (see :func:`issue_table`)."""
    digest = hashlib.blake2b("\n".join(map(str, ids)).encode(), digest_size=8).hexdigest()
    return f"{state.REVIEW_TABLE}.{digest}"


def issue_table(shown: pd.DataFrame, n_shown: int | None = None) -> list[str]:
    """The table with a tick box per row; returns the ids of every ticked sample.

    Ticks are kept by sample id in the session (:data:`state.REVIEW_TICKED`), not by row position:
    the editor's key is a digest of the ids it shows, so when a filter changes the rows, a new
    editor starts from the ticks of the samples it now shows, and no tick moves to another sample.
    """
    n_shown = len(shown) if n_shown is None else n_shown
    table = table_frame(shown)
    ticked: set[str] = set(st.session_state.get(state.REVIEW_TICKED, set()))
    key = table_key(table["id"])
    # The editor's data stays what it was when this key first showed: its edits are changes to
    # that data, so feeding today's ticks back in made a second click on a ticked box a no-op
    # (the edit "ticked" over data already ticked), and only the third click unticked it.
    bases = st.session_state.get(state.REVIEW_TICK_BASE, {})
    base = bases.get(key)
    if base is None:
        base = frozenset(ticked & set(table["id"]))
        st.session_state[state.REVIEW_TICK_BASE] = {key: base}
    table.insert(0, "tick", table["id"].isin(base))
    if n_shown > MAX_ROWS:
        st.caption(f"The table shows the {MAX_ROWS:,} highest-scoring of {n_shown:,} samples.")
    edited = st.data_editor(
        table,
        key=key,
        hide_index=True,
        row_height=ROW_HEIGHT,
        height=min(len(table), VISIBLE_ROWS) * ROW_HEIGHT + 40,
        disabled=[c for c in table.columns if c != "tick"],
        column_config={
            "tick": st.column_config.CheckboxColumn("✓", width="small"),
            "image": st.column_config.ImageColumn("image", width="small"),
            "label": st.column_config.TextColumn("given label"),
            "current_label": st.column_config.TextColumn("current label", help="After relabel decisions"),
            "suggested_label": st.column_config.TextColumn("suggested"),
            "label_issue_score": st.column_config.ProgressColumn(
                "score", min_value=0.0, max_value=1.0, format="%.2f"
            ),
        },
    )
    now = set(edited.loc[edited["tick"].astype(bool), "id"])
    ticked = (ticked - set(table["id"])) | now
    st.session_state[state.REVIEW_TICKED] = ticked
    hidden = len(ticked - set(table["id"]))
    if hidden:
        st.caption(f"{len(ticked):,} ticked, {hidden:,} of them not shown by these filters.")
    return sorted(ticked)


def csv_bytes(shown: pd.DataFrame | Callable[[], pd.DataFrame]) -> bytes:
    """The CSV of ``shown`` (or of the frame a callable returns, read when the CSV is built)."""
    frame = shown() if callable(shown) else shown
    return frame[CSV_COLUMNS].to_csv(index=False).encode()


def save_and_download(root: str, shown: pd.DataFrame | Callable[[], pd.DataFrame], ticked: list[str], *,
                      run_id: str, n_shown: int | None = None) -> None:
    """Save the ticked rows (or every shown sample) as a subset; download the shown list.

    ``shown``: the shown rows, or a callable that reads them (with ``n_shown`` their count): then
    they are read only when "save all" is ticked or the CSV is downloaded, not on every rerun."""
    if n_shown is None:
        n_shown = len(shown() if callable(shown) else shown)
    save_column, download_column = st.columns([2, 1])
    with save_column:
        save_all = st.checkbox(
            f"Save all {n_shown:,} shown samples, not only the ticked rows",
            key=state.REVIEW_SAVE_ALL,
        )
        ids = (shown() if callable(shown) else shown)["id"].tolist() if save_all else ticked
        if ids:
            save_subset_form(
                root,
                ids,
                keys=SAVE_KEYS,
                run_id=run_id,
                origin="review",
                label="Save as subset",
                placeholder="e.g. to-relabel",
                default_name="to-relabel",
            )
        else:
            st.caption(
                "Tick rows in the table (the boxes at its left) or the box above to save "
                "samples as a subset, e.g. to relabel them."
            )
    with download_column:
        st.download_button(
            f"Download {n_shown:,} rows (CSV)",
            data=functools.partial(csv_bytes, shown),  # built on click, not on every rerun
            file_name=f"label-issues-{run_id}.csv",
            mime="text/csv",
            on_click="ignore",
            key="review.download",
        )
