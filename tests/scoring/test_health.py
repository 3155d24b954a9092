"""Dataset-health checks on constructed cases with known answers (backend.scoring.health)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from backend.pixel_stats import read_image
from backend.scoring import health
from backend.scoring.duplicates import data_edges, near_duplicate_groups
from backend.scoring.knn import knn_search

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def test_robust_z_is_the_modified_z_score() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    z = health.robust_z(values)
    np.testing.assert_allclose(z[:5], (values[:5] - 3.0) / (1.4826 * 1.0))
    assert np.isnan(z[5])
    # MAD 0: the mean absolute deviation (0.25) x 1.2533 is the scale; all equal: all 0
    assert health.robust_z(np.array([5.0, 5.0, 5.0, 6.0]))[3] == pytest.approx(1 / (1.253314 * 0.25))
    assert health.robust_z(np.full(4, 2.0)).tolist() == [0, 0, 0, 0]
    assert health.robust_z(np.array([5.0, 5.0, 5.0, 6.0]), min_scale=0.5)[3] == pytest.approx(2.0)


def test_exact_groups_by_hash_and_missing_hashes_never_group() -> None:
    groups = health.exact_duplicate_groups(["a", "b", "a", None, "", None, "c", "b", "a"])
    assert groups.tolist() == [0, 1, 0, -1, -1, -1, -1, 1, 0]
    numbers = health.group_numbers(groups)
    assert numbers[[0, 1, 2, 7, 8]].tolist() == [0, 1, 0, 1, 0] and np.isnan(numbers[3])


def test_leaks_from_train_exact_and_near_and_not_within_test() -> None:
    """Digits; exact and perturbed copies of train samples planted in test are leaks with the
    right source; copies of a test sample within test and copies among train are not."""
    rng = np.random.default_rng(0)
    x = load_digits().data[:600] / 16.0
    splits = ["train"] * 400 + ["test"] * 200
    hashes = [f"h{i}" for i in range(600)]
    extra, extra_splits, extra_hashes, sources = [], [], [], []
    for k, (src, near, split) in enumerate([(3, False, "test"), (4, True, "val"), (5, True, "test"),
                                            (450, True, "test"), (451, False, "test"), (6, True, "train")]):
        extra.append(np.clip(x[src] + (rng.normal(0, 0.02, 64) if near else 0), 0, 1))
        extra_splits.append(split)
        extra_hashes.append(f"n{k}" if near else hashes[src])
        sources.append(src)
    vectors = np.vstack([x, extra])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    idx, sims = knn_search(unit, 10)
    edges, _ = data_edges(idx, sims)
    near = near_duplicate_groups(idx, sims, edges=edges)
    exact = health.exact_duplicate_groups(hashes + extra_hashes)
    leak, source = health.split_leaks(splits + extra_splits, exact, near, idx, edges)
    assert np.flatnonzero(leak).tolist() == [600, 601, 602]
    assert source[600:603].tolist() == [3, 4, 5] and (source[~leak] == -1).all()
    assert (near[[600, 601, 602, 603, 605]] >= 0).all()  # every perturbed copy is a near duplicate
    # without a split nothing leaks
    assert not health.split_leaks([""] * 300 + [None] * 306, exact, near, idx, edges)[0].any()


def digits_with_noise(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    digits = load_digits()
    x, y = digits.data[:800] / 16.0, digits.target[:800]
    noise = rng.random((15, 64))
    return np.vstack([x, noise]), np.concatenate([y, rng.integers(0, 10, 15)]), np.arange(800, 815)


def test_noise_images_among_digits_are_outliers() -> None:
    x, y, planted = digits_with_noise(0)
    maha = health.mahalanobis_outlier_score(x, y, n_classes=10)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    knn = health.knn_outlier_score(knn_search(unit, 10)[1])
    for score in (maha, knn):
        flagged = np.flatnonzero(health.flag_high(score))
        assert set(planted) <= set(flagged.tolist())
        assert len(set(flagged.tolist()) - set(planted.tolist())) <= 3  # precision >= 0.8


def test_a_mislabeled_digit_is_not_an_outlier_but_far_from_its_own_class() -> None:
    """The minimum over classes: a clean digit given a wrong label keeps a typical score."""
    digits = load_digits()
    x, y = digits.data[:800] / 16.0, digits.target[:800].copy()
    before = health.mahalanobis_outlier_score(x, y, n_classes=10)
    y[0] = (y[0] + 5) % 10
    after = health.mahalanobis_outlier_score(x, y, n_classes=10)
    assert not health.flag_high(after)[0]
    assert after[0] == pytest.approx(before[0], rel=0.2)


def test_mahalanobis_matches_a_slow_reference_with_identity_like_covariance() -> None:
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(0, 1, (200, 3)), rng.normal(5, 1, (200, 3))])
    y = np.repeat([0, 1], 200)
    from sklearn.covariance import ledoit_wolf

    means = np.array([x[y == k].mean(0) for k in range(2)])
    precision = np.linalg.inv(ledoit_wolf(x - means[y], assume_centered=True)[0])
    slow = [min(float((v - m) @ precision @ (v - m)) for m in means) for v in x]
    np.testing.assert_allclose(health.mahalanobis_outlier_score(x, y, n_classes=2, block=37, robust=False), slow, rtol=1e-8)


def inverted_clump(n_inverted: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first 800 digits' pixels plus ``n_inverted`` colour-inverted digits keeping their labels."""
    rng = np.random.default_rng(seed)
    digits = load_digits()
    x, y = digits.data[:800] / 16.0, digits.target[:800]
    pick = rng.choice(len(digits.data), n_inverted, replace=False)
    inverted = 1.0 - digits.data[pick] / 16.0
    return np.vstack([x, inverted]), np.concatenate([y, digits.target[pick]]), np.arange(800, 800 + n_inverted)


