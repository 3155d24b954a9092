"""The Ray runner as a user meets it: a cluster started with `ray start --head` and a command in
another process, an address nobody answers at, bad flags, Ray not installed. No Ray runs in this
test process (``test_ray_runner.py`` has one, shut down at the end of its module)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from backend.cli import main
from backend.jobs.runner import RayRunner, RunnerError, RunnerSpec, parse_runner
from backend.storage import Workspace, runs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def digits_file(tmp_path: Path) -> Path:
    digits = load_digits()
    path = tmp_path / "digits.parquet"
    pd.DataFrame({"id": [f"d{i:04d}" for i in range(200)], "label": digits.target[:200],
                  "embedding": list((digits.data[:200] / 16.0).astype(np.float32))}).to_parquet(path)
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket closes


@pytest.fixture
def ray_head():
    """`ray start --head --block` in its own process group; stopping it stops only its processes
    (`ray stop` would stop every Ray on the machine). Its temp dir is short: Ray's socket paths
    must fit in 107 bytes, which pytest's tmp_path does not leave room for."""
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="thr-ray-", dir="/tmp")
    # Ray >= 2.59 authenticates with a token: the head and every client share one, as on a cluster
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port", str(port),
         "--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--include-dashboard=false",
         "--disable-usage-stats", "--temp-dir", temp_dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
                time.sleep(0.5)
        time.sleep(2)  # the raylet registers after the GCS port opens
        yield f"127.0.0.1:{port}", env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_cluster_started_with_ray_start(ray_head, digits_file: Path, tmp_path: Path) -> None:
    """`ray start --head`, then `thresher score --ray HOST:PORT` in another process, as a user does."""
    address, env = ray_head
    ws = tmp_path / "ws"
    assert main(["ingest", "--workspace", str(ws), "--embeddings", str(digits_file)]) == 0
    done = subprocess.run([sys.executable, "-m", "backend.cli", "score", "--workspace", str(ws),
                           "--scorers", "el2n,aum", "--ray", address],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = runs.latest_run(Workspace.open(ws), "score")
    assert run["summary"]["runner"]["kind"] == "ray" and run["summary"]["runner"]["address"] == address
    assert run["summary"]["runner"]["cpus"] == 2


def test_unreachable_cluster_and_bad_flags_are_refused(digits_file: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    assert main(["ingest", "--workspace", str(ws), "--embeddings", str(digits_file)]) == 0
    port = _free_port()
    assert main(["score", "--workspace", str(ws), "--ray", f"127.0.0.1:{port}"]) == 2
    assert f"nothing answers at the Ray address '127.0.0.1:{port}'" in capsys.readouterr().err
    assert main(["score", "--workspace", str(ws), "--ray-workers", "2"]) == 2
    assert "--ray-workers needs --ray" in capsys.readouterr().err
    assert main(["score", "--workspace", str(ws), "--ray", "--ray-workers", "0"]) == 2
    assert "--ray-workers must be at least 1" in capsys.readouterr().err
    assert runs.list_runs(Workspace.open(ws), "score").empty  # nothing recorded


def test_runner_spec_parsing_and_missing_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_runner(None) == RunnerSpec()
    assert parse_runner("local") == RunnerSpec("ray", "local")
    assert parse_runner("ray://head:10001", 4) == RunnerSpec("ray", "ray://head:10001", 4)
    with pytest.raises(ValueError, match="unknown runner"):
        RunnerSpec("dask")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(RunnerError, match=r"pip install 'thresher\[ray\]'"):
        RayRunner()
