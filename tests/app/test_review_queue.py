"""AppTest for the Review page's queue: one flagged sample at a time, the seven buttons, progress,
undo, the class picker and the bulk accept; unit tests of the queue's functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from app import state
from app.components.decision_actions import QUEUE_BUTTONS
from backend.jobs import review_queue
from backend.storage import Workspace, decisions, results, runs
from tests.app.app_testkit import N_FLAGGED


def queue_page(app_on, workspace: Path) -> AppTest:
    return app_on(workspace, "views/review.py")


def flagged_order(workspace: Path) -> pd.DataFrame:
    ws = Workspace.open(workspace)
    run_id = runs.latest_run(ws, "score")["run_id"]
    verdict = results.read_label_issues(ws, run_id)
    flagged = verdict[verdict["is_label_issue"]].sort_values(["label_issue_score", "id"], ascending=[False, True])
    return flagged.merge(ws.samples(columns=["id", "label"]), on="id")


def shown_id(at: AppTest) -> str:
    caption = next(c.value for c in at.caption if c.value.startswith("Sample "))
    return caption.split()[1]


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception
    return at


def test_queue_shows_the_most_suspicious_sample_with_every_button(app_on, scored_workspace: Path) -> None:
    at = queue_page(app_on, scored_workspace)
    order = flagged_order(scored_workspace)
    assert shown_id(at) == order["id"].iloc[0]
    labels = [b.label for b in at.button]
    for label, shortcut in QUEUE_BUTTONS:
        assert label in labels
        assert next(b for b in at.button if b.label == label).proto.shortcut.lower() == shortcut.lower()
    assert f"0 reviewed of {N_FLAGGED} flagged" in at.caption[0].value
    texts = " ".join(m.value for m in at.markdown)
    first = order.iloc[0]
    assert f"Given label: **{first['label']}** → suggested: **{first['suggested_label']}**" in texts
    assert "Nearest with the given label" in texts and "Nearest with the suggested label" in texts


def test_each_decision_is_committed_then_the_next_sample_shows(app_on, writable_scored_workspace: Path) -> None:
    at = queue_page(app_on, writable_scored_workspace)
    order = flagged_order(writable_scored_workspace)["id"].tolist()
    click(at, "Accept suggestion")
    assert "Saved" in at.success[0].value
    assert shown_id(at) == order[1]
    click(at, "Keep label")
    click(at, "Drop")
    click(at, "Skip")  # no decision
    assert shown_id(at) == order[4]
    click(at, "Unsure")
    ws = Workspace.open(writable_scored_workspace)
    log = decisions.read_log(ws)
    assert log["action"].tolist() == ["relabel", "keep", "drop", "unsure"]
    assert log["sample_id"].tolist() == [order[0], order[1], order[2], order[4]]
    assert set(log["source"]) == {"review"} and log["score_run"].notna().all()
    assert f"4 reviewed of {N_FLAGGED} flagged" in at.caption[0].value
    # relabel + drop changed, keep did not; unsure is no verdict: 2 of 3 decided
    assert "67%" in at.caption[0].value

    click(at, "Undo")  # the unsure of order[4]: it comes back first
    assert shown_id(at) == order[4]
    log = decisions.read_log(ws)
    assert log["action"].iloc[-1] == "undo" and log["new_value"].iloc[-1] == log["decision_id"].iloc[-2]
    assert decisions.decided_states(ws).set_index("id").loc[order[4], "decision"] is None


def test_undo_in_a_new_session_asks_before_reversing_an_earlier_decision(app_on, writable_scored_workspace: Path
                                                                         ) -> None:
    """QA: in a new session (after a reload) each Undo press reversed the author's older
    decisions, one per key press, without a word. Now the first press names the decision and
    asks; "Keep it" leaves it, "Undo it" reverses it."""
    ws = Workspace.open(writable_scored_workspace)
    order = flagged_order(writable_scored_workspace)["id"].tolist()
    decisions.decide(ws, "drop", [order[0]], source="review")  # made in an earlier session
    at = queue_page(app_on, writable_scored_workspace)
    click(at, "Undo")
    assert len(decisions.read_log(ws)) == 1  # nothing undone yet
    (question,) = [w.value for w in at.warning if "Undo your last one from before" in w.value]
    assert "**drop** of" in question
    click(at, "Keep it")
    assert not [w for w in at.warning if "Undo your last one" in w.value] and len(decisions.read_log(ws)) == 1
    click(at, "Undo")
    click(at, "Undo it")
    log = decisions.read_log(ws)
    assert log["action"].tolist() == ["drop", "undo"] and log["new_value"].iloc[-1] == log["decision_id"].iloc[0]
    assert any("Undid drop" in s.value for s in at.success)
    click(at, "Undo")  # nothing left of this author's
    assert any("Nothing to undo" in e.value for e in at.error)


def test_a_second_tab_cannot_replace_a_decision_it_did_not_see(app_on, writable_scored_workspace: Path) -> None:
    """QA: tabs A and B showed the same sample; A kept it, B then dropped it, and A's keep was
    replaced without a word. B's click is now refused and says what the sample is now."""
    first = flagged_order(writable_scored_workspace)["id"].iloc[0]
    tab_a, tab_b = queue_page(app_on, writable_scored_workspace), queue_page(app_on, writable_scored_workspace)
    assert shown_id(tab_a) == shown_id(tab_b) == first
    click(tab_a, "Keep label")
    click(tab_b, "Drop")
    (error,) = tab_b.error
    assert "changed since this page showed it" in error.value and "kept" in error.value
    log = decisions.read_log(Workspace.open(writable_scored_workspace))
    assert log["action"].tolist() == ["keep"] and log["sample_id"].tolist() == [first]


