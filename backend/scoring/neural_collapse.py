"""Neural-collapse metrics of features (and a linear classifier) per class.

Papyan, Han & Donoho 2020, "Prevalence of neural collapse during the terminal phase of deep
learning training" (PNAS) define four properties of last-layer features h_i, class means mu_c,
the global mean mu_G and classifier rows w_c; each metric below is 0 under perfect collapse and
grows as the geometry departs from it (higher = less collapsed):

* NC1 within-class variability collapse: ``nc1 = Tr(Sigma_W Sigma_B^+) / C``.
* NC2 simplex ETF: ``equinorm`` (std/mean of ||mu_c - mu_G||), ``equiangularity`` (std of the
  pairwise cosines of the centred means), ``max_angle`` (mean |cos + 1/(C-1)|) and
  ``etf_distance``; the same for the classifier rows (``*_w``).
* NC3 self-duality: ``nc3 = || W/||W||_F - M/||M||_F ||_F^2`` with M the centred means (rows).
* NC4 nearest-class-mean: ``nc4`` = fraction where argmax(W h + b) differs from the nearest mean.

With imbalanced classes, Dang et al. 2023 ("Neural collapse in deep linear networks: from
balanced to imbalanced data", ICML) show that the bias-free limit is not a simplex ETF but a
*general orthogonal frame*: the (uncentred) class means and the classifier rows become mutually
orthogonal, with lengths that depend on the class sizes; Dang et al. 2024 (ICML) find the same
for cross-entropy with ReLU features. ``of_distance`` measures the angle part of that geometry
(lengths are free), reported beside ``etf_distance`` together with ``imbalance_ratio``.

Conventions: all arithmetic in float64. mu_G is the mean over all samples (so imbalanced classes
weigh by size, as in Papyan et al.). Classes absent from ``labels`` are left out of every metric
(their per-class entries are NaN and they are listed in ``missing_classes``); fewer than two
present classes raise ValueError. A class with one sample has zero within-class spread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

log = logging.getLogger(__name__)

CHUNK_ROWS = 65_536  # samples per block in the streaming passes (keeps memory O(chunk * D))
SCALAR_FIELDS = (
    "nc1", "equinorm", "equiangularity", "max_angle", "etf_distance", "of_distance",
    "equinorm_w", "equiangularity_w", "max_angle_w", "etf_distance_w", "of_distance_w",
    "nc3", "nc4", "imbalance_ratio",
)  # fmt: skip


@dataclass
class CollapseMetrics:
    """Scalar neural-collapse metrics (NaN where not defined, e.g. ``*_w``/``nc3``/``nc4``
    without classifier weights) plus per-class arrays of length ``n_classes`` (NaN for missing
    classes): ``count``, ``within_trace`` (mean ||h_i - mu_c||^2), ``between_norm``
    (||mu_c - mu_G||), ``within_between_ratio`` (within_trace / between_norm^2), ``nc1``
    (Tr(Sigma_W,c Sigma_B^+)/C; the count-weighted mean over classes is the global ``nc1``),
    ``mean_cos_to_others``, ``max_cos_to_others`` (centred means), and with weights ``w_norm``
    and ``w_mean_cos`` (cosine between w_c and mu_c - mu_G; 1 = self-dual)."""

    nc1: float
    equinorm: float
    equiangularity: float
    max_angle: float
    etf_distance: float
    of_distance: float
    equinorm_w: float
    equiangularity_w: float
    max_angle_w: float
    etf_distance_w: float
    of_distance_w: float
    nc3: float
    nc4: float
    imbalance_ratio: float
    n_samples: int
    n_classes: int
    missing_classes: list[int] = field(default_factory=list)
    per_class: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: floats (None for NaN), ints, and per-class lists (None for NaN)."""

        def clean(value: float) -> float | None:
            return None if not np.isfinite(value) else float(value)

        out: dict[str, object] = {name: clean(getattr(self, name)) for name in SCALAR_FIELDS}
        out.update(n_samples=self.n_samples, n_classes=self.n_classes)
        out["missing_classes"] = list(self.missing_classes)
        out["per_class"] = {k: [clean(v) for v in arr] for k, arr in self.per_class.items()}
        return out


