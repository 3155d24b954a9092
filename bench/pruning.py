"""Pruning benchmark: the recommended default against random, EL2N, forgetting, AUM, prototypes,
TDDS and CCS on digits, all computed in the same run.

Run: ``.venv/bin/python bench/pruning.py [--seeds 0 1 2 3 4] [--out PATH]``; ``--quick`` is a smoke
run (2 seeds, 2 ratios); ``--tune`` picks the SIMS sampling parameters on a validation split carved
out of the training split (the test split is never read) and writes
``bench/results/pruning_tuning.json``; ``--select`` picks the default's score on six validation
splits carved out of the training split (``bench/results/pruning_selection.json``);
``--alternatives`` runs the designs in ``ALTERNATIVES`` against the default on the same six splits,
paired (``bench/results/pruning_alternatives.json``; ``--only TEXT`` runs the designs whose label
contains TEXT); ``--noisy`` runs the protocol with label noise injected into the training split
(``bench/results/pruning_noisy.json``). Not part of the unit tests.

The test-split verdict compares the default with the best anchor of each ratio both by mean and
paired (same seeds, same test samples): the mean difference with its standard error over seeds,
and the samples right by only one of the two, pooled over seeds, with an exact sign test.

Protocol (issue 3; the anchors quoted there were measured on exactly this):

- data: ``sklearn.datasets.load_digits``, features X / 16 (what ``thresher ingest --embeddings``
  stores for them), ``train_test_split(test_size=0.3, stratify=y, random_state=0)``;
- scores: computed on the training split only, through the product's own path: the score job's
  probes (``ProbeConfig()`` defaults: MLP probe, 5 folds x 3 seeds out-of-fold, per-epoch
  dynamics) and ``backend.jobs.pruning_stage.pruning_scores`` (every default scorer);
- pruning: ``registry.prune(method, ratio, ...)`` with ``ratio`` the fraction REMOVED in
  {0.3, 0.5, 0.7, 0.9}, per-class policy proportional, prune seed = model seed; the recommended
  default is run exactly as ``thresher prune`` runs it (``registry.recommended_default(ratio)``,
  after removing the samples the score job's label-noise verdict flags in the training split,
  ``backend.scoring.pruning.exclusions``; the anchors are run as their papers define them,
  without it, and the default is shown without it too);
- evaluation: ``MLPClassifier(hidden_layer_sizes=(128,), random_state=seed)`` (other parameters
  at scikit-learn's defaults) trained on the kept rows, test accuracy in %, seeds 0-4;
- anchors computed here: full data, random, keep-hard top-k on EL2N, forgetting, AUM, TDDS
  and prototypes, keep-easy prototypes, CCS over AUM, EL2N and TDDS; D2 pruning (Maharana et
  al. 2024) over AUM and over the ensemble is shown too, outside the issue's anchor list.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from backend.jobs.dataset import Dataset  # noqa: E402
from backend.jobs.label_noise_stage import label_noise_stage  # noqa: E402
from backend.jobs.pruning_stage import pruning_scores  # noqa: E402
from backend.jobs.score_inputs import probe_config_for, run_probes  # noqa: E402
from backend.scoring.pruning import registry  # noqa: E402
from backend.scoring.pruning.ensemble import rank_ensemble  # noqa: E402
from backend.scoring.pruning.exclusions import removed_first  # noqa: E402
from backend.scoring.pruning.sims_sampling import DEFAULT_SIMS_SAMPLING, SimsSampling, sims_sample  # noqa: E402

RATIOS = (0.3, 0.5, 0.7, 0.9)
ISSUE_ANCHORS = {  # quoted in issue 3 (test accuracy %, 5 seeds)
    "full": 97.74,
    "random": {0.3: 97.56, 0.5: 96.70, 0.7: 95.44, 0.9: 91.63},
    "best_of_el2n_forgetting_prototypes_aum_ccs_tdds": {0.3: 98.04, 0.5: 97.93, 0.7: 97.81, 0.9: 91.63},
}
ANCHOR_METHODS = (
    "random", "keep_hard:el2n", "keep_hard:forgetting", "keep_hard:aum", "keep_hard:tdds",
    "keep_hard:prototypes", "keep_easy:prototypes", "ccs:aum", "ccs:el2n", "ccs:tdds",
)  # fmt: skip
OUR_METHODS = ("sims:sim", "sims:el2n", "sims:forgetting", "sims:aum")
#: Published procedures shown beside the anchors (not in the issue's anchor list).
OTHER_METHODS = ("d2:aum", "d2:ensemble")
DEFAULT = "default"
#: The default as ``thresher prune --label-issues keep`` runs it (flagged samples left to SIMS).
DEFAULT_KEEPING_ISSUES = "default, label issues kept"


def score_split(x: np.ndarray, y: np.ndarray, probe_changes: tuple = ()) -> tuple[Dataset, dict[str, np.ndarray]]:
    """Every default pruning score of (x, y), through the score job's probes and scorers, plus the
    score job's label-noise verdict (``is_label_issue``, ``label_issue_score``: what ``thresher
    prune`` removes first); ``probe_changes`` replaces fields of the score job's probe recipe, as
    (name, value) pairs."""
    norms = np.linalg.norm(x, axis=1).astype(np.float32)
    unit = (x / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32)
    ids = np.array([f"r{i}" for i in range(len(y))], dtype=object)
    data = Dataset(ids, y.astype(np.int64), [str(c) for c in range(10)], unit, norms, "bench")
    config = dataclasses.replace(probe_config_for(len(y)), **dict(probe_changes))
    probes = run_probes(data, config)
    scores = pruning_scores(data, probes, list(registry.recommended_scorers()))
    verdict, _ = label_noise_stage(data, probes, config)
    scores["is_label_issue"] = verdict["is_label_issue"].to_numpy(bool)
    scores["label_issue_score"] = verdict["label_issue_score"].to_numpy(np.float64)
    return data, scores


def kept_rows(method: str, ratio: float, data: Dataset, scores: dict, seed: int,
              params: SimsSampling | None = None, method_options: dict | None = None) -> np.ndarray:
    """Indices kept by ``method`` (``"default"`` = the recommended recipe, as ``thresher prune``;
    ``"sims:a+b"`` = SIMS sampling over the rank blend of scores a and b); ``params`` replaces
    the SIMS sampling parameters, ``method_options`` are the procedure's options (e.g. D2's).

    Every method but the anchors (:data:`ANCHOR_METHODS`, run as their papers define them) and
    :data:`DEFAULT_KEEPING_ISSUES` first removes the samples the verdict flags, as ``thresher
    prune`` does by default (``backend.scoring.pruning.exclusions``)."""
    exclude = None
    if method not in ANCHOR_METHODS and method != DEFAULT_KEEPING_ISSUES:
        exclude = removed_first(len(data.labels), ratio, label_issues=scores["is_label_issue"],
                                label_issue_score=scores["label_issue_score"], seed=seed).mask
    if "+" in method:
        blend = method.partition(":")[2]
        difficulty = rank_ensemble([registry.difficulty_of(p, scores[p]) for p in blend.split("+")])
        return sims_sample(difficulty, ratio, embeddings=data.unit, labels=data.labels, seed=seed,
                           exclude=exclude, params=params or DEFAULT_SIMS_SAMPLING)
    options: dict = {}
    if method in (DEFAULT, DEFAULT_KEEPING_ISSUES):
        recipe = registry.recommended_default(ratio)
        method, options = recipe.name, recipe.options
    if params is not None:
        options = {**options, "sims": {"params": params}}
    if method_options:
        options = {**options, registry.parse_method(method)[0].name: method_options}
    inputs = registry.ScoreInputs(labels=data.labels, embeddings=data.unit, norms=data.norms)
    return registry.prune(method, ratio, labels=data.labels, scores=scores, inputs=inputs,
                          per_class="proportional", seed=seed, exclude=exclude, options=options)


def correct(x_train, y_train, x_test, y_test, seed: int) -> np.ndarray:
    """(n_test,) bool: which evaluation samples the protocol's MLP gets right."""
    model = MLPClassifier(hidden_layer_sizes=(128,), random_state=seed)
    # one BLAS thread: 4x faster for these small matrices on the shared 2-core box
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    return model.predict(x_test) == y_test