def test_relabel_picks_a_class(app_on, writable_scored_workspace: Path) -> None:
    at = queue_page(app_on, writable_scored_workspace)
    first = flagged_order(writable_scored_workspace).iloc[0]
    click(at, "Relabel…")
    picker = at.selectbox(key=f"q.relabel_to.{first['id']}")
    other = next(c for c in picker.options if c not in (first["label"], first["suggested_label"]))
    picker.set_value(other).run()
    click(at, f"Relabel to {other}")
    state_now = decisions.decided_states(Workspace.open(writable_scored_workspace)).set_index("id")
    assert state_now.loc[first["id"], "current_label"] == other


def test_bulk_accept_needs_a_confirmation(app_on, writable_scored_workspace: Path) -> None:
    at = queue_page(app_on, writable_scored_workspace)
    at.number_input(key=state.REVIEW_BULK_K).set_value(3).run()
    click(at, "Accept the top 3 suggestions…")
    ws = Workspace.open(writable_scored_workspace)
    assert decisions.read_log(ws).empty  # nothing before the confirmation
    click(at, "Confirm")
    log = decisions.read_log(ws)
    assert len(log) == 3 and set(log["source"]) == {"bulk"}
    assert sorted(log["sample_id"]) == sorted(flagged_order(writable_scored_workspace)["id"].iloc[:3])


def frame(decisions_: list[str | None]) -> pd.DataFrame:
    n = len(decisions_)
    return pd.DataFrame({"id": [f"s{k}" for k in range(n)], "label_issue_score": np.linspace(1, 0.5, n),
                         "decision": decisions_})


def test_progress_counts_and_expected_errors() -> None:
    progress = review_queue.progress(frame(["relabeled", "kept", "dropped", "unsure", None, None, None, None]))
    assert (progress.flagged, progress.reviewed, progress.decided, progress.changed) == (8, 4, 3, 2)
    assert progress.precision == 2 / 3 and progress.remaining == 4
    assert abs(progress.expected_errors - 8 / 3) < 1e-12
    assert review_queue.progress(frame([None, None])).precision is None
    # QA: a relabel back to the given label confirms it; it is not a changed flag
    back = frame(["relabeled", "relabeled", None]).assign(label=["3", "3", "5"], current_label=["3", "8", "5"])
    restored = review_queue.progress(back)
    assert (restored.decided, restored.changed) == (2, 1)


def test_queue_order_skips_and_focus() -> None:
    flagged = frame(["kept", None, None, None])
    assert review_queue.queue(flagged)["id"].tolist() == ["s1", "s2", "s3"]
    assert review_queue.queue(flagged, skipped={"s1"})["id"].tolist() == ["s2", "s3"]
    assert review_queue.queue(flagged, first="s3")["id"].tolist() == ["s3", "s1", "s2"]
    assert review_queue.queue(flagged, first="s0")["id"].tolist() == ["s1", "s2", "s3"]  # decided: not back


def test_nearest_matches_a_brute_force_reference() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    candidates = np.arange(0, 50, 2)
    rows, sims = review_queue.nearest(vectors, 4, candidates, 5)
    reference = sorted((c for c in candidates if c != 4), key=lambda c: -vectors[c] @ vectors[4])[:5]
    assert rows.tolist() == reference and np.all(np.diff(sims) <= 0)
