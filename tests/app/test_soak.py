"""Concurrency soak: for ``SOAK_S`` seconds two browser sessions decide in the review queue, a
second process (the CLI's code path) tags samples and saves subsets, and score jobs write a new
run, all on one workspace. Afterwards every acknowledged decision is in the log exactly once,
nothing unacknowledged is, every subset holds exactly the ids it was saved with, and no client
saw a lock error. The counts go to ``test-artifacts/soak.json``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.storage import Workspace, decisions, subsets
from tests.app.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    UI_TIMEOUT_MS,
    _require_browser,
    serving,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SOAK_S = 60
ACK = re.compile(r"Saved as (d-[0-9a-f]+)\.|was already so")
#: Decisions and undos in turn, so the queue never runs dry.
BUTTONS = ("Keep label", "Undo", "Unsure", "Drop", "Undo")

#: The second process: tag a sample, then save a subset, until the deadline; one JSON line per
#: acknowledged write (printed after the call returned, i.e. after the commit).
WRITER = r"""
import json, sys, time
from backend.storage import Workspace, decisions, subsets
ws = Workspace.open(sys.argv[1]); deadline = time.monotonic() + float(sys.argv[2])
ids = sorted(ws.sample_ids()); k = 0
while time.monotonic() < deadline:
    result = decisions.decide(ws, "tag", [ids[k % len(ids)], ids[(7 * k + 3) % len(ids)]], tag=f"soak-{k}",
                              source="cli", author="soak-cli")
    print(json.dumps({"decisions": result.entries["decision_id"].tolist()}), flush=True)
    chosen = ids[k % 50: k % 50 + 20]
    subsets.save_subset(ws, f"soak-{k}", chosen, origin="selection")
    print(json.dumps({"subset": f"soak-{k}", "ids": chosen}), flush=True)
    k += 1
"""


def _browser_session(page, deadline: float, acknowledged: list[str], errors: list[str], turn: dict) -> int:
    """Click through the queue until ``deadline``; returns the clicks made. ``turn`` carries the
    page's click count and its last acknowledgement from one turn to the next."""
    page.get_by_text(re.compile(r"reviewed of \d+ flagged")).first.wait_for()
    clicks = turn.get("clicks", 0)
    last = turn.get("last", "")
    while time.monotonic() < deadline:
        button = page.get_by_role("button", name=re.compile("^" + BUTTONS[clicks % len(BUTTONS)]))
        if button.count() == 0:  # the queue is done
            break
        button.first.click()
        clicks += 1
        page.wait_for_function(
            """(last) => [...document.querySelectorAll('[data-testid="stAlert"]')].some(
                a => (a.innerText.includes('Saved as') || a.innerText.includes('already so')
                      || a.innerText.includes('Not saved') || a.innerText.includes('Nothing undone')
                      || a.innerText.includes('Nothing to undo') || a.innerText.includes('from before'))
                     && a.innerText !== last)""", arg=last)
        alert = page.locator('[data-testid="stAlert"]').filter(
            has_text=re.compile("Saved as|already so|Not saved|Nothing undone|Nothing to undo|from before"))
        last = alert.first.inner_text()
        found = ACK.search(last)
        if "Nothing undone" in last or "Nothing to undo" in last:  # the other session undid it first
            continue
        if "from before" in last:  # this session has nothing left to undo: Undo asks; leave it
            page.get_by_role("button", name="Keep it").click()
            page.get_by_text("from before").wait_for(state="detached")
            continue
        if "changed since this page showed it" in last:  # the other session decided it first: refused
            continue
        if "Not saved" in last or not found:
            errors.append(last)
        elif found.group(1):
            acknowledged.append(found.group(1))
    made = clicks - turn.get("clicks", 0)
    turn.update(clicks=clicks, last=last)
    return made


def test_two_browsers_a_writer_and_a_score_job_lose_and_duplicate_nothing(noisy_workspace: Path,
                                                                          tmp_path: Path) -> None:
    _require_browser()
    from playwright import sync_api

    acknowledged: list[str] = []
    errors: list[str] = []
    clicks = 0
    with serving(noisy_workspace, tmp_path / "server.log", THRESHER_AUTHOR="soak-browser") as server:
        url = server.url
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(noisy_workspace), str(SOAK_S)], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        scorer = subprocess.Popen([sys.executable, "-m", "backend.cli", "score", "-w", str(noisy_workspace)],
                                  cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + SOAK_S
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            pages = []
            for _ in range(2):  # two sessions: separate contexts share no cookies or session state
                page = browser.new_context(viewport={"width": 1400, "height": 1300}).new_page()
                page.set_default_timeout(UI_TIMEOUT_MS)
                page.goto(f"{url}/review")
                pages.append(page)
            turns = [{} for _ in pages]
            while time.monotonic() < deadline:  # one thread drives both, in turns of ~3 s
                for page, turn in zip(pages, turns, strict=True):
                    clicks += _browser_session(page, min(deadline, time.monotonic() + 3), acknowledged, errors,
                                               turn)
            browser.close()
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err[-2000:]
        score_err = scorer.communicate(timeout=600)[1]
        assert scorer.returncode == 0, score_err[-2000:]
        server_log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in server_log and "lock" not in server_log.lower(), server_log[-2000:]
    assert not errors, errors[:5]

    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    cli_decisions = [d for line in lines for d in line.get("decisions", [])]
    saved_subsets = {line["subset"]: line["ids"] for line in lines if "subset" in line}
    ws = Workspace.open(noisy_workspace)
    log = decisions.read_log(ws)
    assert log["decision_id"].is_unique and log["seq"].is_unique
    claimed = acknowledged + cli_decisions
    missing = sorted(set(claimed) - set(log["decision_id"]))
    extra = sorted(set(log["decision_id"]) - set(claimed))
    repeated = sorted({d for d in claimed if claimed.count(d) > 1})
    assert not missing and not extra and not repeated, (missing, extra, repeated)  # nothing lost, nothing extra
    for name, ids in saved_subsets.items():
        stored = subsets.subset_ids(ws, name)
        assert sorted(stored) == sorted(ids), name  # no duplicated or missing subset rows
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "soak.json").write_text(json.dumps({
        "seconds": SOAK_S, "browser_clicks": clicks, "browser_decisions_acknowledged": len(acknowledged),
        "cli_decisions_acknowledged": len(cli_decisions), "subsets_saved": len(saved_subsets),
        "decisions_in_log": len(log), "lost": 0, "duplicated": 0, "lock_errors": 0}, indent=2))
