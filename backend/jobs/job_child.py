"""The process of one job: ``python -m backend.jobs.job_child JOB_DIR -- THRESHER_ARGS...``.

Runs ``backend.cli.main(THRESHER_ARGS)`` with three additions, and nothing else:

- every stage event the command logs (``tracking.stage``) is appended to ``JOB_DIR/progress.jsonl``;
- SIGTERM (Cancel, :func:`backend.jobs.job_manager.cancel_job`) raises
  :class:`~backend.jobs.tracking.JobCancelled`, a ``KeyboardInterrupt``, so the command stops the
  way Ctrl-C stops it and ``tracking.recorded_run`` marks its run failed "cancelled by the user";
- at exit, the return code and ``done`` / ``failed`` / ``cancelled`` go into ``JOB_DIR/job.json``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from backend.jobs import job_manager
from backend.jobs.tracking import JobCancelled

#: The exit code of a cancelled job (128 + SIGTERM, as a shell reports a process it stopped).
CANCELLED_EXIT = 128 + signal.SIGTERM


class StageEvents(logging.Handler):
    """Appends ``{"time", "stage", "event"}`` per stage record to a JSON-lines file."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        stage = getattr(record, "stage", None)
        if stage is None:
            return
        line = json.dumps({"time": time.time(), "stage": stage, "event": getattr(record, "event", None)})
        with open(self.path, "a") as handle:
            handle.write(line + "\n")


def _cancel(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the run must be marked failed in peace
    raise JobCancelled("cancelled by the user")


def run(job_dir: Path, argv: Sequence[str]) -> int:
    """Run the command ``argv`` as the job in ``job_dir``; returns its exit code."""
    from backend import cli

    handler = StageEvents(job_dir / "progress.jsonl")
    logging.getLogger("backend").addHandler(handler)
    previous = signal.signal(signal.SIGTERM, _cancel)
    code, status = 1, "failed"
    try:
        code = cli.main(list(argv))
        status = "done" if code == 0 else "failed"
    except JobCancelled:
        print("cancelled by the user", file=sys.stderr, flush=True)
        code, status = CANCELLED_EXIT, "cancelled"
    except SystemExit as exc:  # argparse refusing an argument (its message is in the log)
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # a crash: the traceback goes to the log, the record says "failed"
        traceback.print_exc()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stdout.flush()
        job_manager.record_exit(job_dir, code, status)
        signal.signal(signal.SIGTERM, previous)
        logging.getLogger("backend").removeHandler(handler)
    return code


def main(args: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    if len(args) < 2 or args[1] != "--":
        print("usage: python -m backend.jobs.job_child JOB_DIR -- THRESHER_ARGS...", file=sys.stderr)
        return 2
    return run(Path(args[0]), args[2:])


if __name__ == "__main__":
    sys.exit(main())
