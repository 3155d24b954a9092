"""Where an export may write (issue 15, security 2): never into a workspace's own folders, never
through a symbolic link or onto a device or FIFO, an existing file replaced only with
``--overwrite``; the app's export folder: no ``..``, no path outside it, no link leading out."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from backend.cli import main
from backend.storage import Workspace, export_paths
from backend.storage.errors import StorageError
from backend.storage.export_paths import OutputExistsError, check_output, replace_atomically
from tests.conftest import write_png


@pytest.fixture
def ws_root(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    for label in ("cat", "dog"):
        for k in range(3):
            write_png(images / label / f"{label}{k}.png", 40 * k + 10)
    root = tmp_path / "ws"
    assert main(["ingest", "--workspace", str(root), str(images)]) == 0
    return root


def export(root: Path, out: Path | str, *more: str) -> int:
    return main(["export", "--workspace", str(root), "--out", str(out), *more])


def test_the_cli_never_writes_into_a_workspaces_own_folders(ws_root: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.stat().st_mtime_ns for p in ws_root.rglob("*") if p.is_file()}
    targets = [ws_root / "lance" / "samples.lance" / "x.csv", ws_root / "locks" / "x.csv",
               ws_root / "workspace.json", ws_root / "lance" / "new.csv"]
    (ws_root / "jobs").mkdir(exist_ok=True)
    targets.append(ws_root / "jobs" / "x.csv")
    capsys.readouterr()
    for out in targets:
        assert export(ws_root, out, "--overwrite") == 2, out
        err = capsys.readouterr().err
        assert f"inside workspace {ws_root}'s own" in err and str(ws_root / "exports") in err, err
    assert export(ws_root, ws_root / "lance" / "folder", "--format", "imagefolder") == 2
    assert "own lance" in capsys.readouterr().err
    # a link into the tables is seen through: the check is on the resolved folder
    (tmp_path / "into-lance").symlink_to(ws_root / "lance")
    assert export(ws_root, tmp_path / "into-lance" / "x.csv") == 2
    assert "own lance" in capsys.readouterr().err
    assert main(["decisions", "--workspace", str(ws_root), "--out", str(ws_root / "locks" / "d.csv")]) == 2
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())
    assert not [p for p in ws_root.rglob("*") if p.name in ("x.csv", "d.csv", "folder") or "partial" in p.name]
    Workspace.open(ws_root).samples()  # still a workspace


def test_an_existing_file_is_replaced_only_with_overwrite(ws_root: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.csv"
    out.write_text("precious\n")
    capsys.readouterr()
    assert export(ws_root, out) == 2
    assert f"{out} exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert out.read_text() == "precious\n" and not (tmp_path / "m.csv.provenance.json").exists()
    assert export(ws_root, out, "--overwrite") == 0
    assert len(pd.read_csv(out)) == 6
    # a second export meets the first one's provenance record too
    out.unlink()
    assert export(ws_root, out) == 2
    assert "m.csv.provenance.json exists; pass --overwrite" in capsys.readouterr().err and not out.exists()

    log = tmp_path / "log.csv"
    log.write_text("precious\n")
    assert main(["decisions", "--workspace", str(ws_root), "--out", str(log)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and log.read_text() == "precious\n"
    assert main(["decisions", "--workspace", str(ws_root), "--out", str(log), "--overwrite"]) == 0
    assert log.read_text() != "precious\n"


def test_links_devices_and_fifos_are_refused(ws_root: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    capsys.readouterr()
    for out, why in ((link, "is a symbolic link"), (fifo, "FIFO"), (Path("/dev/null"), "device")):
        assert export(ws_root, out, "--overwrite") == 2, out
        assert why in capsys.readouterr().err
    assert victim.read_text() == "keep me\n" and link.is_symlink()
    assert export(ws_root, link, "--format", "imagefolder") == 2
    assert "is a symbolic link" in capsys.readouterr().err
    # the provenance record beside a file is checked as the file is
    (tmp_path / "m.csv.provenance.json").symlink_to(victim)
    assert export(ws_root, tmp_path / "m.csv", "--overwrite") == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "keep me\n" and not (tmp_path / "m.csv").exists()
    assert main(["decisions", "--workspace", str(ws_root), "--out", str(link), "--overwrite"]) == 2
    assert victim.read_text() == "keep me\n"


def test_the_temporary_file_is_never_written_through_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (tmp_path / ".out.csv.partial").symlink_to(victim)
    replace_atomically(tmp_path / "out.csv", b"rows\n")
    assert (tmp_path / "out.csv").read_bytes() == b"rows\n" and victim.read_text() == "keep me\n"
    assert not (tmp_path / ".out.csv.partial").exists()


def test_the_export_folder_takes_names_and_keeps_them_inside(tmp_path: Path) -> None:
    folder = tmp_path / "exports"  # made on demand
    assert check_output("half.parquet", overwrite=False, inside=folder) == folder / "half.parquet"
    assert check_output("runs/a/half.csv", overwrite=False, inside=folder) == folder / "runs" / "a" / "half.csv"
    assert (folder / "runs" / "a").is_dir()
    assert check_output(str(folder / "x.csv"), overwrite=False, inside=folder) == folder / "x.csv"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for name, why in (("../x.csv", "climbs out"), ("a/../../x.csv", "climbs out"),
                      (str(outside / "x.csv"), "outside the export folder"), ("/etc/passwd", "outside"),
                      ("", "give a file name")):
        with pytest.raises(StorageError, match=why):
            check_output(name, overwrite=True, inside=folder)
    (folder / "out").symlink_to(outside)  # a folder in it that leads out
    with pytest.raises(StorageError, match="symbolic link out of the export folder"):
        check_output("out/x.csv", overwrite=True, inside=folder)
    (folder / "here").symlink_to(folder / "runs")  # one that stays inside is a folder like any other
    assert check_output("here/y.csv", overwrite=False, inside=folder) == folder / "runs" / "y.csv"
    (folder / "taken.csv").write_text("x")
    with pytest.raises(OutputExistsError) as refused:
        check_output("taken.csv", overwrite=False, inside=folder)
    assert refused.value.path == folder / "taken.csv"
    assert check_output("taken.csv", overwrite=True, inside=folder) == folder / "taken.csv"
    (folder / "link.csv").symlink_to(folder / "taken.csv")
    with pytest.raises(StorageError, match="symbolic link"):
        check_output("link.csv", overwrite=True, inside=folder)
    assert not list(outside.iterdir())


def test_the_export_folder_is_w_exports_or_the_configured_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True)
    monkeypatch.delenv(export_paths.EXPORT_DIR_ENV, raising=False)
    assert export_paths.export_folder(ws) == ws.root / "exports"
    monkeypatch.setenv(export_paths.EXPORT_DIR_ENV, str(tmp_path / "out"))
    assert export_paths.export_folder(ws) == (tmp_path / "out").resolve()
    # configured into the tables, it still writes nothing there
    monkeypatch.setenv(export_paths.EXPORT_DIR_ENV, str(ws.lance_dir))
    with pytest.raises(StorageError, match="own lance"):
        check_output("x.csv", overwrite=True, inside=export_paths.export_folder(ws))
