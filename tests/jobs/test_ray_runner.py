"""The Ray runner on a Ray instance in this process: the same numbers as the local runner for the
score, evaluate and embed jobs, and a failing task's own error. (A cluster started with
`ray start --head`, and the refusals: ``test_ray_cluster.py``.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
from sklearn.datasets import load_digits

from backend.cli import main
from backend.jobs import runner as runner_module
from backend.jobs.runner import LocalRunner, RayRunner, RunnerError
from backend.scoring.probes import ProbeConfig, out_of_fold_probs_by_seed
from backend.storage import Workspace, results, runs

pytestmark = pytest.mark.slow

N = 300


@pytest.fixture(scope="module")
def ray_session():
    """One Ray instance for the module (2 CPUs, a small object store); jobs find it and use it."""
    ray.init(address="local", num_cpus=2, object_store_memory=300 * 2**20, include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ray")
    digits = load_digits()
    rng = np.random.default_rng(1)
    y = digits.target[:N].copy()
    noisy = rng.choice(N, 30, replace=False)
    y[noisy] = (y[noisy] + 1) % 10
    path = tmp / "digits.parquet"
    pd.DataFrame({"id": [f"d{i:04d}" for i in range(N)], "label": y,
                  "embedding": list((digits.data[:N] / 16.0).astype(np.float32))}).to_parquet(path)
    return path


def _scored(tmp: Path, digits_file: Path, *extra: str) -> tuple[Workspace, dict]:
    ws = tmp / "ws"
    assert main(["ingest", "--workspace", str(ws), "--embeddings", str(digits_file)]) == 0
    assert main(["score", "--workspace", str(ws), *extra]) == 0
    workspace = Workspace.open(ws)
    return workspace, runs.latest_run(workspace, "score")


def _same_outputs(ws_a: Workspace, run_a: str, ws_b: Workspace, run_b: str) -> None:
    for read in (results.read_scores, results.read_label_issues, results.read_collapse):
        a = read(ws_a, run_a).drop(columns=["run_id"], errors="ignore")
        b = read(ws_b, run_b).drop(columns=["run_id"], errors="ignore")
        sort = ["id"] if "id" in a.columns else list(a.columns[:4])
        pd.testing.assert_frame_equal(a.sort_values(sort).reset_index(drop=True),
                                      b.sort_values(sort).reset_index(drop=True))


def test_score_and_evaluate_on_ray_equal_the_local_run(ray_session, digits_file: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    local_ws, local_run = _scored(tmp_path / "local", digits_file)
    ray_ws, ray_run = _scored(tmp_path / "ray", digits_file, "--ray")
    assert local_run["summary"]["runner"] == {"kind": "local"}
    described = ray_run["summary"]["runner"]
    assert described["kind"] == "ray" and described["cpus"] == 2 and described["nodes"] == 1
    _same_outputs(local_ws, local_run["run_id"], ray_ws, ray_run["run_id"])
    assert ray.is_initialized()  # the job used this process's Ray and left it running

    for ws in (local_ws, ray_ws):
        assert main(["prune", "--workspace", str(ws.root), "--ratio", "0.7", "--name", "third"]) == 0
    assert main(["evaluate", "--workspace", str(local_ws.root), "--subset", "third", "--folds", "3"]) == 0
    assert main(["evaluate", "--workspace", str(ray_ws.root), "--subset", "third", "--folds", "3",
                 "--ray", "--ray-workers", "1"]) == 0
    local_eval = runs.latest_run(local_ws, "evaluate")["summary"]
    ray_eval = runs.latest_run(ray_ws, "evaluate")["summary"]
    assert ray_eval["runner"]["workers"] == 1
    for key in ("accuracy", "accuracy_std", "recall_by_class", "n_kept"):
        assert local_eval[key] == ray_eval[key], key


def test_probe_folds_on_ray_with_one_worker_at_a_time(ray_session) -> None:
    digits = load_digits()
    x, y = (digits.data[:200] / 16).astype(np.float32), digits.target[:200]
    config = ProbeConfig(epochs=3, seeds=(0, 0, 1), n_folds=3)  # a repeated seed keeps its own slot
    local = out_of_fold_probs_by_seed(x, y, n_classes=10, config=config, task_map=LocalRunner().map_unordered)
    remote = out_of_fold_probs_by_seed(x, y, n_classes=10, config=config,
                                       task_map=RayRunner(workers=1).map_unordered)
    np.testing.assert_array_equal(local, remote)
    np.testing.assert_array_equal(remote[0], remote[1])
    assert not np.array_equal(remote[0], remote[2])


def _fails_on_three(value: int) -> int:
    if value == 3:
        raise ValueError(f"task {value} cannot be done")
    return value * 10


def test_a_failing_task_fails_the_map_with_its_own_error(ray_session) -> None:
    runner = RayRunner()
    assert runner.map(_fails_on_three, [(1,), (2,)]) == [10, 20]
    with pytest.raises(ValueError, match="task 3 cannot be done") as raised:
        runner.map(_fails_on_three, [(1,), (3,), (2,)])
    assert str(raised.value) == "task 3 cannot be done"  # the task's own error, not Ray's remote traceback


class _Shards:
    """A model-holding worker for the actor path: shard 0 fails, the others take a while."""

    def work(self, shard: int) -> int:
        if shard == 0:
            raise ValueError("shard 0 is unreadable")
        time.sleep(2)
        return shard


def test_a_failing_shard_stops_every_worker(ray_session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "CPUS_PER_ACTOR", 1)  # two one-CPU workers on the 2-CPU instance
    runner = RayRunner()
    with pytest.raises(ValueError, match="shard 0 is unreadable"):  # not a cleanup error
        list(runner.actor_map_unordered(_Shards, (), "work", [(1,), (0,), (2,), (3,)]))
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2:  # both workers were stopped
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)
    assert sorted(i for _, i in runner.actor_map_unordered(_Shards, (), "work", [(1,), (2,), (3,)])) == [1, 2, 3]


def _dies(value: int) -> int:
    os._exit(1)  # a worker killed (for memory, say) while running the task


def test_a_lost_worker_is_a_runner_error_that_says_what_to_do(ray_session) -> None:
    with pytest.raises(RunnerError, match=r"Ray lost task 1 of 1 \(WorkerCrashedError.*fewer --ray-workers"):
        RayRunner().map(_dies, [(1,)])
    assert RayRunner().map(_fails_on_three, [(2,)]) == [20]  # the cluster still works


def test_embed_on_ray_workers_stores_the_same_vectors(ray_session, image_folder: Path, tmp_path: Path) -> None:
    stored = {}
    for name, extra in (("local", []), ("ray", ["--ray"])):
        ws = tmp_path / name
        assert main(["ingest", str(image_folder), "--workspace", str(ws)]) == 0
        (image_folder / "train" / "dog" / "dog0.png").rename(tmp_path / f"{name}-moved.png")  # fails to embed
        assert main(["embed", "--workspace", str(ws), *extra]) == 0
        (tmp_path / f"{name}-moved.png").rename(image_folder / "train" / "dog" / "dog0.png")
        workspace = Workspace.open(ws)
        run = runs.latest_run(workspace, "embed")
        assert run["summary"]["n_failed"] == 1 and run["summary"]["n_embedded"] == 11
        ids, unit, norms = workspace.load_embeddings("pixels-16")
        order = np.argsort(ids)
        stored[name] = (run, ids[order], unit[order], norms[order])
    local, remote = stored["local"], stored["ray"]
    assert remote[0]["summary"]["runner"]["kind"] == "ray" and remote[0]["config"]["device"] == "ray workers"
    assert local[0]["summary"]["runner"] == {"kind": "local"}
    np.testing.assert_array_equal(local[1], remote[1])
    np.testing.assert_array_equal(local[2], remote[2])
    np.testing.assert_array_equal(local[3], remote[3])
