"""The per-file work of an image ingest (decode, size, content hash, pixel statistics) in a process
pool gives what one process gives, file for file, bad files included; and the statistics stored
at ingest are the ones the health stage would compute from the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import main
from backend.ingest import images
from backend.ingest.folder import SourceError, read_image_folder
from backend.ingest.images import ImageInfo, ImageProblem, inspect_images
from backend.ingest.manifest import read_manifest
from backend.ingest.report import IngestReport
from backend.jobs.health_stage import image_stats
from backend.jobs.ingest_job import ingest
from backend.pixel_stats import PIXEL_STAT_NAMES, STAT_NAMES
from backend.storage import Workspace
from backend.storage.image_stats import STAT_COLUMNS, read_image_stats
from tests.conftest import write_png
from tests.ingest.corpus import CASES


def _comparable(found: list[ImageInfo | ImageProblem]) -> list[str]:
    """Each result as text: the problem's type and message, or the info's fields (NaN prints as nan)."""
    return [f"{type(item).__name__}: {item}" if isinstance(item, ImageProblem) else repr(item) for item in found]


def _corpus_paths(tmp_path: Path) -> list[str]:
    """The candidate image paths of every folder and manifest case of the broken-input corpus."""
    paths: list[str] = []
    for i, case in enumerate(c for c in CASES if c.kind in ("folder", "manifest")):
        source = case.build(tmp_path / f"case{i}")
        read = read_image_folder if case.kind == "folder" else read_manifest
        try:
            candidates = read(source, IngestReport(), allow_outside_root=case.allow_outside_root)
        except SourceError:
            continue
        paths += [c.path for c in candidates if c.path]
    return paths


def test_the_pool_gives_the_serial_results_on_the_broken_input_corpus(tmp_path: Path) -> None:
    paths = _corpus_paths(tmp_path)
    serial = inspect_images(paths, workers=1)
    pooled = inspect_images(paths, workers=2, chunk_files=3)  # many chunks, so order matters
    assert len(paths) > 100 and _comparable(pooled) == _comparable(serial)
    problems = [item for item in serial if isinstance(item, ImageProblem)]
    assert len(problems) >= 5 and any("corrupt image" in str(p) for p in problems)
    infos = [item for item in serial if isinstance(item, ImageInfo)]
    assert all(len(info.stats) == len(PIXEL_STAT_NAMES) for info in infos)


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        inspect_images(["a.png"], workers=0)


def _folder(root: Path, n: int = 24) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        label = "cat" if i % 2 else "dog"
        write_png(root / label / f"{i:02d}.png", int(rng.integers(0, 255)), size=(6 + i % 5, 5 + i % 3))
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def _stored(ws: Workspace) -> tuple[pd.DataFrame, pd.DataFrame]:
    samples = ws.samples().drop(columns=["ingested_at", "source"]).sort_values("id").reset_index(drop=True)
    stats = ws.read("image_stats").sort_values("id").reset_index(drop=True)
    return samples, stats


def test_an_ingest_with_workers_stores_what_one_process_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folder(tmp_path / "images")
    one = ingest(Workspace.open(tmp_path / "one", create=True), root, workers=1)
    monkeypatch.setattr(images, "CHUNK_FILES", 4)  # a pool of several chunks even for 25 files
    two = ingest(Workspace.open(tmp_path / "two", create=True), root, workers=2)
    assert one.report.lines() == two.report.lines() and one.n_skipped == 1
    samples_one, stats_one = _stored(Workspace.open(tmp_path / "one"))
    samples_two, stats_two = _stored(Workspace.open(tmp_path / "two"))
    pd.testing.assert_frame_equal(samples_one, samples_two)
    pd.testing.assert_frame_equal(stats_one, stats_two)
    assert len(stats_one) == 24 and list(stats_one.columns[2:]) == list(STAT_COLUMNS) == list(PIXEL_STAT_NAMES)
    assert (stats_one["content_hash"] == samples_one["content_hash"]).all()


def test_stored_statistics_equal_those_read_from_the_files(tmp_path: Path) -> None:
    from PIL import Image

    root = _folder(tmp_path / "images", n=6)
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((300, 200, 3)) * 255).astype(np.uint8)).save(root / "dog" / "big.jpg", quality=90)
    Image.fromarray((rng.random((20, 20)) * 255).astype(np.uint8)).convert("P").save(root / "cat" / "palette.png")
    ws = Workspace.open(tmp_path / "ws", create=True)
    assert main(["ingest", "--workspace", str(ws.root), str(root), "--workers", "1"]) == 0
    samples = ws.samples(columns=["id", "path", "content_hash", "width", "height"])
    pixel, found = read_image_stats(ws, samples["id"].tolist(), samples["content_hash"].tolist())
    assert found.all() and len(samples) == 8
    from_files, _, unreadable = image_stats(samples["path"].tolist())
    stored = np.hstack([samples[["width", "height"]].to_numpy(np.float64), pixel])
    assert unreadable == [] and from_files.shape[1] == len(STAT_NAMES)
    np.testing.assert_array_equal(stored, from_files)  # the same numbers, bit for bit
    # a row for another file than the sample's (the file changed, or ingest predates it) is not used
    _, stale = read_image_stats(ws, samples["id"].tolist(), ["0" * 32] + samples["content_hash"].tolist()[1:])
    assert not stale[0] and stale[1:].all()


def test_the_ingest_readers_import_neither_torch_nor_the_scorers() -> None:
    """What each pool worker imports: Pillow and NumPy, not torch (seconds and a GB per worker)."""
    import subprocess
    import sys

    code = ("import sys, backend.ingest.images, backend.ingest.candidates, backend.ingest.folder; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('backend.scoring')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "[]"
