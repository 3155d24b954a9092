"""Backend commands the app runs in a child process: the ones that train probes, so torch stays
out of the app's process and a crash there cannot take the app down."""

from __future__ import annotations

import subprocess
import sys

from backend.storage import StorageError

#: How long the app waits for such a command (digits: ~10 s; 1M rows: several minutes).
JOB_TIMEOUT_S = 30 * 60


def run_cli(arguments: list[str]) -> str:
    """Run ``thresher ARGUMENTS`` (``python -m backend.cli``) and return its standard output.

    Raises ``StorageError`` with the command's own ``error:`` line when it fails, or with the
    command to run in a terminal when it takes over ``JOB_TIMEOUT_S``.
    """
    command = [sys.executable, "-m", "backend.cli", *arguments]
    shown = "thresher " + " ".join(arguments)
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise StorageError(f"`{shown}` took over {JOB_TIMEOUT_S // 60} minutes and was stopped; run it in a "
                           "terminal") from None
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        reason = errors[-1].removeprefix("error:").strip() if errors else done.stderr.strip()[-600:]
        raise StorageError(f"`thresher {arguments[0]}` exited with {done.returncode}: {reason}")
    return done.stdout
