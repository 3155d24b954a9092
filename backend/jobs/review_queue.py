"""The review queue: which flagged sample comes next, how far the review has got, and the
neighbours a reviewer compares a sample with. Plain functions over frames and arrays, so the
app's Review page is a view over them and the tests need no browser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: A sample counts as reviewed once any of these is its current decision.
REVIEWED = ("relabeled", "kept", "dropped", "unsure")
#: ... and as a confirmed error (the flag was right) when it was relabeled or dropped.
CHANGED = ("relabeled", "dropped")


def with_decisions(issues: pd.DataFrame, states: pd.DataFrame) -> pd.DataFrame:
    """``issues`` (one row per scored sample) with ``decision``, ``current_label`` and ``tags``
    from the decisions log's state (:func:`backend.storage.decisions.replay`)."""
    merged = issues.merge(states[["id", "decision", "current_label", "tags"]], on="id", how="left")
    merged["current_label"] = merged["current_label"].where(merged["current_label"].notna(), merged["label"])
    merged["tags"] = merged["tags"].fillna("")
    merged["decision"] = merged["decision"].astype(object).where(merged["decision"].notna(), None)
    return merged


def queue(flagged: pd.DataFrame, *, skipped: set[str] | frozenset[str] = frozenset(),
          first: str | None = None) -> pd.DataFrame:
    """The samples still to review, most suspicious first: flagged rows with no decision yet,
    without the ones skipped this session; ``first`` (a sample whose decision was just undone)
    goes to the front when it is still to review."""
    todo = flagged[flagged["decision"].isna() & ~flagged["id"].isin(skipped)]
    todo = todo.sort_values(["label_issue_score", "id"], ascending=[False, True], kind="stable")
    if first is not None and first in set(todo["id"]):
        todo = pd.concat([todo[todo["id"] == first], todo[todo["id"] != first]])
    return todo.reset_index(drop=True)


@dataclass(frozen=True)
class ReviewProgress:
    """``reviewed`` of ``flagged`` have a decision; of the decided ones (kept, relabeled or dropped:
    ``unsure`` is no verdict) ``changed`` were relabeled to another label or dropped.
    ``precision`` = changed / decided (the flags' precision so far, None before the first
    verdict) and ``expected_errors`` = precision x the flags not yet reviewed."""

    flagged: int
    reviewed: int
    decided: int
    changed: int

    @property
    def precision(self) -> float | None:
        return self.changed / self.decided if self.decided else None

    @property
    def remaining(self) -> int:
        return self.flagged - self.reviewed

    @property
    def expected_errors(self) -> float | None:
        return None if self.precision is None else self.precision * self.remaining

    def text(self) -> str:
        head = f"{self.reviewed:,} reviewed of {self.flagged:,} flagged"
        if self.precision is None:
            return head + " · no verdict yet"
        return (f"{head} · {100 * self.precision:.0f}% of the decided flags were changed or dropped · "
                f"~{self.expected_errors:.0f} error{'' if round(self.expected_errors) == 1 else 's'} expected "
                f"among the {self.remaining:,} left")


def progress(flagged: pd.DataFrame) -> ReviewProgress:
    """Counted from ``flagged``'s decisions. A sample relabeled back to its given label (with
    ``label`` and ``current_label``, :func:`with_decisions`) confirms the label: it counts as
    decided, not as changed."""
    decision = flagged["decision"]
    changed = decision.isin(CHANGED)
    if {"label", "current_label"} <= set(flagged.columns):
        restored = (decision == "relabeled") & (flagged["current_label"].astype(str) == flagged["label"].astype(str))
        changed &= ~restored
    return ReviewProgress(
        flagged=len(flagged),
        reviewed=int(decision.isin(REVIEWED).sum()),
        decided=int(decision.isin(("relabeled", "kept", "dropped")).sum()),
        changed=int(changed.sum()),
    )


def nearest(vectors: np.ndarray, row: int, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``candidates`` (row indices into ``vectors``, unit-norm) most similar to
    ``vectors[row]`` by cosine, itself excluded: (rows, similarities), most similar first."""
    candidates = candidates[candidates != row]
    if len(candidates) == 0 or k <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    similarity = vectors[candidates] @ vectors[row]
    k = min(k, len(candidates))
    top = np.argpartition(-similarity, k - 1)[:k]
    top = top[np.lexsort((candidates[top], -similarity[top]))]
    return candidates[top], similarity[top]
