"""Crash trials: SIGKILL at seeded random points of ingest, embed, score, prune and of decisions
being written (through ``backend.storage.decisions`` and through ``thresher decide``).

After every kill: the workspace opens and every table reads; no run reads as running and no
reader sees a row of an unfinished run (a score run's scores, label issues and collapse metrics
are whole or refused); a subset is whole or absent; every decision acknowledged before the kill
(printed by the child, flushed, after ``decide()`` returned) is in the log exactly once, and a
multi-sample decision is all there or not at all; then the same command, rerun, completes.

The children run ``backend.cli.main(argv)`` (what the ``thresher`` script runs) or the decisions
loop in processes forked from a ``forkserver`` that has imported the backend once, so a trial
costs its work, not 2-5 s of imports. Counts go to ``test-artifacts/crash-trials.json``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.storage import (
    ConflictError,
    NotFoundError,
    Workspace,
    decisions,
    results,
    runs,
    subsets,
)
from tests.conftest import write_png

pytestmark = pytest.mark.slow
SEED = 15
TRIALS = int(os.environ.get("THRESHER_CRASH_TRIALS", "5"))
N_IMAGES = 48
CLASSES = ("a", "b", "c", "d")
SCORERS = "el2n,aum,forgetting"
REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "test-artifacts" / "crash-trials.json"
PRELOAD = ["backend.cli", "backend.commands", "backend.decide_cli", "backend.jobs.ingest_job",
           "backend.jobs.embed_job", "backend.jobs.score_job", "backend.jobs.prune_job", __name__]
# The forkserver imports lance and lancedb but never opens a table, so there is no runtime state
# for a fork to copy mid-operation; their generic fork warnings are silenced in it.
warnings.filterwarnings("ignore", message="lance is not fork-safe")
warnings.filterwarnings("ignore", message="lancedb fork support is experimental")
_ACK = re.compile(r"^\s*(d-[0-9a-f]{16})\b")
TALLY: dict[str, dict[str, int]] = {}


# ----------------------------------------------------------------------------- children
def _child_stdout(path: str) -> None:
    sys.stdout = open(path, "w", buffering=1)  # noqa: SIM115 - line-buffered: each ack reaches the file
    sys.stderr = open(path + ".err", "w", buffering=1)  # noqa: SIM115
    warnings.simplefilter("ignore")


def cli_child(argv: list[str], out: str) -> None:
    """``thresher ARGV``, as the script runs it."""
    _child_stdout(out)
    code = main(argv)
    sys.stdout.flush()
    os._exit(code)


def cli_decide_loop(root: str, out: str, trial: int, samples: list[str]) -> None:
    """``thresher decide tag`` over and over, two samples each; each prints the ids it committed."""
    _child_stdout(out)
    for i in range(10_000):
        pair = [samples[i % N_IMAGES], samples[(i + 7) % N_IMAGES]]
        main(["decide", "tag", *pair, "--tag", f"cli{trial}x{i}", "-w", root])


def api_decide_loop(root: str, out: str, trial: int, samples: list[str]) -> None:
    """``decisions.decide`` over and over, three samples per commit; after each returns, its ids."""
    _child_stdout(out)
    ws = Workspace.open(root)
    for i in range(10_000):
        ids = [samples[(i + k * 11) % N_IMAGES] for k in range(3)]
        result = decisions.decide(ws, "tag", ids, tag=f"api{trial}x{i}", source="cli")
        for decision_id in result.entries["decision_id"]:
            print(decision_id, flush=True)
        if i % 7 == 6:
            decisions.undo(ws)
            print("undo", flush=True)


# ----------------------------------------------------------------------------- harness
def _noop() -> None:
    pass


@pytest.fixture(scope="module")
def forkserver() -> mp.context.BaseContext:
    """The forkserver, started (its imports done) before any trial is timed."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    assert _run(ctx, _noop, (), kill_after=None) == (False, 0)
    return ctx


@pytest.fixture(scope="module")
def crash_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("crash")
    for i in range(N_IMAGES):
        write_png(base / "images" / CLASSES[i % 4] / f"{i:03d}.png", (i * 37) % 250, size=(8, 8))
    assert main(["ingest", "-w", str(base / "ws"), str(base / "images")]) == 0
    assert main(["embed", "-w", str(base / "ws"), "--model", "pixels-8"]) == 0
    return Workspace.open(base / "ws")


