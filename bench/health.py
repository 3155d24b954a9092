"""Precision and recall of the dataset-health checks (:mod:`backend.scoring.health`) on planted
cases among sklearn's digits, with the average precision of cleanlab's
``OutOfDistribution`` outlier score beside ours. Writes ``bench/results/health.json`` and prints a markdown table.
Not part of the unit tests.

Planted cases (seeded), on the 1797 digits split 70/30 train/test:
- exact copies: 15 train digits copied byte for byte into test, 15 test digits copied within
  test (duplicates, not leaks);
- near copies: the same again with Gaussian pixel noise (sigma 0.02 of the pixel range);
- other domain: 20 uniform-noise images and 20 colour-inverted digits (outliers);
- image quality, each on 30 other digits drawn as 32 x 32 colour images (a random light stroke
  colour on black): darkened (x 0.25), brightened (0.65 + 0.35 x), blurred (Gaussian,
  sigma 1.5 px), constant (one colour), grayscale (colour dropped), odd size (96 x 32).
  A constant image has no edges; it counts as blurry too.

Usage: ``python bench/health.py [--seeds 3] [--out bench/results/health.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.scoring import health  # noqa: E402
from backend.scoring.duplicates import data_edges, near_duplicate_groups  # noqa: E402
from backend.scoring.knn import knn_search  # noqa: E402

N_COPIES, N_OTHER, N_QUALITY = 15, 20, 30


def precision_recall(flagged: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    flagged, truth = np.asarray(flagged, bool), np.asarray(truth, bool)
    tp = int((flagged & truth).sum())
    return {"precision": round(tp / max(flagged.sum(), 1), 4), "recall": round(tp / max(truth.sum(), 1), 4),
            "n_flagged": int(flagged.sum()), "n_true": int(truth.sum())}


def flag_metrics(flagged: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """:func:`precision_recall` with F1 and the false alarms (what the rule and reference benches
    summarise: F1 where something is planted, false alarms where nothing is)."""
    flagged, truth = np.asarray(flagged, bool), np.asarray(truth, bool)
    out = precision_recall(flagged, truth)
    tp = int((flagged & truth).sum())
    f1 = 2 * tp / (out["n_flagged"] + out["n_true"]) if out["n_true"] else 0.0
    return {**out, "false_alarms": out["n_flagged"] - tp, "f1": round(f1, 4)}


def write_report(result: dict, out: str, *, title: str, key_header: str, names: tuple[str, ...]) -> None:
    """Write ``result`` as JSON to ``out`` and print its ``summary`` ({case key: {name: value}}) as a
    markdown table, ``key_header`` the key's columns, then its ``mean``."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(title)
    print(f"| {key_header} | " + " | ".join(names) + " |")
    print("|---" * (key_header.count("|") + 1) + "|" + "---|" * len(names))
    for key, row in result["summary"].items():
        print(f"| {key} | " + " | ".join(f"{row[name]:g}" for name in names) + " |")
    print(json.dumps(result["mean"], indent=1))


