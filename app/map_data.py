"""Explore's reads for a map of any size, kept as NumPy arrays: the points (x, y, label and
split codes), what colours them, which pass the filters and which a box or lasso holds.

At a million points the page never builds a DataFrame of a million rows of strings: each
reader returns arrays aligned on one order, the projection's (``MapPoints``); ids stay one Arrow
string array and only a selection's ids become Python strings. Every reader is a
:func:`data.cached_reader`, keyed on the versions of the tables it reads.

Where the time goes at 1M (2-core machine, see ``/work/notes/readme_explore.md``): the points
read ~1 s once per table version; a score column ~0.4 s once per (run, score, version) (the
long ``scores`` table's zone maps, ``backend/storage/scalar_index.py``, let DuckDB's scan skip
every other run and score; ~0.1 s of it is the read, the rest the join on the map's ids, and
without the index the read scanned all 21M rows: 1.2 to 3.5 s); after that a filter is a parameterised
DuckDB query over the cached columns (tens of ms) and a lasso a NumPy polygon test (~0.3 s).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from app import curation_data, data
from app.components.palette import natural_order
from app.components.scatter import TAG_PREFIX, TAGGED
from app.map_density import Extent, points_in_box, points_in_polygon
from backend.jobs.health_stage import FLAG_COLUMNS
from backend.storage import queries, runs

#: Above this many points in view the map is a density image drawn on the server; at or below
#: it, the exact WebGL scatter with hover and click. 50k: the scatter's browser cost grows about
#: linearly (1.5 s for 1,797 points, 29 s for 1M, issue 13), so 50k points draw in about the
#: time of the small map plus 1.5 s, while a density image costs the same at any size.
#: ``THRESHER_MAP_BUDGET`` in the app's environment sets another (the browser tests lower it).
MAP_BUDGET = int(os.environ.get("THRESHER_MAP_BUDGET", "50000"))
NO_VALUE = "(none)"
FLAGGED, NOT_FLAGGED = "flagged", "not flagged"
NO_DECISION = "none"
NOT_TAGGED = "not tagged"
#: The colouring by each sample's label after the decisions (a relabel moves a sample).
CURRENT_LABEL = "current_label"
#: The verdict's columns (from ``label_issues``), as Explore names them.
VERDICT_COLUMNS = ("label_issue", "label_issue_score", "suggested_label")


@dataclass(frozen=True, eq=False)
class MapPoints:
    """One projection's points: ``ids`` (Arrow strings), ``x``, ``y`` (float32) and the label and
    split of each as codes into ``labels`` / ``splits`` (natural order), all in one order."""

    ids: pa.Array
    x: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]
    label_codes: np.ndarray
    splits: tuple[str, ...]
    split_codes: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def id_table(self) -> pa.Table:
        """pos, id: what the aligned queries join on."""
        return pa.table({"pos": np.arange(len(self), dtype=np.int64), "id": self.ids})

    def ids_at(self, positions: np.ndarray) -> list[str]:
        return self.ids.take(pa.array(np.asarray(positions, dtype=np.int64))).to_pylist()


@dataclass(frozen=True, eq=False)
class MapColoring:
    """What colours each point: ``codes`` into ``categories`` (natural order) or, for a score,
    ``values`` (NaN where a point has none)."""

    column: str
    categories: tuple[str, ...] = ()
    codes: np.ndarray | None = None
    values: np.ndarray | None = None

    def __post_init__(self) -> None:
        for array in (self.codes, self.values):
            if array is not None:
                _frozen(array)  # shared by every session (``cached_reader(shared=True)``)

    @property
    def numeric(self) -> bool:
        return self.values is not None

    def category_at(self, positions: np.ndarray) -> np.ndarray:
        """The category name of each point at ``positions`` (object array)."""
        assert self.codes is not None
        return np.asarray(self.categories, dtype=object)[self.codes[positions]]


def _encoded(column: pa.Array | pa.ChunkedArray, order: list[str] | None = None) -> tuple[tuple[str, ...], np.ndarray]:
    """(categories in natural order, int32 code of each row) of a string column; nulls become
    :data:`NO_VALUE`."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(pc.fill_null(column.cast(pa.string()), NO_VALUE))
    names = [str(name) for name in encoded.dictionary.to_pylist()]
    categories = order if order is not None else natural_order(names)
    rank = {name: i for i, name in enumerate(categories)}
    remap = np.array([rank[name] for name in names], dtype=np.int32)
    indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return tuple(categories), remap[indices] if len(names) else np.zeros(0, np.int32)


