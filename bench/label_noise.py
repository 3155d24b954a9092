"""Label-noise benchmark: our combined verdict against cleanlab and a plain kNN vote on digits.

Run: ``.venv/bin/python bench/label_noise.py [--seeds 0 1 2 3] [--out PATH]``. Writes
``bench/results/label_noise.json`` and prints a markdown table. Not part of the unit tests.

Protocol (reproduces the anchors quoted in issue 3 exactly on noise seed 0):

- data: ``sklearn.datasets.load_digits``, features X / 16, true labels y (N = 1797, C = 10);
- noise: ``rng = np.random.default_rng(seed)``, ``idx = rng.choice(N, round(rate * N),
  replace=False)``; symmetric: each chosen label moves to a uniformly random *different* class
  (``(y + rng.integers(1, C)) % C``); asymmetric: c -> c + 1 mod 10. ``asym20`` draws the 20 %
  from the whole set (how the anchors were measured); ``asym20_per_class`` takes exactly 20 % of
  every class (the issue's wording), as an extra row;
- anchors, computed in the same run: cleanlab's default ``find_label_issues`` on 5-fold
  ``LogisticRegression(max_iter=1000)`` out-of-fold probabilities
  (``StratifiedKFold(5, shuffle=True, random_state=0)``), and the plain 10-NN vote (Euclidean on
  X / 16, self excluded, flagged when fewer than 5 of the 10 neighbours share the label);
- ours: ``label_issue_verdict`` with its defaults (MLP probes, 5 folds x 3 seeds, cosine 10-NN,
  one cleaning round, AUM reported) plus each detector on its own;
- metric: precision / recall / F1 of the flagged set against the truly corrupted set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.scoring.knn import knn_search  # noqa: E402
from backend.scoring.label_noise import (  # noqa: E402
    find_label_issues,
    knn_rank,
    knn_vote,
)
from backend.scoring.label_noise.pipeline import VerdictConfig, label_issue_verdict  # noqa: E402
from backend.scoring.probes import out_of_fold_probs  # noqa: E402

SETTINGS = {
    "sym10": ("symmetric", 0.10, "global"),
    "sym30": ("symmetric", 0.30, "global"),
    "asym20": ("asymmetric", 0.20, "global"),
    "asym20_per_class": ("asymmetric", 0.20, "per_class"),
}
ANCHOR_F1_SEED0 = {  # quoted in issue 3, measured on exactly this data (noise seed 0)
    "sym10": {"anchor_cleanlab": 0.879, "anchor_knn_vote": 0.921},
    "sym30": {"anchor_cleanlab": 0.934, "anchor_knn_vote": 0.908},
    "asym20": {"anchor_cleanlab": 0.873, "anchor_knn_vote": 0.929},
}
ANCHORS = ("anchor_cleanlab", "anchor_knn_vote")
OURS = (
    "verdict",
    "verdict_no_refine",
    "confident_learning_mlp",
    "confident_learning_logreg",
    "knn_vote",
    "knn_rank",
    "aum",
)


def load_digits_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


def inject_noise(
    y: np.ndarray, *, kind: str, rate: float, selection: str, seed: int, n_classes: int = 10
) -> np.ndarray:
    """Noisy copy of ``y`` (see the module docstring for the exact protocol)."""
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    if selection == "global":
        idx = rng.choice(y.size, int(round(rate * y.size)), replace=False)
    else:
        parts = []
        for c in range(n_classes):
            members = np.flatnonzero(y == c)
            parts.append(rng.choice(members, int(round(rate * members.size)), replace=False))
        idx = np.concatenate(parts)
    if kind == "symmetric":
        noisy[idx] = (y[idx] + rng.integers(1, n_classes, idx.size)) % n_classes
    else:
        noisy[idx] = (y[idx] + 1) % n_classes
    return noisy


def flag_metrics(flags: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((flags & truth).sum())
    precision = tp / max(int(flags.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "n_flagged": int(flags.sum()),
    }


def anchor_cleanlab(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from cleanlab.filter import find_label_issues as cleanlab_find_label_issues
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    probs = cross_val_predict(
        LogisticRegression(max_iter=1000), x, y, cv=cv, method="predict_proba"
    )
    return cleanlab_find_label_issues(y, probs), probs


def anchor_knn_vote(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    _, idx = NearestNeighbors(n_neighbors=11).fit(x).kneighbors(x)
    agree = (y[idx[:, 1:]] == y[:, None]).sum(axis=1)
    return agree < 5


def run_setting(x: np.ndarray, y_true: np.ndarray, name: str, seed: int) -> dict:
    kind, rate, selection = SETTINGS[name]
    y = inject_noise(y_true, kind=kind, rate=rate, selection=selection, seed=seed)
    truth = y != y_true
    flags: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    x64 = x.astype(np.float64)  # the anchors were measured on float64 X / 16
    flags["anchor_cleanlab"], logreg_probs = anchor_cleanlab(x64, y)
    seconds["anchor_cleanlab"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    flags["anchor_knn_vote"] = anchor_knn_vote(x64, y)
    seconds["anchor_knn_vote"] = time.perf_counter() - t0

    config = VerdictConfig()
    t0 = time.perf_counter()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    neighbors = knn_search(unit, config.k)
    probs = out_of_fold_probs(x, y, n_classes=10, config=config.probe)
    verdict = label_issue_verdict(
        x, y, n_classes=10, config=config, neighbors=neighbors, pred_probs=probs
    )
    seconds["verdict"] = time.perf_counter() - t0
    flags["verdict"] = verdict.is_label_issue
    no_refine = VerdictConfig(refine=False, aum=False)
    flags["verdict_no_refine"] = label_issue_verdict(
        x, y, n_classes=10, config=no_refine, neighbors=neighbors, pred_probs=probs
    ).is_label_issue
    flags["confident_learning_mlp"] = verdict.detector_flags["confident_learning"]
    ours_on_logreg = find_label_issues(y, logreg_probs)
    flags["confident_learning_logreg"] = ours_on_logreg
    flags["knn_vote"] = knn_vote(y, neighbors[0], n_classes=10).is_label_issue
    flags["knn_rank"] = knn_rank(y, neighbors[0], n_classes=10).is_label_issue
    flags["aum"] = verdict.detector_flags["aum"]

    metrics = {method: flag_metrics(flags[method], truth) for method in ANCHORS + OURS}
    for method, secs in seconds.items():
        metrics[method]["seconds"] = round(secs, 2)
    return {
        "setting": name,
        "noise_seed": seed,
        "n_noisy": int(truth.sum()),
        "verdict_n_issues_estimate": verdict.n_issues,
        "in_house_cl_equals_cleanlab": bool(
            np.array_equal(ours_on_logreg, flags["anchor_cleanlab"])
        ),
        "metrics": metrics,
    }


def summarise(runs: list[dict]) -> dict:
    summary: dict[str, dict] = {}
    for name in SETTINGS:
        mine = [r for r in runs if r["setting"] == name]
        if not mine:
            continue
        per_method = {}
        for method in ANCHORS + OURS:
            f1 = np.array([r["metrics"][method]["f1"] for r in mine])
            per_method[method] = {
                "f1_mean": round(float(f1.mean()), 4),
                "f1_std": round(float(f1.std()), 4),
                "f1_min": round(float(f1.min()), 4),
                "precision_mean": round(
                    float(np.mean([r["metrics"][method]["precision"] for r in mine])), 4
                ),
                "recall_mean": round(
                    float(np.mean([r["metrics"][method]["recall"] for r in mine])), 4
                ),
            }
        beats = all(
            r["metrics"]["verdict"]["f1"] > max(r["metrics"][a]["f1"] for a in ANCHORS)
            for r in mine
        )
        summary[name] = {
            "methods": per_method,
            "verdict_beats_both_anchors_every_seed": beats,
            "n_seeds": len(mine),
        }
    return summary


def markdown_table(summary: dict, runs: list[dict]) -> str:
    names = [n for n in SETTINGS if n in summary]
    lines = [
        "| method | " + " | ".join(f"{n} F1 (P / R)" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for method in ANCHORS + OURS:
        cells = []
        for n in names:
            m = summary[n]["methods"][method]
            cells.append(
                f"{m['f1_mean']:.3f} ± {m['f1_std']:.3f} ({m['precision_mean']:.3f} / {m['recall_mean']:.3f})"
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    seed0 = [r for r in runs if r["noise_seed"] == 0]
    if seed0:
        lines += ["", "Noise seed 0 only (the anchors' quoted numbers in brackets):", ""]
        lines.append("| method | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for method in ANCHORS + ("verdict",):
            cells = []
            for n in names:
                run = next((r for r in seed0 if r["setting"] == n), None)
                quoted = ANCHOR_F1_SEED0.get(n, {}).get(method)
                cell = f"{run['metrics'][method]['f1']:.3f}" if run else "-"
                cells.append(cell + (f" [{quoted:.3f}]" if quoted is not None else ""))
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="noise seeds")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "label_noise.json")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)

    x, y_true = load_digits_data()
    started = time.perf_counter()
    runs = []
    for seed in args.seeds:
        for name in args.settings:
            run = run_setting(x, y_true, name, seed)
            runs.append(run)
            f1 = {m: run["metrics"][m]["f1"] for m in ("verdict",) + ANCHORS}
            print(f"seed {seed} {name}: {f1}", file=sys.stderr, flush=True)
    summary = summarise(runs)
    result = {
        "benchmark": "label_noise",
        "protocol": __doc__,
        "verdict_config": "VerdictConfig() defaults: MLP probe (hidden 128, 30 epochs, SGD 0.05, "
        "wd 5e-4), 5 folds x seeds (0, 1, 2), cosine 10-NN, probe_weight 0.5, "
        "cleaning rounds until the flags settle (refine=5 at most, refine_tolerance=0.02), "
        "AUM reported with weight 0",
        "seeds": args.seeds,
        "summary": summary,
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown_table(summary, runs))
    return result


if __name__ == "__main__":
    main()
