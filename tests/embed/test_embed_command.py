"""`thresher embed` with a CLIP model takes the fast path (automatic batch size and decoding
workers, the GPU options falling back on the CPU) and stays resumable. Random weights, seeded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from backend import cli
from backend.storage import Workspace
from backend.storage.runs import list_runs
from tests.embed.conftest import CHEAP_CLIP_MODEL, write_corrupt, write_images

torch = pytest.importorskip("torch")
KEY = f"{CHEAP_CLIP_MODEL}__random"


def embed_command(ws: Path, *extra: str) -> int:
    torch.manual_seed(0)  # random weights: the same ones on every run
    return cli.main(["embed", "--workspace", str(ws), "--model", CHEAP_CLIP_MODEL, "--pretrained", "none",
                     *extra])


def test_embed_command_uses_the_fast_path_and_resumes(low_torch_threads, tmp_path, capsys):
    images = tmp_path / "images" / "a"
    paths = write_images(images, 4)
    write_corrupt(images / "broken.png")
    ws = tmp_path / "ws"
    assert cli.main(["ingest", "--workspace", str(ws), str(tmp_path / "images")]) == 0
    capsys.readouterr()
    assert embed_command(ws, "--gpu-decode", "--batch-size", "auto", "--num-workers", "auto") == 0
    assert "embedded 4 images" in capsys.readouterr().out
    workspace = Workspace.open(ws)
    config = list_runs(workspace, "embed")["config"].iloc[0]
    # on this CPU-only machine: the CPU batch size, one worker per spare core, no GPU decoding
    assert config["batch_size"] == 64 and config["num_workers"] >= 1 and config["gpu_decode"] is False
    ids, unit, _ = workspace.load_embeddings(KEY)
    assert len(ids) == 4 and np.allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-5)

    shutil.copy(paths[0], images / "copy.png")  # one new file: only it is embedded on the rerun
    assert cli.main(["ingest", "--workspace", str(ws), str(tmp_path / "images")]) == 0
    capsys.readouterr()
    assert embed_command(ws, "--batch-size", "2", "--num-workers", "0") == 0
    assert "embedded 1 images" in capsys.readouterr().out
    workspace = Workspace.open(ws)
    ids, unit, _ = workspace.load_embeddings(KEY)
    assert len(ids) == 5
    samples = workspace.samples(columns=["id", "path"])
    by_path = dict(zip(samples["id"], samples["path"], strict=True))
    rows = {Path(by_path[i]).name: row for i, row in zip(ids, unit, strict=True)}
    np.testing.assert_allclose(rows["copy.png"], rows[Path(paths[0]).name], atol=1e-5)


def test_embed_command_refuses_bad_counts(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["embed", "--workspace", str(tmp_path), "--batch-size", "many"])
    assert "expected a whole number or 'auto'" in capsys.readouterr().err
