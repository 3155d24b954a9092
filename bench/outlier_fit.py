"""How the Mahalanobis outlier score's class Gaussians are fitted (:func:`backend.scoring.health.
mahalanobis_outlier_score`): on all rows (Lee et al. 2018 as written) or robustly (reweighted
minimum covariance determinant, Rousseeuw & Van Driessen 1999), and the two settings of the
robust fit, chosen here on validation cases that ``bench/health.py``'s reported seeds never enter.
Writes ``bench/results/outlier_fit.json`` and prints a table. Not part of the unit tests.

Validation cases (seeds 100-102), the 1,797 digits plus planted out-of-distribution rows, on three
embeddings: the 64 pixels, HOG (``bench/label_noise_families.hog_features``) and a fixed random
ReLU layer 64 -> 256:
- colour-inverted digits keeping their labels, 20, 60 or 150 (a clump: 1 %, 3 %, 8 %); not on HOG,
  whose unsigned gradients do not change when an image is inverted;
- 20 uniform-noise images; 40 random filled rectangles (another domain, scattered);
- 30 or 100 noisy copies of one rectangle (a tight clump of another domain).
Planted rows get random labels except the inverted digits. Per case: F1 and recall of
``is_outlier`` (:func:`backend.scoring.health.flag_high`), false alarms among the digits, and the
average precision of the score.

Settings compared: the plain fit (all rows) and the robust fit at supports 1/2 and 3/4,
reweighting cuts (robust z under the raw fit above which a row is left out of the reweighted fit)
3.5, 5 and 7, and covariances shrunk by Ledoit & Wolf alone or further to a condition number of
at most 50 (the regularized MCD's rule, Boudt et al. 2020). A fourth embedding, ``pixels16``
(bilinear 16 x 16, as the demo's ``pixels`` embedder: 256 dims of rank 64), was added after the
robust fit without a cap, chosen on the first three, flagged 124 of the demo's 1,797 clean digits.
Also timed: plain and robust fit on ``--scale-rows`` Gaussian rows (512 dims, 100 classes),
in the same process.

Usage: ``python bench/outlier_fit.py [--scale-rows 200000] [--out bench/results/outlier_fit.json]``;
at a million rows, timing only: ``--scale-rows 1000000 --timing-only --out
bench/results/outlier_fit_1m.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.scoring import health  # noqa: E402
from bench.label_noise_families import hog_features  # noqa: E402

SEEDS = (100, 101, 102)
CASES = (("inverted", 20), ("inverted", 60), ("inverted", 150), ("noise", 20), ("rectangles", 40),
         ("clump", 30), ("clump", 100))
EMBEDDINGS = ("pixels", "hog", "relu256", "pixels16")
#: (name, support, reweighting cut, condition cap); support None: the plain fit
SETTINGS = (("plain (Ledoit-Wolf)", None, None, None), ("plain, cap 50", None, None, 50.0),
            ("robust 1/2, cut 3.5", 0.5, 3.5, None), ("robust 1/2, cut 5", 0.5, 5.0, None),
            ("robust 1/2, cut 7", 0.5, 7.0, None), ("robust 1/2, cut 5, cap 50", 0.5, 5.0, 50.0),
            ("robust 1/2, cut 3.5, cap 50", 0.5, 3.5, 50.0), ("robust 3/4, cut 3.5, cap 50", 0.75, 3.5, 50.0))


def rectangles(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.zeros((n, 8, 8))
    for image in out:
        top, bottom = sorted(rng.integers(0, 8, 2))
        left, right = sorted(rng.integers(0, 8, 2))
        image[top:bottom + 1, left:right + 1] = 1.0
    return out


def planted_case(kind: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (N, 8, 8) in [0, 1], labels (N,), truth (N,) bool) for one validation case."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images / 16.0, digits.target
    rng = np.random.default_rng(seed)
    extra_labels = rng.integers(0, 10, count)
    if kind == "inverted":
        pick = rng.choice(len(images), count, replace=False)
        extra, extra_labels = 1.0 - images[pick], labels[pick]
    elif kind == "noise":
        extra = rng.random((count, 8, 8))
    elif kind == "rectangles":
        extra = rectangles(rng, count)
    elif kind == "clump":
        extra = np.clip(0.8 * rectangles(rng, 1) + rng.normal(0, 0.05, (count, 8, 8)), 0, 1)
    else:
        raise ValueError(kind)
    truth = np.r_[np.zeros(len(images), bool), np.ones(count, bool)]
    return np.concatenate([images, extra]), np.concatenate([labels, extra_labels]), truth


def embed(images: np.ndarray, name: str) -> np.ndarray:
    if name == "pixels":
        return images.reshape(len(images), -1)
    if name == "hog":
        return hog_features(images * 16.0)
    if name == "pixels16":  # as the demo's pixels embedder: bilinear 16 x 16, 256 dims of rank 64
        from PIL import Image

        return np.stack([np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(
            (16, 16), Image.Resampling.BILINEAR)).reshape(-1) for image in images])
    weights = np.random.default_rng(7).normal(size=(64, 256)) / 8.0  # fixed, as the other benches' ReLU
    return np.maximum(images.reshape(len(images), -1) @ weights, 0.0)


def score(x: np.ndarray, labels: np.ndarray, support: float | None, cut: float | None,
          cap: float | None) -> np.ndarray:
    saved = health.MCD_SUPPORT, health.MCD_REWEIGHT_Z, health.CONDITION_CAP
    health.MCD_SUPPORT, health.MCD_REWEIGHT_Z, health.CONDITION_CAP = support or 0.5, cut or 3.5, cap
    try:
        return health.mahalanobis_outlier_score(x, labels, n_classes=10, robust=support is not None)
    finally:
        health.MCD_SUPPORT, health.MCD_REWEIGHT_Z, health.CONDITION_CAP = saved


def case_metrics(s: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score

    flagged = health.flag_high(s)
    hits = int((flagged & truth).sum())
    return {"f1": 2 * hits / (flagged.sum() + truth.sum()), "recall": hits / truth.sum(),
            "false_alarms": int((flagged & ~truth).sum()), "average_precision": float(average_precision_score(truth, s))}


def timing(rows: int) -> dict:
    """Seconds and peak extra memory (tracemalloc: what the call allocates beyond its input) of the
    fit without and with the robust steps, on ``rows`` Gaussian rows, one after the other here."""
    import tracemalloc

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 100, rows)
    centres = rng.normal(0, 1, (100, 512)).astype(np.float32)
    x = np.empty((rows, 512), dtype=np.float32)
    for lo in range(0, rows, 65536):  # in blocks: no (rows, 512) float64 draw
        x[lo:lo + 65536] = centres[labels[lo:lo + 65536]] + rng.standard_normal((len(x[lo:lo + 65536]), 512),
                                                                                dtype=np.float32)
    out: dict = {"rows": rows, "dims": 512, "classes": 100, "input_gb": round(x.nbytes / 2**30, 2)}
    for name, robust in (("plain", False), ("robust", True)):
        tracemalloc.start()
        start = time.perf_counter()
        health.mahalanobis_outlier_score(x, labels, n_classes=100, robust=robust)
        out[f"{name}_s"] = round(time.perf_counter() - start, 2)
        out[f"{name}_peak_extra_gb"] = round(tracemalloc.get_traced_memory()[1] / 2**30, 2)
        tracemalloc.stop()
    out["ratio"] = round(out["robust_s"] / out["plain_s"], 2)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale-rows", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/outlier_fit.json"))
    parser.add_argument("--timing-only", action="store_true", help="only the timing (e.g. --scale-rows 1000000)")
    args = parser.parse_args(argv)
    if args.timing_only:
        result = {"benchmark": "outlier_fit timing", "timing": timing(args.scale_rows)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(json.dumps(result["timing"]))
        return result
    runs = []
    for embedding in EMBEDDINGS:
        for kind, count in CASES:
            if kind == "inverted" and embedding == "hog":
                continue
            for seed in SEEDS:
                images, labels, truth = planted_case(kind, count, seed)
                x = embed(images, embedding)
                for name, support, cut, cap in SETTINGS:
                    m = case_metrics(score(x, labels, support, cut, cap), truth)
                    runs.append({"embedding": embedding, "case": f"{kind} {count}", "seed": seed, "setting": name,
                                 **{k: round(v, 4) for k, v in m.items()}})
    summary: dict[str, dict] = {}
    for name, *_ in SETTINGS:
        mine = [r for r in runs if r["setting"] == name]
        summary[name] = {k: round(float(np.mean([r[k] for r in mine])), 4)
                         for k in ("f1", "recall", "false_alarms", "average_precision")}
    cases = sorted({(r["embedding"], r["case"]) for r in runs}, key=lambda c: (EMBEDDINGS.index(c[0]), c[1]))
    per_case = {f"{e} / {c}": {name: round(float(np.mean([r["f1"] for r in runs if (r["embedding"], r["case"],
                                                                                     r["setting"]) == (e, c, name)])), 3)
                               for name, *_ in SETTINGS} for e, c in cases}
    result = {"benchmark": "outlier_fit", "protocol": __doc__, "chosen": {"support": health.MCD_SUPPORT,
              "reweight_z": health.MCD_REWEIGHT_Z, "condition_cap": health.CONDITION_CAP}, "summary": summary, "f1_per_case": per_case,
              "timing": timing(args.scale_rows), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    names = [name for name, *_ in SETTINGS]
    print("| case (mean F1 over seeds) | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for case, values in per_case.items():
        print(f"| {case} | " + " | ".join(f"{values[n]:.2f}" for n in names) + " |")
    print("| **mean F1 / false alarms / AP** | " + " | ".join(
        f"{summary[n]['f1']:.3f} / {summary[n]['false_alarms']:.1f} / {summary[n]['average_precision']:.3f}"
        for n in names) + " |")
    print(json.dumps(result["timing"]))
    return result


if __name__ == "__main__":
    main()
