"""Label-noise detection: confident learning, kNN label voting (SimiFeat), AUM, and one verdict.

Pure detectors over arrays live in ``confident_learning``, ``knn_vote`` and ``aum``; ``verdict``
combines their signals with the flag budget of ``noise_count``; ``pipeline`` trains the probes
and runs everything end to end. ``noise_families`` draws the benchmark's seeded label noise.
"""

from backend.scoring.label_noise.aum import (
    AumResult,
    aum_from_logits,
    aum_threshold,
    aum_with_threshold_samples,
    margins_from_logits,
    threshold_sample_sets,
)
from backend.scoring.label_noise.confident_learning import (
    FILTERS,
    calibrate_confident_joint,
    compute_confident_joint,
    confident_thresholds,
    estimate_joint,
    estimate_noise_matrices,
    find_label_issues,
    normalized_margin,
    num_label_issues,
    self_confidence,
)
from backend.scoring.label_noise.knn_vote import (
    KnnVote,
    knn_rank,
    knn_vote,
    neighbor_label_distribution,
)
from backend.scoring.label_noise.noise_count import (
    IssueCount,
    consensus_count,
    counted_transition,
    estimate_issue_count,
    expected_f1_cut,
    fit_temperature,
    tempered,
    wrong_label_posterior,
)
from backend.scoring.label_noise.noise_families import (
    NoisyLabels,
    inject_family_noise,
    look_alike_pairs,
)
from backend.scoring.label_noise.verdict import (
    DETECTORS,
    CombinedFlags,
    LabelIssueVerdict,
    agreement_bitmask,
    combine_signals,
    detector_names,
)

__all__ = [
    "DETECTORS",
    "FILTERS",
    "AumResult",
    "CombinedFlags",
    "IssueCount",
    "KnnVote",
    "LabelIssueVerdict",
    "NoisyLabels",
    "agreement_bitmask",
    "aum_from_logits",
    "aum_threshold",
    "aum_with_threshold_samples",
    "calibrate_confident_joint",
    "combine_signals",
    "compute_confident_joint",
    "consensus_count",
    "confident_thresholds",
    "counted_transition",
    "detector_names",
    "estimate_issue_count",
    "estimate_joint",
    "estimate_noise_matrices",
    "expected_f1_cut",
    "find_label_issues",
    "fit_temperature",
    "inject_family_noise",
    "knn_rank",
    "knn_vote",
    "look_alike_pairs",
    "margins_from_logits",
    "neighbor_label_distribution",
    "normalized_margin",
    "num_label_issues",
    "self_confidence",
    "tempered",
    "threshold_sample_sets",
    "wrong_label_posterior",
]