def test_the_robust_fit_finds_a_clump_that_masks_itself_in_the_plain_fit() -> None:
    """40 inverted digits (5 %) pull the class means and inflate the covariance along their own
    direction: the plain fit flags almost none of them, the reweighted MCD fit flags all, and
    ranks them first."""
    x, y, planted = inverted_clump(40)
    plain = health.mahalanobis_outlier_score(x, y, n_classes=10, robust=False)
    robust = health.mahalanobis_outlier_score(x, y, n_classes=10)
    assert health.flag_high(plain)[planted].sum() <= 10
    flagged = health.flag_high(robust)
    assert flagged[planted].all()
    assert flagged.sum() - 40 <= 10  # no more false alarms than the plain fit raises on digits
    assert set(np.argsort(-robust)[:40].tolist()) == set(planted.tolist())


def test_the_robust_fit_agrees_with_the_plain_fit_on_clean_gaussian_classes() -> None:
    """No outliers: the reweighted fit leaves out only the far tail, so the scores stay close."""
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 4, (4, 6))
    y = np.repeat(np.arange(4), 300)
    x = centres[y] + rng.normal(0, 1, (1200, 6))
    plain = health.mahalanobis_outlier_score(x, y, n_classes=4, robust=False)
    robust = health.mahalanobis_outlier_score(x, y, n_classes=4)
    assert np.corrcoef(plain, robust)[0, 1] > 0.99
    assert np.median(robust / plain) == pytest.approx(1.0, abs=0.1)
    assert health.flag_high(robust).sum() <= 3


