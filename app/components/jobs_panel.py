"""The Jobs page's parts, and the job card and the sidebar's "N jobs running" link every page shows.

A job is a ``thresher`` command in its own process (``backend.jobs.job_manager``); the list
refreshes in a fragment every :data:`REFRESH_S` seconds, not the whole page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app import data, jobs_data, state
from app.components.markdown_text import md
from backend.config import EmbedSettings, ProjectionSettings
from backend.jobs import prune_job
from backend.jobs.job_manager import Job
from backend.storage import StorageError

JOBS_PAGE = "views/jobs.py"
REFRESH_S = 2
INDICATOR_REFRESH_S = 5
SHOWN = 20
STATUS_TEXT = {"starting": "starting", "running": "running", "cancelling": "cancelling…", "done": "done",
               "failed": "failed", "cancelled": "cancelled", "interrupted": "interrupted"}
RECOMMENDED = "(recommended for the ratio)"
DEFAULT = "(default)"
WEIGHTS = ("the model's default", "a tag", "a local checkpoint", "none (random weights)")


def _key(kind: str, name: str) -> str:
    return f"{state.JOBS_FORM}.{kind}.{name}"


def _start(root: str, kind: str, params: dict[str, Any]) -> None:
    """Start a job, then rerun the page (the sidebar counts it) saying so; a refused parameter is
    shown and nothing starts."""
    try:
        job = jobs_data.start(root, kind, params)
    except (ValueError, StorageError, OSError) as exc:
        st.error(f"The {kind} job was not started: {md(exc)}")
        return
    st.session_state[state.JOBS_STARTED] = job.job_id
    st.rerun()


def started_notice() -> None:
    """Once, after a form started a job."""
    job_id = st.session_state.pop(state.JOBS_STARTED, None)
    if job_id:
        st.success(f"Started job {job_id}. It runs on whether you stay on this page or not; follow it below.")


def _embedding(root: str, kind: str) -> str | None:
    keys = sorted(data.open_workspace(root).embedding_keys())
    choice = st.selectbox("Embedding", [DEFAULT, *keys], key=_key(kind, "embedding"),
                          help="Default: the only one, or the latest embedded")
    return None if choice == DEFAULT else choice


def _embed_form(root: str) -> None:
    with st.form(_key("embed", "form")):
        model = st.text_input("Model", value=EmbedSettings.model, key=_key("embed", "model"),
                              help="'pixels' / 'pixels-<size>' (offline) or an open_clip model name such as ViT-B-32")
        weights = st.radio("Weights", WEIGHTS, horizontal=True, key=_key("embed", "weights"))
        where = st.text_input("Tag or checkpoint path", key=_key("embed", "pretrained"),
                              help="A tag such as openai (must be cached locally), or a checkpoint file")
        batch = st.number_input("Batch size", 1, 65_536, EmbedSettings.batch_size, key=_key("embed", "batch_size"))
        if not st.form_submit_button("Start embedding"):
            return
    pretrained = {WEIGHTS[0]: None, WEIGHTS[3]: "none"}.get(weights, where.strip())
    if weights in WEIGHTS[1:3] and not pretrained:
        st.error(f"The embed job was not started: type {'the tag' if weights == WEIGHTS[1] else 'the path'} "
                 "of the weights, or pick another choice")
        return
    if weights == WEIGHTS[2] and not Path(pretrained).expanduser().is_file():
        st.error(f"The embed job was not started: no checkpoint file at {Path(pretrained).expanduser().resolve()}")
        return
    _start(root, "embed", {"model": model, "pretrained": pretrained, "batch_size": int(batch)})


def _project_form(root: str) -> None:
    with st.form(_key("project", "form")):
        embedding = _embedding(root, "project")
        method = st.selectbox("Method", ("umap", "pca"), key=_key("project", "method"))
        left, middle, right = st.columns(3)
        neighbors = left.number_input("UMAP neighbours", 2, 1_000, ProjectionSettings.n_neighbors,
                                      key=_key("project", "n_neighbors"))
        min_dist = middle.number_input("UMAP min distance", 0.0, 1.0, ProjectionSettings.min_dist, step=0.05,
                                       key=_key("project", "min_dist"))
        seed = right.number_input("Seed", 0, 2**31 - 1, ProjectionSettings.seed, key=_key("project", "seed"))
        if not st.form_submit_button("Start the projection"):
            return
    _start(root, "project", {"method": method, "n_neighbors": int(neighbors), "min_dist": float(min_dist),
                             "seed": int(seed), "embedding": embedding})


def _score_form(root: str) -> None:
    with st.form(_key("score", "form")):
        embedding = _embedding(root, "score")
        scorers = st.multiselect("Pruning scores", prune_job.score_names(), key=_key("score", "scorers"),
                                 placeholder="every recommended score")
        if not st.form_submit_button("Start scoring"):
            return
    _start(root, "score", {"scorers": scorers or None, "embedding": embedding})


def _prune_form(root: str) -> None:
    scored = data.score_runs(root)
    if scored.empty:
        st.info("Pruning reads a score run: start a score job first.")
        return
    with st.form(_key("prune", "form")):
        name = st.text_input("Save the kept samples as subset", value="pruned", key=_key("prune", "name"))
        ratio = st.slider("Fraction REMOVED", 0.0, 0.95, 0.5, step=0.05, key=_key("prune", "ratio"))
        method = st.selectbox("Method", [RECOMMENDED, *prune_job.method_names()], key=_key("prune", "method"))
        left, middle, right = st.columns(3)
        per_class = left.selectbox("Per-class policy", ("proportional", "balanced", "none"),
                                   key=_key("prune", "per_class"))
        seed = middle.number_input("Seed", 0, 2**31 - 1, 0, key=_key("prune", "seed"))
        score_run = right.selectbox("Score run", scored["run_id"].tolist(), key=_key("prune", "score_run"))
        issues = st.checkbox("Remove label issues first", value=True, key=_key("prune", "label_issues"))
        overwrite = st.checkbox("Replace an existing subset with this name", key=_key("prune", "overwrite"))
        if not st.form_submit_button("Start the prune"):
            return
    _start(root, "prune", {"name": name, "ratio": float(ratio), "method": None if method == RECOMMENDED else method,
                           "per_class": per_class, "seed": int(seed), "score_run": score_run,
                           "label_issues": "exclude" if issues else "keep", "overwrite": overwrite})


def _evaluate_form(root: str) -> None:
    names = data.subset_list(root)["name"].tolist()
    if not names:
        st.info("No saved subset yet: prune, or save a selection on the Explore or Review page.")
        return
    with st.form(_key("evaluate", "form")):
        subset = st.selectbox("Subset", names, key=_key("evaluate", "subset"))
        left, right = st.columns(2)
        folds = left.number_input("Folds", 2, 50, 5, key=_key("evaluate", "folds"))
        seed = right.number_input("Seed", 0, 2**31 - 1, 0, key=_key("evaluate", "seed"))
        if not st.form_submit_button("Start the evaluation"):
            return
    _start(root, "evaluate", {"subset": subset, "folds": int(folds), "seed": int(seed)})


FORMS = {"Embed": _embed_form, "Project": _project_form, "Score": _score_form, "Prune": _prune_form,
         "Evaluate": _evaluate_form}


def start_forms(root: str) -> None:
    """One form per kind of job, each with the command's parameters."""
    for tab, form in zip(st.tabs(list(FORMS)), FORMS.values(), strict=True):
        with tab:
            form(root)