def _run(ctx, target: Callable, args: tuple, *, kill_after: float | None, timeout: float = 120,
         started: Callable[[], bool] | None = None) -> tuple[bool, int]:
    """Start ``target(*args)`` in a forked child; SIGKILL it after ``kill_after`` seconds, counted
    from when ``started()`` first holds (polled; so a loaded machine's slow start-up does not
    use up the window). Returns (killed while running, exit code)."""
    child = ctx.Process(target=target, args=args)
    child.start()
    deadline = time.monotonic() + timeout
    while started is not None and child.is_alive() and not started() and time.monotonic() < deadline:
        time.sleep(0.01)
    child.join(timeout if kill_after is None else kill_after)
    killed = child.is_alive()
    if killed:
        child.kill()
    child.join(timeout)
    assert child.exitcode is not None, f"{target.__name__} did not end"
    return killed, child.exitcode


def _timed(ctx, target: Callable, args: tuple) -> float:
    started = time.perf_counter()
    _, code = _run(ctx, target, args, kill_after=None)
    assert code == 0, Path(args[-1] + ".err").read_text() if isinstance(args[-1], str) else code
    return time.perf_counter() - started


def _count(phase: str, killed: bool) -> dict[str, int]:
    tally = TALLY.setdefault(phase, {"trials": 0, "killed_mid_run": 0, "passed": 0})
    tally["trials"] += 1
    tally["killed_mid_run"] += int(killed)
    return tally


# ----------------------------------------------------------------------------- invariants
def check_workspace(root: Path) -> Workspace:
    """Opens; every table reads; nothing of an unfinished run is visible or left behind."""
    ws = Workspace.open(root)
    for name in ws.table_names():
        ws.read(name)
    assert ws.samples(columns=["id"])["id"].is_unique
    listed = runs.list_runs(ws)
    assert not (listed["status"] == "running").any(), listed[["run_id", "status"]]
    runs.close_interrupted(ws)  # what the next run does first
    done = set(listed.loc[listed["status"] == "done", "run_id"])
    for name in runs.RUN_OWNED_TABLES:
        if ws.has_table(name):
            owners = set(ws.read(name, columns=["run_id"])["run_id"])
            assert owners <= done, f"{name} holds rows of unfinished runs {owners - done}"
    for run_id in listed.loc[(listed["kind"] == "score") & (listed["status"] == "done"), "run_id"]:
        n = len(ws.embedded_ids("pixels-8"))
        assert len(results.read_label_issues(ws, run_id)) == n
        scores = results.read_scores(ws, run_id)
        # every score is whole; group numbers are NaN where a sample is in no group (maybe all)
        values = scores.drop(columns=["id", *[c for c in scores.columns if c.endswith("_group")]])
        assert len(scores) == n and not values.isna().all().any(), values.columns[values.isna().all()].tolist()
    for run_id in listed.loc[listed["status"] != "done", "run_id"]:
        with pytest.raises((ConflictError, NotFoundError)):
            results.read_scores(ws, run_id)
    return ws


def check_decisions(ws: Workspace, acked: list[str], batch_prefix: str) -> None:
    log = decisions.read_log(ws)
    assert log["decision_id"].is_unique and log["seq"].is_unique
    counts = log["decision_id"].value_counts()
    missing = [d for d in acked if counts.get(d, 0) != 1]
    assert not missing, f"{len(missing)} acknowledged decisions are not in the log once: {missing[:5]}"
    tags = log.loc[(log["action"] == "tag") & log["new_value"].str.startswith(batch_prefix), "new_value"]
    per_commit = 3 if batch_prefix == "api" else 2
    assert set(tags.value_counts()) <= {per_commit}, tags.value_counts()  # whole commits only


def acks(out: Path) -> list[str]:
    if not out.exists():
        return []
    return [m.group(1) for line in out.read_text().splitlines() if (m := _ACK.match(line))]