@data.cached_reader("projections", "samples", max_entries=2, shared=True)
def map_points(root: str, run_id: str) -> MapPoints:
    """The points of one finished projection run (a running or failed one raises ``StorageError``)."""
    runs.require_done(data.open_workspace(root), run_id)
    table = data.run_query(root, lambda engine: queries.map_point_columns(engine, run_id))
    labels, label_codes = _encoded(table["label"])
    splits, split_codes = _encoded(table["split"])
    return MapPoints(
        ids=table["id"].combine_chunks(),
        x=_frozen(table["x"].to_numpy().astype(np.float32)),
        y=_frozen(table["y"].to_numpy().astype(np.float32)),
        labels=labels, label_codes=_frozen(label_codes), splits=splits, split_codes=_frozen(split_codes),
    )


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only: the shared readers hand the same arrays to every session."""
    array.flags.writeable = False
    return array


# --------------------------------------------------------------------------- colourings
def map_coloring(root: str, run_id: str, score_run: str | None, color_by: str) -> MapColoring:
    """What colours the map for ``color_by``: label, split, decision, ``tag:<name>``, or with a
    score run its verdict (``label_issue``, ``label_issue_score``, ``suggested_label``), a health
    flag (flagged / not flagged) or any score it stored (NaN where it has none)."""
    if color_by in ("label", "split"):
        points = map_points(root, run_id)
        if color_by == "label":
            return MapColoring("label", points.labels, points.label_codes)
        return MapColoring("split", points.splits, points.split_codes)
    if color_by in ("decision", CURRENT_LABEL) or color_by.startswith(TAG_PREFIX):
        return _decision_coloring(root, run_id, color_by)
    if score_run is None:
        raise ValueError(f"colouring by {color_by!r} needs a score run; there is none")
    if color_by in VERDICT_COLUMNS:
        return _verdict_coloring(root, run_id, score_run, color_by)
    return _score_coloring(root, run_id, score_run, color_by)


def _empty_codes(n: int, category: int) -> np.ndarray:
    return np.full(n, category, dtype=np.int32)


@data.cached_reader(map_points, "decisions", max_entries=8, shared=True)
def _decision_coloring(root: str, run_id: str, color_by: str) -> MapColoring:
    points = map_points(root, run_id)
    states = curation_data.states(root)
    if color_by == "decision":
        categories = (NO_DECISION, "kept", "relabeled", "unsure", "dropped")
        decided = states[states["decision"].notna()]
        placed = _positions(root, points, pa.table({"id": decided["id"].astype(str).tolist(),
                                                    "decision": decided["decision"].astype(str).tolist()}))
        codes = _empty_codes(len(points), 0)
        rank = {name: i for i, name in enumerate(categories)}
        codes[placed["pos"].to_numpy()] = [rank.get(value, 0) for value in placed["decision"].to_pylist()]
        return MapColoring("decision", categories, codes)
    if color_by == CURRENT_LABEL:
        return _current_label_coloring(root, points, states)
    tag = color_by.removeprefix(TAG_PREFIX)
    tags = states["tags"].fillna("").astype(str)
    carriers = states.loc[tags.map(lambda text: tag in text.split(",")), "id"].astype(str).tolist()
    placed = _positions(root, points, pa.table({"id": pa.array(carriers, pa.string())}))
    codes = _empty_codes(len(points), 0)
    codes[placed["pos"].to_numpy()] = 1
    return MapColoring(color_by, (NOT_TAGGED, TAGGED), codes)


def _current_label_coloring(root: str, points: MapPoints, states: pd.DataFrame) -> MapColoring:
    """The given label, or the label a relabel decision gave (the decisions log's replay)."""
    moved = states[states["current_label"].notna()]  # the samples a relabel moved
    categories = tuple(natural_order({*points.labels, *moved["current_label"].astype(str)}))
    rank = {name: i for i, name in enumerate(categories)}
    codes = np.array([rank[name] for name in points.labels], dtype=np.int32)[points.label_codes]
    placed = _positions(root, points, pa.table({"id": moved["id"].astype(str).tolist(),
                                                "label": moved["current_label"].astype(str).tolist()}))
    codes[placed["pos"].to_numpy()] = [rank[name] for name in placed["label"].to_pylist()]
    return MapColoring(CURRENT_LABEL, categories, codes)


def _positions(root: str, points: MapPoints, ids: pa.Table) -> pa.Table:
    return data.run_query(root, lambda engine: queries.aligned_ids(engine, ids, points.id_table()))


@data.cached_reader(map_points, "label_issues", max_entries=8, shared=True)
def _verdict_coloring(root: str, run_id: str, score_run: str, color_by: str) -> MapColoring:
    points = map_points(root, run_id)
    runs.require_done(data.open_workspace(root), score_run)
    verdict = data.run_query(root, lambda engine: queries.aligned_label_issues(engine, score_run, points.id_table()))
    pos = verdict["pos"].to_numpy()
    if color_by == "label_issue_score":
        values = np.full(len(points), np.nan)
        values[pos] = verdict["label_issue_score"].to_numpy(zero_copy_only=False).astype(np.float64)
        return MapColoring(color_by, values=values)
    if color_by == "label_issue":
        codes = _empty_codes(len(points), 2)  # (none): not scored
        codes[pos] = np.where(pc.fill_null(verdict["is_label_issue"], False).to_numpy(zero_copy_only=False), 0, 1)
        return MapColoring(color_by, (FLAGGED, NOT_FLAGGED, NO_VALUE), codes)
    suggested, suggested_codes = _encoded(verdict["suggested_label"])
    categories = tuple(dict.fromkeys([*suggested, NO_VALUE]))  # the suggestions' codes stay valid
    codes = _empty_codes(len(points), categories.index(NO_VALUE))
    codes[pos] = suggested_codes
    return MapColoring(color_by, categories, codes)


@data.cached_reader(map_points, "scores", max_entries=16, shared=True)
def _score_coloring(root: str, run_id: str, score_run: str, name: str) -> MapColoring:
    """A score of the run (NaN where a point has none; all NaN when the run lacks it); a health
    flag (:data:`FLAG_COLUMNS`, stored 0/1) as the categories flagged / not flagged / (none)."""
    points = map_points(root, run_id)
    runs.require_done(data.open_workspace(root), score_run)
    stored = data.run_query(root, lambda engine: queries.aligned_score(engine, score_run, name, points.id_table()))
    values = np.full(len(points), np.nan)
    values[stored["pos"].to_numpy()] = stored["value"].to_numpy(zero_copy_only=False).astype(np.float64)
    if name not in FLAG_COLUMNS:
        return MapColoring(name, values=values)
    codes = np.where(np.isnan(values), 2, np.where(values > 0, 0, 1)).astype(np.int32)
    return MapColoring(name, (FLAGGED, NOT_FLAGGED, NO_VALUE), codes)


# --------------------------------------------------------------------------- filters
@dataclass(frozen=True)
class MapFilter:
    """Which points the map shows: every non-empty field narrows it (fields AND-ed; within a
    field, any of its values). ``flags``: ``label_issue`` or health flags (:data:`FLAG_COLUMNS`),
    a point passes when any of them flags it; ``tags``: when it carries any of them;
    ``score`` / ``score_range``: a score of the run within [low, high]."""

    labels: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    score: str | None = None
    score_range: tuple[float, float] | None = None

    @property
    def active(self) -> bool:
        scored = self.score is not None and self.score_range is not None
        return bool(self.labels or self.splits or self.decisions or self.tags or self.flags or scored)


def _in_list(column: str, values: list) -> str:
    return f"{column} IN ({', '.join('?' for _ in values)})" if values else "false"


@data.cached_reader(map_points, "decisions", "scores", "label_issues", max_entries=16, shared=True)
def filtered_positions(root: str, run_id: str, score_run: str | None, spec: MapFilter) -> np.ndarray | None:
    """Sorted positions (into :func:`map_points`) of the points ``spec`` lets through; ``None``
    when it filters nothing.

    The columns a filter needs (codes, flags, a score) are the cached arrays of the colourings,
    put side by side in one in-memory Arrow table; the filter is one DuckDB query over it whose
    column names come from this function and whose every chosen value is a bound parameter.
    """
    if not spec.active:
        return None
    points = map_points(root, run_id)
    columns: dict[str, np.ndarray] = {"pos": np.arange(len(points), dtype=np.int64)}
    where: list[str] = []
    params: list = []

    def codes_in(name: str, coloring: MapColoring, chosen: tuple[str, ...]) -> None:
        wanted = [coloring.categories.index(c) for c in chosen if c in coloring.categories]
        columns[name] = coloring.codes
        where.append(_in_list(name, wanted))
        params.extend(wanted)

    if spec.labels:
        codes_in("label_code", map_coloring(root, run_id, score_run, "label"), spec.labels)
    if spec.splits:
        codes_in("split_code", map_coloring(root, run_id, score_run, "split"), spec.splits)
    if spec.decisions:
        codes_in("decision_code", map_coloring(root, run_id, score_run, "decision"), spec.decisions)
    for group, names, prefix in (("tag", spec.tags, TAG_PREFIX), ("flag", spec.flags, "")):
        carried = []
        for i, name in enumerate(names):
            coloring = map_coloring(root, run_id, score_run, f"{prefix}{name}")
            columns[f"{group}_{i}"] = coloring.codes
            carried.append(f"{group}_{i} = ?")
            params.append(coloring.categories.index(TAGGED if prefix else FLAGGED))
        if carried:
            where.append("(" + " OR ".join(carried) + ")")
    if spec.score is not None and spec.score_range is not None:
        coloring = map_coloring(root, run_id, score_run, spec.score)
        if not coloring.numeric:
            raise ValueError(f"{spec.score!r} is not a score; a range filter needs one")
        columns["score"] = coloring.values
        where.append("score BETWEEN ? AND ?")
        params.extend(float(bound) for bound in spec.score_range)
    table = pa.table(columns)
    kept = data.run_query(root, lambda engine: queries.map_filter_positions(engine, " AND ".join(where), params, table))
    return _frozen(kept["pos"].to_numpy().astype(np.int64))


# --------------------------------------------------------------------------- box and lasso
@dataclass(frozen=True)
class MapArea:
    """A box or lasso selection kept as its shapes, each ``("box" | "lasso", xs, ys)`` in data
    coordinates (a box: its two x and two y bounds); a point is in the area when it is in any shape."""

    shapes: tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...]

    @classmethod
    def from_selection(cls, selection: dict | None) -> MapArea | None:
        """The shapes of ``st.plotly_chart``'s selection event (its ``box`` and ``lasso`` lists of
        ``{"x": [...], "y": [...]}``); ``None`` when it has none."""
        shapes = []
        for kind in ("box", "lasso"):
            for shape in (selection or {}).get(kind) or []:
                xs, ys = tuple(map(float, shape.get("x") or ())), tuple(map(float, shape.get("y") or ()))
                if len(xs) == len(ys) and len(xs) >= (2 if kind == "box" else 3):
                    shapes.append((kind, xs, ys))
        return cls(tuple(shapes)) if shapes else None

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        inside = np.zeros(len(x), dtype=bool)
        for kind, xs, ys in self.shapes:
            inside |= points_in_box(x, y, xs, ys) if kind == "box" else points_in_polygon(x, y, xs, ys)
        return inside

    def bounds(self) -> Extent:
        xs = [v for _, shape_x, _ in self.shapes for v in shape_x]
        ys = [v for _, _, shape_y in self.shapes for v in shape_y]
        return Extent(min(xs), max(xs), min(ys), max(ys))