@dataclass
class SampleDistances:
    """Per-sample distances (N,) float64 to the class means; see :func:`sample_mean_distances`."""

    own: np.ndarray
    nearest_other: np.ndarray
    nearest_other_class: np.ndarray
    ratio: np.ndarray


def cosine_gram(vectors: np.ndarray) -> np.ndarray:
    """(K, K) cosines between the rows of ``vectors`` (K, D); NaN rows for zero vectors."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = v / norms[:, None]
    return unit @ unit.T


def _frame_distance(vectors: np.ndarray, target: np.ndarray) -> float:
    gram = cosine_gram(vectors)
    return float(np.linalg.norm(gram / np.linalg.norm(gram) - target / np.linalg.norm(target)))


def etf_distance(vectors: np.ndarray) -> float:
    """Distance of K vectors (K, D) to a simplex equiangular tight frame, in [0, 2]; 0 = ETF.

    Normalisation: each vector is scaled to unit length first, so this measures the angles only
    (length differences are ``equinorm``'s job). With G the (K, K) cosine Gram and
    T = I - 11^T/K (the Gram of a simplex ETF up to scale), the distance is
    ``|| G/||G||_F - T/||T||_F ||_F``. Pass *centred* class means or classifier rows.
    Papyan et al. 2020 (NC2); the Frobenius-normalised Gram form follows Zhu et al. 2021.
    """
    k = np.asarray(vectors).shape[0]
    return _frame_distance(vectors, np.eye(k) - np.full((k, k), 1.0 / k))


def orthogonal_frame_distance(vectors: np.ndarray) -> float:
    """Distance of K vectors (K, D) to an orthogonal frame, in [0, 2]; 0 = mutually orthogonal.

    ``|| G/||G||_F - I/sqrt(K) ||_F`` with G the cosine Gram of the rows, so the lengths are
    free: Dang et al. 2023 (ICML) show that with imbalanced classes (bias-free) the class means
    and classifier rows converge to orthogonal vectors whose lengths depend on the class sizes
    (their "general orthogonal frame"). Pass *uncentred* class means / classifier rows: centring
    K orthogonal equal-length vectors yields exactly a simplex ETF, so centred vectors can never
    be an orthogonal frame. Dang et al. compare against a diagonal target with model-dependent
    lengths; we drop the lengths, which needs no training hyper-parameters.
    """
    return _frame_distance(vectors, np.eye(np.asarray(vectors).shape[0]))


def _angle_stats(vectors: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """equinorm, equiangularity, max_angle and the cosine Gram of the rows (K >= 2)."""
    k = vectors.shape[0]
    norms = np.linalg.norm(vectors, axis=1)
    equinorm = float(norms.std() / norms.mean()) if norms.mean() > 0 else float("nan")
    gram = cosine_gram(vectors)
    pairs = gram[np.triu_indices(k, 1)]
    return equinorm, float(pairs.std()), float(np.abs(pairs + 1.0 / (k - 1)).mean()), gram


def _validate(
    features: np.ndarray, labels: np.ndarray, n_classes: int | None, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int]:
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    y = np.asarray(labels)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be ({x.shape[0]},) integers, got {y.shape} {y.dtype}")
    if n_classes is None:
        n_classes = weights.shape[0] if weights is not None else int(y.max()) + 1
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    return x, y.astype(np.int64), int(n_classes)


def class_means(
    features: np.ndarray, labels: np.ndarray, *, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class means (C, D) float64 (NaN rows for empty classes) and counts (C,) int64.

    Summed in blocks of ``CHUNK_ROWS`` rows (a sparse one-hot product per block), so only one
    block is ever converted to float64: a single product over all rows made a float64 copy of
    the whole matrix (4 GB at 1M x 512). Up to ``CHUNK_ROWS`` rows this is that single product.
    """
    x = np.asarray(features)
    y = np.asarray(labels)
    counts = np.bincount(y, minlength=n_classes)
    sums = np.zeros((n_classes, x.shape[1]))
    for start in range(0, y.size, CHUNK_ROWS):
        block_y = y[start : start + CHUNK_ROWS]
        one_hot = sparse.csr_matrix(
            (np.ones(block_y.size), (block_y, np.arange(block_y.size))),
            shape=(n_classes, block_y.size),
        )
        sums += np.asarray(one_hot @ x[start : start + CHUNK_ROWS].astype(np.float64, copy=False))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None], counts


