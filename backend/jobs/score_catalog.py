"""What every per-sample number of a score run means, in one line, and which paper it follows.

The app's sample view reads this (it may not import ``backend.scoring``): the pruning scores'
texts come from their registry specs, the label-noise and neural-collapse columns from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreMeaning:
    name: str
    meaning: str
    paper: str


_OTHER = {
    "label_issue_score": ("how likely the given label is wrong, in [0, 1] (higher = more suspicious); the "
                          "verdict of the probes' posterior and the neighbours' labels",
                          "Northcutt et al. 2021; Zhu et al. 2022"),
    "confident_learning_score": ("confident learning's normalised margin of the given label (out-of-fold "
                                 "probabilities; higher = more suspicious)", "Northcutt et al. 2021"),
    "knn_vote_score": ("share of the 10 nearest neighbours whose label differs (higher = more suspicious)",
                       "Zhu et al. 2022 (SimiFeat)"),
    "aum_score": ("area under the margin against threshold samples (higher = more suspicious)",
                  "Pleiss et al. 2020"),
    "suggested_probability": ("the verdict's posterior probability of the suggested label (probes and "
                              "neighbours combined)", "Northcutt et al. 2021; Zhu et al. 2022"),
    "is_exact_duplicate": ("1 = another sample has the same file content (content hash)", "-"),
    "duplicate_group": ("the exact-copy group: a number in the run, exact-<smallest id> in the scores export and "
                        "on the Duplicates page (empty when alone)", "-"),
    "is_near_duplicate": ("1 = embedding cosine to another sample above the data-chosen threshold, or the two "
                          "are each other's nearest with a gap of over 3x to the next",
                          "Abbas et al. 2023 (SemDeDup); FiftyOne Brain near duplicates; Lowe 2004 ratio test"),
    "near_duplicate_group": ("the near-duplicate group: a number in the run, near-<smallest id> in the scores "
                             "export and on the Duplicates page (empty when alone)", "-"),
    "is_split_leak": ("1 = a val/test sample with an exact or near duplicate in train", "-"),
    "outlier_score": ("Mahalanobis distance to the nearest class mean, shared covariance, fitted robustly "
                      "(high = outlier)",
                      "Lee et al. 2018; Rousseeuw & Van Driessen 1999, Boudt et al. 2020 (reweighted regularized MCD)"),
    "is_outlier": ("1 = outlier_score above a robust z of 3.5", "Lee et al. 2018; Iglewicz & Hoaglin 1993"),
    "knn_outlier_score": ("mean cosine distance to the nearest samples (high = isolated)",
                          "cleanlab Datalab outlier issue"),
    "is_knn_outlier": ("1 = knn_outlier_score above a robust z of 3.5", "Iglewicz & Hoaglin 1993"),
    "dark_score": ("how dark the image is (from its bright percentile)", "cleanlab image issues"),
    "bright_score": ("how bright the image is (from its dark percentile)", "cleanlab image issues"),
    "blurry_score": ("blur from the variance of the Laplacian, against images of its kind (high = blurrier)",
                     "Pech-Pacheco et al. 2000"),
    "low_information_score": ("low entropy of the grey histogram (high = less information)", "-"),
    "odd_size_score": ("robust z of log area and log aspect ratio", "-"),
    "grayscale_score": ("1 = the colour channels are equal", "-"),
    "nc_own_distance": ("distance to the own class mean on the headline features", "Papyan et al. 2020"),
    "nc_other_distance": ("distance to the nearest other class mean", "Papyan et al. 2020"),
    "nc_distance_ratio": ("own over nearest-other class-mean distance (> 1 = nearer another class)",
                          "Papyan et al. 2020"),
}


def score_meanings() -> dict[str, ScoreMeaning]:
    """{column name: its meaning and paper} for every score a score run can store."""
    from backend.scoring.pruning.registry import SCORES

    out = {name: ScoreMeaning(name, spec.description, spec.paper or "-") for name, spec in SCORES.items()}
    out.update({name: ScoreMeaning(name, meaning, paper) for name, (meaning, paper) in _OTHER.items()})
    out.update({name: ScoreMeaning(name, meaning, paper) for name, (meaning, paper) in _quality_flags().items()})
    return out


def _quality_flags() -> dict[str, tuple[str, str]]:
    """The image-quality flags, with the thresholds the health checks use."""
    from backend.scoring import health

    z = f"a robust z of {health.ROBUST_Z:g}"
    return {
        "is_dark": (f"1 = even the brightest 1 % of the image is darker than luminance {health.DARK_P99:g}",
                    "cleanlab image issues"),
        "is_bright": (f"1 = even the darkest 5 % of the image is lighter than luminance {health.BRIGHT_P05:g}",
                      "cleanlab image issues"),
        "is_blurry": (f"1 = blurry_score above {z}", "Pech-Pacheco et al. 2000; Iglewicz & Hoaglin 1993"),
        "is_low_information": (f"1 = the grey histogram holds under {health.LOW_INFORMATION_BITS:g} bit of entropy",
                               "cleanlab image issues"),
        "is_odd_size": (f"1 = odd_size_score above {z}", "cleanlab image issues"),
        "is_grayscale": ("1 = the colour channels are equal, in a dataset where most images are in colour",
                         "cleanlab image issues"),
    }
