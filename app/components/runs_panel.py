"""The Runs page's panels: the list of runs, a comparison of two, and the delete form."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import data, state
from app.components.markdown_text import md
from app.components.metric_row import metric_row
from app.components.overview import runs_frame
from backend.jobs.run_compare import TOP_FRACTION, RunComparison
from backend.storage.errors import StorageError

LIST_COLUMNS = ["run_id", "kind", "status", "embedding_key", "seed", "code_version", "created_at",
                "finished_at", "summary", "error"]  # fmt: skip


def run_list(all_runs: pd.DataFrame) -> None:
    """The runs table, filtered by kind."""
    kinds = sorted(all_runs["kind"].unique())
    kind = st.selectbox("Kind", ["all kinds", *kinds], key=state.RUNS_KIND)
    shown = all_runs if kind == "all kinds" else all_runs[all_runs["kind"] == kind]
    st.dataframe(runs_frame(shown, LIST_COLUMNS), hide_index=True)


def run_option(run: pd.Series) -> str:
    when = pd.Timestamp(run["created_at"]).strftime("%Y-%m-%d %H:%M")
    return f"{run['run_id']} · {when} · {run['status']}"


def choose_pair(all_runs: pd.DataFrame) -> tuple[str, str] | None:
    """The kind and the two finished runs to compare (newest as b, the one before as a); None with
    a hint when no kind has two."""
    finished = all_runs[all_runs["status"] == "done"]
    counts = finished["kind"].value_counts()
    kinds = sorted(counts[counts >= 2].index)
    if not kinds:
        st.info("Comparing needs two finished runs of one kind: run `thresher score` (or embed, project, prune) "
                "again with other settings.")
        return None
    kind = st.selectbox("Kind of run", kinds, index=kinds.index("score") if "score" in kinds else 0,
                        key=state.RUNS_COMPARE_KIND)
    of_kind = finished[finished["kind"] == kind]
    labels = {row["run_id"]: run_option(row) for _, row in of_kind.iterrows()}
    ids = list(labels)
    left, right = st.columns(2)
    run_a = left.selectbox("Run a", ids, index=1, format_func=labels.__getitem__,
                           key=f"{state.RUNS_COMPARE_A}.{kind}")
    run_b = right.selectbox("Run b", ids, index=0, format_func=labels.__getitem__,
                            key=f"{state.RUNS_COMPARE_B}.{kind}")
    if run_a == run_b:
        st.info("Pick two different runs.")
        return None
    return run_a, run_b


def comparison(cmp: RunComparison, root: str | None = None) -> None:
    """Settings that differ, then for score runs the flags, the scores and the collapse metrics."""
    show_all = st.toggle("Show every setting, not only those that differ", key=state.RUNS_ALL_SETTINGS)
    settings = cmp.settings if show_all else cmp.settings[~cmp.settings["same"]]
    st.markdown(f"**Settings** ({int((~cmp.settings['same']).sum())} of {len(cmp.settings)} differ; times and "
                "durations are not counted)")
    st.dataframe(settings[["field", "a", "b"]] if not show_all else settings, hide_index=True)
    if cmp.flags is not None:
        flags_panel(cmp, root)
    if cmp.scores is not None:
        st.markdown(f"**Scores both runs stored**: Spearman rank correlation, and the share of run a's "
                    f"hardest {TOP_FRACTION:.0%} that is among run b's (what a keep-hard prune would keep; samples "
                    "tied at the cut count in proportion, so equal scores overlap fully).")
        if cmp.scores.empty:
            st.caption("The two runs stored no score in common.")
        else:
            st.dataframe(cmp.scores, hide_index=True, column_config={
                "spearman": st.column_config.NumberColumn(format="%.3f"),
                "top_overlap": st.column_config.ProgressColumn("top overlap", min_value=0.0, max_value=1.0,
                                                               format="%.2f"),
            })  # fmt: skip
    if cmp.kind == "prune":
        kept_panel(cmp)
    if cmp.kind == "score":
        if cmp.collapse is None:
            st.caption("Neural collapse: at least one of the runs stored no metrics.")
        else:
            a, b = cmp.collapse_sources or (None, None)
            st.markdown(f"**Neural collapse** (headline metrics; run a from `{a}`, run b from `{b}`; "
                        "0 = collapsed)")
            st.dataframe(cmp.collapse, hide_index=True)


def agreement_cells(counts: dict, what: str, verb: str) -> list[tuple[str, str]]:
    """Metric cells of ``run_compare``'s agreement counts (``<what>_a`` ..., ``jaccard``)."""
    jaccard = counts["jaccard"]
    return [(f"{verb} by a", f"{counts[f'{what}_a']:,}"), (f"{verb} by b", f"{counts[f'{what}_b']:,}"),
            ("By both", f"{counts[f'{what}_by_both']:,}"), ("Only a / only b", f"{counts['only_a']:,} / {counts['only_b']:,}"),
            ("Jaccard", "n/a" if jaccard is None else f"{jaccard:.2f}")]  # fmt: skip