def in_view(points: MapPoints, shown: np.ndarray | None, region: Extent | None) -> np.ndarray | None:
    """Positions of the points the map shows (``shown``: the filter's, ``None`` for all) inside
    ``region`` (``None``: everywhere); ``None`` when that is every point."""
    if region is None:
        return shown
    candidates = np.arange(len(points)) if shown is None else shown
    return candidates[region.contains(points.x[candidates], points.y[candidates])]


@data.cached_reader(filtered_positions, max_entries=8, shared=True)
def area_positions(root: str, run_id: str, score_run: str | None, spec: MapFilter, region: Extent | None,
                   area: MapArea) -> np.ndarray:
    """Sorted positions of the shown points (:func:`filtered_positions`, inside ``region``) that
    ``area`` holds: exact over every point, however many the image stands for."""
    points = map_points(root, run_id)
    shown = in_view(points, filtered_positions(root, run_id, score_run, spec), region)
    candidates = np.arange(len(points)) if shown is None else shown
    return _frozen(candidates[area.contains(points.x[candidates], points.y[candidates])])


# --------------------------------------------------------------------------- a selection's rows
def selection_frame(points: MapPoints, positions: np.ndarray) -> pd.DataFrame:
    """id, label of the points at ``positions`` (what the selection panel counts)."""
    return pd.DataFrame({"id": points.ids_at(positions),
                         "label": np.asarray(points.labels, dtype=object)[points.label_codes[positions]]})


