"""Compare two stored runs of one kind: what differs in their settings, and for score runs how far
their results agree (label-issue flags, every score both stored, neural-collapse metrics).

What a user asks after re-scoring with another embedding, probe or seed: did the flags move, do
the pruning scores still rank the samples alike, did the geometry change? Reads storage only;
``thresher runs --compare A B`` and the app's Runs page show the result.

Choices:

- Scores are compared on the samples both runs scored, by Spearman rank correlation (rankings,
  not values, are what pruning uses) and by the overlap of their hardest ``TOP_FRACTION`` (what a
  keep-hard prune at removed 1 - TOP_FRACTION would keep: the part that matters most). "Hardest"
  is the registered orientation for pruning scores (``registry.difficulty_of``); other stored
  columns count their largest values (the label-noise detectors' scores and the per-sample
  collapse ratio are higher = worse).
- Ties at the cut (SemDeDup's 0/1 and forgetting counts are mostly ties) are part of what a run
  says: the samples it ties, it cannot tell apart. So each run's hardest k is a tie-aware
  membership, w = P(sample in the hardest k) under random tie-breaking (1 above the k-th value,
  (k - n_above) / n_tied at it, 0 below; it sums to k), and the overlap is
  sum(min(w_a, w_b)) / k: one minus the total-variation distance between the two memberships
  (each divided by k). Without ties at the cut it is the plain share |A & B| / k; two runs that
  stored the same values give 1 however many ties they hold; a constant score against an
  informative one gives chance, k / n; where both runs put the cut inside a tie, it is the
  share of the tied samples they have in common. Breaking each run's ties at random
  independently (the expected overlap) would score two identical runs well below 1 (0.5 on
  forgetting counts), and breaking them by row position would measure the row order.
- Flags: counts flagged by both / only one, Jaccard index of the flagged sets, and on samples
  both flag, how often they suggest the same label.
- At a million samples nothing here builds a frame of every sample: each score both runs stored
  is read as one (run, score) slice (``results.read_score``, through the table's zone maps) and
  aligned on the ids in numpy, and the flags are counted in DuckDB over the four columns they
  need, which returns only a page of the samples whose flag changed (``FLAG_CHANGES_ROWS``, the
  largest score change first) and their count. The pandas path (``compare_scores`` on two wide
  frames) stays as the reference the tests hold it to; both give the same numbers.
- Collapse: the headline metrics of each run (``score_export.collapse_summary``), side by side.
- Prune runs: the kept sets (each run's subset, while it still holds that run's rows): kept by
  both / one, Jaccard, and per class (``subsets.compare_memberships``, as two saved subsets).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from backend.scoring.pruning import registry
from backend.scoring.ranks import rank_quantile
from backend.storage import results, runs, score_export, subsets
from backend.storage.errors import StorageError
from backend.storage.workspace import Workspace, sql_string

#: Share of samples called "hardest" when comparing two runs' scores.
TOP_FRACTION = 0.1
#: Run-record fields compared besides the config and the summary.
RECORD_FIELDS = ("kind", "status", "embedding_key", "seed", "code_version", "created_at", "finished_at")
#: Fields that differ between any two runs (when, how long): shown, never counted as a difference.
INFORMATIONAL = ("created_at", "finished_at", "summary.seconds")
#: Rows of the samples flagged by one run only that a comparison keeps (largest change first).
FLAG_CHANGES_ROWS = 200
#: Characters of a value the text report prints.
REPORT_WIDTH = 200


@dataclass
class RunComparison:
    """``settings``: field, a, b, same (record fields, then ``config.*`` and ``summary.*`` keys,
    nested keys joined by dots). The rest only for score runs, else None: ``flags`` (counts and
    rates), ``flag_changes`` (id, label, the two verdicts of the samples flagged by exactly one
    run, largest change of the label-issue score first: the first ``FLAG_CHANGES_ROWS``) with
    ``flag_changes_total`` (how many such samples there are), ``scores`` (name, n, spearman,
    top_overlap per score both stored), ``collapse`` (metric, a, b, difference) with ``collapse_sources`` (where each run's headline metrics come from). For
    prune runs ``kept`` (counts, Jaccard) and ``kept_by_class`` (class, kept_a, kept_b,
    kept_by_both), or ``kept_note`` saying why a kept set is gone."""

    run_a: str
    run_b: str
    kind: str
    settings: pd.DataFrame
    flags: dict[str, Any] | None = None
    flag_changes: pd.DataFrame | None = None
    flag_changes_total: int | None = None
    scores: pd.DataFrame | None = None
    collapse: pd.DataFrame | None = None
    collapse_sources: tuple[str | None, str | None] | None = None
    kept: dict[str, Any] | None = None
    kept_by_class: pd.DataFrame | None = None
    kept_note: str | None = None


def compare_runs(ws: Workspace, run_a: str, run_b: str, *, max_changes: int = FLAG_CHANGES_ROWS) -> RunComparison:
    """Compare runs ``run_a`` and ``run_b`` (ids) of ``ws``; both must be of one kind. Of the
    samples flagged by one run only, the first ``max_changes`` are kept."""
    if run_a == run_b:
        raise StorageError(f"pick two different runs to compare (both are {run_a})")
    a, b = runs.get_run(ws, run_a), runs.get_run(ws, run_b)
    if a["kind"] != b["kind"]:
        raise StorageError(
            f"run {run_a} is a {a['kind']} run and {run_b} a {b['kind']} run; compare two runs of one kind"
        )
    out = RunComparison(run_a, run_b, a["kind"], settings_table(a, b))
    if a["kind"] == "score":
        for run in (a, b):
            if run["status"] != "done":
                raise StorageError(f"score run {run['run_id']} is {run['status']}: only finished runs have results to compare")
        out.flags, out.flag_changes = compare_flags(ws, run_a, run_b, max_changes=max_changes)
        out.flag_changes_total = out.flags["only_a"] + out.flags["only_b"]
        out.scores = compare_stored_scores(ws, run_a, run_b)
        compared = compare_collapse(ws, run_a, run_b)
        if compared is not None:
            out.collapse, out.collapse_sources = compared
    if a["kind"] == "prune":
        out.kept, out.kept_by_class, out.kept_note = compare_kept(ws, a, b)
    return out


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def settings_table(a: dict, b: dict) -> pd.DataFrame:
    """Run records side by side: field, a, b (as text; "" = absent), same (always True for the
    ``INFORMATIONAL`` fields, which differ between any two runs)."""
    sides = []
    for run in (a, b):
        flat: dict[str, Any] = {f: run.get(f) for f in RECORD_FIELDS}
        _flatten("config", run.get("config") or {}, flat)
        _flatten("summary", run.get("summary") or {}, flat)
        sides.append(flat)
    fields = list(dict.fromkeys([*sides[0], *sides[1]]))
    rows = [(f, _text(sides[0].get(f)), _text(sides[1].get(f))) for f in fields]
    table = pd.DataFrame(rows, columns=["field", "a", "b"])
    return table.assign(same=(table["a"] == table["b"]) | table["field"].isin(INFORMATIONAL))


def _duckdb():  # noqa: ANN202 - duckdb's connection type
    import duckdb

    return duckdb.connect(":memory:")


def compare_flags(ws: Workspace, run_a: str, run_b: str, *, max_changes: int = FLAG_CHANGES_ROWS
                  ) -> tuple[dict[str, Any], pd.DataFrame]:
    """Agreement of two score runs' label-issue verdicts on the samples both judged, and the first
    ``max_changes`` samples flagged by one run only (id, label, each run's is_label_issue,
    suggested_label, label_issue_score; largest absolute change of the score first, then id).

    Algorithm: read each run's id, is_label_issue, suggested_label, label_issue_score (one run_id
    slice of ``label_issues``); count in DuckDB over their join on id; select the changed
    samples' page with ORDER BY ... LIMIT and join only those to the samples' labels."""
    for run_id in (run_a, run_b):
        runs.require_done(ws, run_id)
    cols = ["id", "is_label_issue", "suggested_label", "label_issue_score"]
    dataset = ws.dataset("label_issues")
    verdict_a, verdict_b = (dataset.to_table(columns=cols, filter=f"run_id = {sql_string(r)}") for r in (run_a, run_b))
    con = _duckdb()
    try:
        con.register("verdict_a", verdict_a)
        con.register("verdict_b", verdict_b)
        con.register("samples", ws.dataset("samples"))
        con.execute(
            "CREATE TEMP VIEW judged AS SELECT id, coalesce(a.is_label_issue, false) AS fa, "
            "coalesce(b.is_label_issue, false) AS fb, a.suggested_label AS sa, b.suggested_label AS sb, "
            "a.label_issue_score AS score_a, b.label_issue_score AS score_b FROM verdict_a a JOIN verdict_b b USING (id)")
        counts = con.sql(
            "SELECT count(*), count_if(fa), count_if(fb), count_if(fa AND fb), count_if(fa AND NOT fb), "
            "count_if(fb AND NOT fa), count_if(fa AND fb AND sa = sb) FROM judged").fetchall()[0]
        changed = con.sql(
            "SELECT c.id, s.label, c.fa AS is_label_issue_a, c.sa AS suggested_label_a, c.score_a AS label_issue_score_a, "
            "c.fb AS is_label_issue_b, c.sb AS suggested_label_b, c.score_b AS label_issue_score_b FROM "
            "(SELECT *, abs(score_a - score_b) AS change FROM judged WHERE fa <> fb "
            " ORDER BY (change IS NULL OR isnan(change)), change DESC, id LIMIT $rows) c "
            "LEFT JOIN samples s USING (id) "
            "ORDER BY (c.change IS NULL OR isnan(c.change)), c.change DESC, c.id",
            params={"rows": int(max_changes)}).to_arrow_table().to_pandas()
    finally:
        con.close()
    # count_if over no rows is NULL in DuckDB
    n, flagged_a, flagged_b, by_both, only_a, only_b, same = (int(c or 0) for c in counts)
    union = by_both + only_a + only_b
    flags = {
        "samples_in_both": n, "flagged_a": flagged_a, "flagged_b": flagged_b,
        "flagged_by_both": by_both, "only_a": only_a, "only_b": only_b,
        # as subsets.agreement: 1 when neither flags any sample, None when no sample was judged by both
        "jaccard": None if not n else (by_both / union if union else 1.0),
        "same_suggestion_when_both_flag": float(same / by_both) if by_both else None,
    }
    return flags, changed


def compare_kept(ws: Workspace, a: dict, b: dict) -> tuple[dict | None, pd.DataFrame | None, str | None]:
    """The two prune runs' kept sets, from the subsets they saved: (counts, per class, None), or
    (None, None, why) when a run's subset was deleted or replaced by a later run."""
    saved = subsets.list_subsets(ws)
    name_of = dict(zip(saved["run_id"], saved["name"], strict=True))
    kept = []
    for run in (a, b):
        name = name_of.get(run["run_id"])
        if name is None:
            wanted = (run.get("config") or {}).get("subset", "?")
            return None, None, (f"the subset of prune run {run['run_id']} ('{wanted}') was deleted or replaced "
                                "by a later run, so its kept set is gone")
        kept.append(subsets.subset_ids(ws, name))
    counts, per_class = subsets.compare_memberships(ws, kept[0], kept[1], "kept")
    return counts, per_class, None