def progress(job: Job) -> None:
    """A running job's progress: a bar where its stages are known, else the stages so far."""
    shown = job.progress
    if shown.fraction is not None:
        st.progress(shown.fraction, text=f"{shown.current or 'working'} · {100 * shown.fraction:.0f}%")
    elif shown.stages:
        st.caption("Stages so far: " + " → ".join(shown.stages))
    else:
        st.caption("Running; this command reports no stages, its log below shows how far it is.")


def job_card(root: str, job: Job, *, key: str = "jobs") -> None:
    """One job: status, progress, what went wrong and what to do, its log's tail, Cancel."""
    with st.container(border=True):
        head, action = st.columns([6, 1])
        head.markdown(f"**{job.kind}** · {STATUS_TEXT[job.status]} · started {job.created[:19].replace('T', ' ')} "
                      f"UTC · `{job.job_id}`")
        head.caption(f"`{job.command}`" + (f" · run {job.run_id}" if job.run_id else ""))
        if job.active and action.button("Cancel", key=f"{key}.cancel.{job.job_id}"):
            try:
                job = jobs_data.cancel(root, job.job_id)
            except StorageError as exc:  # it ended meanwhile
                st.info(md(exc))
                job = jobs_data.job(root, job.job_id)
        if job.active:
            progress(job)
        if job.problem:
            (st.info if job.status == "cancelled" else st.error)(job.problem)
        with st.expander("Log", expanded=job.active or job.status == "failed"):
            st.code("\n".join(jobs_data.log_tail(root, job.job_id, 20)) or "(nothing written yet)", language=None)


@st.fragment(run_every=REFRESH_S)
def job_list(root: str) -> None:
    """The jobs, newest first; refreshes itself every :data:`REFRESH_S` seconds."""
    listed = jobs_data.jobs(root)
    if not listed:
        st.caption("No jobs yet: start one above.")
        return
    for job in listed[:SHOWN]:
        job_card(root, job)
    if len(listed) > SHOWN:
        st.caption(f"{len(listed) - SHOWN} older jobs are not shown; their folders are in {root}/jobs.")


@st.fragment(run_every=INDICATOR_REFRESH_S)
def _live_indicator(root: str) -> None:
    n = jobs_data.running_count(root)
    if n:
        st.page_link(JOBS_PAGE, label=f"{n} job{'s' if n != 1 else ''} running", icon=":material/progress_activity:")


def running_indicator(root: str) -> None:
    """In the sidebar, while any job runs: "N jobs running", a link to the Jobs page. It refreshes
    itself until the next full rerun finds no job running."""
    if jobs_data.running_count(root):
        _live_indicator(root)
