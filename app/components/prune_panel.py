"""The Prune page's parts: the procedure's settings, running it, and what it kept.

The ratio is the fraction of samples REMOVED, everywhere in Thresher (0.3 keeps 70%).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd
import streamlit as st

from app import data, prune_data, state
from app.components import score_charts
from app.components.markdown_text import md
from app.components.metric_row import metric_row
from app.components.palette import natural_order
from app.components.wording import count
from backend.jobs import prune_job
from backend.storage import StorageError

RECOMMENDED = "(recommended)"
ALL_SPLITS = "(all splits)"
MINIMUM = "minimum per class"
POLICIES = ("proportional", "balanced", "none", MINIMUM)
POLICY_HELP = (
    "proportional: every class keeps the same fraction; balanced: equal counts per class (capped "
    "at the class size); none: no per-class quotas; minimum per class: proportional, but every "
    "class keeps at least N."
)
NOT_SCORES = {"id", "label", "split", "path", "kept"}


@dataclass(frozen=True)
class PruneRequest:
    """The settings of one prune; ``method=None`` runs the recommended recipe."""

    ratio: float
    method: str | None
    per_class: str
    seed: int
    split: str | None
    dedup: bool
    name: str
    overwrite: bool
    options: tuple[tuple[str, str], ...] = ()  # the procedure's parameters changed from defaults
    label_issues: str = "exclude"  # "keep" leaves the score run's flagged samples to the method


def n_kept(n: int, ratio: float) -> int:
    """How many of ``n`` samples a prune keeps (round(n (1 - ratio)), >= 1; 0 when n < 1)."""
    return prune_job.kept_count(n, ratio)


def score_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric score columns of ``frame`` with a value for every row."""
    return [
        c
        for c in frame.columns
        if c not in NOT_SCORES
        and pd.api.types.is_numeric_dtype(frame[c])
        and frame[c].notna().all()
    ]


def _choose_score(method: str, pool: prune_data.PoolSummary) -> str:
    """The score ``method`` runs on: one select box per method, defaulting to its own score."""
    default = prune_job.default_score(method)
    if default is None:
        st.caption("This method uses no score.")
        return method
    known = set(prune_job.score_names())
    available = [s for s in pool.scores if s in known] or [default]
    index = available.index(default) if default in available else 0
    score = st.selectbox("Score", available, index=index, key=f"{state.PRUNE_SCORE}.{method}")
    if default not in available:
        st.caption(f"This run has no {default!r} score (the method's default).")
    return f"{method}:{score}"


def _parameters(method: str) -> tuple[tuple[str, str], ...]:
    """The procedure's parameters in an expander; returns the ones changed from their defaults."""
    defaults = prune_job.method_parameters(method)
    if not defaults:
        return ()
    changed = []
    with st.expander("Procedure parameters"):
        st.caption("Defaults as documented with each procedure; `thresher prune --option KEY=VALUE` sets the same.")
        for key, default in defaults.items():
            widget_key = f"{state.PRUNE_OPTION}.{method.partition(':')[0]}.{key}"
            if isinstance(default, bool):
                value = st.checkbox(key, value=default, key=widget_key)
            elif isinstance(default, int):
                value = int(st.number_input(key, value=default, step=1, key=widget_key))
            else:
                value = float(st.number_input(key, value=float(default), step=0.05, format="%.3f", key=widget_key))
            if value != default:
                changed.append((key, str(value)))
    return tuple(changed)