def flags_panel(cmp: RunComparison, root: str | None = None) -> None:
    f = cmp.flags
    st.markdown(f"**Label-issue flags** on the {f['samples_in_both']:,} samples both runs judged")
    same = f["same_suggestion_when_both_flag"]
    metric_row([*agreement_cells(f, "flagged", "Flagged"), ("Same suggestion", "n/a" if same is None else f"{same:.0%}")])
    if cmp.flag_changes is not None and len(cmp.flag_changes):
        total = cmp.flag_changes_total if cmp.flag_changes_total is not None else len(cmp.flag_changes)
        shown = "" if total == len(cmp.flag_changes) else f" (the first {len(cmp.flag_changes):,} of {total:,})"
        st.caption(f"Samples flagged by one run only{shown}, largest change of the label-issue score first"
                   + (" (click a row to open the sample)." if root else "."))
        if root is None:
            st.dataframe(cmp.flag_changes, hide_index=True)
        else:
            from app.components.sample_view import clickable_table

            clickable_table(root, cmp.flag_changes, key="runs.flag_changes", score_run=cmp.run_b)


def kept_panel(cmp: RunComparison) -> None:
    """Two prune runs' kept sets: counts and per class."""
    if cmp.kept is None:
        st.info(f"Kept samples: {cmp.kept_note}.")
        return
    st.markdown("**Kept samples**")
    metric_row(agreement_cells(cmp.kept, "kept", "Kept"))
    st.dataframe(cmp.kept_by_class, hide_index=True)


def delete_form(root: str, all_runs: pd.DataFrame) -> None:
    """Pick a run, confirm, delete; a running run needs a second box (its process has died)."""
    labels = {row["run_id"]: f"{row['kind']} · " + run_option(row) for _, row in all_runs.iterrows()}
    run_id = st.selectbox("Run to delete", list(labels), index=None, placeholder="choose a run",
                          format_func=labels.__getitem__, key=state.RUNS_DELETE)
    if run_id is None:
        return
    run = all_runs[all_runs["run_id"] == run_id].iloc[0]
    st.caption("Deletes the run's record and the rows it produced (projection points, scores, label-issue "
               "verdicts, collapse metrics). Subsets made from it are kept: they are your curation.")
    force = False
    if run["status"] == "running":
        st.warning(f"Run {run_id} is still marked running. Deleting it while its job works would leave "
                   "that job writing rows for a run that no longer exists.")
        force = st.checkbox("Its process has died: delete it anyway", key=f"{state.RUNS_DELETE_FORCE}.{run_id}")
    # keyed by run: a box ticked for one run never confirms another picked afterwards
    confirmed = st.checkbox(f"Yes, delete run {run_id}", key=f"{state.RUNS_DELETE_CONFIRM}.{run_id}")
    if st.button("Delete the run", type="primary", disabled=not confirmed, key="runs.delete_button"):
        try:
            data.delete_run(root, run_id, force=force)
        except StorageError as exc:
            st.error(f"Nothing was deleted: {md(exc)}")
            return
        st.session_state[state.RUNS_DELETED] = run_id
        for key in (state.RUNS_DELETE, f"{state.RUNS_DELETE_CONFIRM}.{run_id}", f"{state.RUNS_DELETE_FORCE}.{run_id}"):
            st.session_state.pop(key, None)
        st.rerun()


def deleted_notice() -> None:
    """Say once which run the last click deleted."""
    deleted = st.session_state.pop(state.RUNS_DELETED, None)
    if deleted:
        st.success(f"Deleted run {deleted}.")
