"""The curator's whole journey in a real Chromium (Playwright): the digits demo with 5 % of the
train labels moved to a wrong digit and a real score run; in the review queue accept a
suggestion, relabel one sample to another class, drop one, keep one (by its keyboard shortcut),
undo the last; save a 50 % prune; export it as Parquet; the file holds exactly those decisions.

Screenshots land in ``test-artifacts/journey-*.png`` and the measured time from a click to the
next sample drawn in ``test-artifacts/review-timing.json``.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from backend.storage import Workspace, decisions, subsets
from tests.app.test_browser import REPO, _require_browser, browser_page, serving

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = REPO / "test-artifacts"
SAMPLE_CAPTION = re.compile(r"^Sample (\S+) · split")
GIVEN = re.compile(r"Given label: (\S+) → suggested: (\S+)")


@pytest.fixture
def journey_url(noisy_workspace: Path, tmp_path: Path) -> Iterator[str]:
    with serving(noisy_workspace, tmp_path / "server.log", THRESHER_AUTHOR="journey-test") as server:
        yield server.url


def test_review_prune_export_journey(journey_url: str, noisy_workspace: Path, tmp_path: Path) -> None:
    _require_browser()
    from playwright import sync_api

    ARTIFACTS.mkdir(exist_ok=True)
    timings: list[float] = []
    with browser_page(f"{journey_url}/review", height=1300) as page:
        page.get_by_text(re.compile(r"^0 reviewed of \d+ flagged")).wait_for()

        def current() -> tuple[str, str, str]:
            sample = SAMPLE_CAPTION.match(page.get_by_text(SAMPLE_CAPTION).first.inner_text()).group(1)
            given, suggested = GIVEN.search(page.get_by_text(GIVEN).first.inner_text()).groups()
            return sample, given, suggested

        def decide(act) -> tuple[str, str, str]:
            """Do ``act`` on the sample shown; wait for the next one; time it."""
            shown = current()
            started = time.perf_counter()
            act()
            page.wait_for_function(
                """(before) => [...document.querySelectorAll('p')].some(
                    p => p.innerText.startsWith('Sample ') && p.innerText.includes(' · split')
                         && !p.innerText.includes(before))""", arg=shown[0])
            timings.append(time.perf_counter() - started)
            return shown

        accepted = decide(lambda: page.get_by_role("button", name=re.compile("^Accept suggestion")).click())

        def relabel() -> None:
            page.get_by_role("button", name=re.compile("^Relabel…")).click()
            page.get_by_role("combobox", name="New label").click()
            page.get_by_role("option", name=relabel_to, exact=True).click()
            page.get_by_role("button", name=re.compile(f"^Relabel to {relabel_to}")).click()

        _, given, suggested = current()
        relabel_to = next(str(d) for d in range(10) if str(d) not in (given, suggested))
        relabeled = decide(relabel)
        dropped = decide(lambda: page.get_by_role("button", name=re.compile("^Drop")).click())
        kept = decide(lambda: page.keyboard.press("k"))  # the "Keep label" shortcut
        page.get_by_role("button", name=re.compile("^Undo")).click()  # undoes the keep
        page.get_by_text(re.compile(r"^Undid keep of")).wait_for()
        assert current()[0] == kept[0]  # the undone sample is shown again
        page.get_by_text(re.compile(r"^3 reviewed of \d+ flagged")).wait_for()
        page.screenshot(path=str(ARTIFACTS / "journey-review-queue.png"))

        page.goto(f"{journey_url}/prune")
        page.get_by_label("Save the kept samples as subset").fill("half")
        page.get_by_role("button", name="Prune and save the subset").click()
        page.get_by_text(re.compile("subset 'half'", re.I)).first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "journey-prune.png"))

        out = noisy_workspace / "exports" / "half.parquet"  # the app writes into its export folder only
        page.goto(f"{journey_url}/export")
        page.get_by_role("combobox", name="Rows").click()
        page.get_by_role("option", name="half", exact=True).click()
        page.get_by_role("radiogroup", name="Format", exact=True).get_by_text("parquet").click()
        path_box = page.get_by_role("textbox", name="File name")
        sync_api.expect(path_box).to_have_value(re.compile(r"half\.parquet$"))  # redrawn for the choices
        path_box.fill(out.name)
        path_box.press("Tab")  # a form's text box hands its value over when it loses focus
        page.get_by_role("button", name="Write file").click()
        try:
            page.get_by_text(re.compile(r"^Wrote .* rows to ")).wait_for()
        finally:
            page.screenshot(path=str(ARTIFACTS / "journey-export.png"))
        page.screenshot(path=str(ARTIFACTS / "journey-export.png"))

    (ARTIFACTS / "review-timing.json").write_text(json.dumps({
        "what": "seconds from a review-queue click to the next sample drawn, in Chromium, digits demo",
        "decisions": len(timings), "seconds": [round(t, 3) for t in timings],
        "median_s": round(statistics.median(timings), 3)}, indent=2))

    ws = Workspace.open(noisy_workspace)
    log = decisions.read_log(ws)
    assert log["action"].tolist() == ["relabel", "relabel", "drop", "keep", "undo"]
    assert log["sample_id"].tolist()[:4] == [accepted[0], relabeled[0], dropped[0], kept[0]]
    assert set(log["source"]) == {"review"} and set(log["author"]) == {"journey-test"}
    assert log["new_value"].tolist()[:2] == [accepted[2], relabel_to]

    kept_ids = set(subsets.subset_ids(ws, "half"))
    exported = pd.read_parquet(out).set_index("id")
    assert set(exported.index) == kept_ids
    assert dropped[0] not in kept_ids  # decisions outrank the procedure
    expected = {sample: (label, given) for (sample, given, _), label in
                ((accepted, accepted[2]), (relabeled, relabel_to)) if sample in kept_ids}
    changed = exported[exported["decision"].notna()]
    assert set(changed.index) == set(expected)
    for sample, (label, original) in expected.items():
        assert (exported.loc[sample, "label"], exported.loc[sample, "original_label"]) == (label, original)
        assert exported.loc[sample, "decision"] == "relabeled"
    if kept[0] in kept_ids:
        assert pd.isna(exported.loc[kept[0], "decision"])  # its keep was undone
    unchanged = exported.drop(index=list(expected))
    assert (unchanged["label"] == unchanged["original_label"]).all()
    provenance = json.loads(Path(f"{out}.provenance.json").read_text())
    assert provenance["subset"]["name"] == "half" and provenance["run"]["ratio"] == 0.5
    assert provenance["run"]["n_dropped_by_decision"] == 1 and provenance["decisions"]["relabeled"] == len(expected)


def test_each_click_on_a_review_table_tick_box_toggles_it(journey_url: str) -> None:
    """QA: the table fed the session's ticks back into the editor's data, so a second click on a
    ticked box changed nothing and only the third unticked it."""
    _require_browser()
    with browser_page(f"{journey_url}/review", height=1300) as page:
        page.get_by_text(re.compile(r"^0 reviewed of \d+ flagged")).wait_for()
        page.get_by_text("Table", exact=True).first.click()
        table = page.locator('[data-testid="stDataFrame"]').first
        table.wait_for()
        table.scroll_into_view_if_needed()
        box = table.bounding_box()
        assert box is not None
        ticked = page.get_by_text(re.compile(r"^1 ticked$"))
        for click in range(4):
            page.mouse.click(box["x"] + 44, box["y"] + 36 + 26)  # the first row's tick box (row height 52)
            if click % 2 == 0:
                ticked.wait_for()
            else:
                ticked.wait_for(state="detached")