# ----------------------------------------------------------------------------- trials
def test_kill_ingest(forkserver, crash_ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng([SEED, 1])
    root, images = str(crash_ws.root), str(crash_ws.root.parent / "images")
    length = _timed(forkserver, cli_child, (["ingest", "-w", root, images], str(tmp_path / "cal")))
    for trial in range(TRIALS):
        killed, _ = _run(forkserver, cli_child, (["ingest", "-w", root, images], str(tmp_path / f"t{trial}")),
                         kill_after=rng.uniform(0.05, 0.95) * length)
        tally = _count("ingest", killed)
        ws = check_workspace(crash_ws.root)
        assert main(["ingest", "-w", root, images]) == 0
        assert ws.count("samples") == N_IMAGES
        tally["passed"] += 1


def test_kill_embed(forkserver, crash_ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng([SEED, 2])
    root = str(crash_ws.root)
    argv = ["embed", "-w", root, "--model", "pixels-4", "--batch-size", "4"]  # 12 commits
    length = _timed(forkserver, cli_child, (argv, str(tmp_path / "cal")))
    for trial in range(TRIALS):
        model = f"pixels-{5 + trial}"  # a new table each time: every trial has work to kill
        argv = ["embed", "-w", root, "--model", model, "--batch-size", "4"]
        killed, _ = _run(forkserver, cli_child, (argv, str(tmp_path / f"t{trial}")),
                         kill_after=rng.uniform(0.05, 0.95) * length)
        tally = _count("embed", killed)
        ws = check_workspace(crash_ws.root)
        if model in ws.embedding_keys():
            ids, vectors, _ = ws.load_embeddings(model)
            assert len(set(ids)) == len(ids) and np.isfinite(vectors).all()
        assert main(argv) == 0
        ids, _, _ = ws.load_embeddings(model)
        assert sorted(ids) == sorted(ws.sample_ids())
        tally["passed"] += 1


def test_kill_score_and_prune(forkserver, crash_ws: Workspace, tmp_path: Path) -> None:
    rng = np.random.default_rng([SEED, 3])
    root = str(crash_ws.root)
    score = ["score", "-w", root, "--embedding", "pixels-8", "--scorers", SCORERS]
    length = _timed(forkserver, cli_child, (score, str(tmp_path / "cal")))
    for trial in range(TRIALS):
        killed, _ = _run(forkserver, cli_child, (score, str(tmp_path / f"s{trial}")),
                         kill_after=rng.uniform(0.05, 0.95) * length)
        tally = _count("score", killed)
        check_workspace(crash_ws.root)
        assert main(score) == 0
        check_workspace(crash_ws.root)
        tally["passed"] += 1

    prune = ["prune", "-w", root, "--ratio", "0.25", "--method", "keep_hard:el2n", "--name"]
    length = _timed(forkserver, cli_child, ([*prune, "calibration"], str(tmp_path / "pcal")))
    n_kept = len(subsets.subset_ids(crash_ws, "calibration"))
    for trial in range(TRIALS):
        name = f"pruned {trial}"
        killed, _ = _run(forkserver, cli_child, ([*prune, name], str(tmp_path / f"p{trial}")),
                         kill_after=rng.uniform(0.05, 0.95) * length)
        tally = _count("prune", killed)
        ws = check_workspace(crash_ws.root)
        if name in subsets.subset_names(ws):  # saved in one commit: whole, each id once
            ids = subsets.subset_ids(ws, name)
            assert len(ids) == n_kept == len(set(ids))
        assert main([*prune, name, "--overwrite"]) == 0
        assert len(subsets.subset_ids(ws, name)) == n_kept
        tally["passed"] += 1


@pytest.mark.parametrize("via", ["api", "cli"])
def test_kill_decisions_being_written(forkserver, crash_ws: Workspace, tmp_path: Path, via: str) -> None:
    rng = np.random.default_rng([SEED, 4 if via == "api" else 5])
    root = str(crash_ws.root)
    loop = api_decide_loop if via == "api" else cli_decide_loop
    samples = sorted(crash_ws.sample_ids())
    acked: list[str] = []
    for trial in range(TRIALS):
        out = tmp_path / f"{via}{trial}"
        killed, _ = _run(forkserver, loop, (root, str(out), trial, samples), kill_after=rng.uniform(0.0, 1.2),
                         started=lambda out=out: bool(acks(out)))  # the clock starts at the first commit
        tally = _count(f"decisions ({via})", killed)
        acked += acks(out)
        ws = check_workspace(crash_ws.root)
        check_decisions(ws, acked, via)
        rerun = decisions.decide(ws, "tag", samples[:1], tag=f"rerun{via}{trial}")  # the lock is free again
        assert rerun.n_written == 1
        tally["passed"] += 1
    assert len(acked) >= TRIALS  # the loops got somewhere before their kills


def test_zz_record_the_counts() -> None:
    """Write what ran (the trials above fill ``TALLY`` in file order)."""
    ARTIFACT.parent.mkdir(exist_ok=True)
    total = {key: sum(t[key] for t in TALLY.values()) for key in ("trials", "killed_mid_run", "passed")}
    ARTIFACT.write_text(json.dumps({"seed": SEED, "trials_per_phase": TRIALS, "phases": TALLY, "total": total},
                                   indent=1))
    print(f"crash trials: {total['trials']} run, {total['killed_mid_run']} killed mid-run, {total['passed']} passed")
    assert total["passed"] == total["trials"]