def test_the_robust_fit_on_a_subsample_still_finds_the_clump(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above MCD_SUBSAMPLE rows the concentration steps run on a random subset; the reweighted
    fit and the scores still cover every row (here a subset of 300 of 830)."""
    monkeypatch.setattr(health, "MCD_SUBSAMPLE", 300)
    x, y, planted = inverted_clump(30, seed=1)
    robust = health.mahalanobis_outlier_score(x, y, n_classes=10, block=97)
    assert robust.shape == (830,)
    assert health.flag_high(robust)[planted].all()


def test_a_rare_class_keeps_its_own_mean_when_the_steps_run_on_a_subsample(monkeypatch: pytest.MonkeyPatch) -> None:
    """A class of 8 rows among 2,000, far from the others: a plain random subset of 100 rows
    usually misses it; its rows then score against the other classes, are left out of the refit
    and are called outliers (all 8, at seeds 1 and 2). The subsample keeps every row of a class
    under MCD_CLASS_FLOOR."""
    monkeypatch.setattr(health, "MCD_SUBSAMPLE", 100)
    rng = np.random.default_rng(5)
    y = np.r_[np.repeat([0, 1], 996), np.full(8, 2)]
    x = np.array([[0.0] * 4, [6.0] + [0.0] * 3, [0.0, 0.0, 0.0, 40.0]])[y] + rng.normal(0, 1, (2000, 4))
    for seed in (1, 2):  # seeds whose plain random subset of 100 holds no row of class 2
        robust = health.mahalanobis_outlier_score(x, y, n_classes=3, seed=seed)
        assert not health.flag_high(robust)[y == 2].any()
    rows = health._class_floor_subsample(y, 100, 50, seed=0)
    assert (y[rows] == 2).sum() == 8 and 60 < rows.size < 220


def test_the_condition_cap_keeps_the_robust_fit_calm_in_a_wide_embedding_of_low_rank(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """900 clean digits blown up 2 x 2 (256 dims of rank 64, as an upsampling embedder makes):
    without the cap the central half's covariance has next to no variance where the other half
    spreads, and dozens of ordinary digits are called outliers (36 when this was written)."""
    digits = load_digits()
    x = np.stack([np.kron(image / 16.0, np.ones((2, 2))).reshape(-1) for image in digits.images[:900]])
    y = digits.target[:900]
    assert health.flag_high(health.mahalanobis_outlier_score(x, y, n_classes=10)).sum() <= 5
    monkeypatch.setattr(health, "CONDITION_CAP", None)
    assert health.flag_high(health.mahalanobis_outlier_score(x, y, n_classes=10)).sum() >= 20


def test_the_condition_cap_shrinks_just_enough() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (300, 5)) * np.array([30.0, 3.0, 1.0, 1.0, 0.1])
    y = np.zeros(300, dtype=np.int64)
    means = x.mean(0, keepdims=True)
    plain = health._shrunk_within_class_covariance(x, y, means, block=64)
    capped = health._shrunk_within_class_covariance(x, y, means, block=64, condition_cap=50.0)
    assert np.linalg.cond(plain) > 400  # Ledoit & Wolf shrink 300 rows of 5 dims only a little
    assert np.linalg.cond(capped) == pytest.approx(50.0, rel=1e-6)
    assert np.trace(capped) == pytest.approx(np.trace(plain))  # shrinking towards mu I keeps the trace
    loose = health._shrunk_within_class_covariance(x, y, means, block=64, condition_cap=1e6)
    np.testing.assert_allclose(loose, plain)  # already under the cap: unchanged


def test_most_central_keeps_the_nearest_share_of_each_class() -> None:
    distance = np.array([5.0, 1.0, 3.0, 0.5, 9.0, 2.0, 7.0])
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    kept = health._most_central(distance, labels, 0.5)
    # class 0: ceil(1.5) = 2 of (5, 1, 3) -> 1 and 3; class 1: 2 of (0.5, 9, 2); class 2: its one row
    assert kept.tolist() == [False, True, True, True, False, True, True]


def test_blockwise_shrunk_covariance_is_sklearns_ledoit_wolf() -> None:
    """More dimensions than samples (where the shrinkage matters), float32 input, odd blocks."""
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(2)
    x = (rng.normal(size=(50, 80)) * rng.uniform(0.1, 3, 80) + 5).astype(np.float32)
    y = rng.integers(0, 4, 50)
    means = np.array([x[y == k].astype(np.float64).mean(0) for k in range(4)])
    expected = ledoit_wolf(x.astype(np.float64) - means[y], assume_centered=True)[0]
    np.testing.assert_allclose(health._shrunk_within_class_covariance(x, y, means, block=7), expected, atol=1e-6)


def colour_digits(n: int = 120, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    grey = load_digits().images[:n] / 16.0
    return [np.kron(g, np.ones((4, 4)))[:, :, None] * rng.uniform(0.5, 1.0, 3) for g in grey]


def test_quality_flags_on_planted_images() -> None:
    from scipy.ndimage import gaussian_filter

    images = colour_digits()
    planted = {"dark": 0, "bright": 1, "blurry": 2, "low_information": 3, "grayscale": 4, "odd_size": 5}
    images[0] = images[0] * 0.25
    images[1] = 0.65 + 0.35 * images[1]
    images[2] = gaussian_filter(images[2], sigma=(1.5, 1.5, 0))
    images[3] = np.ones_like(images[3]) * np.array([0.5, 0.4, 0.45])
    images[4] = np.repeat((images[4] @ health.LUMA)[:, :, None], 3, axis=2)
    images[5] = np.repeat(images[5], 3, axis=1)
    flags = health.image_quality(np.vstack([health.pixel_stats(im) for im in images]))
    for check, i in planted.items():
        flagged = set(np.flatnonzero(flags[f"is_{check}"] == 1).tolist())
        expected = {i, 3} if check == "blurry" else {i}  # a constant image has no edges: blurry too
        assert flagged == expected, (check, flagged)
        score = np.delete(flags[f"{check}_score"], 3) if check == "blurry" else flags[f"{check}_score"]
        assert flags[f"{check}_score"][i] == np.nanmax(score), check  # the planted image is the worst on its score


def test_content_groups_take_the_neighbours_label_only_with_a_quorum() -> None:
    labels = np.array([1, 2, 1, 7] + [0] * 10 + [1] * 5 + [3] * 5)
    zeros, ones, threes = np.arange(4, 14), np.arange(14, 19), np.arange(19, 24)
    idx = np.full((len(labels), 10), -1)
    idx[0] = zeros  # ten neighbours say 0: a wrong label corrected
    idx[1] = np.r_[zeros[:4], ones[:3], threes[:3]]  # 4 / 3 / 3: no quorum, the own label stays
    idx[2] = np.r_[zeros[:5], ones]  # 5 / 5: a quorum each, the own label breaks the tie
    idx[3] = -1  # no neighbour: the own label
    groups = health.content_groups(labels, idx)
    assert groups[:4].tolist() == [0, 2, 1, 7]
    assert groups[0] == health.content_groups(labels, idx, quorum=1.0)[0]
    assert health.content_groups(labels, idx, quorum=0.0)[1] == 0  # without a quorum the plurality wins


def test_the_blur_reference_is_halfway_between_the_neighbours_and_the_group() -> None:
    values = np.r_[np.zeros(30), np.full(30, 4.0), np.full(5, 10.0), np.nan]
    groups = np.r_[np.zeros(30), np.ones(30), np.full(5, 2), 0].astype(int)
    idx = np.full((len(values), 3), -1)
    idx[0] = [30, 31, 32]  # neighbours in the other group: median 4
    idx[1] = [65, -1, -1]  # its only neighbour unknown: the group median alone
    reference = health.blur_reference(values, groups=groups, neighbor_indices=idx)
    assert reference[0] == pytest.approx(0.5 * (4.0 + 0.0)) and reference[1] == 0.0 and reference[31] == 4.0
    overall = np.median(values[:65])
    assert reference[60] == overall  # a group of 5 is too small: the median of all images
    assert np.isnan(health.blur_reference(np.full(3, np.nan))).all()
    assert (health.blur_reference(values) == overall).sum() == 66  # no groups, no neighbours


def demo_digits_blur(blurred: int, sigma: float, seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    """The blur flags on the demo's 8 x 8 digits (``blurred`` of them Gaussian-blurred) under the
    dataset reference and the shipped one, the truth and the labels."""
    from scipy.ndimage import gaussian_filter

    from bench.health import demo_embedding

    digits = load_digits()
    images = [np.round(g / 16.0 * 255.0) / 255.0 for g in digits.images]
    truth = np.zeros(len(images), bool)
    truth[np.random.default_rng(seed).choice(len(images), blurred, replace=False)] = True
    images = [gaussian_filter(img, sigma) if t else img for img, t in zip(images, truth, strict=True)]
    stats = np.vstack([health.pixel_stats(img) for img in images])
    idx, _ = knn_search(demo_embedding(images), 10, seed=0)
    flags = {"dataset": health.image_quality(stats)["is_blurry"] == 1,
             "kind": health.image_quality(stats, groups=health.content_groups(digits.target, idx),
                                          neighbor_indices=idx)["is_blurry"] == 1}
    raw = -np.log(stats[:, health.STAT_NAMES.index("sharpness")])
    flags["neighbours"] = health.robust_z(raw - np.median(raw[idx], axis=1)) > health.ROBUST_Z
    return flags, truth, digits.target


def test_the_clean_digits_1s_are_not_blurry_against_images_of_their_kind() -> None:
    flags, _, labels = demo_digits_blur(0, 0.0)
    assert flags["dataset"].sum() >= 20 and (labels[flags["dataset"]] == 1).all()  # smooth bars, not blur
    assert flags["kind"].sum() <= 3
    flags, truth, _ = demo_digits_blur(30, 1.0)
    assert flags["kind"][truth].all() and (flags["kind"] & ~truth).sum() <= 3


def test_a_blurred_batch_does_not_hide_in_its_own_neighbourhood() -> None:
    flags, truth, _ = demo_digits_blur(150, 1.0)  # blurred digits are each other's neighbours
    assert flags["neighbours"][truth].mean() < 0.5
    assert flags["kind"][truth].mean() >= 0.95 and (flags["kind"] & ~truth).sum() <= 3


def test_quality_nan_without_an_image_and_grey_images_are_grayscale(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    colour = [health.pixel_stats(rng.random((10, 10, 3))) for _ in range(2)]
    stats = np.vstack([health.pixel_stats(np.full((10, 10), 0.5)), np.full(len(health.STAT_NAMES), np.nan),
                       *colour])
    flags = health.image_quality(stats)
    assert flags["is_grayscale"][0] == 1 and flags["is_low_information"][0] == 1
    assert flags["is_grayscale"][2:].tolist() == [0, 0]
    assert all(np.isnan(v[1]) for v in flags.values())
    # a grayscale dataset (the digits): no image is odd for being grey
    all_grey = health.image_quality(np.vstack([health.pixel_stats(rng.random((10, 10))) for _ in range(4)]))
    assert not all_grey["is_grayscale"].any() and (all_grey["grayscale_score"] == 1).all()
    Image.fromarray(np.full((40, 30), 200, np.uint8), "L").save(tmp_path / "grey.png")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 30, 3)) * 255).astype(np.uint8), "RGB").save(tmp_path / "colour.png")
    grey, colour = read_image(str(tmp_path / "grey.png")), read_image(str(tmp_path / "colour.png"))
    assert grey[:2].tolist() == [30, 40] and grey[health.STAT_NAMES.index("colour_spread")] == 0
    assert colour[health.STAT_NAMES.index("colour_spread")] > 0.5
    with pytest.raises(OSError):
        read_image(str(tmp_path / "missing.png"))


def test_benchmark_precision_and_recall_on_planted_digits(tmp_path: Path) -> None:
    """bench/health.py on one seed: the numbers the README reports hold."""
    from bench.health import main

    result = main(["--seeds", "1", "--out", str(tmp_path / "health.json")])["mean_over_seeds"]
    for check in ("exact_duplicate", "near_duplicate", "split_leak", "dark", "bright", "blurry",
                  "low_information", "odd_size", "grayscale"):
        assert result[check]["precision"] >= 0.9 and result[check]["recall"] == 1.0, (check, result[check])
    assert result["outlier recall on noise images (Mahalanobis)"]["recall"] == 1.0
    assert (tmp_path / "health.json").exists()