def _hardness(name: str, values: np.ndarray) -> np.ndarray:
    if name in registry.SCORES:
        return registry.difficulty_of(name, values)
    return np.asarray(values, dtype=np.float64)  # detector scores, collapse ratio: higher = worse


def _score_row(name: str, x: np.ndarray, y: np.ndarray, top_fraction: float) -> dict[str, Any]:
    """One row of the scores table from the two runs' values of ``name`` on the same samples, in
    the same (id) order; pairs with a non-finite side are left out."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    return {"name": name, "n": int(ok.sum()), "spearman": _spearman(x, y),
            "top_overlap": _top_overlap(_hardness(name, x), _hardness(name, y), top_fraction)}


def compare_scores(wide_a: pd.DataFrame, wide_b: pd.DataFrame, *, top_fraction: float = TOP_FRACTION) -> pd.DataFrame:
    """name, n, spearman, top_overlap for every score both wide frames (id + one column per score)
    hold, on the ids both scored where both values are finite. The in-memory reference of
    :func:`compare_stored_scores`, which gives the same table from storage without the frames."""
    names = sorted((set(wide_a.columns) & set(wide_b.columns)) - {"id"})
    both = wide_a.merge(wide_b, on="id", suffixes=("_a", "_b")).sort_values("id", kind="stable")
    rows = [_score_row(name, both[f"{name}_a"].to_numpy(np.float64), both[f"{name}_b"].to_numpy(np.float64),
                       top_fraction) for name in names]  # fmt: skip
    return pd.DataFrame(rows, columns=["name", "n", "spearman", "top_overlap"])


def stored_score_names(ws: Workspace, run_ids: tuple[str, ...]) -> dict[str, set[str]]:
    """{run id: the score names it stored}, in one DuckDB scan of ``scores`` (names only)."""
    con = _duckdb()
    try:
        con.register("scores", ws.dataset("scores"))
        pairs = con.sql(f"SELECT DISTINCT run_id, name FROM scores WHERE run_id IN ({', '.join('?' * len(run_ids))})",
                        params=list(run_ids)).fetchall()
    finally:
        con.close()
    names: dict[str, set[str]] = {run_id: set() for run_id in run_ids}
    for run_id, name in pairs:
        names[run_id].add(name)
    return names


class _IdOrder:
    """Sorts one run's id column by id, remembering the last order: a run writes every score
    with its ids in one order (``results.write_scores``), so one sort serves all its scores."""

    def __init__(self) -> None:
        self.ids: pa.Array | None = None
        self.order: pa.Array | None = None
        self.sorted_ids: pa.Array | None = None

    def __call__(self, ids: pa.Array) -> tuple[pa.Array, pa.Array]:
        if self.ids is None or not self.ids.equals(ids):
            self.ids, self.order = ids, pc.sort_indices(ids)
            self.sorted_ids = ids.take(self.order)
        return self.order, self.sorted_ids


def _aligned(slice_a: pa.Table, slice_b: pa.Table, orders: tuple[_IdOrder, _IdOrder]) -> tuple[np.ndarray, np.ndarray]:
    """The two slices' values on the ids both hold, in id order (as the pandas merge of the wide
    frames has them, so the correlation's sums run in the same order)."""
    ids_a, ids_b = (t["id"].combine_chunks() for t in (slice_a, slice_b))
    order_a, sorted_a = orders[0](ids_a)
    order_b, sorted_b = orders[1](ids_b)
    if sorted_a.equals(sorted_b):  # the usual case: both runs scored the same samples
        return (slice_a["value"].combine_chunks().take(order_a).to_numpy(zero_copy_only=False),
                slice_b["value"].combine_chunks().take(order_b).to_numpy(zero_copy_only=False))  # fmt: skip
    con = _duckdb()
    try:
        con.register("slice_a", slice_a)
        con.register("slice_b", slice_b)
        joined = con.sql("SELECT a.value AS x, b.value AS y FROM slice_a a JOIN slice_b b USING (id) ORDER BY id").fetchnumpy()
    finally:
        con.close()
    return np.asarray(joined["x"], np.float64), np.asarray(joined["y"], np.float64)


