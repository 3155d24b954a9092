"""Crash trials through the app's server process: a reviewer clicks through the queue while the
server is killed with SIGKILL at a seeded random moment. Every decision the browser acknowledged
before the kill is in the log exactly once; at most the one click in flight was committed without
its acknowledgement reaching the browser; the workspace opens and a restarted app goes on. The
counts go to ``test-artifacts/app-crash-trials.json``."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from backend.storage import Workspace, decisions
from tests.app.test_browser import REPO, _require_browser, browser_page, serving

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRIALS = 3
SEED = 7
ACK = re.compile(r"Saved as (d-[0-9a-f]+)\.")
BUTTONS = ("Keep label", "Unsure", "Drop")


def _click_until_gone(page, acknowledged: list[str]) -> None:
    """Decide on the shown sample again and again; return when the server stops answering."""
    page.get_by_text(re.compile(r"reviewed of \d+ flagged")).first.wait_for()
    last = ""
    for k in range(10_000):
        try:
            page.get_by_role("button", name=re.compile("^" + BUTTONS[k % len(BUTTONS)])).first.click(timeout=5_000)
            page.wait_for_function(
                """(last) => [...document.querySelectorAll('[data-testid="stAlert"]')].some(
                    a => a.innerText.includes('Saved as') && a.innerText !== last)""", arg=last, timeout=5_000)
        except Exception:  # noqa: BLE001 - Playwright's timeout once the server is gone
            return
        last = page.locator('[data-testid="stAlert"]').filter(has_text="Saved as").first.inner_text()
        found = ACK.search(last)
        if found:
            acknowledged.append(found.group(1))


def test_killing_the_app_server_loses_no_acknowledged_decision(noisy_workspace: Path, tmp_path: Path) -> None:
    _require_browser()
    rng = random.Random(SEED)
    results = []
    for trial in range(TRIALS):
        acknowledged: list[str] = []
        before = set(decisions.read_log(Workspace.open(noisy_workspace))["decision_id"])
        with serving(noisy_workspace, tmp_path / f"server-{trial}.log", THRESHER_AUTHOR=f"crash-{trial}") as server:
            with browser_page(f"{server.url}/review", height=1300) as page:
                page.get_by_text(re.compile(r"reviewed of \d+ flagged")).first.wait_for()
                delay = rng.uniform(1.0, 6.0)
                killer = threading.Timer(delay, os.killpg, args=(server.process.pid, signal.SIGKILL))
                killer.start()
                started = time.monotonic()
                _click_until_gone(page, acknowledged)
                killer.join()
        log = decisions.read_log(Workspace.open(noisy_workspace))  # the workspace opens
        new = [d for d in log["decision_id"] if d not in before]
        assert log["decision_id"].is_unique
        assert set(acknowledged) <= set(new), set(acknowledged) - set(new)  # nothing acknowledged is lost
        assert len(acknowledged) == len(set(acknowledged))
        assert len(new) - len(acknowledged) <= 1  # at most the click in flight at the kill
        results.append({"trial": trial, "kill_after_s": round(delay, 2), "clicked_for_s": round(
            time.monotonic() - started, 2), "acknowledged": len(acknowledged), "committed": len(new)})
    # a restarted app reads the same log and goes on
    with serving(noisy_workspace, tmp_path / "server-after.log") as server:
        with browser_page(f"{server.url}/review", height=1300) as page:
            page.get_by_text(re.compile(r"reviewed of \d+ flagged")).first.wait_for()
            n_before = len(decisions.read_log(Workspace.open(noisy_workspace)))
            page.get_by_role("button", name=re.compile("^Keep label")).first.click()
            page.get_by_text(re.compile("Saved as d-")).first.wait_for()
    assert len(decisions.read_log(Workspace.open(noisy_workspace))) == n_before + 1
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "app-crash-trials.json").write_text(json.dumps(
        {"trials": TRIALS, "passed": TRIALS, "seed": SEED, "runs": results}, indent=2))
