"""Running a job body as a recorded run: ``running`` on start, ``done`` with a summary, or
``failed`` with the error (also on Ctrl-C and SIGTERM), so the app never shows a run that
silently died. While the body runs, a daemon thread touches the run's heartbeat file every
``runs.HEARTBEAT_S`` seconds; with the pid the run records, that lets any process tell a run
whose process was killed (SIGKILL, out of memory) from a live one (:mod:`backend.storage.runs`)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backend.storage import runs
from backend.storage.workspace import Workspace

log = logging.getLogger(__name__)


#: Set in a job's process (``backend.jobs.job_manager``): the job folder its runs are noted in.
JOB_DIR_ENV = "THRESHER_JOB_DIR"


class JobCancelled(KeyboardInterrupt):
    """Raised in a job's process when the user cancels it (SIGTERM, ``backend.jobs.job_child``);
    its message is the reason the run is marked failed with."""


class Terminated(JobCancelled):
    """Raised in a ``thresher`` command run from a terminal or a script when it gets SIGTERM
    (``backend.cli.main``): it stops like Ctrl-C, the run marked failed with its message."""


class _Heartbeat(threading.Thread):
    """Touches a run's heartbeat file every ``runs.HEARTBEAT_S`` seconds until stopped."""

    def __init__(self, ws: Workspace, run_id: str):
        super().__init__(name=f"heartbeat {run_id}", daemon=True)
        self.ws, self.run_id = ws, run_id
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(runs.HEARTBEAT_S):
            try:
                runs.heartbeat(self.ws, self.run_id)
            except OSError as exc:  # a full or read-only disk: the pid check still works on this host
                log.warning("run %s: could not write its heartbeat (%s)", self.run_id, exc)

    def stop(self) -> None:
        """Stop beating before the run is closed (which removes the file: no touch may follow)."""
        self.stopped.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=5)


class RunHandle:
    def __init__(self, ws: Workspace, run_id: str):
        self.ws = ws
        self.run_id = run_id
        self.summary: dict[str, Any] = {}


@contextlib.contextmanager
def recorded_run(ws: Workspace, kind: str, config: dict[str, Any], *, embedding_key: str | None = None,
                 seed: int | None = None) -> Iterator[RunHandle]:
    run_id = runs.start_run(ws, kind, config, embedding_key=embedding_key, seed=seed)
    handle = RunHandle(ws, run_id)
    beat = _Heartbeat(ws, run_id)
    beat.start()
    try:
        if os.environ.get(JOB_DIR_ENV):  # a job started from the app: it marks the run if the process dies
            from backend.jobs.job_manager import note_run

            note_run(Path(os.environ[JOB_DIR_ENV]), run_id)
        yield handle
    except KeyboardInterrupt as exc:
        beat.stop()
        cancelled = isinstance(exc, JobCancelled) and str(exc)
        runs.fail_run(ws, run_id, cancelled or "interrupted (Ctrl-C); rerun the same command to resume")
        raise
    except Exception as exc:
        beat.stop()
        runs.fail_run(ws, run_id, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
        raise
    finally:
        beat.stop()
    runs.finish_run(ws, run_id, handle.summary)


@contextlib.contextmanager
def stage(logger: logging.Logger, name: str, *, show: bool = True) -> Iterator[None]:
    """Log the start and end (with its wall time) of one stage of a job.

    The records carry ``extra={"stage": name, "event": "start" | "done"}`` so a caller (the job
    log, ``bench/scale.py``) can time and measure every stage without parsing messages.
    """
    started = time.perf_counter()
    if show:
        logger.info("%s ...", name, extra={"stage": name, "event": "start"})
    yield
    if show:
        logger.info("%s done in %.1f s", name, time.perf_counter() - started,
                    extra={"stage": name, "event": "done"})
