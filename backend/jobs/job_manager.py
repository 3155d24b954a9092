"""Jobs: ``thresher`` commands started from the app, each in its own detached process.

One job is one ``python -m backend.cli COMMAND --workspace W ...`` run through the wrapper
:mod:`backend.jobs.job_child`, in a new session (so it outlives the app and a browser reload)
and with everything it knows on disk, in ``W/jobs/<job_id>/``:

    job.json        id, kind, params, argv, created, pid, pid_start (the process's start time,
                    so that a reused pid is not taken for the job), status, returncode, finished,
                    cancel_requested, run_id / run_ids (the runs it recorded)
    log.txt         the command's standard output and error
    progress.jsonl  one JSON line per stage event the command logs (``tracking.stage``)

``job.json`` is replaced whole (temp file + ``os.replace``) under a lock file, because the app
(pid, cancel) and the job (run ids, exit) both write it. The status is derived on read:
``running`` while the process lives, ``done`` / ``failed`` / ``cancelled`` from what the wrapper
wrote at exit, ``interrupted`` when the process is gone without having written that (killed with
SIGKILL, out of memory, a reboot). A job that ends without finishing its run leaves the run
marked ``failed`` with the reason, never ``running``.

Progress: the stages a kind's command logs, done / expected (:data:`EXPECTED_STAGES`); embed
reads its progress bar's ``n/total`` instead; the other kinds log no stages yet, so the page
shows only that they run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import backend
from backend.config import LABEL_ISSUE_CHOICES
from backend.jobs.tracking import JOB_DIR_ENV
from backend.storage import runs
from backend.storage.errors import ConflictError, NotFoundError
from backend.storage.workspace import Workspace, utcnow

#: Seconds between SIGTERM and SIGKILL when a job is cancelled.
CANCEL_GRACE_S = 10.0
ACTIVE = ("starting", "running", "cancelling")
#: A job whose process id is still unrecorded after this long was never started (the app died).
STARTING_S = 60
_JOB_ID = re.compile(r"^[a-z]+-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
_NAME = r"[A-Za-z0-9_]+"


@dataclass(frozen=True)
class Param:
    """One allow-listed parameter: its command-line flag and what values it takes."""

    flag: str
    kind: str  # text | int | float | choice | flag | names
    required: bool = False
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    high_open: bool = False  # the value must stay below ``high``
    pattern: str | None = None  # a text's full form


_SEED = Param("--seed", "int", low=0, high=2**31 - 1)
_EMBEDDING = Param("--embedding", "text", pattern=r"[A-Za-z0-9_.:-]+")
#: The parameters each kind of job takes; anything else is refused before a process starts.
KINDS: dict[str, dict[str, Param]] = {
    "embed": {"model": Param("--model", "text", required=True), "pretrained": Param("--pretrained", "text"),
              "batch_size": Param("--batch-size", "int", low=1, high=65_536)},
    "project": {"method": Param("--method", "choice", choices=("umap", "pca")),
                "n_neighbors": Param("--n-neighbors", "int", low=2, high=1_000),
                "min_dist": Param("--min-dist", "float", low=0.0, high=1.0), "seed": _SEED, "embedding": _EMBEDDING},
    "score": {"scorers": Param("--scorers", "names"), "embedding": _EMBEDDING},
    "prune": {"ratio": Param("--ratio", "float", required=True, low=0.0, high=1.0, high_open=True),
              "method": Param("--method", "text", pattern=f"{_NAME}(:{_NAME})?"),
              "per_class": Param("--per-class", "text", pattern=r"proportional|balanced|none|min:[0-9]+"),
              "seed": _SEED, "name": Param("--name", "text", required=True),
              "label_issues": Param("--label-issues", "choice", choices=LABEL_ISSUE_CHOICES),
              "overwrite": Param("--overwrite", "flag"), "score_run": Param("--score-run", "text")},
    "evaluate": {"subset": Param("--subset", "text", required=True),
                 "folds": Param("--folds", "int", low=2, high=50), "seed": _SEED},
}
#: The stages each kind's command logs through ``tracking.stage``, in order; progress is the
#: share done. Only ``thresher score`` logs stages (its optional "shared kNN" above 20k rows
#: and the per-scorer stages are not counted); ``embed`` reads its progress bar instead.
EXPECTED_STAGES: dict[str, tuple[str, ...]] = {
    "score": ("load dataset", "probes", "pruning scores (training dynamics)", "label noise",
              "write label issues", "pruning scores (geometry and probes)", "write scores", "neural collapse"),
}
_PROGRESS_BAR = re.compile(r"(\d+)/(\d+) \[")


@dataclass(frozen=True)
class Progress:
    """``fraction`` in [0, 1] or None when the kind has no known stages; ``current``: the stage
    under way; ``stages``: every stage started so far, in order."""

    fraction: float | None
    current: str | None = None
    stages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    """A job as read from its folder, with its status derived now (module docstring)."""

    job_id: str
    kind: str
    params: dict[str, Any]
    argv: list[str]
    created: str
    status: str  # starting | running | cancelling | done | failed | cancelled | interrupted
    returncode: int | None
    finished: str | None
    run_id: str | None
    progress: Progress
    problem: str | None  # why it failed or stopped, and what to do; None when it did not
    run_ids: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def command(self) -> str:
        return "thresher " + " ".join(self.argv)


def _check_value(kind: str, name: str, param: Param, value: Any) -> list[str]:
    """The arguments for one parameter (``--flag=value``, so a value starting with '-' stays a
    value); ValueError naming the parameter and what it takes."""
    where = f"{kind} job: {name}"
    if param.kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"{where} is true or false, not {value!r}")
        return [param.flag] if value else []
    if param.kind == "names":
        if not isinstance(value, str | list | tuple):
            raise ValueError(f"{where} is a list of names, not {value!r}")
        names = [n.strip() for n in value.split(",")] if isinstance(value, str) else list(value)
        bad = [n for n in names if not isinstance(n, str) or not re.fullmatch(_NAME, n)]
        if bad or not names:
            raise ValueError(f"{where} takes names of letters, digits and _, not {bad or value!r}")
        return [f"{param.flag}={','.join(names)}"]
    if param.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{where} is a number, not {value!r}")
        if param.kind == "int" and value != int(value):
            raise ValueError(f"{where} is a whole number, not {value!r}")
        value = int(value) if param.kind == "int" else float(value)
        too_high = param.high is not None and (value >= param.high if param.high_open else value > param.high)
        if (param.low is not None and value < param.low) or too_high:
            upper = f"below {param.high:g}" if param.high_open else f"at most {param.high:g}"
            raise ValueError(f"{where} must be at least {param.low:g} and {upper}, not {value!r}")
        return [f"{param.flag}={value}"]
    if not isinstance(value, str) or not value.strip() or len(value) > 1_000 or not value.isprintable():
        raise ValueError(f"{where} must be a line of text, not {value!r}")
    value = value.strip()
    if param.kind == "choice" and value not in param.choices:
        raise ValueError(f"{where} is one of {', '.join(param.choices)}, not {value!r}")
    if param.pattern and not re.fullmatch(param.pattern, value):
        raise ValueError(f"{where}: {value!r} is not a valid value")
    return [f"{param.flag}={value}"]


def build_argv(root: Path, kind: str, params: dict[str, Any]) -> list[str]:
    """The ``thresher`` arguments of a ``kind`` job (no shell involved); ValueError for an unknown
    kind or parameter, a missing required one, or a value outside what it takes."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; the kinds are {', '.join(KINDS)}")
    allowed = KINDS[kind]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"{kind} job: unknown parameter(s) {', '.join(unknown)}; it takes {', '.join(allowed)}")
    argv = [kind, f"--workspace={Path(root).resolve()}"]
    for name, param in allowed.items():
        value = params.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if param.required:
                raise ValueError(f"{kind} job: {name} is required")
            continue
        argv += _check_value(kind, name, param, value)
    return argv


