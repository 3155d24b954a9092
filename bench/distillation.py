"""Pruning + distillation benchmark (Ben-Baruch et al. 2024, arXiv 2403.07854): subsets kept by
random pruning, the recommended default and the score-based anchors, each trained with and
without knowledge distillation from a teacher trained on the complete training split.

Run: ``.venv/bin/python bench/distillation.py [--seeds 0 1 2 3 4] [--out PATH]`` (test split,
``bench/results/distillation.json``); ``--tune`` chooses the KD weight rule and temperature on six
validation splits carved from the training split, never reading the test split
(``bench/results/distillation_tuning.json``); ``--quick`` is a smoke run. Not part of the unit tests.

Protocol:

- data and scores as ``bench/pruning.py`` (digits / 16, 70/30 stratified split, every default
  score computed on the training split by the product's probes and scorers, subsets from
  ``registry.prune`` at the fraction REMOVED in {0.3, 0.5, 0.7, 0.9}, prune seed = seed);
- models: the product's MLP probe (``ProbeConfig()``: 128 hidden units, SGD, 30 epochs on the
  full split), so that a KD term can be added; every model trained on a subset takes as many
  SGD steps as the full-data model (``subset_evaluation.same_steps``), and shares its initial
  weights with the others of its seed;
- teacher: the same probe on the whole training split, one per seed (its test accuracy is the
  "full data" row);
- KD: ``(1 - alpha) CE + alpha tau^2 KL(teacher_tau || student_tau)`` with
  ``alpha = kd_weight(kept fraction)`` (``backend/scoring/distillation.py``);
- reported: test accuracy % (mean +- std over seeds) without and with KD, and paired
  comparisons (mean difference +- standard error over seeds; discordant test samples with an
  exact sign test).

Numbers here are not comparable to ``bench/pruning.py``'s, which trains scikit-learn's
``MLPClassifier`` (Adam, up to 200 epochs, no KD term possible).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from pruning import (  # bench/pruning.py (beside this file): the protocol; it puts the repository on sys.path
    ANCHOR_METHODS,
    DEFAULT,
    RATIOS,
    ROOT,
    VALIDATION_SPLITS,
    _on_splits,
    kept_rows,
    load_split,
    paired,
    score_split,
    summarise,
    validation_split,
)

from backend.scoring.distillation import KD_TEMPERATURE, KD_WEIGHT_EMPTY, KD_WEIGHT_FULL, kd_weight
from backend.scoring.probe_models import sub_seed
from backend.scoring.probes import ProbeConfig
from backend.scoring.subset_evaluation import fit_predict

#: (name, at_full, at_empty, temperature); at_full = at_empty is a constant weight; None = no KD.
NO_KD = ("no KD", None, None, None)
CHOSEN = ("KD, alpha(f) as shipped", KD_WEIGHT_FULL, KD_WEIGHT_EMPTY, KD_TEMPERATURE)
TUNING_RULES = ((0.25, 0.25), (0.5, 0.5), (0.75, 0.75), (0.9, 0.9), (0.0, 0.9), (0.25, 0.9), (0.0, 1.0),
                (0.5, 0.9), (0.25, 1.0), (0.5, 1.0), (0.75, 1.0))  # fmt: skip
TUNING_TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
TUNING_METHODS = ("random", DEFAULT)


def setting_name(at_full: float, at_empty: float, temperature: float) -> str:
    rule = f"alpha={at_full:g}" if at_full == at_empty else f"alpha={at_empty:g}-{at_empty - at_full:g}f"
    return f"{rule}, tau={temperature:g}"


def run_split(x_fit, y_fit, x_eval, y_eval, *, methods, ratios, seeds, settings) -> dict:
    """Per-sample hits {setting: {method: {ratio: [(n_eval,) bool per seed]}}} and the teacher's
    {"full": [(n_eval,) bool per seed]}; scores from ``x_fit`` only."""
    data, scores = score_split(x_fit, y_fit)
    x = np.vstack([x_fit, x_eval]).astype(np.float32)
    y = np.concatenate([y_fit, y_eval]).astype(np.int64)
    n_fit = len(y_fit)
    fit_rows, eval_rows = np.arange(n_fit), np.arange(n_fit, len(y))
    config = ProbeConfig()
    hits: dict = {"full": []}
    for seed in seeds:
        common = {"n_classes": 10, "config": config, "seed": sub_seed(seed, 7), "steps_of": n_fit}
        on_eval, on_fit = fit_predict(x, y, fit_rows, [eval_rows, fit_rows], **common)
        hits["full"].append(on_eval.argmax(axis=1) == y_eval)
        teacher = np.zeros((len(y), 10), np.float32)
        teacher[fit_rows] = on_fit
        for method in methods:
            for ratio in ratios:
                keep = kept_rows(method, ratio, data, scores, seed)
                fraction = keep.size / n_fit
                for name, at_full, at_empty, temperature in settings:
                    if at_full is None:
                        logits = fit_predict(x, y, keep, [eval_rows], **common)[0]
                    else:
                        alpha = kd_weight(fraction, at_full=at_full, at_empty=at_empty)
                        logits = fit_predict(x, y, keep, [eval_rows], teacher_logits=teacher, alpha=alpha,
                                             temperature=temperature, **common)[0]
                    hits.setdefault(name, {}).setdefault(method, {}).setdefault(ratio, []).append(
                        logits.argmax(axis=1) == y_eval)
        print(f"  seed {seed} done", file=sys.stderr, flush=True)
    return hits


def accuracies(hits_per_seed: list[np.ndarray]) -> list[float]:
    return [100.0 * float(h.mean()) for h in hits_per_seed]


def run_benchmark(seeds: list[int], ratios: tuple[float, ...]) -> dict:
    x_tr, x_te, y_tr, y_te = load_split()
    methods = (DEFAULT, *ANCHOR_METHODS)
    hits = run_split(x_tr, y_tr, x_te, y_te, methods=methods, ratios=ratios, seeds=seeds,
                     settings=(NO_KD, CHOSEN))
    no_kd, kd = hits[NO_KD[0]], hits[CHOSEN[0]]
    table = {m: {str(r): {"no_kd": summarise(accuracies(no_kd[m][r])), "kd": summarise(accuracies(kd[m][r]))}
                 for r in ratios} for m in methods}
    score_based = [m for m in methods if m != "random"]
    verdict = {}
    for ratio in ratios:
        best = max(score_based, key=lambda m: np.mean(accuracies(no_kd[m][ratio])))
        best_kd = max(score_based, key=lambda m: np.mean(accuracies(kd[m][ratio])))
        verdict[str(ratio)] = {
            "kd_weight": round(kd_weight(1 - ratio), 3),
            "random_kd_vs_random": paired(kd["random"][ratio], no_kd["random"][ratio], ("kd", "no_kd")),
            "default_kd_vs_default": paired(kd[DEFAULT][ratio], no_kd[DEFAULT][ratio], ("kd", "no_kd")),
            "best_score_based_without_kd": best,
            "random_kd_vs_best_score_based_without_kd": paired(kd["random"][ratio], no_kd[best][ratio],
                                                               ("random_kd", best)),
            "best_score_based_with_kd": best_kd,
            "random_kd_vs_best_score_based_with_kd": paired(kd["random"][ratio], kd[best_kd][ratio],
                                                            ("random_kd", best_kd)),
        }
    return {"full": summarise(accuracies(hits["full"])), "methods": table, "verdict": verdict,
            "settings": {"kd_weight_full": KD_WEIGHT_FULL, "kd_weight_empty": KD_WEIGHT_EMPTY,
                         "temperature": KD_TEMPERATURE}}


def _tune_on_split(split: int, seeds: list[int], ratios: tuple[float, ...]) -> dict:
    x_fit, x_val, y_fit, y_val = validation_split(split)
    settings = [NO_KD] + [(setting_name(a, b, t), a, b, t) for a, b in TUNING_RULES for t in TUNING_TEMPERATURES]
    return run_split(x_fit, y_fit, x_val, y_val, methods=TUNING_METHODS, ratios=ratios, seeds=seeds,
                     settings=settings)


def tune(seeds: list[int], ratios: tuple[float, ...]) -> dict:
    """Every candidate (KD weight rule, temperature) on the validation splits; the chosen one has
    the highest mean accuracy pooled over splits, seeds, ratios and the two methods."""
    per_split = _on_splits(_tune_on_split, seeds, ratios)
    names = [name for name in per_split[0] if name != "full"]

    def pooled(name: str, method: str, ratio: float) -> list[np.ndarray]:
        return [h for split in per_split for h in split[name][method][ratio]]

    table = {name: {m: {str(r): round(float(np.mean(accuracies(pooled(name, m, r)))), 2) for r in ratios}
                    for m in TUNING_METHODS} for name in names}
    overall = {name: float(np.mean([v for per in table[name].values() for v in per.values()])) for name in names}
    chosen = max(names, key=lambda k: overall[k])
    constants = [name for name in names if name != NO_KD[0] and "f," not in name]
    best_constant = {str(r): max(constants, key=lambda k: np.mean([table[k][m][str(r)] for m in TUNING_METHODS]))
                     for r in ratios}
    return {
        "splits": list(VALIDATION_SPLITS), "seeds": seeds, "methods": list(TUNING_METHODS),
        "validation_accuracy": table, "mean_over_ratios_and_methods": {k: round(v, 3) for k, v in overall.items()},
        "chosen": chosen, "best_constant_weight_per_ratio": best_constant,
        "chosen_vs_no_kd": {f"{m} {r}": paired(pooled(chosen, m, r), pooled(NO_KD[0], m, r), ("kd", "no_kd"))
                            for m in TUNING_METHODS for r in ratios},
        "full": summarise(accuracies([h for split in per_split for h in split["full"]])),
    }


def markdown(result: dict) -> str:
    ratios = list(result["verdict"])
    lines = ["| method (removed →) | " + " | ".join(f"{r} no KD / KD" for r in ratios) + " |",
             "|---" * (len(ratios) + 1) + "|"]
    for method, per in result["methods"].items():
        cells = [f"{per[r]['no_kd']['mean']:.2f} / **{per[r]['kd']['mean']:.2f}**" for r in ratios]
        lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
    lines.append(f"| full data (teacher) | {result['full']['mean']:.2f} ± {result['full']['std']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 ratios (smoke run)")
    parser.add_argument("--tune", action="store_true", help="choose the KD settings on validation splits")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    seeds, ratios = (args.seeds[:2], (0.5, 0.9)) if args.quick else (args.seeds, RATIOS)
    started = time.perf_counter()
    if args.tune:
        seeds = args.seeds[:3] if args.seeds == [0, 1, 2, 3, 4] else args.seeds
        result = tune(seeds, ratios)
        default_out = ROOT / "bench" / "results" / "distillation_tuning.json"
    else:
        result = run_benchmark(seeds, ratios)
        default_out = ROOT / "bench" / "results" / "distillation.json"
        print(markdown(result))
    result = {"benchmark": "distillation" + ("_tuning" if args.tune else ""), "seeds": seeds, **result,
              "wall_seconds": round(time.perf_counter() - started, 1),
              "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}"}
    out = args.out or default_out
    if not args.quick or args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