def compare_stored_scores(ws: Workspace, run_a: str, run_b: str, *, top_fraction: float = TOP_FRACTION) -> pd.DataFrame:
    """:func:`compare_scores` of two finished runs without their wide frames: each score both
    stored is read as one (run, score) slice of ids and values and aligned on id in Arrow/numpy;
    at a million samples that is two 1M-value columns at a time, never a 1M-row pivot of them all."""
    stored = stored_score_names(ws, (run_a, run_b))
    orders = (_IdOrder(), _IdOrder())
    rows = []
    for name in sorted(stored[run_a] & stored[run_b]):
        x, y = _aligned(results.read_score(ws, run_a, name), results.read_score(ws, run_b, name), orders)
        rows.append(_score_row(name, np.asarray(x, np.float64), np.asarray(y, np.float64), top_fraction))
    return pd.DataFrame(rows, columns=["name", "n", "spearman", "top_overlap"])


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Rank correlation with average ranks for ties; None when either side is constant; exactly
    1 when the two rankings are the same (``corrcoef`` leaves a rounding error)."""
    if x.size < 2:
        return None
    rx, ry = rank_quantile(x), rank_quantile(y)  # average ranks, rescaled: the same correlation
    if rx.std() == 0 or ry.std() == 0:
        return None
    if np.array_equal(rx, ry):
        return 1.0
    return float(np.clip(np.corrcoef(rx, ry)[0, 1], -1.0, 1.0))


def _top_membership(hard: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, Fraction]:
    """The hardest k under random tie-breaking: (above, tied, weight): samples above the k-th
    value are in it, each sample tied at it with probability ``weight`` = (k - n_above) / n_tied,
    samples below never. Exact, so that equal memberships sum to exactly k."""
    kth = np.partition(hard, hard.size - k)[hard.size - k]
    above, tied = hard > kth, hard == kth
    return above, tied, Fraction(k - int(above.sum()), int(tied.sum()))


def _top_overlap(hard_a: np.ndarray, hard_b: np.ndarray, fraction: float) -> float | None:
    """Share of run a's hardest ``fraction`` that is also among run b's, tie-aware (module
    docstring): sum(min(w_a, w_b)) / k over the two runs' membership probabilities. Symmetric;
    exactly 1 when the two runs' values order the samples alike, ties included."""
    k = int(round(fraction * hard_a.size))
    if k < 1:
        return None
    above_a, tied_a, weight_a = _top_membership(hard_a, k)
    above_b, tied_b, weight_b = _top_membership(hard_b, k)
    shared = (int((above_a & above_b).sum()) + int((above_a & tied_b).sum()) * weight_b
              + int((tied_a & above_b).sum()) * weight_a + int((tied_a & tied_b).sum()) * min(weight_a, weight_b))  # fmt: skip
    return float(shared / k)


