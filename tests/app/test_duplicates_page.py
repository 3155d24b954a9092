"""AppTest for the Duplicates page: an exact copy is grouped with its original, and keeping one
writes a drop decision for the other."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from backend.storage import Workspace, decisions, schemas


def add_copy(root: Path) -> tuple[str, str]:
    """A second sample with the same file content as the first: (original id, copy id)."""
    ws = Workspace.open(root)
    original = ws.samples().sort_values("id").iloc[0].to_dict()
    copy = dict(original, id="zz-copy-of-first")
    ws.upsert_samples(pa.Table.from_pylist([copy], schema=schemas.SAMPLES.schema))
    return original["id"], copy["id"]


def test_exact_copies_are_grouped_and_one_is_dropped(app_on, writable_workspace: Path) -> None:
    original, copy = add_copy(writable_workspace)
    at = app_on(writable_workspace, "views/duplicates.py")
    assert at.title[0].value == "Duplicates"
    assert any("1 group (1 unresolved)" in c.value for c in at.caption)
    radio = at.radio[0]
    assert sorted(radio.options) == sorted([original, copy])
    radio.set_value(original).run()
    next(b for b in at.button if b.label == "Keep it, drop the others").click().run()
    assert not at.exception, at.exception
    assert "dropped 1 duplicate" in at.success[0].value
    log = decisions.read_log(Workspace.open(writable_workspace))
    assert log[["sample_id", "action", "source"]].values.tolist() == [[copy, "drop", "duplicates"]]
    assert "Nothing left to resolve" in at.success[-1].value or any(
        "0 unresolved" in c.value for c in at.caption)


def test_no_duplicates_says_so(app_on, app_workspace: Path) -> None:
    at = app_on(app_workspace, "views/duplicates.py")
    assert "No duplicates at cosine" in at.info[0].value
    # the rule chosen on the data is a threshold or a pair set apart; the page names both
    assert "or set apart from the rest" in at.info[0].value
    assert any(c.value.startswith("Chosen on the data: cosine ≥") for c in at.caption)


def test_a_resolved_group_offers_its_kept_member_and_keeping_a_dropped_one_restores_it(
        app_on, writable_workspace: Path) -> None:
    """Keep the original (the copy is dropped), show resolved groups: the radio offers the original,
    not the dropped copy. Choosing the copy then keeps it again and drops the original."""
    original, copy = add_copy(writable_workspace)
    at = app_on(writable_workspace, "views/duplicates.py")
    at.radio[0].set_value(original).run()
    next(b for b in at.button if b.label == "Keep it, drop the others").click().run()
    at.toggle(key="dup.hide").set_value(False).run()
    assert at.radio[0].value == original
    assert any(f"resolved: keeps {original}" in m.value for m in at.markdown)
    at.radio[0].set_value(copy).run()
    next(b for b in at.button if b.label == "Keep it, drop the others").click().run()
    assert not at.exception, at.exception
    assert "it was dropped: now kept" in at.success[0].value
    state = decisions.decided_states(Workspace.open(writable_workspace)).set_index("id")["decision"]
    assert state[copy] == "kept" and state[original] == "dropped"


def test_a_chained_near_group_has_no_keep_button(app_on, app_workspace: Path, monkeypatch) -> None:
    """A manual threshold low enough chains samples of a class into one group: above
    MAX_NEAR_GROUP members it is drawn in part, with a warning and no one-click resolve."""
    from app.components import duplicates_panel

    monkeypatch.setattr(duplicates_panel, "MAX_NEAR_GROUP", 3)
    monkeypatch.setattr(duplicates_panel, "MAX_THUMBNAILS", 2)
    at = app_on(app_workspace, "views/duplicates.py")
    (rule,) = [c.value for c in at.caption if c.value.startswith("Chosen on the data: cosine ≥ ")]
    chosen = float(rule.removeprefix("Chosen on the data: cosine ≥ ").split(",")[0])
    at.toggle(key="dup.auto").set_value(False).run()
    assert at.slider(key="dup.threshold").value == pytest.approx(chosen, abs=1e-4)  # starts where the data rule is
    at.slider(key="dup.threshold").set_value(0.80).run()
    assert not at.exception, at.exception
    assert any("chains of similar pairs" in w.value for w in at.warning)
    assert any(c.value.startswith("The first 2 of") for c in at.caption)
    headers = [m.value for m in at.markdown if " · near duplicates · " in m.value]
    big = [h for h in headers if int(h.split(" · ")[2].split()[0].replace(",", "")) > 3]
    assert big and len(at.radio) == len(headers) - len(big)  # one radio per group small enough to resolve


def groups_script(set_apart_under, kept: tuple[str, ...] = ()) -> None:
    import pandas as pd

    from app.components import duplicates_panel

    groups = pd.DataFrame({"group": ["near-a", "near-a"], "kind": ["near", "near"], "id": ["a", "b"],
                           "label": ["1", "1"], "split": ["test", "train"], "path": [None, None],
                           "similarity": [1.0, 0.9949]})
    states = pd.DataFrame({"id": pd.Series(list(kept), dtype=object),
                           "decision": pd.Series(["kept"] * len(kept), dtype=object)})
    duplicates_panel.groups_view("/nonexistent", groups, states, set_apart_under=set_apart_under)


def test_a_group_joined_under_the_threshold_says_it_is_set_apart() -> None:
    """The data rule joins a pair below its threshold when it is set apart from the rest; the
    group's "sim 0.995" beside "cosine ≥ 0.9983" needs that said."""
    from streamlit.testing.v1 import AppTest

    for under, expected in ((0.9983, True), (None, False), (0.99, False)):
        at = AppTest.from_function(groups_script, kwargs={"set_apart_under": under}).run()
        assert not at.exception, at.exception
        header = next(m.value for m in at.markdown if m.value.startswith("**near-a**"))
        assert ("set apart from the rest (cosine under 0.9983)" in header) is expected, header


def test_a_group_across_splits_offers_to_keep_its_train_member() -> None:
    """Near-a holds a (test, listed first) and b (train): the default Keep is b, so one click
    drops the leaked test copy."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(groups_script, kwargs={"set_apart_under": None}).run()
    assert not at.exception, at.exception
    assert at.radio[0].options == ["a", "b"] and at.radio[0].value == "b"


def test_a_member_a_keep_decision_holds_is_the_default_and_says_so() -> None:
    """QA: a hand-kept member (test a) was dropped by one click on another member's Keep, and the
    group card never showed its decision."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(groups_script, kwargs={"set_apart_under": None, "kept": ("a",)}).run()
    assert not at.exception, at.exception
    assert at.radio[0].value == "a"  # before the train member: a curator kept it
    assert any("sim 1.000 kept" in c.value and "`a`" in c.value for c in at.caption)