def planted_vectors(seed: int) -> dict:
    """Pixel vectors (N, 64) in [0, 1], labels, splits, hashes and the truth of each check."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    x, y = digits.data / 16.0, digits.target.copy()
    n = len(x)
    split = np.where(rng.random(n) < 0.7, "train", "test").astype(object)
    hashes = [f"h{i}" for i in range(n)]
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    rows, labels, splits, kinds = [x], [y], [split], [np.array([""] * n, dtype=object)]
    origin = list(range(n))

    def add(vectors, vec_labels, vec_split, kind, sources):
        rows.append(vectors)
        labels.append(vec_labels)
        splits.append(np.array(vec_split, dtype=object))
        kinds.append(np.array([kind] * len(vectors), dtype=object))
        origin.extend(sources)

    for near, tag in ((False, "exact"), (True, "near")):
        for pool, where in ((train, "leak"), (test, "within")):
            src = rng.choice(pool, N_COPIES, replace=False)
            copies = x[src] + (rng.normal(0, 0.02, (N_COPIES, 64)) if near else 0.0)
            add(np.clip(copies, 0, 1) if near else copies, y[src], ["test"] * N_COPIES, f"{tag}_{where}", src.tolist())
    add(rng.random((N_OTHER, 64)), rng.integers(0, 10, N_OTHER), ["train"] * N_OTHER, "noise", [-1] * N_OTHER)
    inv = rng.choice(n, N_OTHER, replace=False)
    add(1.0 - x[inv], y[inv], ["train"] * N_OTHER, "inverted", [-1] * N_OTHER)
    x_all = np.vstack(rows)
    kind = np.concatenate(kinds)
    origin = np.array(origin)
    for i in np.flatnonzero(np.char.startswith(kind.astype(str), "exact")):
        hashes.append(hashes[origin[i]])
    hashes += [f"h{i}" for i in range(len(hashes), len(x_all))]
    copy = np.char.startswith(kind.astype(str), "exact") | np.char.startswith(kind.astype(str), "near")
    is_dup = copy.copy()
    is_dup[origin[copy]] = True
    exact_truth = np.zeros(len(x_all), bool)
    exact_copy = np.char.startswith(kind.astype(str), "exact")
    exact_truth[exact_copy] = True
    exact_truth[origin[exact_copy]] = True
    near_copy = np.char.startswith(kind.astype(str), "near")
    near_truth = np.zeros(len(x_all), bool)
    near_truth[near_copy] = True
    near_truth[origin[near_copy]] = True
    return {"x": x_all, "labels": np.concatenate(labels), "splits": np.concatenate(splits).tolist(), "hashes": hashes,
            "truth": {"exact_duplicate": exact_truth, "near_duplicate": near_truth,
                      "split_leak": np.isin(kind, ["exact_leak", "near_leak"]),
                      "outlier": np.isin(kind, ["noise", "inverted"]), "noise": kind == "noise",
              "inverted": kind == "inverted"}}


def vector_checks(case: dict) -> dict[str, dict]:
    x, labels = case["x"], case["labels"]
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    idx, sims = knn_search(unit, 10)
    edges, _ = data_edges(idx, sims)
    near = near_duplicate_groups(idx, sims, edges=edges)
    exact = health.exact_duplicate_groups(case["hashes"])
    leak, _ = health.split_leaks(case["splits"], exact, near, idx, edges)
    truth = case["truth"]
    maha = health.mahalanobis_outlier_score(x, labels, n_classes=10)
    knn = health.knn_outlier_score(sims)
    out = {"exact_duplicate": precision_recall(exact >= 0, truth["exact_duplicate"]),
           # exact copies are near duplicates too: the near check is scored on both kinds
           "near_duplicate": precision_recall(near >= 0, truth["near_duplicate"] | truth["exact_duplicate"]),
           "split_leak": precision_recall(leak, truth["split_leak"]),
           "outlier (Mahalanobis)": precision_recall(health.flag_high(maha), truth["outlier"]),
           "outlier (kNN distance)": precision_recall(health.flag_high(knn), truth["outlier"])}
    for kind in ("noise", "inverted"):  # recall on each kind of outlier
        for name, flags in (("Mahalanobis", health.flag_high(maha)), ("kNN distance", health.flag_high(knn))):
            out[f"outlier recall on {kind} images ({name})"] = {"recall": round(float(flags[truth[kind]].mean()), 4)}
    out.update(cleanlab_checks(x, labels, maha, knn, truth["outlier"]))
    return out


def cleanlab_checks(x: np.ndarray, labels: np.ndarray, maha: np.ndarray, knn: np.ndarray,
                    truth: np.ndarray) -> dict[str, dict]:
    """Average precision of the outlier rankings: ours and cleanlab's ``OutOfDistribution``
    feature score (what Datalab's outlier issue ranks by; Datalab itself needs
    ``cleanlab[datalab]``, not installed here)."""
    from sklearn.metrics import average_precision_score

    out = {"outlier ranking AP (Mahalanobis)": {"average_precision": round(average_precision_score(truth, maha), 4)},
           "outlier ranking AP (kNN distance)": {"average_precision": round(average_precision_score(truth, knn), 4)}}
    try:
        from cleanlab.outlier import OutOfDistribution
    except ImportError:
        return out
    ood = OutOfDistribution().fit_score(features=x)  # low = outlier
    out["outlier ranking AP (cleanlab OutOfDistribution)"] = {
        "average_precision": round(average_precision_score(truth, -ood), 4)}
    return out


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(image, sigma=(sigma, sigma, 0))


def demo_embedding(images: list[np.ndarray]) -> np.ndarray:
    """The demo's embedding of each image (H, W) or (H, W, 3) in [0, 1]: 8-bit, then
    :func:`backend.embed.pixels.pixel_vector` (16 x 16 RGB), centred and L2-normalised."""
    from PIL import Image

    from backend.embed.pixels import pixel_vector

    x = np.vstack([pixel_vector(Image.fromarray(np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)), 16)
                   for img in images]).astype(np.float32)
    x -= x.mean(axis=0)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def image_checks(seed: int) -> dict[str, dict]:
    """Precision and recall of each image-quality flag on :func:`planted_images`, the blur check
    referenced as the health stage does (the digits' labels, 10 neighbours on the demo's
    embedding)."""
    from sklearn.datasets import load_digits

    images, truth, kinds = planted_images(seed)
    stats = np.vstack([health.pixel_stats(img) for img in images])
    idx, _ = knn_search(demo_embedding(images), 10, seed=0)
    flags = health.image_quality(stats, groups=health.content_groups(load_digits().target, idx), neighbor_indices=idx)
    wrong = {check: dict(zip(*np.unique(kinds[(flags[f"is_{check}"] == 1) & ~truth[check]], return_counts=True),
                             strict=True)) for check in health.QUALITY_CHECKS}
    print("false positives by planted kind:", {c: w for c, w in wrong.items() if w}, file=sys.stderr)
    return {check: precision_recall(flags[f"is_{check}"] == 1, truth[check]) for check in health.QUALITY_CHECKS}


def planted_images(seed: int) -> tuple[list[np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Colour 32 x 32 digits (H, W, 3) floats in [0, 1] with planted quality problems: the images,
    the truth per check ({check: (N,) bool}) and each image's planted kind ("clean" or a check)."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    grey = load_digits().images / 16.0
    colours = rng.uniform(0.5, 1.0, (len(grey), 3))
    images = [np.kron(g, np.ones((4, 4)))[:, :, None] * c[None, None, :] for g, c in zip(grey, colours, strict=True)]
    checks = ("dark", "bright", "blurry", "low_information", "grayscale", "odd_size")
    planted = rng.choice(len(images), N_QUALITY * len(checks), replace=False).reshape(len(checks), N_QUALITY)
    truth = {c: np.zeros(len(images), bool) for c in health.QUALITY_CHECKS}
    for check, members in zip(checks, planted, strict=True):
        for i in members:
            img = images[i]
            if check == "dark":
                img = img * 0.25
            elif check == "bright":
                img = 0.65 + 0.35 * img
            elif check == "blurry":
                img = blur(img, 1.5)
            elif check == "low_information":
                img = np.ones_like(img) * rng.uniform(0.35, 0.6, 3)  # one colour
                truth["blurry"][i] = True  # no edges at all
            elif check == "grayscale":
                img = np.repeat((img @ health.LUMA)[:, :, None], 3, axis=2)
            elif check == "odd_size":
                img = np.repeat(img, 3, axis=1)
            images[i] = img
            truth[check][i] = True
    kinds = np.full(len(images), "clean", dtype=object)
    for check, members in zip(checks, planted, strict=True):
        kinds[members] = check
    return images, truth, kinds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "health.json"))
    args = parser.parse_args(argv)
    per_seed = []
    for seed in range(args.seeds):
        per_seed.append({**vector_checks(planted_vectors(seed)), **image_checks(seed)})
    table = {}
    for check in per_seed[0]:
        rows = [r[check] for r in per_seed]
        table[check] = {m: round(float(np.mean([r[m] for r in rows])), 4) for m in rows[0] if m != "n_flagged"}
    result = {"benchmark": "planted health cases among sklearn digits (bench/health.py docstring)",
              "seeds": args.seeds, "mean_over_seeds": table, "per_seed": per_seed}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("| check | precision | recall | true cases |\n|---|---|---|---|")
    for check, row in table.items():
        if "precision" in row:
            print(f"| {check} | {row['precision']:.3f} | {row['recall']:.3f} | {row['n_true']:.0f} |")
    for check, row in table.items():
        if "precision" not in row:
            print(f"{check}: {row}")
    return result


if __name__ == "__main__":
    main()
