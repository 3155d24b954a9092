from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.storage import Workspace
from backend.storage.model_outputs import read_classifier, read_logits


@pytest.fixture
def feature_workspace(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    pd.DataFrame({"id": [f"f{i}" for i in range(6)], "label": ["a", "b"] * 3,
                  "embedding": list(rng.normal(size=(6, 4)).astype(np.float32))}).to_parquet(tmp_path / "f.parquet")
    ws = tmp_path / "ws"
    assert main(["ingest", "--workspace", str(ws), "--embeddings", str(tmp_path / "f.parquet")]) == 0
    return ws


def test_logits_import_with_bad_rows(feature_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"id": f"f{i}", "epoch": e, "logits": [float(i), float(e)]} for e in (0, 1, 2) for i in range(6)]
    rows.append({"id": "ghost", "epoch": 0, "logits": [0.0, 0.0]})
    rows.append({"id": "f0", "epoch": 0, "logits": [1.0, 2.0]})  # duplicate
    rows = [r for r in rows if not (r["id"] == "f5" and r["epoch"] == 2)]  # f5 misses an epoch
    pd.DataFrame(rows).to_parquet(tmp_path / "dyn.parquet")
    assert main(["ingest", "--workspace", str(feature_workspace), "--logits", str(tmp_path / "dyn.parquet")]) == 0
    out = capsys.readouterr().out
    assert "stored logits 'dyn': 5 samples x 3 epochs" in out
    assert "unknown id 'ghost'" in out and "duplicate (id, epoch)" in out and "missing for some" in out
    ids, epochs, logits = read_logits(Workspace.open(feature_workspace), "dyn")
    assert ids == ["f0", "f1", "f2", "f3", "f4"] and epochs == [0, 1, 2] and logits.shape == (3, 5, 2)
    assert logits[2, 3].tolist() == [3.0, 2.0]


def test_classifier_import_checks_dimensions(feature_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "clf.npz", weights=np.ones((2, 4)), bias=np.zeros(2), classes=np.array(["a", "b"]))
    args = ["ingest", "--workspace", str(feature_workspace), "--classifier", str(tmp_path / "clf.npz")]
    assert main(args) == 2 and "needs --embedding-key" in capsys.readouterr().err
    assert main(args + ["--embedding-key", "imported-f"]) == 0
    stored = read_classifier(Workspace.open(feature_workspace), "clf")
    assert stored["weights"].shape == (2, 4) and stored["classes"] == ["a", "b"]
    np.savez(tmp_path / "bad.npz", weights=np.ones((2, 3)))
    assert main(["ingest", "--workspace", str(feature_workspace), "--classifier", str(tmp_path / "bad.npz"),
                 "--embedding-key", "imported-f"]) == 2
    assert "3 columns but 'imported-f' vectors have 4" in capsys.readouterr().err
