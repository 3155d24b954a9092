"""SIGTERM and Ctrl-C (SIGINT) end a ``thresher`` command cleanly: one ``interrupted:`` line, no
traceback, exit code 128 + the signal, and its run marked failed with no rows left behind.

The command is ``project --method umap``: its run is recorded before UMAP is imported and
compiled, so it is ``running`` for seconds, long enough to stop it mid-run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from backend.storage import Workspace, runs
from tests.conftest import default_sigint
from tests.storage.test_workspace import sample_rows


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace.open(tmp_path_factory.mktemp("interrupt") / "ws", create=True)
    ws.upsert_samples(sample_rows(30))
    vectors = np.random.default_rng(0).normal(size=(30, 8))
    ws.append_embeddings("pixels-8", [f"s{i}" for i in range(30)], vectors / np.linalg.norm(vectors, axis=1,
                         keepdims=True), np.ones(30))
    return ws


@pytest.mark.parametrize(("sig", "what"), [(signal.SIGTERM, "terminated (SIGTERM)"), (signal.SIGINT, "stopped (Ctrl-C)")])
def test_a_signal_ends_the_command_cleanly(embedded: Workspace, sig: signal.Signals, what: str) -> None:
    before = set(runs.list_runs(embedded)["run_id"]) if embedded.has_table("runs") else set()
    child = subprocess.Popen([sys.executable, "-m", "backend.cli", "project", "-w", str(embedded.root), "--method",
                              "umap", "--embedding", "pixels-8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while not (set(runs.live_runs(embedded)) - before):
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    child.send_signal(sig)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 128 + sig, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(f"interrupted: {what}"), err
    (run_id,) = set(runs.list_runs(embedded)["run_id"]) - before
    stored = runs.get_run(embedded, run_id, as_stored=True)
    assert stored["status"] == "failed" and stored["error"].startswith("interrupted")
    assert embedded.read("projections", where=f"run_id = '{run_id}'").empty
