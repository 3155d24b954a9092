"""Collapse's ratio histogram and the Runs page's comparison of two score runs at a million
samples, before (the committed code at ``--before-rev``, pandas) and after (binned charts, the
comparison read score by score), in-process, each variant in its own child process so that its
peak memory is its own.

The comparison needs two finished score runs; ``--add-run`` writes a second one into a COPY of
the 1M workspace (never the original): every score of the first run with noise added (ties kept:
a 0/1 or count score gets 1 % of its values shuffled instead), 2 % of its label-issue flags
flipped, the same collapse metrics.

    python bench/collapse_compare_1m.py --workspace /tmp/collapse1m/ws2 --add-run
    python bench/collapse_compare_1m.py --workspace /tmp/collapse1m/ws2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "collapse_compare_1m.json"


def _module_at(rev: str, path: str, name: str):
    """The module ``path`` as committed at ``rev``, imported under ``name``."""
    source = subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def add_run(root: str) -> str:
    """A second finished score run: the first one's results perturbed (module docstring)."""
    import pandas as pd

    from backend.storage import Workspace, results, runs

    ws = Workspace.open(root)
    score_runs = runs.list_runs(ws, "score")
    first = score_runs[score_runs["status"] == "done"]["run_id"].iloc[-1]
    if "/tmp/thresher-scale-app/" in str(ws.root):
        raise SystemExit("refusing to write into the shared 1M workspace: copy it first")
    rng = np.random.default_rng(0)
    names = _score_names(ws, first)
    ids = None
    scores = {}
    for name in names:
        table = results.read_score(ws, first, name)
        if ids is None:
            ids = table["id"]
        values = table["value"].to_numpy(zero_copy_only=False).copy()
        if not table["id"].equals(ids):
            values = pd.Series(values, index=table["id"].to_pandas()).reindex(ids.to_pandas()).to_numpy()
        finite = np.isfinite(values)
        if finite.any() and np.all(values[finite] == np.round(values[finite])):
            pick = np.flatnonzero(finite & (rng.random(values.size) < 0.01))
            values[pick] = rng.permutation(values[pick])
        else:
            values = values + rng.normal(0.0, 0.1 * np.nanstd(values[finite]) if finite.any() else 0.0, values.size)
        scores[name] = values
    run_id = runs.start_run(ws, "score", {"bench": "collapse_compare_1m perturbed copy", "of": first}, seed=1)
    results.write_scores(ws, run_id, ids.to_pylist(), scores)
    verdict = results.read_label_issues(ws, first)
    flip = rng.random(len(verdict)) < 0.02
    verdict["is_label_issue"] = verdict["is_label_issue"].to_numpy() ^ flip
    verdict["label_issue_score"] = verdict["label_issue_score"] + rng.normal(0, 0.05, len(verdict))
    results.write_label_issues(ws, run_id, verdict)
    collapse = results.read_collapse(ws, first)
    results.write_collapse(ws, run_id, collapse.astype(object).where(collapse.notna(), None).to_dict("records"))
    runs.finish_run(ws, run_id, {"bench": True})
    return run_id


def _score_names(ws, run_id: str) -> list[str]:
    from backend.jobs.run_compare import stored_score_names

    return sorted(stored_score_names(ws, (run_id,))[run_id])


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def variant(root: str, which: str, rev: str) -> dict:
    """Time the comparison and the two histograms with ``which`` = before | after code."""
    import pandas as pd
    import plotly.io as pio

    from backend.storage import Workspace, results, runs, score_export

    ws = Workspace.open(root)
    done = runs.list_runs(ws, "score")
    done = done[done["status"] == "done"]["run_id"].tolist()
    run_b, run_a = done[0], done[1]  # newest as b, as the Runs page picks them
    if which == "before":
        compare = _module_at(rev, "backend/jobs/run_compare.py", "run_compare_before")
        charts = _module_at(rev, "app/components/score_charts.py", "score_charts_before")
    else:
        from app.components import score_charts as charts
        from backend.jobs import run_compare as compare
    out: dict = {"variant": which, "rss_start_mb": round(_peak_mb())}
    times = []
    for _ in range(2):
        start = time.perf_counter()
        cmp = compare.compare_runs(ws, run_a, run_b)
        times.append(time.perf_counter() - start)
    out["compare_s"] = [round(t, 2) for t in times]
    out["compare_peak_rss_mb"] = round(_peak_mb())
    out["scores"] = cmp.scores.to_dict("records")
    out["flags"] = cmp.flags
    out["flag_change_rows"] = len(cmp.flag_changes)
    out["flag_changes_head"] = cmp.flag_changes.head(20).to_dict("records")
    samples = score_export.collapse_samples(ws, run_a)
    ratio = samples["nc_distance_ratio"]
    el2n = results.read_score(ws, run_a, "el2n")["value"].to_numpy(zero_copy_only=False)
    outcome = pd.DataFrame({"el2n": el2n, "kept": np.random.default_rng(0).random(el2n.size) < 0.7})
    for name, build in (("collapse_ratio_histogram", lambda: charts.ratio_histogram(ratio)),
                        ("prune_kept_vs_removed", lambda: charts.kept_vs_removed_histogram(outcome, "el2n"))):
        took, size = [], 0
        for _ in range(3):
            start = time.perf_counter()
            spec = pio.to_json(build(), validate=False)  # what st.plotly_chart sends
            took.append(time.perf_counter() - start)
            size = len(spec)
        out[name] = {"build_and_json_s": round(float(np.median(took)), 3), "json_bytes": size, "samples": int(len(ratio))}
    out["peak_rss_mb"] = round(_peak_mb())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True, help="a COPY of the 1M workspace")
    parser.add_argument("--add-run", action="store_true", help="write the perturbed second score run first")
    parser.add_argument("--before-rev", default="0ceeaa3", help="commit whose code is 'before'")
    parser.add_argument("--variant", choices=["before", "after"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(variant(args.workspace, args.variant, args.before_rev), default=str))
        return 0
    if args.add_run:
        start = time.perf_counter()
        print("added run", add_run(args.workspace), f"in {time.perf_counter() - start:.1f} s", flush=True)
    report = {"workspace": args.workspace, "before_rev": args.before_rev, "load_before": os.getloadavg()}
    for which in ("after", "before"):
        done = subprocess.run([sys.executable, __file__, "--workspace", args.workspace, "--variant", which,
                               "--before-rev", args.before_rev], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the {which} variant failed:\n{done.stderr[-3000:]}")
        report[which] = json.loads(done.stdout.strip().splitlines()[-1])
        print(which, {k: v for k, v in report[which].items() if k not in ("scores", "flag_changes_head")}, flush=True)
    report["load_after"] = os.getloadavg()
    import pandas as pd

    def same(key: str) -> bool:  # NaN equal to NaN
        return pd.DataFrame(report["before"][key]).equals(pd.DataFrame(report["after"][key]))

    report["same_scores"], report["same_first_changes"] = same("scores"), same("flag_changes_head")
    report["same_flags"] = report["before"]["flags"] == report["after"]["flags"]
    RESULTS.write_text(json.dumps(report, indent=2, default=str))
    print({k: report[k] for k in ("same_scores", "same_flags", "same_first_changes", "load_before", "load_after")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