@data.cached_reader(map_points, "decisions", max_entries=4)
def _decided_points(root: str, run_id: str) -> pd.DataFrame:
    """pos, decision, current_label, tags of the map's points that have a decision or a tag, by pos."""
    states = curation_data.states(root)
    given = pa.table({"id": states["id"].astype(str).tolist(),
                      "decision": states["decision"].astype(object).where(states["decision"].notna(), None).tolist(),
                      "current_label": states["current_label"].astype(object).where(states["current_label"].notna(),
                                                                                    None).tolist(),
                      "tags": states["tags"].fillna("").astype(str).tolist()})
    placed = _positions(root, map_points(root, run_id), given).to_pandas()
    return placed.sort_values("pos").reset_index(drop=True)


@data.cached_reader(map_points, _decided_points, "scores", "label_issues", max_entries=4)
def selection_rows(root: str, run_id: str, score_run: str | None, positions: np.ndarray,
                   score_names: tuple[str, ...]) -> pd.DataFrame:
    """The gallery's rows for a selection of any size (``explore_data.gallery_rows``' columns:
    id, label (current), path, decision, tags, then the scores ``score_names`` of ``score_run``)
    at the sorted ``positions``, read from the cached columns and one DuckDB join for the paths,
    never a whole table."""
    points = map_points(root, run_id)
    rows = selection_frame(points, positions)
    given = pa.table({"pos": np.arange(len(positions), dtype=np.int64), "id": pa.array(rows["id"], pa.string())})
    found = data.run_query(root, lambda engine: queries.sample_paths(engine, given))
    path = np.full(len(rows), None, dtype=object)
    path[found["pos"].to_numpy()] = found["path"].to_numpy(zero_copy_only=False)
    rows["path"] = path
    label = np.array(rows["label"], dtype=object)
    decision, tags = np.full(len(rows), None, dtype=object), np.full(len(rows), "", dtype=object)
    decided = _decided_points(root, run_id)
    decided_pos = decided["pos"].to_numpy()
    at = np.searchsorted(positions, decided_pos)
    hit = at < len(positions)
    hit[hit] = positions[at[hit]] == decided_pos[hit]
    where, chosen = at[hit], decided[hit]
    current = chosen["current_label"].to_numpy(dtype=object)
    label[where] = np.where(pd.notna(current), current, label[where])
    decision[where], tags[where] = chosen["decision"].to_numpy(dtype=object), chosen["tags"].to_numpy(dtype=object)
    rows["label"], rows["decision"], rows["tags"] = label, decision, tags
    for name in score_names if score_run is not None else ():
        coloring = map_coloring(root, run_id, score_run, name)
        if coloring.numeric:
            rows[name] = coloring.values[positions]
    return rows