def compare_collapse(ws: Workspace, run_a: str, run_b: str) -> tuple[pd.DataFrame, tuple] | None:
    """(metric, a, b, difference (b - a) of the two runs' headline neural-collapse metrics, the
    source each run's headline came from); None when either run stored none."""
    summaries = []
    for run_id in (run_a, run_b):
        try:
            summaries.append(score_export.collapse_summary(ws, run_id))
        except StorageError:
            return None
    rows = []
    for metric in score_export.HEADLINE_METRICS:
        va, vb = summaries[0].get(metric), summaries[1].get(metric)
        if va is None and vb is None:
            continue
        diff = None if va is None or vb is None else vb - va
        rows.append({"metric": metric, "a": va, "b": vb, "difference": diff})
    sources = (summaries[0].get("headline_source"), summaries[1].get("headline_source"))
    return pd.DataFrame(rows, columns=["metric", "a", "b", "difference"]), sources


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _cut(text: str) -> str:
    return text if len(text) <= REPORT_WIDTH else text[: REPORT_WIDTH - 1] + "…"


def report(cmp: RunComparison, *, max_changes: int = 20) -> str:
    """The comparison as text (``thresher runs --compare``): settings that differ, then for score
    runs the flags, the scores and the collapse metrics."""
    lines = [f"{cmp.kind} runs  a = {cmp.run_a}  b = {cmp.run_b}", ""]
    differ = cmp.settings[~cmp.settings["same"]]
    lines.append(f"settings that differ ({len(differ)} of {len(cmp.settings)}):")
    lines += [f"  {r.field}: {_cut(r.a) or '(none)'}  ->  {_cut(r.b) or '(none)'}" for r in differ.itertuples()]
    if cmp.flags is not None:
        f = cmp.flags
        lines += ["", f"label-issue flags on the {f['samples_in_both']} samples both runs judged:",
                  f"  flagged: a {f['flagged_a']}, b {f['flagged_b']}, both {f['flagged_by_both']}, "
                  f"only a {f['only_a']}, only b {f['only_b']}; Jaccard {_fmt(f['jaccard'])}; same suggested "
                  f"label where both flag: {_fmt(f['same_suggestion_when_both_flag'])}"]  # fmt: skip
        if cmp.flag_changes is not None and len(cmp.flag_changes):
            shown = cmp.flag_changes.head(max_changes)
            total = len(cmp.flag_changes) if cmp.flag_changes_total is None else cmp.flag_changes_total
            lines.append(f"  flagged by one run only (largest score change first, {len(shown)} of {total}):")
            lines += [f"    {r.id} ({r.label}): a {'flagged' if r.is_label_issue_a else 'kept'} "
                      f"{_fmt(float(r.label_issue_score_a))}, b {'flagged' if r.is_label_issue_b else 'kept'} "
                      f"{_fmt(float(r.label_issue_score_b))}" for r in shown.itertuples()]  # fmt: skip
    if cmp.scores is not None:
        lines += ["", f"scores both runs stored (Spearman rank correlation; top overlap = share of a's "
                      f"hardest {TOP_FRACTION:.0%} among b's):"]  # fmt: skip
        lines += [f"  {r.name:28s} n {r.n:8d}  spearman {_fmt(r.spearman):>6s}  top overlap {_fmt(r.top_overlap):>6s}"
                  for r in cmp.scores.itertuples()]  # fmt: skip
    if cmp.kept is not None:
        k = cmp.kept
        lines += ["", f"kept samples: a {k['kept_a']}, b {k['kept_b']}, both {k['kept_by_both']}, only a "
                      f"{k['only_a']}, only b {k['only_b']}; Jaccard {_fmt(k['jaccard'])}"]  # fmt: skip
    elif cmp.kept_note:
        lines += ["", f"kept samples: {cmp.kept_note}"]
    if cmp.collapse is not None:
        sources = cmp.collapse_sources or (None, None)
        lines += ["", f"neural collapse (headline from a: {sources[0]}, b: {sources[1]}):"]
        lines += [f"  {r.metric:16s} a {_fmt(r.a):>8s}  b {_fmt(r.b):>8s}  b - a {_fmt(r.difference):>8s}"
                  for r in cmp.collapse.itertuples()]  # fmt: skip
    elif cmp.kind == "score":
        lines += ["", "neural collapse: at least one run stored no metrics"]
    return "\n".join(lines)