def accuracy(x_train, y_train, x_test, y_test, seed: int) -> float:
    return 100.0 * float(correct(x_train, y_train, x_test, y_test, seed).mean())


def evaluate(methods, ratios, seeds, data, scores, x_tr, y_tr, x_ev, y_ev, params=None,
             hits: dict | None = None) -> dict:
    """{method: {ratio: [accuracy per seed]}}; ``hits``, when given, is filled with
    {method: {ratio: [(n_eval,) bool per seed]}} for the paired comparison."""
    out: dict = {}
    for method in methods:
        key = str(method)
        out[key] = {}
        for ratio in ratios:
            accs = []
            for seed in seeds:
                name, params_, options = (method, params, None)
                if isinstance(method, Alternative):
                    name, params_, options = method.method, method.sampling(), method.options
                keep = kept_rows(name, ratio, data, scores, seed, params_, options)
                right = correct(x_tr[keep], y_tr[keep], x_ev, y_ev, seed)
                accs.append(100.0 * float(right.mean()))
                if hits is not None:
                    hits.setdefault(key, {}).setdefault(ratio, []).append(right)
            out[key][ratio] = accs
            print(f"  {key:24s} r={ratio:.1f}  {np.mean(accs):6.2f} ± {np.std(accs):.2f}",
                  file=sys.stderr, flush=True)
    return out


