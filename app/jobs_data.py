"""The app's side of jobs (``backend.jobs.job_manager``): start, list, cancel, read the log.

Nothing here is cached: a job's state lives in its folder and changes while the page shows it,
and reading a few small JSON files is cheaper than a cache key would be.
"""

from __future__ import annotations

from typing import Any

from app.data import open_workspace
from backend.jobs import job_manager
from backend.jobs.job_manager import Job
from backend.storage import Workspace


def jobs(root: str, kind: str | None = None) -> list[Job]:
    """The workspace's jobs (of one ``kind``, or all), newest first."""
    return job_manager.list_jobs(open_workspace(root), kind)


def running_count(root: str) -> int:
    """How many jobs run now; 0 when ``root`` is not a workspace."""
    if not Workspace.exists(root):
        return 0
    return sum(job.active for job in jobs(root))


def start(root: str, kind: str, params: dict[str, Any]) -> Job:
    """Start a job; raises ValueError naming a refused parameter (nothing started then)."""
    return job_manager.start_job(open_workspace(root), kind, params)


def cancel(root: str, job_id: str) -> Job:
    return job_manager.cancel_job(open_workspace(root), job_id)


def job(root: str, job_id: str) -> Job:
    return job_manager.read_job(open_workspace(root), job_id)


def log_tail(root: str, job_id: str, n: int = 20) -> list[str]:
    return job_manager.job_log_tail(open_workspace(root), job_id, n)


def latest_job(root: str, kind: str, **params: Any) -> Job | None:
    """The newest ``kind`` job started with these parameter values (e.g. ``subset="kept"``)."""
    return next((j for j in jobs(root, kind) if all(j.params.get(k) == v for k, v in params.items())), None)