def controls(pool: prune_data.PoolSummary,
             decided_in: Callable[[str | None], tuple[int, int]] | None = None) -> PruneRequest:
    """Every setting of the prune (``pool``: :func:`prune_data.pool_summary`, counts only); the
    caption under the ratio says how many samples stay (``decided_in(split)``: the (dropped,
    pinned) samples of the pool, :func:`prune_data.decided_in_pool`, which decide it too)."""
    ratio_column, method_column, score_column = st.columns([2, 2, 1])
    ratio = ratio_column.slider(
        "Fraction REMOVED",
        0.0,
        0.95,
        0.5,
        step=0.05,
        key=state.PRUNE_RATIO,
        help="The fraction of samples the prune removes: 0.3 removes 30% and keeps 70%.",
    )
    keeps = ratio_column.empty()
    recommended = prune_job.recommended_method(ratio)
    method = method_column.selectbox(
        "Method",
        [RECOMMENDED, *prune_job.method_names()],
        key=state.PRUNE_METHOD,
        format_func=lambda m: (
            f"recommended for this ratio: {recommended}" if m == RECOMMENDED else m
        ),
    )
    with score_column:
        chosen = None if method == RECOMMENDED else _choose_score(method, pool)
        if chosen is None:
            st.caption("The recommended recipe fixes its score and sampling.")
    method_column.caption(prune_job.describe_method(chosen or recommended))
    options = _parameters(chosen) if chosen else ()

    policy_column, seed_column, split_column, first_column = st.columns(4)
    policy = policy_column.selectbox(
        "Per-class policy", POLICIES, key=state.PRUNE_POLICY, help=POLICY_HELP
    )
    per_class = policy
    if policy == MINIMUM:
        minimum = policy_column.number_input(
            "Minimum per class", min_value=1, value=5, step=1, key=state.PRUNE_MIN_PER_CLASS
        )
        per_class = f"min:{int(minimum)}"
    seed = seed_column.number_input("Seed", min_value=0, value=0, step=1, key=state.PRUNE_SEED)
    splits = natural_order([s or "" for s in pool.n_by_split])
    split = split_column.selectbox(
        "Split", [ALL_SPLITS, *[s for s in splits if s]], key=state.PRUNE_SPLIT
    )
    split = None if split == ALL_SPLITS else split
    exclude_issues = first_column.checkbox(
        "Remove label issues first",
        value=True,
        key=state.PRUNE_LABEL_ISSUES,
        help="Remove the samples this score run flags as mislabeled before the method ranks the "
        "rest (they count towards the fraction removed; the most suspicious first when there are "
        "more). Hardness scores rank mislabeled samples hardest, so without this keep-hard "
        "methods keep them. Same as `thresher prune --label-issues exclude` (the default).",
    )
    dedup = first_column.checkbox(
        "Remove near-duplicates first",
        key=state.PRUNE_DEDUP,
        disabled=not ({"near_duplicate_group", "semdedup"} & set(pool.stored)),
        help="Remove every member of a duplicate group but one before the method ranks the rest: "
        "the exact copies and near duplicates this score run found, the groups the Duplicates page "
        "shows (a sample kept by a decision stays, and the rest of its group goes). They count towards "
        "the fraction removed. Same as `thresher prune --dedup`. A run made before the duplicate "
        "checks uses its SemDeDup score instead.",
    )
    n_pool = pool.count(split)
    n_dropped, n_pinned = decided_in(split) if decided_in is not None else (0, 0)
    kept = prune_job.kept_after_decisions(n_pool, ratio, n_dropped, n_pinned)
    decided = ", ".join(part for part in (f"{n_dropped:,} dropped by decisions" if n_dropped else "",
                                          f"{n_pinned:,} kept by decisions" if n_pinned else "") if part)
    keeps.markdown(f"Keeps **{kept:,}** of {n_pool:,} samples (removes {n_pool - kept:,})"
                   + (f"; {decided}." if decided else "."))

    name_column, overwrite_column = st.columns([2, 1])
    if state.PRUNE_SUBSET_NAME not in st.session_state:
        st.session_state[state.PRUNE_SUBSET_NAME] = "pruned"
    name = name_column.text_input("Save the kept samples as subset", key=state.PRUNE_SUBSET_NAME)
    overwrite = overwrite_column.checkbox(
        "Replace an existing subset with this name", key=state.PRUNE_OVERWRITE
    )
    return PruneRequest(
        ratio=ratio,
        method=chosen,
        per_class=per_class,
        seed=int(seed),
        split=split,
        dedup=dedup,
        name=name.strip(),
        overwrite=overwrite,
        options=options,
        label_issues="exclude" if exclude_issues else "keep",
    )