def collapse_metrics(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    biases: np.ndarray | None = None,
    n_classes: int | None = None,
    center_weights: bool = True,
    rcond: float = 1e-10,
) -> CollapseMetrics:
    """Neural-collapse metrics of ``features`` (N, D) with ``labels`` (N,) in 0..C-1.

    ``weights`` (C, D) / ``biases`` (C,) are the classifier's last layer (optional: without
    them the ``*_w``, ``nc3`` and ``nc4`` fields are NaN). ``n_classes`` defaults to the rows of
    ``weights``, else max(label)+1. ``center_weights`` subtracts the mean row of W before the
    ETF/equinorm/NC3 metrics (softmax is invariant to that shift); ``of_distance_w`` and NC4
    always use W as given. ``rcond``: eigenvalues of Sigma_B below ``rcond * max`` are dropped
    in the pseudo-inverse. All metrics are invariant to scaling the features (and W) by a
    constant; every one but ``of_distance`` to translating the features. See the module
    docstring for the papers and ranges; higher = less collapsed throughout.

    Algorithm
    ---------
    1. Class means via a sparse one-hot product; mu_G = mean of all samples; M = rows
       mu_c - mu_G of the present classes (C'  of them).
    2. Sigma_B = M^T M / C' = V diag(s^2 / C') V^T from the SVD of M (no D x D matrix); keep
       eigenvalues above ``rcond`` times the largest.
    3. One streaming pass over samples in chunks: r_i = h_i - mu_{y_i};
       Tr(Sigma_W Sigma_B^+) = (1/N) sum_i sum_k (v_k . r_i)^2 / lambda_k, accumulated per class;
       and the nearest present class mean (for NC4).
    4. Angle / norm statistics on M and W; NC3 and NC4 when W is given.
    """
    x, y, n_classes = _validate(features, labels, n_classes, weights)
    means, counts = class_means(x, y, n_classes=n_classes)
    present = np.flatnonzero(counts > 0)
    missing = [int(c) for c in np.flatnonzero(counts == 0)]
    if present.size < 2:
        raise ValueError(
            f"neural-collapse metrics need >= 2 classes with samples, got {present.size}"
        )
    if missing:
        log.info("classes %s have no samples; left out of the collapse metrics", missing)
    n, k = x.shape[0], present.size
    global_mean = counts[present] @ means[present] / n
    centred = means[present] - global_mean
    _, sing, vt = np.linalg.svd(centred, full_matrices=False)
    eig = sing**2 / k
    keep = eig > rcond * eig.max() if eig.max() > 0 else np.zeros_like(eig, bool)
    basis, inv_eig = vt[keep], 1.0 / eig[keep]

    within_sq = np.zeros(n_classes)
    nc1_sum = np.zeros(n_classes)
    nearest_mean = np.empty(n, np.int64)
    sq_means = (means[present] ** 2).sum(axis=1)
    for start in range(0, n, CHUNK_ROWS):
        chunk = x[start : start + CHUNK_ROWS].astype(np.float64)
        chunk_y = y[start : start + CHUNK_ROWS]
        resid = chunk - means[chunk_y]
        within_sq += np.bincount(chunk_y, (resid**2).sum(axis=1), minlength=n_classes)
        nc1_sum += np.bincount(chunk_y, ((resid @ basis.T) ** 2) @ inv_eig, minlength=n_classes)
        dist = sq_means[None, :] - 2.0 * chunk @ means[present].T
        nearest_mean[start : start + chunk.shape[0]] = present[dist.argmin(axis=1)]
    nc1 = float(nc1_sum.sum() / n / k) if keep.any() else float("nan")

    equinorm, equiangularity, max_angle, gram = _angle_stats(centred)
    off = gram - np.diag(np.diag(gram))
    per_class = {name: np.full(n_classes, np.nan) for name in ("count", "within_trace",
                 "between_norm", "within_between_ratio", "nc1", "mean_cos_to_others",
                 "max_cos_to_others", "w_norm", "w_mean_cos")}  # fmt: skip
    between = np.linalg.norm(centred, axis=1)
    per_class["count"][present] = counts[present]
    per_class["within_trace"][present] = within_sq[present] / counts[present]
    per_class["between_norm"][present] = between
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class["within_between_ratio"][present] = (
            within_sq[present] / counts[present] / between**2
        )
    per_class["nc1"][present] = nc1_sum[present] / counts[present] / k if keep.any() else np.nan
    per_class["mean_cos_to_others"][present] = off.sum(axis=1) / (k - 1)
    per_class["max_cos_to_others"][present] = np.where(np.eye(k, dtype=bool), -np.inf, gram).max(1)

    nan = float("nan")
    w_stats = dict(equinorm_w=nan, equiangularity_w=nan, max_angle_w=nan, etf_distance_w=nan,
                   of_distance_w=nan, nc3=nan, nc4=nan)  # fmt: skip
    if weights is not None:
        w_all = np.asarray(weights, dtype=np.float64)
        if w_all.shape != (n_classes, x.shape[1]):
            raise ValueError(f"weights must be ({n_classes}, {x.shape[1]}), got {w_all.shape}")
        b = np.zeros(n_classes) if biases is None else np.asarray(biases, np.float64).reshape(-1)
        if b.shape != (n_classes,):
            raise ValueError(f"biases must be ({n_classes},), got {b.shape}")
        w_geo = w_all - w_all.mean(axis=0) if center_weights else w_all
        w = w_geo[present]
        eq_w, ang_w, max_w, _ = _angle_stats(w)
        self_dual = w / np.linalg.norm(w) - centred / np.linalg.norm(centred)
        predicted = np.empty(n, np.int64)
        for start in range(0, n, CHUNK_ROWS):
            chunk = x[start : start + CHUNK_ROWS].astype(np.float64)
            predicted[start : start + chunk.shape[0]] = (chunk @ w_all.T + b).argmax(axis=1)
        w_stats = dict(
            equinorm_w=eq_w, equiangularity_w=ang_w, max_angle_w=max_w,
            etf_distance_w=etf_distance(w), of_distance_w=orthogonal_frame_distance(w_all[present]),
            nc3=float((self_dual**2).sum()), nc4=float((predicted != nearest_mean).mean()),
        )  # fmt: skip
        per_class["w_norm"][present] = np.linalg.norm(w, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class["w_mean_cos"][present] = (w * centred).sum(1) / (
                np.linalg.norm(w, axis=1) * between
            )
    return CollapseMetrics(
        nc1=nc1,
        equinorm=equinorm,
        equiangularity=equiangularity,
        max_angle=max_angle,
        etf_distance=etf_distance(centred),
        of_distance=orthogonal_frame_distance(means[present]),
        imbalance_ratio=float(counts[present].max() / counts[present].min()),
        n_samples=n,
        n_classes=n_classes,
        missing_classes=missing,
        per_class=per_class,
        **w_stats,
    )


def sample_mean_distances(
    features: np.ndarray, labels: np.ndarray, *, n_classes: int | None = None
) -> SampleDistances:
    """Each sample's Euclidean distance to its own class mean and to the nearest other one.

    Returns :class:`SampleDistances` with ``own`` (N,), ``nearest_other`` (N,),
    ``nearest_other_class`` (N,) int64 and ``ratio = own / nearest_other`` (N,) in [0, inf):
    higher = worse (less collapsed onto its class; > 1 means a nearest-class-mean classifier
    would pick another class, a hint of a wrong label or an ambiguous sample). The inverse of
    the ratio is the separability of Grosz et al. 2024 (SIMS) with means as prototypes. Means
    include the sample itself; a class with one sample has ``own`` = 0. Classes without samples
    never serve as "other". Scale-invariant (ratio) and computed in row chunks (O(N C) memory).
    """
    x, y, n_classes = _validate(features, labels, n_classes, None)
    means, counts = class_means(x, y, n_classes=n_classes)
    present = np.flatnonzero(counts > 0)
    if present.size < 2:
        raise ValueError("sample_mean_distances needs >= 2 classes with samples")
    position = np.full(n_classes, -1)
    position[present] = np.arange(present.size)
    mu = means[present]
    sq_means = (mu**2).sum(axis=1)
    n = x.shape[0]
    own = np.empty(n)
    other = np.empty(n)
    other_class = np.empty(n, np.int64)
    for start in range(0, n, CHUNK_ROWS):
        chunk = x[start : start + CHUNK_ROWS].astype(np.float64)
        rows = np.arange(chunk.shape[0])
        col = position[y[start : start + chunk.shape[0]]]
        sq = np.maximum((chunk**2).sum(1)[:, None] - 2.0 * chunk @ mu.T + sq_means[None, :], 0.0)
        # exact own distance (the expansion above loses precision for points near their mean)
        own[start : start + rows.size] = np.linalg.norm(chunk - mu[col], axis=1)
        sq[rows, col] = np.inf
        best = sq.argmin(axis=1)
        other[start : start + rows.size] = np.sqrt(sq[rows, best])
        other_class[start : start + rows.size] = present[best]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(own == 0, 0.0, own / other)
    return SampleDistances(
        own=own, nearest_other=other, nearest_other_class=other_class, ratio=ratio
    )


def collapse_curve(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    biases: np.ndarray | None = None,
    n_classes: int | None = None,
    center_weights: bool = True,
    rcond: float = 1e-10,
) -> dict[str, np.ndarray]:
    """Scalar collapse metrics per epoch: ``{name: (E,) float64}`` for every name in
    ``SCALAR_FIELDS``, from per-epoch ``features`` (E, N, H) and optional ``weights`` (E, C, H),
    ``biases`` (E, C) (e.g. a probe's ``TrainingDynamics`` or imported checkpoints). Each epoch
    is :func:`collapse_metrics` on that epoch's arrays; falling curves mean collapsing geometry.
    """
    feats = np.asarray(features)
    if feats.ndim != 3:
        raise ValueError(f"features must be (E, N, H), got shape {feats.shape}")
    n_epochs = feats.shape[0]
    for name, arr in (("weights", weights), ("biases", biases)):
        if arr is not None and np.asarray(arr).shape[0] != n_epochs:
            raise ValueError(f"{name} must have {n_epochs} epochs, got {np.asarray(arr).shape}")
    curve = {name: np.full(n_epochs, np.nan) for name in SCALAR_FIELDS}
    for epoch in range(n_epochs):
        metrics = collapse_metrics(
            feats[epoch],
            labels,
            weights=None if weights is None else weights[epoch],
            biases=None if biases is None else biases[epoch],
            n_classes=n_classes,
            center_weights=center_weights,
            rcond=rcond,
        )
        for name in SCALAR_FIELDS:
            curve[name][epoch] = getattr(metrics, name)
    return curve
