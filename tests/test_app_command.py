"""``thresher app`` listens on this machine only unless told otherwise, says so when it listens
wider, and prints the address it really listens on (issue 15, security 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend import commands
from backend.cli import build_parser
from backend.commands import app_command, app_url, open_warning
from backend.storage import Workspace
from backend.storage.export_paths import EXPORT_DIR_ENV
from tests.app.test_browser import REPO, free_port, stop, wait_until_healthy


def test_the_default_address_is_this_machine_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMLIT_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv(EXPORT_DIR_ENV, raising=False)
    monkeypatch.delenv(commands.ANY_WORKSPACE_ENV, raising=False)
    _, env = app_command(tmp_path)
    assert env["STREAMLIT_SERVER_ADDRESS"] == "127.0.0.1" and app_url(env) == "http://127.0.0.1:8501"
    assert EXPORT_DIR_ENV not in env and commands.ANY_WORKSPACE_ENV not in env
    assert open_warning("127.0.0.1") is None and open_warning("localhost") is None and open_warning("::1") is None

    _, env = app_command(tmp_path, address="0.0.0.0", export_dir=tmp_path / "out", any_workspace=True)
    assert app_url(env) == "http://0.0.0.0:8501"
    assert env[EXPORT_DIR_ENV] == str((tmp_path / "out").resolve()) and env[commands.ANY_WORKSPACE_ENV] == "1"
    warning = open_warning("0.0.0.0")
    assert "no login" in warning and "Running it for others" in warning
    monkeypatch.setenv("STREAMLIT_SERVER_ADDRESS", "::")  # set explicitly (the Docker image does): honoured
    _, env = app_command(tmp_path)
    assert app_url(env) == "http://[::]:8501" and open_warning(env["STREAMLIT_SERVER_ADDRESS"])


def test_the_flags_reach_the_app_and_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``thresher app --address 0.0.0.0`` warns before it starts, and prints the address used."""
    started: list[dict[str, str]] = []

    class Server:
        def __init__(self, cmd: list[str], env: dict[str, str]):
            started.append(env)

        def wait(self, timeout: float | None = None) -> int:
            return 0

        def terminate(self) -> None: ...

        def kill(self) -> None: ...

    monkeypatch.setattr(commands.subprocess, "Popen", Server)
    monkeypatch.delenv("STREAMLIT_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("STREAMLIT_SERVER_PORT", raising=False)
    ws = Workspace.open(tmp_path / "ws", create=True).root
    args = build_parser().parse_args(["app", "--workspace", str(ws)])
    assert commands.cmd_app(args) == 0
    out, err = capsys.readouterr()
    assert "http://127.0.0.1:8501" in out and not err
    args = build_parser().parse_args(["app", "--workspace", str(ws), "--address", "0.0.0.0", "--export-dir",
                                      str(tmp_path / "out"), "--any-workspace"])
    assert commands.cmd_app(args) == 0
    out, err = capsys.readouterr()
    assert "http://0.0.0.0:8501" in out and "warning: the app listens on 0.0.0.0 and has no login" in err
    assert started[-1]["STREAMLIT_SERVER_ADDRESS"] == "0.0.0.0" and started[-1][commands.ANY_WORKSPACE_ENV] == "1"
    demo = build_parser().parse_args(["demo", "--address", "0.0.0.0", "--any-workspace"])
    assert (demo.address, demo.any_workspace, demo.export_dir) == ("0.0.0.0", True, None)


def _listening(port: int) -> set[str]:
    """The local addresses (as /proc/net/tcp{,6} write them) of the sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, local_port = fields[1].split(":")
            if int(local_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_the_real_server_listens_on_loopback_only(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", create=True).root
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "STREAMLIT_SERVER_ADDRESS"}
    env.update(STREAMLIT_SERVER_PORT=str(port), STREAMLIT_SERVER_HEADLESS="true")
    log = tmp_path / "server.log"
    with log.open("w") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "backend.cli", "app", "--workspace", str(ws)], env=env,
                                  cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server, log)
        time.sleep(0.2)
        listening = _listening(port)
    finally:
        stop(server)
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    assert listening and listening <= loopback, listening
    assert f"http://127.0.0.1:{port}" in log.read_text()


def test_the_docker_image_listens_on_every_interface_of_its_container(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a container 127.0.0.1 would reach nothing through ``-p``: the image names 0.0.0.0."""
    env_lines = (REPO / "Dockerfile").read_text().split("ENV ", 1)[1].split("\n\n", 1)[0]
    assert "STREAMLIT_SERVER_ADDRESS=0.0.0.0" in env_lines and "THRESHER_DATA=/data" in env_lines
    monkeypatch.setenv("STREAMLIT_SERVER_ADDRESS", "0.0.0.0")
    _, env = app_command(tmp_path)
    assert env["STREAMLIT_SERVER_ADDRESS"] == "0.0.0.0"
