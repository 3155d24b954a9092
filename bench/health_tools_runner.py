"""Runs cleanlab's Datalab or FiftyOne Brain on one planted health case written by
``bench/health_vs_tools.py``; prints JSON with each tool's per-sample flags and scores.

Runs inside the tool's own virtual environment (see ``bench/health_vs_tools.py`` for how those
are made), so it imports nothing from this project: only NumPy and the tool.

Usage: ``TOOL_PYTHON bench/health_tools_runner.py {datalab,fiftyone} CASE_DIR``, where CASE_DIR
holds ``case.npz`` (x, labels, splits, pred_probs), ``files/`` (one file per vector row, whose
bytes are the row's: exact copies are byte-identical) and ``images/`` (the image-quality PNGs).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

DATALAB_IMAGE_ISSUES = ("dark", "light", "blurry", "low_information", "grayscale", "odd_size",
                        "odd_aspect_ratio")


def run_datalab(case_dir: Path) -> dict:
    """Datalab ``find_issues`` with features and pred_probs (near_duplicate, outlier, non_iid),
    then a second Datalab over the PNGs with Imagelab's image issues (cleanvision)."""
    import datasets
    from cleanlab import Datalab

    case = np.load(case_dir / "case.npz", allow_pickle=True)
    out: dict = {}
    t0 = time.perf_counter()
    lab = Datalab(data={"label": case["labels"].tolist()}, label_name="label", verbosity=0)
    lab.find_issues(features=case["x"], pred_probs=case["pred_probs"],
                    issue_types={"near_duplicate": {}, "outlier": {}, "non_iid": {}})
    issues = lab.get_issues()
    out["vector_seconds"] = round(time.perf_counter() - t0, 2)
    for name in ("near_duplicate", "outlier"):
        out[f"is_{name}"] = issues[f"is_{name}_issue"].astype(bool).tolist()
        out[f"{name}_score"] = issues[f"{name}_score"].astype(float).tolist()
    summary = lab.get_issue_summary()
    out["non_iid_score"] = float(summary.loc[summary["issue_type"] == "non_iid", "score"].iloc[0])
    out["non_iid_p_value"] = float(lab.get_info("non_iid").get("p-value", float("nan")))
    out["near_duplicate_threshold"] = float(lab.get_info("near_duplicate").get("threshold", float("nan")))

    paths = sorted((case_dir / "images").glob("*.png"))
    t0 = time.perf_counter()
    data = datasets.Dataset.from_dict({"image": [str(p) for p in paths]}).cast_column("image", datasets.Image())
    image_lab = Datalab(data=data, image_key="image", verbosity=0)
    image_lab.find_issues(issue_types={"image_issue_types": {name: {} for name in DATALAB_IMAGE_ISSUES}})
    image_issues = image_lab.get_issues()
    out["image_seconds"] = round(time.perf_counter() - t0, 2)
    for name in DATALAB_IMAGE_ISSUES:
        column = f"is_{name}_issue"
        if column in image_issues:
            out[f"is_{name}"] = image_issues[column].astype(bool).tolist()
            out[f"{name}_score"] = image_issues[f"{name}_score"].astype(float).tolist()  # low = issue
    return out


def run_fiftyone(case_dir: Path) -> dict:
    """FiftyOne Brain on the same rows: ``compute_exact_duplicates`` (file hashes),
    ``compute_near_duplicates`` and ``compute_leaky_splits`` at their default threshold (cosine
    distance 0.2) and at ``threshold`` from case.npz (our data-chosen one, as a distance), and
    ``compute_uniqueness`` (a ranking: higher = more unique = the outlier end)."""
    import fiftyone as fo
    import fiftyone.brain as fob

    case = np.load(case_dir / "case.npz", allow_pickle=True)
    x, splits = case["x"], case["splits"].tolist()
    files = [str(case_dir / "files" / f"{i:06d}.bin") for i in range(len(x))]
    dataset = fo.Dataset(f"health-{case_dir.name}-{time.time_ns()}", overwrite=True)
    dataset.add_samples([fo.Sample(filepath=f, split=s, tags=[s]) for f, s in zip(files, splits, strict=True)],
                        progress=False)
    ids = dataset.values("id")
    position = {sample_id: i for i, sample_id in enumerate(ids)}
    out: dict = {}
    t0 = time.perf_counter()
    exact = fob.compute_exact_duplicates(dataset, progress=False)  # {first id: [duplicate ids]}
    flagged = np.zeros(len(x), bool)
    for first, others in exact.items():
        flagged[[position[first], *(position[o] for o in others)]] = True
    out["is_exact_duplicate"] = flagged.tolist()
    out["exact_seconds"] = round(time.perf_counter() - t0, 2)
    for label, distance in (("default", 0.2), ("ours", float(1.0 - case["threshold"]))):
        t0 = time.perf_counter()
        index = fob.compute_near_duplicates(dataset, threshold=distance, embeddings=x, progress=False)
        flagged = np.zeros(len(x), bool)
        for first, neighbours in index.neighbors_map.items():  # {id: [(duplicate id, distance)]}
            flagged[[position[first], *(position[n] for n, _ in neighbours)]] = True
        out[f"is_near_duplicate@{label}"] = flagged.tolist()
        out[f"near_seconds@{label}"] = round(time.perf_counter() - t0, 2)
        leaks = fob.compute_leaky_splits(dataset, splits=["train", "test"], threshold=distance, embeddings=x,
                                         progress=False)
        leak_ids = set(leaks.leaks_view().values("id"))
        out[f"is_split_leak@{label}"] = [sample_id in leak_ids for sample_id in ids]
        out[f"near_threshold@{label}"] = distance
    t0 = time.perf_counter()
    fob.compute_uniqueness(dataset, embeddings=x, progress=False)
    out["uniqueness"] = dataset.values("uniqueness")
    out["uniqueness_seconds"] = round(time.perf_counter() - t0, 2)
    dataset.delete()
    return out


if __name__ == "__main__":
    tool, case_dir = sys.argv[1], Path(sys.argv[2])
    result = {"datalab": run_datalab, "fiftyone": run_fiftyone}[tool](case_dir)
    print(json.dumps(result))