def summarise(values: list[float]) -> dict:
    return {"mean": round(float(np.mean(values)), 2), "std": round(float(np.std(values)), 2),
            "per_seed": [round(v, 2) for v in values]}


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign (McNemar) test: P(a split at least this uneven | no difference)."""
    from scipy.stats import binomtest

    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5).pvalue)


def paired(first: list[np.ndarray], second: list[np.ndarray], names: tuple[str, str]) -> dict:
    """Paired comparison over runs of two methods' per-sample hits (same seeds, same evaluation
    samples): the mean accuracy difference first - second with its standard error over runs,
    and the discordant samples pooled over runs (right by ``names[0]`` only / by ``names[1]``
    only) with the exact sign-test p-value. One sample-run is 100 / (n_eval * runs) points.

    The sign test treats every sample-run as independent; they are not (a test sample recurs in
    every seed, a validation sample in up to five splits), so its p is optimistic: a large p is
    strong evidence of no difference, a small one weaker than it looks."""
    diffs = np.array([100.0 * (a.mean() - b.mean()) for a, b in zip(first, second, strict=True)])
    wins = int(sum(int((a & ~b).sum()) for a, b in zip(first, second, strict=True)))
    losses = int(sum(int((~a & b).sum()) for a, b in zip(first, second, strict=True)))
    se = float(diffs.std(ddof=1) / np.sqrt(diffs.size)) if diffs.size > 1 else float("nan")
    return {"difference": round(float(diffs.mean()), 3), "standard_error": round(se, 3),
            f"right_by_{names[0]}_only": wins, f"right_by_{names[1]}_only": losses,
            "sign_test_p": float(f"{sign_test_p(wins, losses):.3g}")}


def load_split():
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    return train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)


def run_benchmark(seeds: list[int], ratios: tuple[float, ...]) -> dict:
    x_tr, x_te, y_tr, y_te = load_split()
    started = time.perf_counter()
    data, scores = score_split(x_tr, y_tr)
    score_seconds = time.perf_counter() - started
    full = [accuracy(x_tr, y_tr, x_te, y_te, s) for s in seeds]
    print(f"  full data {np.mean(full):.2f}", file=sys.stderr)
    hits: dict = {}
    results = evaluate((DEFAULT, DEFAULT_KEEPING_ISSUES, *OUR_METHODS, *ANCHOR_METHODS, *OTHER_METHODS), ratios,
                       seeds, data, scores, x_tr, y_tr, x_te, y_te, hits=hits)
    table = {m: {str(r): summarise(v) for r, v in per.items()} for m, per in results.items()}
    verdict = {}
    for ratio in ratios:
        best_name = max(ANCHOR_METHODS, key=lambda m: np.mean(results[m][ratio]))
        best = float(np.mean(results[best_name][ratio]))
        quoted = ISSUE_ANCHORS["best_of_el2n_forgetting_prototypes_aum_ccs_tdds"][ratio]
        ours = float(np.mean(results[DEFAULT][ratio]))
        verdict[str(ratio)] = {
            "default": round(ours, 2), "best_anchor_this_run": best_name,
            "best_anchor_this_run_mean": round(best, 2), "quoted_best_anchor": quoted,
            "default_at_or_above_best_anchor_this_run": ours >= best - 1e-9,
            "default_at_or_above_quoted_best_anchor": ours >= quoted - 1e-9,
            "paired_vs_best_anchor_this_run": paired(hits[DEFAULT][ratio], hits[best_name][ratio],
                                                     ("default", "anchor")),
        }
    return {
        "full": summarise(full), "methods": table, "verdict": verdict,
        "score_seconds": round(score_seconds, 1),
        "label_issues_flagged_in_training_split": int(scores["is_label_issue"].sum()),
        "default_recipe": {str(r): registry.recommended_default(r).name for r in ratios},
        "default_sampling": DEFAULT_SIMS_SAMPLING.to_dict(),
    }


VALIDATION_SPLITS = (1, 2, 3, 4, 5, 6)
TUNING_SCORES = ("ensemble",)
TUNING_GRID = {
    "coverage_start": (0.4, 0.5, 0.6),
    "coverage_full": (0.8, 0.95),
    "knee": (0.7, 0.8),
}


def validation_split(split: int):
    """Fit 70 % / validation 30 % of the training split, ``random_state=split``; the test split
    is never read."""
    x_tr, _, y_tr, _ = load_split()
    return train_test_split(x_tr, y_tr, test_size=0.3, stratify=y_tr, random_state=split)


def _tune_on_split(split: int, seeds: list[int], ratios: tuple[float, ...], trials: list) -> tuple[dict, list]:
    x_fit, x_val, y_fit, y_val = validation_split(split)
    data, scores = score_split(x_fit, y_fit)
    anchors = evaluate(ANCHOR_METHODS, ratios, seeds, data, scores, x_fit, y_fit, x_val, y_val)
    out = []
    for score, params in trials:
        out.append(evaluate((f"sims:{score}",), ratios, seeds, data, scores, x_fit, y_fit, x_val, y_val,
                            SimsSampling(**params))[f"sims:{score}"])
    return anchors, out


def _on_splits(worker, *args) -> list:
    """``worker(split, *args)`` for every validation split, two processes."""
    from concurrent.futures import ProcessPoolExecutor

    n = len(VALIDATION_SPLITS)
    with ProcessPoolExecutor(max_workers=2) as pool:
        return list(pool.map(worker, VALIDATION_SPLITS, *[[a] * n for a in args]))


def _pool(per_split: list[dict], ratios: tuple[float, ...]) -> dict:
    return {m: {r: [a for res in per_split for a in res[m][r]] for r in ratios} for m in per_split[0]}


def _margins(res: dict, best: dict, ratios: tuple[float, ...]) -> dict:
    margins = {str(r): round(float(np.mean(res[r])) - best[r], 3) for r in ratios}
    return {"mean": {str(r): round(float(np.mean(res[r])), 2) for r in ratios},
            "margin_vs_best_anchor": margins, "worst_margin": min(margins.values()),
            "mean_margin": round(float(np.mean(list(margins.values()))), 3)}


def tune(seeds: list[int], ratios: tuple[float, ...], grid: dict | None = None) -> dict:
    """Grid over the score and ``TUNING_GRID``, pooled over the ``VALIDATION_SPLITS`` (the test
    split is never read); ranked by the worst margin over ratios against the best anchor at that
    ratio (pooled), then by the mean margin."""
    grid = dict(grid or {"score": TUNING_SCORES, **TUNING_GRID})
    score_names = grid.pop("score")
    trials = [(score, {**DEFAULT_SIMS_SAMPLING.to_dict(), **dict(zip(grid, values, strict=True))})
              for score in score_names for values in itertools.product(*grid.values())]
    per_split = _on_splits(_tune_on_split, seeds, ratios, trials)
    anchors = _pool([a for a, _ in per_split], ratios)
    best = {r: max(float(np.mean(anchors[m][r])) for m in ANCHOR_METHODS) for r in ratios}
    rows = []
    for i, (score, params) in enumerate(trials):
        pooled = _pool([{"t": res[i]} for _, res in per_split], ratios)["t"]
        rows.append({"method": f"sims:{score}", "params": params, **_margins(pooled, best, ratios)})
    rows.sort(key=lambda t: (-t["worst_margin"], -t["mean_margin"]))
    return {"splits": list(VALIDATION_SPLITS),
            "best_anchor_validation": {str(r): round(v, 2) for r, v in best.items()},
            "anchors_validation": {m: {str(r): summarise(anchors[m][r]) for r in ratios} for m in ANCHOR_METHODS},
            "trials": rows}


#: Scores tried for the default's SIMS sampling: registered ones, and rank blends ("a+b").
SELECTION_SCORES = ("sim", "aum", "el2n", "tdds", "ensemble", "sim+aum", "sim+aum+el2n",
                    "sim+aum+tdds", "aum+el2n+tdds", "aum+tdds", "aum+el2n+dynamic_uncertainty")


def _select_on_split(split: int, seeds: list[int], ratios: tuple[float, ...]) -> dict:
    """{method: {ratio: [validation accuracy per seed]}} on validation split ``split``."""
    x_fit, x_val, y_fit, y_val = validation_split(split)
    data, scores = score_split(x_fit, y_fit)
    methods = (*ANCHOR_METHODS, *(f"sims:{score}" for score in SELECTION_SCORES))
    return evaluate(methods, ratios, seeds, data, scores, x_fit, y_fit, x_val, y_val)


def select(seeds: list[int], ratios: tuple[float, ...]) -> dict:
    """The default's score for SIMS sampling (default sampling parameters), chosen like
    :func:`tune`: pooled over the ``VALIDATION_SPLITS``, worst margin then mean margin."""
    pooled = _pool(_on_splits(_select_on_split, seeds, ratios), ratios)
    best = {r: max(float(np.mean(pooled[a][r])) for a in ANCHOR_METHODS) for r in ratios}
    ranking = [{"score": score, **_margins(pooled[f"sims:{score}"], best, ratios)} for score in SELECTION_SCORES]
    ranking.sort(key=lambda t: (-t["worst_margin"], -t["mean_margin"]))
    return {"splits": list(VALIDATION_SPLITS),
            "best_anchor_validation": {str(r): round(v, 2) for r, v in best.items()},
            "anchors_validation": {m: {str(r): summarise(pooled[m][r]) for r in ratios} for m in ANCHOR_METHODS},
            "ranking": ranking, "chosen": ranking[0]["score"]}


@dataclass(frozen=True)
class Alternative:
    """A design tried against the default on the validation splits (``--alternatives``)."""

    label: str
    method: str
    why: str
    sampling_changes: tuple = ()  # SimsSampling fields replaced, as (name, value) pairs
    options: dict | None = None  # the procedure's options
    probe_changes: tuple = ()  # ProbeConfig fields replaced for the scores, as (name, value) pairs

    def sampling(self) -> SimsSampling | None:
        if not self.sampling_changes:
            return None
        return SimsSampling(**{**DEFAULT_SIMS_SAMPLING.to_dict(), **dict(self.sampling_changes)})

    def __str__(self) -> str:
        return self.label


ALTERNATIVES = (
    Alternative("blend aum+el2n+forgetting+tdds", "sims:aum+el2n+forgetting+tdds",
                "more hardness estimators in the rank ensemble"),
    Alternative("blend aum+el2n+grand", "sims:aum+el2n+grand", "GraNd added to the ensemble"),
    Alternative("blend aum+el2n+knn_uniqueness", "sims:aum+el2n+knn_uniqueness",
                "redundancy: drop easy samples that have a close neighbour first"),
    *(Alternative(f"hard cut-off beta {b:g}", "default", f"CCS's cut of the hardest {b:.0%}",
                  (("beta", b),)) for b in (0.01, 0.03)),
    *(Alternative(f"class tilt {t:g}", "default", "SIMS inter-class term: harder classes keep more",
                  (("class_tilt", t),)) for t in (0.5, 1.0, 2.0)),
    Alternative("coverage at every ratio", "default", "coverage strata from r = 0 (ramp to 0.95)",
                (("coverage_start", 0.0),)),
    *(Alternative(f"d2:ensemble gamma {g:g}", "d2:ensemble",
                  "D2 (Maharana et al. 2024); gamma 1 is the paper's scale, larger = weaker messages",
                  options={"gamma_forward": g, "gamma_reverse": g}) for g in (1.0, 3.0, 6.0)),
    Alternative("label issues kept", DEFAULT_KEEPING_ISSUES,
                "thresher prune --label-issues keep: the verdict's flagged samples are left to SIMS"),
    Alternative("probes over 10 seeds", "default",
                "scores averaged over 10 probe seeds instead of 3 (Paul et al. 2021 average EL2N over 10 runs)",
                probe_changes=(("seeds", tuple(range(10))),)),
)


def _alternatives_on_split(split: int, seeds: list[int], ratios: tuple[float, ...],
                           designs: tuple[Alternative, ...] = ALTERNATIVES) -> dict:
    x_fit, x_val, y_fit, y_val = validation_split(split)
    data, scores = score_split(x_fit, y_fit)
    hits: dict = {}
    same_scores = [alt for alt in designs if not alt.probe_changes]
    evaluate((DEFAULT, *same_scores), ratios, seeds, data, scores, x_fit, y_fit, x_val, y_val, hits=hits)
    for alt in designs:
        if alt.probe_changes:
            data_alt, scores_alt = score_split(x_fit, y_fit, alt.probe_changes)
            evaluate((alt,), ratios, seeds, data_alt, scores_alt, x_fit, y_fit, x_val, y_val, hits=hits)
    return hits


def alternatives(seeds: list[int], ratios: tuple[float, ...], only: str | None = None) -> dict:
    """Every :data:`ALTERNATIVES` design (those whose label contains ``only``, when given)
    against the default, paired (same split, same seed, same validation samples), pooled over
    the ``VALIDATION_SPLITS``; the test split is never read."""
    designs = tuple(alt for alt in ALTERNATIVES if only is None or only in alt.label)
    if not designs:
        raise SystemExit(f"no design label contains {only!r}: " + "; ".join(a.label for a in ALTERNATIVES))
    per_split = _on_splits(_alternatives_on_split, seeds, ratios, designs)
    hits = {m: {r: [h for res in per_split for h in res[m][r]] for r in ratios} for m in per_split[0]}
    rows = []
    for alt in designs:
        rows.append({"design": alt.label, "method": alt.method, "why": alt.why,
                     "sampling_changes": dict(alt.sampling_changes), "options": alt.options,
                     "probe_changes": {k: list(v) if isinstance(v, tuple) else v for k, v in alt.probe_changes},
                     "vs_default": {
                         str(r): paired(hits[alt.label][r], hits[DEFAULT][r], ("alternative", "default"))
                         for r in ratios
                     }})
    means = {str(r): round(float(np.mean([100 * h.mean() for h in hits[DEFAULT][r]])), 2) for r in ratios}
    return {"splits": list(VALIDATION_SPLITS), "default_validation_mean": means, "alternatives": rows}


# -- noisy labels -------------------------------------------------------------------------------

#: Label noise injected into the training split (``bench/label_noise.py``'s settings, noise seed 0).
NOISE_SETTINGS = ("sym10", "sym30", "asym20")
#: The default with and without removing the verdict's flags first, random, and the anchors that
#: answer noise (CCS's hard cut-off) or ignore it (keep-hard).
NOISY_METHODS = (DEFAULT, DEFAULT_KEEPING_ISSUES, "random", "keep_hard:el2n", "keep_hard:aum", "ccs:aum",
                 "ccs:el2n", "ccs:tdds")  # fmt: skip


def noisy(seeds: list[int], ratios: tuple[float, ...]) -> dict:
    """The pruning protocol with label noise in the training split; the test split keeps its true
    labels. Per setting: every method's test accuracy and the share of mislabeled samples among
    what it keeps (seed 0), the verdict's flags against the injected noise, and full data."""
    from label_noise import SETTINGS, inject_noise

    x_tr, x_te, y_tr, y_te = load_split()
    out = {}
    for name in NOISE_SETTINGS:
        kind, rate, selection = SETTINGS[name]
        y_noisy = inject_noise(y_tr, kind=kind, rate=rate, selection=selection, seed=0)
        wrong = y_noisy != y_tr
        print(f"{name}: {int(wrong.sum())} of {wrong.size} training labels wrong", file=sys.stderr, flush=True)
        data, scores = score_split(x_tr, y_noisy)
        flags = scores["is_label_issue"]
        results = evaluate(NOISY_METHODS, ratios, seeds, data, scores, x_tr, y_noisy, x_te, y_te)
        mislabeled_kept = {m: {str(r): round(100 * float(wrong[kept_rows(m, r, data, scores, 0)].mean()), 1)
                               for r in ratios} for m in NOISY_METHODS}  # fmt: skip
        out[name] = {
            "n_wrong": int(wrong.sum()),
            "flagged": {"n": int(flags.sum()), "of_them_wrong": int((flags & wrong).sum())},
            "full_data": summarise([accuracy(x_tr, y_noisy, x_te, y_te, s) for s in seeds]),
            "methods": {m: {str(r): summarise(v) for r, v in per.items()} for m, per in results.items()},
            "mislabeled_share_of_kept_pct": mislabeled_kept,
        }
    return {"settings": out}