# ---------------------------------------------------------------------------------- records
def _job_dir(ws: Workspace, job_id: str) -> Path:
    if not _JOB_ID.match(job_id) or not (ws.jobs_dir / job_id / "job.json").exists():
        raise NotFoundError(f"no job {job_id!r} in {ws.jobs_dir}")
    return ws.jobs_dir / job_id


def _read(job_dir: Path) -> dict[str, Any]:
    return json.loads((job_dir / "job.json").read_text())


def _write(job_dir: Path, record: dict[str, Any]) -> None:
    partial = job_dir / f".job.json.{os.getpid()}.{threading.get_ident()}.partial"
    partial.write_text(json.dumps(record, indent=1, default=str))
    os.replace(partial, job_dir / "job.json")


@contextlib.contextmanager
def _locked(job_dir: Path) -> Iterator[None]:
    with open(job_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_record(job_dir: Path, **fields: Any) -> dict[str, Any]:
    """Set ``fields`` in a job's ``job.json`` (read, change, replace, under the job's lock)."""
    with _locked(job_dir):
        record = _read(job_dir)
        record.update(fields)
        _write(job_dir, record)
    return record


def note_run(job_dir: Path, run_id: str) -> None:
    """Record that the job in ``job_dir`` started run ``run_id`` (``tracking.recorded_run``)."""
    with _locked(job_dir):
        record = _read(job_dir)
        record["run_ids"] = [*record.get("run_ids", []), run_id]
        record["run_id"] = run_id
        _write(job_dir, record)


def record_exit(job_dir: Path, returncode: int, status: str) -> None:
    """The wrapper's last word: how the command ended (``done``, ``failed`` or ``cancelled``)."""
    update_record(job_dir, returncode=returncode, status=status, finished=utcnow().isoformat(timespec="seconds"))


# ---------------------------------------------------------------------------------- processes
def _process_start(pid: int) -> int | None:
    """The start time of live process ``pid`` (``runs.process_start``: the runs record it too)."""
    return runs.process_start(pid)


def _alive(record: dict[str, Any]) -> bool:
    pid = record.get("pid")
    return pid is not None and _process_start(pid) == record.get("pid_start")


def _signal_group(record: dict[str, Any], sig: signal.Signals) -> None:
    """Send ``sig`` to the job's process group (its pid: the job leads a session of its own)."""
    if _alive(record):
        with contextlib.suppress(ProcessLookupError):  # it ended between the check and the signal
            os.killpg(record["pid"], sig)


def start_job(ws: Workspace, kind: str, params: dict[str, Any]) -> Job:
    """Start a ``kind`` job with ``params`` (:data:`KINDS`) in a detached process; returns it.
    A bad kind or parameter raises ValueError before anything is written."""
    argv = build_argv(ws.root, kind, params)
    job_id = f"{kind}-{utcnow():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    job_dir = ws.jobs_dir / job_id
    job_dir.mkdir(parents=True)
    record = {"id": job_id, "kind": kind, "params": params, "argv": argv,
              "created": utcnow().isoformat(timespec="milliseconds"), "pid": None, "pid_start": None,
              "status": "starting", "returncode": None, "finished": None, "run_id": None, "run_ids": []}
    _write(job_dir, record)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{JOB_DIR_ENV: str(job_dir)})
    source_root = str(Path(backend.__file__).resolve().parent.parent)  # so that `-m backend...` imports
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    with open(job_dir / "log.txt", "ab") as log:
        log.write(f"$ thresher {' '.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen([sys.executable, "-m", "backend.jobs.job_child", str(job_dir), "--", *argv],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=env, close_fds=True)
    update_record(job_dir, pid=process.pid, pid_start=_process_start(process.pid), status="running")
    # reap it when it ends (no zombie while the app lives; after an app restart, init reaps it)
    threading.Thread(target=process.wait, name=f"wait {job_id}", daemon=True).start()
    return read_job(ws, job_id)


def cancel_job(ws: Workspace, job_id: str, *, grace_s: float = CANCEL_GRACE_S) -> Job:
    """SIGTERM to the job's processes (the command stops and marks its run failed, "cancelled by
    the user"), then SIGKILL after ``grace_s`` seconds if it is still there."""
    job_dir = _job_dir(ws, job_id)
    job = read_job(ws, job_id)
    if not job.active:
        raise ConflictError(f"job {job_id} is {job.status}, not running: there is nothing to cancel")
    record = update_record(job_dir, cancel_requested=time.time(), cancel_grace_s=grace_s)
    _signal_group(record, signal.SIGTERM)
    timer = threading.Timer(grace_s, _kill_overdue, args=(job_dir,))
    timer.daemon = True
    timer.start()
    return read_job(ws, job_id)


def _kill_overdue(job_dir: Path) -> None:
    """SIGKILL a cancelled job still running after its grace period (also checked on every read,
    in case the app that cancelled it has gone)."""
    record = _read(job_dir)
    if record.get("returncode") is None and record.get("cancel_requested"):
        if time.time() >= record["cancel_requested"] + record.get("cancel_grace_s", CANCEL_GRACE_S):
            _signal_group(record, signal.SIGKILL)


# ---------------------------------------------------------------------------------- reading
def _status(record: dict[str, Any]) -> str:
    if record.get("returncode") is not None:
        return record.get("status") or ("done" if record["returncode"] == 0 else "failed")
    if record.get("pid") is None:  # the app records it right after the process starts
        started = datetime.fromisoformat(record["created"])
        return "starting" if utcnow() - started < timedelta(seconds=STARTING_S) else "interrupted"
    if _alive(record):
        return "cancelling" if record.get("cancel_requested") else "running"
    return "cancelled" if record.get("cancel_requested") else "interrupted"


#: Why a job's run is marked failed when the job ended with the run still ``running``.
_RUN_ENDS = {"cancelled": "cancelled by the user", "interrupted": "interrupted: process ended without finishing",
             "failed": "failed: the job's process ended with an error (see its log)",
             "done": "interrupted: process ended without finishing the run"}


def _close_runs(ws: Workspace, job_dir: Path, record: dict[str, Any], status: str) -> None:
    """Mark failed every run of an ended job that is still ``running`` (a job killed with SIGKILL
    cannot), deleting the rows it wrote (``runs.fail_run``), once: ``runs_closed`` records that
    it was done."""
    for run_id in record.get("run_ids", []):
        with contextlib.suppress(NotFoundError):  # the user deleted the run
            if runs.get_run(ws, run_id, as_stored=True)["status"] == "running":
                runs.fail_run(ws, run_id, _RUN_ENDS[status])
    update_record(job_dir, runs_closed=True)


def _log_tail_text(job_dir: Path, n_bytes: int = 65_536) -> str:
    path = job_dir / "log.txt"
    if not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - n_bytes))
        return handle.read().decode("utf-8", errors="replace")


