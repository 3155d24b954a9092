"""User text in markdown renders literally: links, emphasis and LaTeX do not form."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from app.components.markdown_text import md
from backend.storage import Workspace, schemas


def test_markdown_specials_are_escaped() -> None:
    assert md("[x](http://a.b)") == r"\[x\]\(http\:\/\/a\.b\)".replace(r"\/", "/")
    assert md("**bold** $x$ _i_") == r"\*\*bold\*\* \$x\$ \_i\_"
    assert md("cat") == "cat" and md(7) == "7"


def test_a_link_label_is_text_in_the_review_queue(app_on, writable_scored_workspace: Path) -> None:
    ws = Workspace.open(writable_scored_workspace)
    first = ws.samples().sort_values("id").iloc[0].to_dict()
    rows = ws.samples()
    rows = rows.assign(label=rows["label"].replace({first["label"]: "[evil](http://x.test)"}))
    ws.upsert_samples(pa.Table.from_pandas(rows, schema=schemas.SAMPLES.schema, preserve_index=False))
    at = app_on(writable_scored_workspace, "views/review.py")
    texts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert not any("[evil](http://x.test)" in t for t in texts)
