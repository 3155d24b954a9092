"""The ``thresher`` command line: the contract forms from the issues, exit codes and messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.cli import build_parser, main
from backend.commands import app_command, app_url
from backend.storage import Workspace, runs
from tests.conftest import default_sigint, write_png

SUBCOMMANDS = ("ingest", "embed", "project", "app", "export", "demo", "runs", "subsets", "search", "score",
               "prune", "decisions")


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help_and_workspace(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--workspace" in out and len(out) > 200


def test_ingest_folder_reports_skips(image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    assert main(["ingest", "--workspace", str(ws), str(image_folder)]) == 0
    out = capsys.readouterr().out
    assert "ingested 12 samples (12 new, 0 updated)" in out
    assert "skipped 2: 1 not an image file, 1 corrupt image" in out
    assert "broken.png: corrupt image" in out
    report = pd.read_csv(next((ws / "reports").glob("ingest-*.csv")))
    assert len(report) == 2
    assert main(["ingest", "--workspace", str(ws), str(image_folder)]) == 0
    assert "(0 new, 12 updated)" in capsys.readouterr().out


def test_ingest_manifest_with_missing_file_and_unknown_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_png(tmp_path / "a.png", 1)
    write_png(tmp_path / "b.png", 2)
    (tmp_path / "m.csv").write_text("path,label,colour\na.png,x,red\nb.png,y,blue\ngone.png,y,red\n")
    assert main(["ingest", "--workspace", str(tmp_path / "ws"), str(tmp_path / "m.csv")]) == 0
    out = capsys.readouterr().out
    assert "ingested 2 samples" in out and "skipped 1: 1 missing file" in out
    assert "m.csv row 3 (" in out and "unknown column 'colour'" in out


def test_ingest_nothing_usable_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.csv").write_text("path,label\ngone.png,y\n")
    assert main(["ingest", "--workspace", str(tmp_path / "ws"), str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "no sample could be ingested" in err and "missing file" in err
    assert main(["ingest", "--workspace", str(tmp_path / "ws"), str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["ingest", "--workspace", str(tmp_path / "ws")]) == 2


def test_embeddings_file_project_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    frame = pd.DataFrame({"id": [f"f{i}" for i in range(30)], "label": [i % 3 for i in range(30)],
                          "embedding": list(vectors)})
    frame.to_parquet(tmp_path / "feats.parquet")
    ws = tmp_path / "ws"
    assert main(["ingest", "--workspace", str(ws), "--embeddings", str(tmp_path / "feats.parquet")]) == 0
    assert "stored their embeddings as 'imported-feats'" in capsys.readouterr().out
    workspace = Workspace.open(ws)
    ids, unit, norms = workspace.load_embeddings("imported-feats")
    np.testing.assert_allclose(norms, np.linalg.norm(vectors, axis=1), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    assert main(["project", "--workspace", str(ws), "--method", "pca"]) == 0
    assert len(workspace.read("projections")) == 30
    out = tmp_path / "out.jsonl"
    assert main(["export", "--workspace", str(ws), "--format", "jsonl", "--out", str(out)]) == 0
    assert len(pd.read_json(out, lines=True)) == 30
    assert main(["runs", "--workspace", str(ws)]) == 0
    assert "project" in capsys.readouterr().out


def test_commands_on_a_missing_workspace_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--workspace", str(tmp_path / "none"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "not a Thresher workspace" in capsys.readouterr().err


def test_app_command_honours_streamlit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLIT_SERVER_PORT", "8765")
    monkeypatch.setenv("STREAMLIT_SERVER_ADDRESS", "127.0.0.1")
    monkeypatch.setenv("STREAMLIT_SERVER_HEADLESS", "false")
    cmd, env = app_command(tmp_path)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app/main.py") and Path(cmd[4]).exists()
    assert env["THRESHER_WORKSPACE"] == str(tmp_path.resolve())
    assert env["STREAMLIT_SERVER_HEADLESS"] == "false" and app_url(env) == "http://127.0.0.1:8765"


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_stopping_the_app_command_stops_its_server(tmp_path: Path, signal_name: str) -> None:
    """SIGTERM, or SIGINT sent to ``thresher app`` alone (not Ctrl-C to its process group), ends
    the server process too (a stand-in server: a sleeping child that ignores neither)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    ws = Workspace.open(tmp_path / "ws", create=True).root
    pid_file = tmp_path / "server.pid"
    server = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    script = (
        "import os, sys, pathlib, backend.commands as c\n"
        f"c.app_command = lambda ws, **options: ([sys.executable, '-c', {server!r}], dict(os.environ))\n"
        "c.app_url = lambda env: 'http://test'\n"
        f"sys.exit(c.run_app(pathlib.Path({str(ws)!r})))\n"
    )
    app = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                           preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    app.send_signal(getattr(signal, signal_name))
    app.wait(timeout=30)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # reaped by the app command: gone


def test_the_app_server_can_be_waited_on_from_a_thread() -> None:
    """Signal handlers exist only in the main thread: from another one the wait still works."""
    import subprocess
    import sys
    import threading

    from backend.commands import _exit_status, _serve

    server = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    codes: list[int] = []
    worker = threading.Thread(target=lambda: codes.append(_serve(server)))
    worker.start()
    worker.join(timeout=60)
    assert codes == [3]
    assert _exit_status(-15) == 143 and _exit_status(0) == 0


def test_parser_forms_from_the_issue() -> None:
    parser = build_parser()
    args = parser.parse_args(["ingest", "--workspace", "W", "demo"])
    assert (args.source, str(args.workspace)) == ("demo", "W")
    args = parser.parse_args(["export", "--workspace", "W", "--format", "csv", "--out", "F", "--subset", "S"])
    assert (args.format, str(args.out), args.subset) == ("csv", "F", "S")


@pytest.mark.slow
def test_demo_no_app_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The acceptance check: 1,797 samples, embeddings and projected points; export writes 1,797 rows."""
    ws = tmp_path / "demo"
    assert main(["demo", "--no-app", "--workspace", str(ws)]) == 0
    workspace = Workspace.open(ws)
    assert workspace.count("samples") == 1797
    key = workspace.embedding_keys()[0]
    assert workspace.count(f"embeddings__{key}") == 1797
    project_run = runs.latest_run(workspace, "project")
    assert len(workspace.read_projection(project_run["run_id"])) == 1797
    out = tmp_path / "all.csv"
    assert main(["export", "--workspace", str(ws), "--format", "csv", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 1797
    scores = tmp_path / "scores.csv"
    assert main(["export", "--workspace", str(ws), "--what", "scores", "--format", "csv", "--out", str(scores)]) == 0
    scored = pd.read_csv(scores)
    assert len(scored) == 1797 and scored["label_issue_score"].between(0, 1).all()
    # a second demo run recomputes nothing
    assert main(["demo", "--no-app", "--workspace", str(ws)]) == 0
    out_text = capsys.readouterr().out
    assert "projection" in out_text and "score run" in out_text and out_text.count("up to date") == 2
    assert len(runs.list_runs(workspace, "project")) == 1 and len(runs.list_runs(workspace, "score")) == 1
