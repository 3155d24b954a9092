"""AppTest for the Duplicates page: an exact copy is grouped with its original, and keeping one
writes a drop decision for the other."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

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
    assert any("1 groups (1 unresolved)" in c.value for c in at.caption)
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