def run_button(root: str, request: PruneRequest, *, score_run: str) -> None:
    """The button; a finished prune is kept in the session for :func:`result`."""
    if not st.button("Prune and save the subset", type="primary", key="prune.run"):
        return
    if request.name in set(data.subset_list(root)["name"]) and not request.overwrite:
        st.error(
            f"A subset named {request.name!r} exists. Nothing was saved: pick a new name, "
            "or tick the box above to replace it."
        )
        return
    try:
        with st.spinner("Pruning…"):
            done = prune_data.run_prune(root, score_run=score_run, **asdict(request))
    except (StorageError, ValueError) as exc:
        st.error(f"Nothing was saved: {md(exc)}")
        return
    state.set_last_prune(done)
    first = [f"{count:,} {what}" for count, what in ((done.n_label_issues_removed, "flagged label issues"),
                                                    (done.n_duplicates_removed, "near-duplicates")) if count]
    st.success(
        f"Saved subset '{done.subset}': kept {done.n_kept:,}, removed {done.n_removed:,}"
        + (f", of them {' and '.join(first)} first" if first else "")
        + f" ({done.method}). Export it from the Export page."
    )
    if done.verdict_missing:
        st.warning("This score run stored no label-issue verdict, so no flagged sample was removed first. "
                   "Rerun `thresher score` to get one.")
    if done.exclusions_fill_budget:
        st.warning("The samples removed first fill the whole fraction removed: the method chose nothing and "
                   "the subset is every other sample. Lower the fraction, or untick "
                   + " or ".join(box for box, n in (("'Remove label issues first'", done.n_label_issues_removed),
                                                     ("'Remove near-duplicates first'", done.n_duplicates_removed)) if n)
                   + " to let the method choose.")


def result(root: str, done: prune_data.PruneDone) -> None:
    """What the last prune kept: counts, per-class bars and a score's kept/removed histogram."""
    try:
        outcome = prune_data.prune_outcome(root, done)
    except StorageError as exc:
        st.info(f"The last prune's subset is gone: {md(exc)}")
        return
    st.subheader(f"Result: subset '{done.subset}'")
    st.caption(f"{done.method} · prune run {done.run_id} · from score run {done.score_run}")
    total = max(done.n_kept + done.n_removed, 1)
    cells = [
        ("Kept", f"{done.n_kept:,}"),
        ("Removed", f"{done.n_removed:,}"),
        ("Kept share", f"{100 * done.n_kept / total:.1f}%"),
        ("Label issues removed first",
         f"{done.n_label_issues_removed:,}" if done.label_issues == "exclude" else "off"),
    ]
    metric_row(cells)
    st.caption(f"Decisions: {count(done.n_pinned, 'sample')} pinned by keep decisions (kept whatever the method chose), "
               f"{done.n_dropped_by_decision:,} dropped by decisions (in no pruned subset; counted as removed).")
    left, right = st.columns(2)
    left.plotly_chart(score_charts.kept_by_class(outcome), key="prune.by_class")
    scores = score_columns(outcome)
    if not scores:
        right.caption("The score run stored no scores to compare.")
        return
    used = done.method.partition(":")[2]
    default = used if used in scores else ("sim" if "sim" in scores else scores[0])
    with right:
        score = st.selectbox(
            "Score to compare", scores, index=scores.index(default), key=state.PRUNE_HISTOGRAM_SCORE
        )
        st.plotly_chart(
            score_charts.kept_vs_removed_histogram(outcome, score), key="prune.histogram"
        )
