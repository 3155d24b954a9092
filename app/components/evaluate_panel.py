"""The Prune page's "what does a subset cost" section: run ``thresher evaluate`` on a saved
subset and show its held-out accuracies, with and without distillation, and per class."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import data, prune_data, state
from app.components import score_charts
from app.components.metric_row import metric_row
from backend.jobs.evaluate_job import ARM_TEXT, COMPARISONS, class_losses, comparison_text
from backend.storage import StorageError

EXPLANATION = (
    "Trains the engine's probe on the subset's samples and tests it on held-out folds of the whole "
    "pool (the split it was pruned from, else every sample), beside a probe on all samples and one "
    "on a random subset of the same size per class; the KD rows add a distillation term from the "
    "all-samples probe, weighted by how little the subset keeps (Ben-Baruch et al. 2024). "
    "Same as `thresher evaluate --subset NAME`."
)


def section(root: str, default_subset: str | None) -> None:
    st.subheader("What training on a subset costs")
    st.caption(EXPLANATION)
    saved = data.subset_list(root)
    names = saved["name"].tolist()
    if not names:
        st.info("No saved subset yet: prune above, or save a selection on the Explore or Review page.")
        return
    index = names.index(default_subset) if default_subset in names else 0
    subset = st.selectbox("Subset", names, index=index, key=state.PRUNE_EVAL_SUBSET)
    if st.button("Evaluate this subset", key="prune.evaluate"):
        try:
            with st.spinner("Training probes on every fold…"):
                prune_data.run_evaluation(root, subset)
        except (StorageError, ValueError) as exc:
            st.error(f"The evaluation did not run: {exc}")
    latest, current = prune_data.latest_evaluation(root, subset, saved)
    if latest is None:
        st.caption(f"Subset '{subset}' has not been evaluated yet.")
        return
    if not current:
        st.warning(f"Subset '{subset}' was saved again after this evaluation: the numbers below are for "
                   "its earlier contents. Evaluate it again.")
    show(latest)


def show(run: pd.Series) -> None:
    """An evaluate run's summary: the five accuracies, the paired comparisons, recall by class."""
    summary = run["summary"]
    st.caption(
        f"Run {run['run_id']} · keeps {summary['n_kept']:,} of {summary['n_pool']:,} "
        f"({100 * summary['kept_fraction']:.1f}%); pool: {summary['pool']} · {summary['folds']}-fold, "
        f"{summary['probe']} probe · KD weight {summary['kd_weight']:.2f}, temperature {summary['temperature']:g}"
    )
    accuracy, spread = summary["accuracy"], summary["accuracy_std"]
    metric_row([(ARM_TEXT[arm], f"{accuracy[arm]:.2f}% ± {spread[arm]:.2f}") for arm in ARM_TEXT])
    st.markdown("\n".join(f"- {text}: {comparison_text(summary[key])}" for key, text in COMPARISONS.items()))
    losses = class_losses(summary)
    if losses:
        st.caption("Classes losing most recall on this subset: "
                   + ", ".join(f"{c} ({d:+.1f} points)" for c, d in losses))
    shown = {arm: summary["recall_by_class"][arm] for arm in ("full", "subset", "subset_kd")}
    st.plotly_chart(score_charts.recall_by_class(shown, ARM_TEXT), key="prune.evaluate_recall")
