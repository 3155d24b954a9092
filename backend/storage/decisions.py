"""The decisions log: every label decision a curator makes, append-only, one per sample per action.

Actions: ``relabel`` (``new_value`` = the new label), ``keep`` (the given label is confirmed),
``drop`` (leave the sample out of every subset and export), ``unsure``, ``tag`` / ``untag``
(``new_value`` = the tag) and ``undo`` (``new_value`` = the ``decision_id`` it reverses).
Nothing is ever deleted: the current state of every sample is *derived* by replaying the log
(:func:`replay`), so an undo, a second reviewer or a crash can never lose what was decided.

Concurrency design. Writers (the app's sessions, the CLI, scripts) take an exclusive file lock
(``W/locks/decisions.lock``) around "read what they need, check, append one commit", so:

- an entry is committed (one Lance commit) before :func:`decide` returns, and the app
  acknowledges an action only after that return;
- ``seq`` (the replay order) is strictly increasing with no ties;
- a decision that would change nothing (relabel to the current label, drop a dropped sample, a
  tag already there) is not written, so two reviewers pressing the same button on the same sample
  leave one entry, not two;
- a caller may pass its own ``decision_ids`` (the app makes them before the click is sent):
  an id already in the log is skipped, so a retried request is written once.

Readers need no lock: Lance readers see whole commits only. Every
:data:`backend.storage.maintenance.AUTO_EVERY` commits the writer compacts the table and removes
its old versions (never a row: the log's latest version holds every entry).
"""

from __future__ import annotations

import getpass
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from backend.storage import maintenance, schemas
from backend.storage.errors import ConflictError, NotFoundError, StorageError
from backend.storage.locks import workspace_lock
from backend.storage.workspace import Workspace, sql_string, utcnow

ACTIONS = ("relabel", "keep", "drop", "unsure", "tag", "untag", "undo")
#: Actions that set a sample's review status, and the status each sets.
STATUS_OF = {"relabel": "relabeled", "keep": "kept", "drop": "dropped", "unsure": "unsure"}
SOURCES = ("review", "explore", "search", "cli", "bulk", "duplicates", "sample")
AUTHOR_ENV = "THRESHER_AUTHOR"
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:/+-]{0,39}$")
#: Below this many ids the log is read for those samples only (a Lance filter), above it whole.
_FILTERED_READ_MAX = 400
STATE_COLUMNS = ["id", "current_label", "decision", "tags", "n_decisions", "last_decided"]


def author_name() -> str:
    """Who decides: ``$THRESHER_AUTHOR`` when set, else the operating-system user."""
    configured = os.environ.get(AUTHOR_ENV, "").strip()
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def new_decision_id() -> str:
    return "d-" + uuid.uuid4().hex[:16]


#: The workspace lock (:mod:`backend.storage.locks`) every writer of the log holds.
LOCK = "decisions"


