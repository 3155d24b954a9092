"""AppTest for the Prune page: the settings, a prune through the button, and its result."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import state
from app.components.evaluate_panel import accuracy_table
from app.components.prune_panel import RECOMMENDED, n_kept
from backend.jobs import job_manager
from backend.jobs.evaluate_job import ARM_TEXT
from backend.storage import Workspace, decisions, results, runs, subsets
from tests.app.app_testkit import CLASSES, N_SAMPLES, PER_SPLIT, metric_values


def prune_page(app_on, workspace: Path) -> AppTest:
    return app_on(workspace, "views/prune.py")


def markdown_text(at: AppTest) -> str:
    return " ".join(m.value for m in at.main.markdown)


def test_prune_page_says_what_the_ratio_removes(app_on, scored_workspace: Path) -> None:
    at = prune_page(app_on, scored_workspace)
    ratio = at.slider(key=state.PRUNE_RATIO)
    assert ratio.label == "Fraction REMOVED" and ratio.value == 0.5
    assert f"Keeps **{N_SAMPLES // 2}** of {N_SAMPLES} samples" in markdown_text(at)
    method = at.selectbox(key=state.PRUNE_METHOD)
    assert method.value == RECOMMENDED
    assert {"random", "ccs", "keep_hard", "sims"} <= set(method.options)
    assert "recommended for this ratio: sims:ensemble" in method.format_func(RECOMMENDED)
    assert any("Grosz et al. 2024" in c.value for c in at.main.caption)

    ratio.set_value(0.3).run()
    assert f"Keeps **{round(0.7 * N_SAMPLES)}** of {N_SAMPLES}" in markdown_text(at)
    at.selectbox(key=state.PRUNE_SPLIT).set_value("train").run()
    n_train = PER_SPLIT["train"] * len(CLASSES)
    assert f"Keeps **{n_kept(n_train, 0.3)}** of {n_train}" in markdown_text(at)
    at.selectbox(key=state.PRUNE_METHOD).set_value("ccs").run()
    assert at.selectbox(key=f"{state.PRUNE_SCORE}.ccs").value == "aum"  # the method's default
    assert any("Zheng et al. 2023" in c.value for c in at.main.caption)


@pytest.mark.parametrize(
    ("ratio", "method", "score", "split"),
    [(0.3, RECOMMENDED, None, None), (0.5, "keep_hard", "el2n", "train")],
)
def test_the_button_prunes_into_a_subset(
    app_on,
    writable_scored_workspace: Path,
    ratio: float,
    method: str,
    score: str | None,
    split: str | None,
) -> None:
    at = prune_page(app_on, writable_scored_workspace)
    at.slider(key=state.PRUNE_RATIO).set_value(ratio)
    at.selectbox(key=state.PRUNE_METHOD).set_value(method).run()
    if score:
        at.selectbox(key=f"{state.PRUNE_SCORE}.{method}").set_value(score)
    if split:
        at.selectbox(key=state.PRUNE_SPLIT).set_value(split)
    at.text_input(key=state.PRUNE_SUBSET_NAME).input("kept")
    at.button(key="prune.run").click().run()
    assert not at.exception
    assert "Saved subset 'kept'" in at.success[0].value

    ws = Workspace.open(writable_scored_workspace)
    kept_ids = subsets.subset_ids(ws, "kept")
    pool = ws.samples(columns=["id", "label", "split"])
    if split:
        pool = pool[pool["split"] == split]
    assert len(kept_ids) == round((1 - ratio) * len(pool))
    kept = pool[pool["id"].isin(kept_ids)]
    assert len(kept) == len(kept_ids)  # only samples of the chosen split
    # the score run's flagged label issues went first (fewer than the ratio removes here)
    verdict = results.read_label_issues(ws, runs.latest_run(ws, "score")["run_id"])
    flagged = set(verdict.loc[verdict["is_label_issue"], "id"]) & set(pool["id"])
    assert 0 < len(flagged) < len(pool) - len(kept_ids) and not flagged & set(kept_ids)
    # proportional: every class keeps the same share of its unflagged samples (±1 for rounding);
    # which samples are flagged varies with the fixture's path-hash ids, so this is exact either way
    candidates = pool[~pool["id"].isin(flagged)]["label"].value_counts()
    per_class = kept["label"].value_counts().reindex(candidates.index, fill_value=0)
    share = len(kept_ids) / candidates.sum()
    assert ((per_class - share * candidates).abs() <= 1).all(), (per_class.to_dict(), candidates.to_dict())
    assert runs.latest_run(ws, "prune")["config"]["label_issues"] == "exclude"
    assert metric_values(at) == {
        "Kept": f"{len(kept_ids)}",
        "Removed": f"{len(pool) - len(kept_ids)}",
        "Kept share": f"{100 * len(kept_ids) / len(pool):.1f}%",
        "Label issues removed first": f"{len(flagged)}",
    }
    assert len(at.get("plotly_chart")) == 2  # per-class bars, score histogram
    expected_score = score or "sim"
    assert at.selectbox(key=state.PRUNE_HISTOGRAM_SCORE).value == expected_score
    assert len(at.dataframe[0].value) == 1  # the prune run


def test_flagged_label_issues_can_be_left_to_the_method(app_on, writable_scored_workspace: Path) -> None:
    """Ticked (the default), no flagged sample is kept; unticked, the method sees them like any other."""
    ws = Workspace.open(writable_scored_workspace)
    verdict = results.read_label_issues(ws, runs.latest_run(ws, "score")["run_id"])
    flagged = set(verdict.loc[verdict["is_label_issue"], "id"])
    at = prune_page(app_on, writable_scored_workspace)
    assert at.checkbox(key=state.PRUNE_LABEL_ISSUES).value is True  # on by default
    at.selectbox(key=state.PRUNE_METHOD).set_value("random").run()
    at.slider(key=state.PRUNE_RATIO).set_value(0.2)  # keeps 29 of 36: random keeps some of the 6 flagged
    for name, tick in (("without", True), ("with", False)):
        at.checkbox(key=state.PRUNE_LABEL_ISSUES).set_value(tick)
        at.text_input(key=state.PRUNE_SUBSET_NAME).input(name)
        at.button(key="prune.run").click().run()
        assert not at.exception and f"Saved subset '{name}'" in at.success[0].value
        assert runs.latest_run(ws, "prune")["config"]["label_issues"] == ("exclude" if tick else "keep")
    assert not flagged & set(subsets.subset_ids(ws, "without"))
    assert flagged & set(subsets.subset_ids(ws, "with"))  # all 6 left out by chance: p = 4e-6
    assert metric_values(at)["Label issues removed first"] == "off"


def decided_prune_page(app_on, workspace: Path, *, kept: slice, dropped: slice) -> tuple[AppTest, Workspace]:
    """The Prune page after keep decisions on the ``kept`` and drop decisions on the ``dropped``
    samples (sorted ids)."""
    ws = Workspace.open(workspace)
    ids = sorted(ws.sample_ids())
    decisions.decide(ws, "keep", ids[kept])
    decisions.decide(ws, "drop", ids[dropped])
    return prune_page(app_on, workspace), ws


def test_the_result_says_what_decisions_did(app_on, writable_scored_workspace: Path) -> None:
    at, ws = decided_prune_page(app_on, writable_scored_workspace, kept=slice(0, 3), dropped=slice(3, 5))
    at.text_input(key=state.PRUNE_SUBSET_NAME).input("decided")
    at.button(key="prune.run").click().run()
    assert not at.exception and "Saved subset 'decided'" in at.success[0].value
    assert any("3 samples pinned by keep decisions" in c.value and "2 dropped by decisions" in c.value
               for c in at.main.caption)
    kept, ids = set(subsets.subset_ids(ws, "decided")), sorted(ws.sample_ids())
    assert set(ids[:3]) <= kept and not kept & set(ids[3:5]) and len(kept) == N_SAMPLES // 2


def test_an_existing_name_needs_the_replace_box(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    first_ids = sorted(ws.sample_ids())[:3]
    subsets.save_subset(ws, "pruned", first_ids)
    at = prune_page(app_on, writable_scored_workspace)
    at.button(key="prune.run").click().run()
    assert "exists" in at.error[0].value and "Nothing was saved" in at.error[0].value
    assert sorted(subsets.subset_ids(ws, "pruned")) == first_ids

    at.checkbox(key=state.PRUNE_OVERWRITE).check()
    at.button(key="prune.run").click().run()
    assert not at.exception
    assert len(subsets.subset_ids(ws, "pruned")) == N_SAMPLES // 2


def test_a_backend_refusal_is_shown(app_on, writable_scored_workspace: Path) -> None:
    at = prune_page(app_on, writable_scored_workspace)
    at.selectbox(key=state.PRUNE_POLICY).set_value("minimum per class").run()
    at.number_input(key=state.PRUNE_MIN_PER_CLASS).set_value(12)  # 36 needed, budget 18
    at.button(key="prune.run").click().run()
    assert not at.exception
    assert "Nothing was saved" in at.error[0].value and "minimum" in at.error[0].value


def test_n_kept_matches_the_budget_rule() -> None:
    assert n_kept(36, 0.3) == 25
    assert n_kept(10, 0.95) == 1  # at least one
    assert n_kept(0, 0.5) == 0


def test_procedure_parameters_reach_the_prune(app_on, writable_scored_workspace: Path) -> None:
    at = prune_page(app_on, writable_scored_workspace)
    at.selectbox(key=state.PRUNE_METHOD).set_value("d2").run()
    gamma = at.number_input(key=f"{state.PRUNE_OPTION}.d2.gamma_reverse")
    assert gamma.value == 1.0  # the procedure's documented default
    gamma.set_value(20.0)
    at.number_input(key=f"{state.PRUNE_OPTION}.d2.k").set_value(5)
    at.text_input(key=state.PRUNE_SUBSET_NAME).input("tuned")
    at.button(key="prune.run").click().run()
    assert not at.exception and "Saved subset 'tuned'" in at.success[0].value
    ws = Workspace.open(writable_scored_workspace)
    assert runs.latest_run(ws, "prune")["config"]["options"] == {"d2": {"gamma_reverse": 20.0, "k": 5}}
    at.selectbox(key=state.PRUNE_METHOD).set_value("random").run()
    assert not [n for n in at.number_input if str(n.key).startswith(state.PRUNE_OPTION)]


def wait_for_jobs(workspace: Path, timeout_s: float = 120) -> None:
    """Until no job of the workspace runs (the evaluation runs as a job in its own process)."""
    ws = Workspace.open(workspace)
    deadline = time.monotonic() + timeout_s
    while any(job.active for job in job_manager.list_jobs(ws)):
        assert time.monotonic() < deadline, [job.status for job in job_manager.list_jobs(ws)]
        time.sleep(0.1)


def test_evaluate_a_subset_from_the_page(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    samples = ws.samples(columns=["id", "label"]).sort_values("id")
    half = samples.groupby("label").head(PER_SPLIT["train"])["id"].tolist()  # 8 of 12 per class
    subsets.save_subset(ws, "two_thirds", half)
    subsets.save_subset(ws, "one", half[:1])
    at = prune_page(app_on, writable_scored_workspace)
    assert at.selectbox(key=state.PRUNE_EVAL_SUBSET).value == "one"  # the newest
    assert any("has not been evaluated yet" in c.value for c in at.main.caption)

    at.button(key="prune.evaluate").click().run()
    assert not at.exception  # the click returns at once: the evaluation is a job
    [job] = job_manager.list_jobs(ws, "evaluate")
    assert job.params == {"subset": "one"}
    assert any(f"Evaluating subset 'one' as job {job.job_id}" in c.value for c in at.main.caption)
    assert "prune.evaluate" not in [button.key for button in at.button]  # no second one while it runs
    at.switch_page("views/jobs.py").run()
    assert any(f"`{job.job_id}`" in m.value and "**evaluate**" in m.value for m in at.main.markdown)
    wait_for_jobs(writable_scored_workspace)
    at.switch_page("views/prune.py").run()
    assert not at.exception
    assert "did not run" in at.error[0].value and "no kept sample" in at.error[0].value
    assert runs.list_runs(ws, "evaluate").empty  # refused before a run was recorded

    at.selectbox(key=state.PRUNE_EVAL_SUBSET).set_value("two_thirds").run()
    assert not at.error  # the failure was the other subset's
    at.button(key="prune.evaluate").click().run()
    wait_for_jobs(writable_scored_workspace)
    at.run()
    assert not at.exception and not at.error
    run = runs.latest_run(ws, "evaluate")
    assert run["summary"]["subset"] == "two_thirds" and run["summary"]["n_kept"] == len(half)
    shown = at.table[0].value  # bug 7: as metrics in a row, "88.17% ± 2.31" was cut off
    for arm, text in ARM_TEXT.items():
        accuracy, spread = run["summary"]["accuracy"][arm], run["summary"]["accuracy_std"][arm]
        assert shown.loc[text, "Held-out accuracy"] == f"{accuracy:.2f}% ± {spread:.2f}"
    assert not at.metric
    assert any(run["run_id"] in c.value for c in at.main.caption)
    assert "Distillation on this subset" in markdown_text(at)
    assert len(at.get("plotly_chart")) == 1  # recall by class
    assert not at.warning

    subsets.save_subset(ws, "two_thirds", half[:-1], overwrite=True)  # e.g. a prune that replaced it
    at.run()
    assert "was saved again after this evaluation" in at.warning[0].value


def test_after_a_prune_the_evaluation_offers_the_new_subset(app_on, writable_scored_workspace: Path) -> None:
    """Bug 2: the picker kept the subset that was newest when the page loaded."""
    ws = Workspace.open(writable_scored_workspace)
    subsets.save_subset(ws, "two", sorted(ws.sample_ids())[:2])
    at = prune_page(app_on, writable_scored_workspace)
    assert at.selectbox(key=state.PRUNE_EVAL_SUBSET).value == "two"
    at.text_input(key=state.PRUNE_SUBSET_NAME).input("kept")
    at.button(key="prune.run").click().run()
    assert not at.exception
    assert at.selectbox(key=state.PRUNE_EVAL_SUBSET).value == "kept"
    at.selectbox(key=state.PRUNE_EVAL_SUBSET).set_value("two").run()
    assert at.selectbox(key=state.PRUNE_EVAL_SUBSET).value == "two"  # the user's pick holds after that
    at.text_input(key=state.PRUNE_SUBSET_NAME).input("kept again")
    at.button(key="prune.run").click().run()
    assert at.selectbox(key=state.PRUNE_EVAL_SUBSET).value == "kept again"


def test_evaluation_figures_are_whole_in_a_table() -> None:
    """Bug 7: every figure is in full ("88.17% ± 2.35", not "88.17% ± 2…")."""
    accuracy = {"full": 90.0, "subset": 88.1666, "subset_kd": 89.0, "random": 85.5, "random_kd": 86.25}
    table = accuracy_table({"accuracy": accuracy, "accuracy_std": dict.fromkeys(accuracy, 2.345)})
    assert table["Held-out accuracy"].tolist() == ["90.00% ± 2.35", "88.17% ± 2.35", "89.00% ± 2.35",
                                                   "85.50% ± 2.35", "86.25% ± 2.35"]
    assert table["vs all samples"].tolist() == ["", "-1.83 points", "-1.00 points", "-4.50 points", "-3.75 points"]
    assert table.index.tolist() == list(ARM_TEXT.values())


def test_the_preview_counts_decisions_as_the_prune_does(app_on, writable_scored_workspace: Path) -> None:
    """QA: at ratio 0 the preview said "Keeps 1,797 of 1,797" and the prune kept 1,795 (2 dropped)."""
    from backend.jobs.prune_job import kept_after_decisions, prune

    at, ws = decided_prune_page(app_on, writable_scored_workspace, kept=slice(3, 5), dropped=slice(0, 3))
    at.slider(key=state.PRUNE_RATIO).set_value(0.0).run()
    text = markdown_text(at)
    assert f"Keeps **{N_SAMPLES - 3}** of {N_SAMPLES} samples (removes 3); 3 dropped by decisions, 2 kept" in text
    done = prune(ws, name="all-but-dropped", ratio=0.0, method="random", label_issues="keep")
    assert done.n_kept == N_SAMPLES - 3
    # the rule in counts is decided_pool's: the target, at most the undropped, never fewer than the pinned
    assert kept_after_decisions(10, 0.5, 0, 0) == 5 and kept_after_decisions(10, 0.2, 3, 0) == 7
    assert kept_after_decisions(10, 0.9, 0, 4) == 4 and kept_after_decisions(0, 0.5, 0, 0) == 0


def test_kept_after_decisions_is_decided_pools_rule() -> None:
    import numpy as np

    from backend.jobs.prune_job import kept_after_decisions
    from backend.scoring.pruning.exclusions import decided_pool

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 60))
        ratio = float(rng.choice(np.arange(0, 1, 0.05)))
        state = rng.choice(3, size=n, p=rng.dirichlet(np.ones(3)))  # 0 free, 1 dropped, 2 pinned
        if (state == 1).all():
            continue
        pool = decided_pool(n, ratio, dropped=state == 1, pinned=state == 2)
        assert kept_after_decisions(n, ratio, int((state == 1).sum()), int((state == 2).sum())) == \
            pool.n_free_keep + pool.pinned.size
