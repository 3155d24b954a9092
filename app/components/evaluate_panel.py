"""The Prune page's "what does a subset cost" section: start ``thresher evaluate`` on a saved
subset as a job, follow it, and show its held-out accuracies, with and without distillation,
and per class."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import data, jobs_data, prune_data, state
from app.components import jobs_panel, score_charts
from app.components.markdown_text import md
from app.prune_data import PruneDone
from backend.jobs.evaluate_job import ARM_TEXT, COMPARISONS, class_losses, comparison_text
from backend.jobs.job_manager import Job
from backend.storage import StorageError

EXPLANATION = (
    "Trains the engine's probe on the subset's samples and tests it on held-out folds of the whole "
    "pool (the split it was pruned from, else every sample), beside a probe on all samples and one "
    "on a random subset of the same size per class; the KD rows add a distillation term from the "
    "all-samples probe, weighted by how little the subset keeps (Ben-Baruch et al. 2024). "
    "Same as `thresher evaluate --subset NAME`."
)


def _follow_last_prune(done: PruneDone | None, names: list[str]) -> None:
    """After a prune, the picker offers the subset it saved (once per prune: the user may then
    pick another). Its widget keeps its own value otherwise, whatever subsets appear."""
    prune_run = done.run_id if done is not None else None
    if st.session_state.get(state.PRUNE_EVAL_FOLLOWS) != prune_run:
        st.session_state[state.PRUNE_EVAL_FOLLOWS] = prune_run
        if done is not None and done.subset in names:
            st.session_state[state.PRUNE_EVAL_SUBSET] = done.subset


def _start(root: str, subset: str) -> Job | None:
    try:
        return prune_data.run_evaluation(root, subset)
    except (StorageError, ValueError, OSError) as exc:
        st.error(f"The evaluation did not start: {md(exc)}")
        return None


@st.fragment(run_every=jobs_panel.REFRESH_S)
def _follow_job(root: str, job_id: str) -> None:
    """The running evaluation, refreshed on its own; once it ends, the whole page reruns to show it."""
    job = jobs_data.job(root, job_id)
    if not job.active:
        st.rerun()
    st.caption(f"Evaluating subset '{job.params['subset']}' as job {job_id}. It goes on if you leave this "
               "page; the Jobs page and the sidebar follow it too.")
    jobs_panel.job_card(root, job, key="prune.evaluate_job")


def _after(job: Job, run: pd.Series | None) -> bool:
    """Whether ``job`` started after ``run`` was recorded (or there is no such run)."""
    if run is None:
        return True
    recorded = pd.Timestamp(run["created_at"])
    return pd.Timestamp(job.created) > (recorded if recorded.tzinfo else recorded.tz_localize("UTC"))


def section(root: str, done: PruneDone | None) -> None:
    """Pick a saved subset (the last prune's, right after it), evaluate it as a job, show the result."""
    st.subheader("What training on a subset costs")
    st.caption(EXPLANATION)
    saved = data.subset_list(root)
    names = saved["name"].tolist()
    if not names:
        st.info("No saved subset yet: prune above, or save a selection on the Explore or Review page.")
        return
    _follow_last_prune(done, names)
    subset = st.selectbox("Subset", names, key=state.PRUNE_EVAL_SUBSET)
    job = jobs_data.latest_job(root, "evaluate", subset=subset)
    if (job is None or not job.active) and st.button("Evaluate this subset", key="prune.evaluate"):
        if _start(root, subset) is not None:
            st.rerun()  # to show the job running, without the button
    if job is not None and job.active:
        _follow_job(root, job.job_id)
    latest, current = prune_data.latest_evaluation(root, subset, saved)
    if job is not None and job.problem and _after(job, latest):
        ended = "run" if job.status == "failed" else "finish"
        st.error(f"The evaluation of '{subset}' (job {job.job_id}) did not {ended}: {job.problem}")
    if latest is None:
        if job is None or not job.active:
            st.caption(f"Subset '{subset}' has not been evaluated yet.")
        return
    if not current:
        st.warning(f"Subset '{subset}' was saved again after this evaluation: the numbers below are for "
                   "its earlier contents. Evaluate it again.")
    show(latest)


def accuracy_table(summary: dict) -> pd.DataFrame:
    """One row per arm: held-out accuracy ± its spread over folds, and the difference from all samples."""
    accuracy, spread = summary["accuracy"], summary["accuracy_std"]
    return pd.DataFrame(
        {"Held-out accuracy": [f"{accuracy[arm]:.2f}% ± {spread[arm]:.2f}" for arm in ARM_TEXT],
         "vs all samples": ["" if arm == "full" else f"{accuracy[arm] - accuracy['full']:+.2f} points"
                            for arm in ARM_TEXT]},
        index=pd.Index(list(ARM_TEXT.values()), name="Trained on"),
    )


def show(run: pd.Series) -> None:
    """An evaluate run's summary: the five accuracies, the paired comparisons, recall by class."""
    summary = run["summary"]
    st.caption(
        f"Run {run['run_id']} · keeps {summary['n_kept']:,} of {summary['n_pool']:,} "
        f"({100 * summary['kept_fraction']:.1f}%); pool: {summary['pool']} · {summary['folds']}-fold, "
        f"{summary['probe']} probe · KD weight {summary['kd_weight']:.2f}, temperature {summary['temperature']:g}"
    )
    st.table(accuracy_table(summary))  # a table: five "88.17% ± 2.31" metrics in a row were cut off
    st.markdown("\n".join(f"- {text}: {comparison_text(summary[key])}" for key, text in COMPARISONS.items()))
    losses = class_losses(summary)
    if losses:
        st.caption("Classes losing most recall on this subset: "
                   + ", ".join(f"{c} ({d:+.1f} points)" for c, d in losses))
    shown = {arm: summary["recall_by_class"][arm] for arm in ("full", "subset", "subset_kd")}
    st.plotly_chart(score_charts.recall_by_class(shown, ARM_TEXT), key="prune.evaluate_recall")