# --------------------------------------------------------------------------- reading
def read_log(ws: Workspace, *, sample_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The log, oldest first (by ``seq``); with ``sample_ids``, only the entries of those samples."""
    where = None
    if sample_ids is not None:
        if not sample_ids:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in schemas.DECISIONS.columns})
        where = "sample_id IN (" + ", ".join(sql_string(i) for i in sample_ids) + ")"
    log = ws.read("decisions", where=where)
    return log.sort_values("seq", kind="stable").reset_index(drop=True)


def undone_ids(log: pd.DataFrame) -> set[str]:
    """The ``decision_id`` of every entry an ``undo`` reversed."""
    return set(log.loc[log["action"] == "undo", "new_value"].dropna())


def replay(log: pd.DataFrame) -> pd.DataFrame:
    """The current state of every sample the log mentions, derived from the log alone.

    Algorithm: drop ``undo`` entries and the entries they reverse; then, in ``seq`` order, the
    last ``relabel`` gives ``current_label``; the last of relabel / keep / drop / unsure gives
    ``decision`` (relabeled / kept / dropped / unsure); for each (sample, tag) the last of tag /
    untag says whether the tag is on. Returns :data:`STATE_COLUMNS`; ``current_label`` is null
    where the sample was never relabeled, ``tags`` a sorted comma-separated text ("" for none).
    """
    if log.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in STATE_COLUMNS})
    live = log[(log["action"] != "undo") & ~log["decision_id"].isin(undone_ids(log))]
    live = live.sort_values("seq", kind="stable")
    state = pd.DataFrame(index=pd.Index(sorted(log["sample_id"].unique()), name="id"))
    relabels = live[live["action"] == "relabel"].groupby("sample_id")["new_value"].last()
    state["current_label"] = relabels
    statuses = live[live["action"].isin(list(STATUS_OF))].groupby("sample_id")["action"].last()
    state["decision"] = statuses.map(STATUS_OF)
    tagging = live[live["action"].isin(["tag", "untag"])]
    tags = pd.Series(dtype=object)
    if not tagging.empty:
        last = tagging.groupby(["sample_id", "new_value"])["action"].last()
        on = last[last == "tag"].reset_index()
        tags = on.groupby("sample_id")["new_value"].agg(lambda names: ",".join(sorted(names)))
    state["tags"] = tags
    state["tags"] = state["tags"].fillna("")
    state["n_decisions"] = live.groupby("sample_id").size()
    state["n_decisions"] = state["n_decisions"].fillna(0).astype(int)
    state["last_decided"] = live.groupby("sample_id")["time"].max()
    state = state.reset_index()
    state["decision"] = state["decision"].astype(object).where(state["decision"].notna(), None)
    state["current_label"] = state["current_label"].astype(object).where(state["current_label"].notna(), None)
    return state[STATE_COLUMNS]


def decided_states(ws: Workspace) -> pd.DataFrame:
    """:func:`replay` of the whole log."""
    return replay(read_log(ws))


def curated_samples(ws: Workspace, columns: Sequence[str] = ("id", "path", "label", "split")) -> pd.DataFrame:
    """Every sample with its curated state: ``label`` is the current label after decisions,
    ``original_label`` the ingested one, plus ``decision``, ``tags``, ``dropped``, ``pinned``."""
    cols = list(dict.fromkeys(["id", "label", *columns]))
    samples = ws.samples(columns=cols).rename(columns={"label": "original_label"})
    state = decided_states(ws)
    frame = samples.merge(state, on="id", how="left")
    frame["label"] = frame["current_label"].where(frame["current_label"].notna(), frame["original_label"])
    frame["decision"] = frame["decision"].astype(object).where(frame["decision"].notna(), None)
    frame["tags"] = frame["tags"].fillna("")
    frame["dropped"] = frame["decision"].eq("dropped")
    frame["pinned"] = frame["decision"].eq("kept")
    frame["n_decisions"] = frame["n_decisions"].fillna(0).astype(int)
    return frame.drop(columns=["current_label"])


def dropped_ids(ws: Workspace) -> set[str]:
    """Samples whose current decision is ``drop``: in no pruned subset and no export."""
    state = decided_states(ws)
    return set(state.loc[state["decision"] == "dropped", "id"])


def pinned_ids(ws: Workspace) -> set[str]:
    """Samples whose current decision is ``keep``: a prune never removes them."""
    state = decided_states(ws)
    return set(state.loc[state["decision"] == "kept", "id"])


def history(ws: Workspace, sample_id: str) -> pd.DataFrame:
    """One sample's entries, newest first, with ``undone`` (True where a later undo reversed it).
    Undo entries that name this sample are included."""
    log = read_log(ws, sample_ids=[sample_id])
    log["undone"] = log["decision_id"].isin(undone_ids(log))
    return log.sort_values("seq", ascending=False, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- writing
@dataclass
class DecisionResult:
    """What one call wrote: ``entries`` (the committed rows), and the ids it did not write for
    because nothing would change (``unchanged``) or their ``decision_ids`` were already in the
    log (``already_logged``)."""

    entries: pd.DataFrame
    unchanged: list[str] = field(default_factory=list)
    already_logged: list[str] = field(default_factory=list)

    @property
    def n_written(self) -> int:
        return len(self.entries)


def check_tag(tag: str | None) -> str:
    tag = (tag or "").strip()
    if not _TAG.match(tag):
        raise StorageError(f"tag {tag!r} is not allowed: use 1-40 letters, digits, spaces or _ . : / + -, "
                           "starting with a letter or digit (no commas)")
    return tag


def known_labels(ws: Workspace) -> list[str]:
    """The classes a sample can be relabeled to: every label some sample has been ingested with."""
    labels = ws.dataset("samples").to_table(columns=["label"]).column("label").unique().to_pylist()
    return sorted(str(label) for label in labels if label not in (None, ""))


def _given_labels(ws: Workspace, ids: Sequence[str]) -> dict[str, str | None]:
    if len(ids) <= _FILTERED_READ_MAX:
        rows = ws.read("samples", columns=["id", "label"],
                       where="id IN (" + ", ".join(sql_string(i) for i in ids) + ")")
    else:
        rows = ws.samples(columns=["id", "label"])
    return dict(zip(rows["id"], rows["label"], strict=True))


def _check_ids(given: dict[str, str | None], ids: Sequence[str], ws: Workspace) -> None:
    unknown = [i for i in ids if i not in given]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise NotFoundError(f"{len(unknown)} id(s) are not samples of {ws.root}: {shown}; nothing was written "
                            "(`thresher export --workspace W --format csv --out all.csv` lists the ids)")


def decide(
    ws: Workspace,
    action: str,
    sample_ids: Iterable[str],
    *,
    to: str | None = None,
    tag: str | None = None,
    reason: str = "",
    source: str = "cli",
    score_run: str | None = None,
    author: str | None = None,
    decision_ids: Sequence[str] | None = None,
    expected: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> DecisionResult:
    """Record ``action`` for each of ``sample_ids`` in one commit, after checking all of them.

    ``to``: the new label of a ``relabel`` (one of :func:`known_labels`); ``tag``: the tag of a
    ``tag`` / ``untag``. Unknown ids, labels, actions or sources are refused before anything is
    written, naming them. Decisions that would change nothing are skipped (:class:`DecisionResult`).
    ``undo`` goes through :func:`undo`.

    ``expected``: {sample id: (decision, current label)} as the caller showed them (decision None:
    none; label None: the given one). When another writer changed one of them since, nothing is
    written and ``ConflictError`` says what it is now: a reviewer's stale screen must not replace
    a colleague's decision unseen (two tabs on one sample).
    """
    if action not in ACTIONS or action == "undo":
        raise StorageError(f"unknown action {action!r}; use one of {', '.join(a for a in ACTIONS if a != 'undo')}"
                           " (undo has its own command)")
    if source not in SOURCES:
        raise StorageError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    ids = list(dict.fromkeys(str(i) for i in sample_ids))
    if not ids:
        raise StorageError(f"{action}: no sample ids given")
    if decision_ids is not None and len(decision_ids) != len(ids):
        raise StorageError(f"{len(decision_ids)} decision ids for {len(ids)} samples")
    if action == "relabel":
        labels = known_labels(ws)
        if to is None or str(to) not in labels:
            raise StorageError(f"relabel: {to!r} is not a class of this workspace (classes: {', '.join(labels)})")
        to = str(to)
    elif to is not None:
        raise StorageError(f"--to goes with relabel only, not {action}")
    if action in ("tag", "untag"):
        tag = check_tag(tag)
    elif tag is not None:
        raise StorageError(f"--tag goes with tag / untag only, not {action}")
    author = (author or author_name()).strip() or "unknown"
    given = _given_labels(ws, ids)
    _check_ids(given, ids, ws)
    with workspace_lock(ws, LOCK):
        log = read_log(ws) if len(ids) > _FILTERED_READ_MAX else read_log(ws, sample_ids=ids)
        logged = set(log["decision_id"])
        if decision_ids is not None and not logged.issuperset(decision_ids):
            logged |= _logged_ids(ws, decision_ids)
        state = replay(log).set_index("id")
        if expected:  # a click delivered twice (its decision id logged) is no conflict: it is skipped below
            repeats = {i for k, i in enumerate(ids) if decision_ids is not None and decision_ids[k] in logged}
            _check_expected(state, log, {i: v for i, v in expected.items() if i not in repeats}, given)
        rows, unchanged, already = [], [], []
        now = utcnow()
        # read whole (many ids): the next seq follows from it; read filtered: ask the seq column
        seq = _seq_after(log) if len(ids) > _FILTERED_READ_MAX else last_seq(ws) + 1
        for k, sample_id in enumerate(ids):
            decision_id = decision_ids[k] if decision_ids is not None else new_decision_id()
            if decision_id in logged:
                already.append(sample_id)
                continue
            known = state.loc[sample_id] if sample_id in state.index else None
            current_label = known["current_label"] if known is not None and known["current_label"] else given[sample_id]
            status = known["decision"] if known is not None else None
            tags = set(filter(None, (known["tags"] if known is not None else "").split(",")))
            old, new = _values(action, current_label, status, tag, to)
            if (action == "relabel" and to == current_label) or (action in ("keep", "drop", "unsure")
                                                                 and status == STATUS_OF[action]) \
                    or (action == "tag" and tag in tags) or (action == "untag" and tag not in tags):
                unchanged.append(sample_id)
                continue
            rows.append({"seq": seq, "decision_id": decision_id, "sample_id": sample_id, "action": action,
                         "old_value": old, "new_value": new, "reason": reason or "", "author": author,
                         "time": now, "source": source, "score_run": score_run})
            seq += 1
        entries = _append(ws, rows)
    return DecisionResult(entries, unchanged, already)


def _check_expected(state: pd.DataFrame, log: pd.DataFrame, expected: Mapping[str, tuple[str | None, str | None]],
                    given: Mapping[str, str]) -> None:
    """``ConflictError`` naming the samples whose (decision, current label) in ``state`` is not
    the ``expected`` one (a label None: the ``given`` one), with who changed it last and when."""
    changed = []
    for sample_id, (decision, label) in expected.items():
        decision = decision if isinstance(decision, str) and decision else None
        label = label if isinstance(label, str) and label else None
        known = state.loc[sample_id] if sample_id in state.index else None
        now_decision = (known["decision"] if known is not None else None) or None
        now_label = (known["current_label"] if known is not None else None) or given.get(sample_id)
        if (now_decision, str(now_label)) == (decision or None, str(label or given.get(sample_id))):
            continue
        entries = log[log["sample_id"] == sample_id].sort_values("seq")
        last = ("" if entries.empty else f" ({entries['action'].iloc[-1]} by {entries['author'].iloc[-1]} at "
                f"{pd.Timestamp(entries['time'].iloc[-1]):%H:%M:%S})")
        changed.append(f"{sample_id} is now {now_decision or 'undecided'} with label {now_label}{last}")
    if changed:
        raise ConflictError("changed since this page showed it, so nothing was saved: " + "; ".join(changed)
                            + ". Look again and decide anew.")


def _values(action: str, label: str | None, status: str | None, tag: str | None,
            to: str | None) -> tuple[str | None, str | None]:
    """(old_value, new_value) of one entry."""
    if action == "relabel":
        return label, to
    if action in ("tag", "untag"):
        return None, tag
    return status, STATUS_OF[action]


def _logged_ids(ws: Workspace, decision_ids: Sequence[str]) -> set[str]:
    where = "decision_id IN (" + ", ".join(sql_string(i) for i in decision_ids) + ")"
    return set(ws.read("decisions", columns=["decision_id"], where=where)["decision_id"])


def last_seq(ws: Workspace) -> int:
    """The ``seq`` of the log's last entry (0 for an empty log); reads the ``seq`` column only."""
    seqs = ws.dataset("decisions").to_table(columns=["seq"]).column("seq")
    return int(pa.compute.max(seqs).as_py()) if len(seqs) else 0


def _seq_after(log: pd.DataFrame) -> int:
    """The next ``seq`` after the whole log ``log`` (read under :data:`LOCK`), without reading it again."""
    return 1 if log.empty else int(log["seq"].max()) + 1


def _append(ws: Workspace, rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=schemas.DECISIONS.columns)
    table = pa.Table.from_pylist(rows, schema=schemas.DECISIONS.schema)
    ws.table("decisions").add(table)
    maintenance.after_commit(ws, "decisions")  # the caller holds LOCK
    return table.to_pandas()


def latest_in_effect(log: pd.DataFrame, *, by_author: str | None = None) -> pd.Series | None:
    """The log's latest entry still in effect (not an undo, not undone), of ``by_author`` when
    given; None without one."""
    candidates = log[(log["action"] != "undo") & ~log["decision_id"].isin(undone_ids(log))]
    if by_author is not None:
        candidates = candidates[candidates["author"] == by_author]
    return None if candidates.empty else candidates.sort_values("seq", kind="stable").iloc[-1]


def undo(
    ws: Workspace,
    decision_id: str | None = None,
    *,
    author: str | None = None,
    source: str = "cli",
    reason: str = "",
    by_author: str | None = None,
) -> pd.Series:
    """Reverse one entry (the latest one still in effect by default, or ``decision_id``) by
    appending an ``undo`` entry; returns the entry undone, with ``undo_id`` (the new entry's id).
    ``by_author``: the latest of that
    author's entries (a reviewer's Undo button undoes their own last decision, not a colleague's).
    Undo entries cannot themselves be undone: decide again instead."""
    author = (author or author_name()).strip() or "unknown"
    with workspace_lock(ws, LOCK):
        log = read_log(ws)
        undone = undone_ids(log)
        if decision_id is None:
            target = latest_in_effect(log, by_author=by_author)
            if target is None:
                raise NotFoundError("nothing to undo: no decision in effect" +
                                    (f" by {by_author}" if by_author else ""))
        else:
            match = log[log["decision_id"] == decision_id]
            if match.empty:
                raise NotFoundError(f"no decision {decision_id!r} in {ws.root}; `thresher decisions -w W` lists them")
            target = match.iloc[0]
            if target["action"] == "undo":
                raise StorageError(f"{decision_id} is an undo; undo cannot be undone, decide again instead")
            if decision_id in undone:
                raise StorageError(f"{decision_id} ({target['action']} of {target['sample_id']}) is already undone")
        undo_id = new_decision_id()
        _append(ws, [{"seq": _seq_after(log), "decision_id": undo_id, "sample_id": target["sample_id"],
                      "action": "undo", "old_value": target["action"], "new_value": target["decision_id"],
                      "reason": reason or "", "author": author, "time": utcnow(), "source": source,
                      "score_run": target["score_run"] if isinstance(target["score_run"], str) else None}])
    target = target.copy()
    target["undo_id"] = undo_id
    return target


# --------------------------------------------------------------------------- bulk
def suggestion_candidates(ws: Workspace, score_run: str, *, min_score: float = 0.0,
                          label: str | None = None) -> pd.DataFrame:
    """The flagged samples of ``score_run`` with ``label_issue_score >= min_score`` (and given
    label ``label``) that no decision has touched yet and whose suggestion differs from their
    label: id, label, suggested_label, label_issue_score. A sample a reviewer already decided on
    (kept, dropped, relabeled, unsure) is left to that decision."""
    from backend.storage.results import read_label_issues

    verdict = read_label_issues(ws, score_run)
    frame = ws.samples(columns=["id", "label"]).merge(verdict, on="id")
    mask = frame["is_label_issue"].fillna(False).astype(bool) & (frame["label_issue_score"] >= min_score)
    mask &= frame["suggested_label"].notna() & (frame["suggested_label"].astype(str) != frame["label"].astype(str))
    if label is not None:
        if label not in known_labels(ws):
            raise StorageError(f"--label {label!r} is not a class of this workspace (classes: "
                               f"{', '.join(known_labels(ws))})")
        mask &= frame["label"].astype(str) == label
    frame = frame[mask.to_numpy()]
    decided = decided_states(ws)
    touched = set(decided.loc[decided["decision"].notna(), "id"])
    frame = frame[~frame["id"].isin(touched)]
    frame = frame.sort_values(["label_issue_score", "id"], ascending=[False, True], kind="stable")
    return frame[["id", "label", "suggested_label", "label_issue_score"]].reset_index(drop=True)


def accept_suggestions(ws: Workspace, score_run: str, *, min_score: float = 0.0, label: str | None = None,
                       ids: Sequence[str] | None = None, author: str | None = None,
                       reason: str = "") -> DecisionResult:
    """Relabel every :func:`suggestion_candidates` sample (or the ``ids`` among them) to its
    suggested label: one ``relabel`` entry per sample with source ``bulk`` (one commit per
    suggested class)."""
    candidates = suggestion_candidates(ws, score_run, min_score=min_score, label=label)
    if ids is not None:
        candidates = candidates[candidates["id"].isin(set(ids))]
    result = DecisionResult(pd.DataFrame(columns=schemas.DECISIONS.columns))
    # the lowest score accepted (the app picks ids, so min_score alone said "score >= 0")
    lowest = float(candidates["label_issue_score"].min()) if len(candidates) else min_score
    lowest = math.floor(lowest * 1000) / 1000  # printed to 3 places: rounded down, so ">=" holds
    for target, group in candidates.groupby("suggested_label", sort=True):
        part = decide(ws, "relabel", group["id"].tolist(), to=str(target), source="bulk", score_run=score_run,
                      author=author, reason=reason or f"accepted suggestion (score >= {lowest:.3f})")
        result.entries = pd.concat([result.entries, part.entries], ignore_index=True) if len(
            result.entries) else part.entries
        result.unchanged += part.unchanged
    return result
