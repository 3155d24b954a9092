"""The review queue: one flagged sample at a time, most suspicious first, with the evidence a
reviewer needs (image, given and suggested label, the detectors, neighbours from both classes)
and the seven decision buttons. Drawn in a fragment, so a decision redraws the queue only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import curation_data, state
from app.components import decision_actions
from app.components.markdown_text import md
from app.components.metric_row import metric_row
from app.components.review_panel import IssueFilter, apply_filter
from app.components.sample_view import image, neighbour_grid
from app.components.wording import count
from backend.jobs import review_queue
from backend.storage import StorageError

NEIGHBOURS = 5
BULK_MAX = 500


def flagged_in_scope(root: str, run_id: str, chosen: IssueFilter) -> pd.DataFrame:
    """The flagged samples the filters let through, with their decisions (read from the flagged
    rows only: :func:`curation_data.flagged_with_decisions`)."""
    issues = curation_data.flagged_with_decisions(root, run_id)
    return apply_filter(issues, IssueFilter(chosen.threshold, False, chosen.classes, chosen.detectors,
                                            chosen.max_score))


def progress_row(progress: review_queue.ReviewProgress) -> None:
    precision = "—" if progress.precision is None else f"{100 * progress.precision:.0f}%"
    expected = "—" if progress.expected_errors is None else f"~{progress.expected_errors:.0f}"
    metric_row([("Reviewed", f"{progress.reviewed:,} of {progress.flagged:,}"),
                ("Flags changed or dropped", precision),
                ("Errors expected in the rest", expected)])
    st.caption(progress.text())


@st.fragment
def queue_view(root: str, run_id: str, chosen: IssueFilter) -> None:
    flagged = flagged_in_scope(root, run_id, chosen)
    progress_row(review_queue.progress(flagged))
    decision_actions.show_acknowledgement()
    decision_actions.undo_confirmation(root, source="review")
    todo = review_queue.queue(flagged, skipped=st.session_state.get(state.REVIEW_SKIPPED, set()),
                              first=st.session_state.get(state.REVIEW_FOCUS))
    if todo.empty:
        skipped = len(st.session_state.get(state.REVIEW_SKIPPED, set()))
        st.success("Queue done: every flagged sample in these filters has a decision"
                   + (f", but for {count(skipped, 'sample')} skipped this session (skipped samples come back in "
                      "a new session: reload the page)" if skipped else "") + ".")
        st.button("Undo", shortcut="Z", key="q.undo_done", on_click=decision_actions.undo_last, args=(root,),
                  kwargs={"source": "review"})
        bulk_accept(root, run_id, chosen)
        return
    current = todo.iloc[0]
    probability = current.get("suggested_probability")
    target = decision_actions.Target(current["id"], str(current["current_label"]),
                                     None if pd.isna(current["suggested_label"]) else str(current["suggested_label"]),
                                     run_id)
    left, right = st.columns([1, 2])
    with left:
        image(current["path"], 280)
    with right:
        st.markdown(f"#### Given label: **{md(target.label)}** → suggested: **{md(target.suggested_label)}**")
        st.markdown(
            f"Suggestion probability **{'n/a' if probability is None or pd.isna(probability) else f'{probability:.2f}'}**"
            f" · label-issue score **{current['label_issue_score']:.3f}** · flagged by "
            f"**{current['detectors'] or 'the combined verdict only'}** · {len(todo):,} left in the queue")
        st.caption(f"Sample {md(current['id'])} · split {md(current['split'])}")
        decision_actions.queue_buttons(root, target, curation_data.class_names(root))
        st.caption("Shortcuts: " + " · ".join(f"{label} `{key}`" for label, key in decision_actions.QUEUE_BUTTONS))
    key = curation_data.score_run_embedding(root, run_id)
    given, suggested = st.columns(2)
    for column, label, title in ((given, target.label, "given"), (suggested, target.suggested_label, "suggested")):
        with column:
            st.markdown(f"Nearest with the {title} label **{md(label)}**")
            found = curation_data.neighbours(root, key, target.sample_id, label=label, k=NEIGHBOURS)
            if found.empty:
                st.caption("No neighbours (no stored vector, or no sample of this class).")
            else:
                neighbour_grid(found)
    # in the fragment: a decision here reruns only the fragment, so the bulk box outside it showed
    # the queue from before the decision (and came back only on a full rerun after an undo)
    bulk_accept(root, run_id, chosen)


def bulk_accept(root: str, run_id: str, chosen: IssueFilter) -> None:
    """Accept the suggestions of the top k flagged samples still to review, after a confirmation."""
    todo = review_queue.queue(flagged_in_scope(root, run_id, chosen))
    todo = todo[todo["suggested_label"].notna() & (todo["suggested_label"].astype(str)
                                                   != todo["current_label"].astype(str))]
    if todo.empty:
        return
    with st.expander("Bulk: accept the top suggestions"):
        k = st.number_input("How many (most suspicious first)", 1, min(len(todo), BULK_MAX),
                            min(10, len(todo)), key=state.REVIEW_BULK_K)
        top = todo.head(int(k))
        moves = top.groupby(["current_label", "suggested_label"]).size().reset_index(name="n")
        st.caption("Will relabel: " + ", ".join(f"{md(r.current_label)} → {md(r.suggested_label)}: {r.n}"
                                                for r in moves.itertuples()))
        if st.button(f"Accept the top {int(k)} suggestions…", key="review.bulk_open"):
            st.session_state[state.REVIEW_BULK_PENDING] = (top["id"].tolist(), float(top["label_issue_score"].min()))
    pending = st.session_state.get(state.REVIEW_BULK_PENDING)
    if pending:  # kept in the session, so the dialog stays open across its own reruns
        _confirm_bulk(root, run_id, *pending)


@st.dialog("Accept suggestions", dismissible=False)
def _confirm_bulk(root: str, run_id: str, ids: list[str], min_score: float) -> None:
    st.write(f"Relabel {count(len(ids), 'sample')} to their suggested label (scores ≥ {min_score:.3f})? "
             "Each becomes one `bulk` entry in the decisions log; Undo reverses them one at a time, and "
             "`thresher decide undo ID` any of them.")
    confirm, cancel = st.columns(2)
    if cancel.button("Cancel", key="review.bulk_cancel"):
        st.session_state.pop(state.REVIEW_BULK_PENDING, None)
        st.rerun()
    if confirm.button("Confirm", type="primary", key="review.bulk_confirm"):
        st.session_state.pop(state.REVIEW_BULK_PENDING, None)
        try:
            result = curation_data.accept_suggestions(root, run_id, ids)
        except StorageError as exc:
            decision_actions.acknowledge(f"Nothing saved: {md(exc)}", error=True)
        else:
            st.session_state.setdefault(state.DECISION_UNDO_STACK, []).extend(result.entries["decision_id"])
            decision_actions.acknowledge(f"Accepted {count(result.n_written, 'suggestion')}. Saved.")
        st.rerun()