def _lines(text: str) -> list[str]:
    """Log lines as a terminal shows them: a progress bar's ``\\r`` redraws keep only the last."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line.rsplit("\r", 1)[-1].strip()]


def _progress(job_dir: Path, kind: str) -> Progress:
    started: list[str] = []
    done: set[str] = set()
    path = job_dir / "progress.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line cut short by a kill
                event = json.loads(line)
                (started.append if event["event"] == "start" else done.add)(event["stage"])
    current = next((s for s in reversed(started) if s not in done), None)
    expected = EXPECTED_STAGES.get(kind)
    if expected:
        return Progress(sum(s in done for s in expected) / len(expected), current, tuple(started))
    if kind == "embed":
        bars = _PROGRESS_BAR.findall(_log_tail_text(job_dir, 4_096))
        if bars:
            n, total = map(int, bars[-1])
            return Progress(n / total if total else 0.0, "embed", tuple(started))
    return Progress(None, current, tuple(started))


def _problem(job_dir: Path, record: dict[str, Any], status: str) -> str | None:
    """Why the job did not finish, and what to do (the command's own ``error:`` line says both)."""
    if status == "interrupted":
        again = " (embed keeps the batches it stored and goes on from there)" if record["kind"] == "embed" else ""
        return ("The process ended without finishing (killed, out of memory, or the machine restarted). "
                f"Start the job again{again}.")
    if status == "cancelled":
        return "Cancelled by the user; its run is marked failed. Start it again when needed."
    if status != "failed":
        return None
    lines = _lines(_log_tail_text(job_dir, 16_384))
    errors = [line for line in lines if line.startswith("error:") or re.match(r"^thresher[\w -]*: error: ", line)]
    if errors:  # the command's own message (argparse's: "thresher prune: error: ...")
        return errors[-1].partition("error:")[2].strip()
    crash = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", line)]
    what = crash[-1] if crash else f"exit code {record.get('returncode')}"
    return f"{what}. The log below has the traceback; run `thresher {' '.join(record['argv'])}` in a terminal to retry."


def _job(ws: Workspace, job_dir: Path) -> Job:
    record = _read(job_dir)
    status = _status(record)
    if status == "cancelling":
        _kill_overdue(job_dir)
    if status not in ACTIVE and not record.get("runs_closed"):
        _close_runs(ws, job_dir, record, status)
    return Job(job_id=record["id"], kind=record["kind"], params=record["params"], argv=record["argv"],
               created=record["created"], status=status, returncode=record.get("returncode"),
               finished=record.get("finished"), run_id=record.get("run_id"),
               progress=_progress(job_dir, record["kind"]), problem=_problem(job_dir, record, status),
               run_ids=list(record.get("run_ids", [])))


def read_job(ws: Workspace, job_id: str) -> Job:
    return _job(ws, _job_dir(ws, job_id))


def list_jobs(ws: Workspace, kind: str | None = None) -> list[Job]:
    """The workspace's jobs, newest first (a job folder without its record is skipped)."""
    if not ws.jobs_dir.exists():
        return []
    found = [_job(ws, d) for d in ws.jobs_dir.iterdir() if _JOB_ID.match(d.name) and (d / "job.json").exists()]
    found = [job for job in found if kind is None or job.kind == kind]
    return sorted(found, key=lambda job: (job.created, job.job_id), reverse=True)


def job_log_tail(ws: Workspace, job_id: str, n: int = 20) -> list[str]:
    """The last ``n`` lines of a job's log, progress-bar redraws folded."""
    return _lines(_log_tail_text(_job_dir(ws, job_id)))[-n:]