def markdown(result: dict) -> str:
    ratios = list(result["verdict"])
    lines = ["| method (fraction removed →) | " + " | ".join(ratios) + " |",
             "|---|" + "---|" * len(ratios)]
    for method, per in result["methods"].items():
        name = f"**{method}** ({result['default_recipe'][ratios[0]]})" if method == DEFAULT else method
        lines.append(f"| {name} | " + " | ".join(f"{per[r]['mean']:.2f} ± {per[r]['std']:.2f}" for r in ratios) + " |")
    lines.append(f"| full data (nothing removed) | {result['full']['mean']:.2f} ± {result['full']['std']:.2f} |"
                 + " |" * (len(ratios) - 1))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--quick", action="store_true", help="2 seeds, ratios 0.5 and 0.9")
    parser.add_argument("--tune", action="store_true", help="tune SIMS sampling on a validation split")
    parser.add_argument("--select", action="store_true",
                        help="choose the default's score on six validation splits")
    parser.add_argument("--alternatives", action="store_true",
                        help="try the designs in ALTERNATIVES against the default on the validation splits")
    parser.add_argument("--only", help="--alternatives: only the designs whose label contains this text")
    parser.add_argument("--noisy", action="store_true",
                        help="the protocol with label noise injected into the training split "
                             "(bench/results/pruning_noisy.json)")
    parser.add_argument("--grid", type=json.loads, help='--tune grid as JSON, e.g. '
                        '\'{"score": ["sim"], "coverage_full": [0.8, 0.95]}\' (default: the module grid)')
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    seeds, ratios = (args.seeds[:2], (0.5, 0.9)) if args.quick else (args.seeds, RATIOS)
    started = time.perf_counter()
    load = os.getloadavg()
    kind = ("pruning_tuning" if args.tune else "pruning_selection" if args.select
            else "pruning_alternatives" if args.alternatives else "pruning_noisy" if args.noisy else "pruning")
    if args.alternatives:
        result = alternatives(seeds, ratios, args.only)
    elif args.noisy:
        result = noisy(seeds, ratios)
    elif args.tune:
        result = tune(seeds, ratios, args.grid)
    elif args.select:
        result = select(seeds, ratios)
    else:
        result = run_benchmark(seeds, ratios)
    result = {
        "benchmark": kind,
        "protocol": __doc__,
        "seeds": seeds,
        "issue_anchors": {k: v if isinstance(v, float) else {str(r): a for r, a in v.items()}
                          for k, v in ISSUE_ANCHORS.items()},
        **result,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "load_average_at_start": [round(v, 2) for v in load],
                    "load_average_at_end": [round(v, 2) for v in os.getloadavg()]},
    }
    name = "pruning_quick.json" if args.quick else f"{kind}.json"
    out = args.out or ROOT / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.tune:
        print(json.dumps(result["trials"][:5], indent=2))
    elif args.select:
        print(json.dumps(result["ranking"][:5], indent=2))
    elif args.noisy:
        for name, setting in result["settings"].items():
            print(name, json.dumps({m: {r: v["mean"] for r, v in per.items()}
                                    for m, per in setting["methods"].items()}, indent=1))
    elif args.alternatives:
        for row in result["alternatives"]:
            print(f"{row['design']:34s}", "  ".join(
                f"{v['difference']:+.2f}±{v['standard_error']:.2f} (p={v['sign_test_p']:.2f})"
                for v in row["vs_default"].values()))
    else:
        print(markdown(result))
        print(json.dumps(result["verdict"], indent=2))
    return result


if __name__ == "__main__":
    main()
