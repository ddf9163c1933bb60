"""Known answers for the interpretation analyses as the papers ran them: the normalised CAM threshold
and its regions, clip-level AU emergence with its correction, and detectors against chance."""

from math import comb

import numpy as np
import polars as pl
import pytest
from scipy.stats import binom

from impressions.explain import cam, cam_overlap, emergence
from impressions.explain import unit_detectors as units


def hand_map():
    """40 x 40, raw values all positive: background 3, block A (rows/cols 5-14, 100 px) 10, block B
    (rows 20-24, cols 5-9, 25 px) 8. Face box rows/cols 0..19."""
    m = np.full((40, 40), 3.0)
    m[5:15, 5:15] = 10.0
    m[20:25, 5:10] = 8.0
    return m, (0.0, 0.0, 19.0, 19.0)


def test_normalised_threshold_regions_and_overlaps_are_known():
    m, box = hand_map()
    # The raw-maximum rule (Zhou et al., the default) keeps the whole positive background: one region.
    assert len(cam.cam_regions(m, 0.2)) == 1
    assert [int(r.sum()) for r in cam_overlap.regions(m, 0.2)] == [1600]
    raw = cam_overlap.frame_regions(m, box, 0.2, scales=(1.0,), rules=("raw_max",))
    assert [(r["rule"], r["area_px"]) for r in raw] == [("raw_max", 1600)]
    assert raw[0]["overlap_1"] == pytest.approx(400 / 1600)
    # Min-max normalised: background 0, A 1, B 5/7 -> two regions, largest first.
    regions = cam_overlap.regions(m, 0.2, "min_max")
    assert [int(r.sum()) for r in regions] == [100, 25]
    rows = cam_overlap.frame_regions(m, box, 0.2, scales=(1.0, 1.25, 1.5))
    assert [r["rule"] for r in rows] == ["raw_max", "min_max", "min_max"]  # both rules, every time
    a, b = rows[1:]
    assert a["largest"] and not b["largest"] and (a["area_px"], b["area_px"]) == (100, 25)
    assert a["overlap_1"] == a["overlap_1.25"] == a["overlap_1.5"] == 1.0
    # Box scaled about its centre (9.5, 9.5), half side 9.5: 1.25 -> bottom 21.375 (rows 20-21 of B
    # inside), 1.5 -> bottom 23.75 (rows 20-23).
    assert b["overlap_1"] == 0.0
    assert b["overlap_1.25"] == pytest.approx(10 / 25) and b["overlap_1.5"] == pytest.approx(20 / 25)
    # A threshold above B's normalised value (5/7) leaves only A.
    assert [int(r.sum()) for r in cam_overlap.regions(m, 0.75, "min_max")] == [100]
    assert (
        cam_overlap.regions(np.ones((8, 8)), rule="min_max") == []
        and cam_overlap.normalise(np.ones(3)) is None
    )
    # A signed regression map: the rules disagree (raw: >= 0.2 x 10 = 2; min-max: >= -10 + 0.2 x 20 = -6).
    signed = np.full((10, 10), -10.0)
    signed[0, :] = 10.0
    signed[5, :] = -5.0
    assert [int(r.sum()) for r in cam_overlap.regions(signed, 0.2)] == [10]
    assert sorted(int(r.sum()) for r in cam_overlap.regions(signed, 0.2, "min_max")) == [10, 10]
    assert cam_overlap.regions(-np.ones((4, 4))) == []  # no positive maximum: no raw-max region
    with pytest.raises(ValueError, match="unknown CAM region rule"):
        cam_overlap.regions(m, 0.2, "otsu")
    with pytest.raises(ValueError, match="no face"):
        cam_overlap.frame_regions(m, (np.nan,) * 4)


def test_eight_connected_specks_join_and_largest_variant_counts_one_per_map():
    m = np.zeros((10, 10))
    m[2, 2] = m[3, 3] = 1.0  # diagonal neighbours: one 8-connected region
    m[7, 7] = 1.0
    assert sorted(int(r.sum()) for r in cam_overlap.regions(m)) == [1, 2]
    assert sorted(int(r.sum()) for r in cam_overlap.regions(m, rule="min_max")) == [1, 2]


def test_summary_per_variant_scale_and_trait():
    m, box = hand_map()
    rows = [{"trait": "openness", **r} for r in cam_overlap.frame_regions(m, box)]
    summary = cam_overlap.summarise(pl.DataFrame(rows), 0.9)

    def share(variant, scale, trait="all", rule="min_max"):
        keep = (pl.col("rule") == rule) & (pl.col("variant") == variant) & (pl.col("box_scale") == scale)
        return summary.filter(keep & (pl.col("trait") == trait)).row(0, named=True)

    # raw_max: the one whole-map region, a quarter of it in the box; min_max: A on the face, B not.
    assert (
        share("every", 1.0, rule="raw_max")["regions"] == 1
        and share("every", 1.0, rule="raw_max")["share"] == 0
    )
    assert set(summary["rule"]) == {"raw_max", "min_max"}

    assert share("every", 1.0)["share"] == 0.5 and share("every", 1.0)["regions"] == 2
    assert share("largest", 1.0)["share"] == 1.0 and share("largest", 1.0)["regions"] == 1
    assert share("every", 1.5)["share"] == 0.5  # B at 0.8 stays under 0.9
    assert share("every", 1.0, "openness")["share"] == 0.5
    assert share("every", 1.0, "neuroticism")["regions"] == 0 and np.isnan(
        share("every", 1.0, "neuroticism")["share"]
    )


def test_benjamini_hochberg_hand_values():
    adjusted = emergence.benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5]))
    np.testing.assert_allclose(adjusted, [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])


def test_unit_copying_an_au_at_clip_level_has_a_tiny_corrected_p():
    rng = np.random.default_rng(0)
    n_clips, per_clip, n_units = 60, 5, 50
    clip_ids = [f"c{c:02d}" for c in range(n_clips) for _ in range(per_clip)]
    au = rng.random((n_clips * per_clip, 17))
    unit = rng.random((n_clips * per_clip, n_units))
    clip_mean = au[:, 3].reshape(n_clips, per_clip).mean(axis=1)
    unit[:, 7] = np.repeat(clip_mean, per_clip)  # the unit's clip maximum is the clip's mean AU 3
    _, clip_rows, skipped = emergence.both_levels(clip_ids, au, unit, frame_top=50, clip_top=10)
    assert not skipped
    row = clip_rows[3]
    assert row["unit"] == 7 and row["i_max"] == 10 and row["n"] == n_clips and row["tests"] == 17 * n_units
    # Both top-10 sets identical: p = 1 / C(60, 10); the smallest of 850 p values, so BH = Bonferroni.
    assert row["p_value"] == pytest.approx(1 / comb(60, 10))
    assert row["p_corrected"] == pytest.approx(850 / comb(60, 10)) and row["p_corrected"] < 1e-7
    assert all(r["p_corrected"] > 0.05 for a, r in enumerate(clip_rows) if a != 3)


def test_unit_firing_on_one_clips_frames_is_significant_per_frame_not_per_clip():
    rng = np.random.default_rng(1)
    n_clips, per_clip = 40, 10
    clip_ids = [f"c{c:02d}" for c in range(n_clips) for _ in range(per_clip)]
    au = rng.random((n_clips * per_clip, 1))
    unit = rng.random((n_clips * per_clip, 1))
    au[:per_clip] += 5  # clip c00: the AU at its strongest on all ten frames ...
    unit[:per_clip] += 5  # ... and the unit fires on those frames only
    frame_rows, clip_rows, _ = emergence.both_levels(clip_ids, au, unit, frame_top=10, clip_top=10)
    assert frame_rows[0]["i_max"] == 10 and frame_rows[0]["p_corrected"] < 1e-10
    assert clip_rows[0]["n"] == n_clips and clip_rows[0]["p_corrected"] > 0.05


def test_clip_scores_mean_au_and_max_unit():
    clips, au, unit = emergence.clip_scores(["b", "a", "b"], np.array([[1.0], [5.0], [3.0]]),
                                            np.array([[0.2], [0.9], [0.7]]))  # fmt: skip
    assert clips == ["b", "a"]
    np.testing.assert_allclose(au[:, 0], [2.0, 5.0])
    np.testing.assert_allclose(unit[:, 0], [0.7, 0.9])


def test_too_few_clips_skip_the_clip_level_with_a_reason():
    frame_rows, clip_rows, why = emergence.both_levels(
        ["a"] * 8, np.random.rand(8, 2), np.random.rand(8, 3), 2, 2
    )
    assert len(frame_rows) == 2 and clip_rows == [] and "1 clip" in why


def test_chance_share_is_the_share_of_peak_cells_a_part_covers():
    mask = np.zeros((1, 48, 48), bool)
    mask[0, :, :24] = True  # left half: 2 of 4 cell-centre columns on a 4 x 4 grid
    assert units.chance_shares({"left": mask}, (4, 4))["left"] == 0.5
    mask2 = np.zeros((2, 48, 48), bool)
    mask2[0, :12, :12] = True  # one of 16 cells in the first image, none in the second
    assert units.chance_shares({"corner": mask2}, (4, 4))["corner"] == pytest.approx(1 / 32)


def test_large_part_collects_random_peaks_but_is_no_detector_against_chance():
    rng = np.random.default_rng(0)
    n, size, grid = 200, 48, 6
    big = np.zeros((n, size, size), bool)
    big[:, :, : int(size * 0.8)] = True  # 80% of the image
    small = np.zeros((n, size, size), bool)
    small[:, :8, 40:] = True  # top-right corner: one cell of 36
    masks = {"big": big, "small": small}
    cells = rng.integers(0, grid, (n, 2, 2))
    xy = ((cells + 0.5) * size / grid).astype(np.float32)  # unit 0: peaks uniform over the grid
    xy[:, 1] = [(5 + 0.5) * size / grid, 0.5 * size / grid]  # unit 1: always the corner cell
    values = rng.random((n, 2)).astype(np.float32) + 0.1
    plain = units.find_detectors(values, xy, masks, top=50, threshold=0.5)
    assert plain[0]["part"] == "big"  # without a baseline, area alone makes a "detector"
    chance = units.chance_shares(masks, (grid, grid))
    assert chance["big"] == pytest.approx(5 / 6) and chance["small"] == pytest.approx(1 / 36)
    rows = units.find_detectors(values, xy, masks, top=50, threshold=0.5, chance=chance, margin=0.25)
    assert rows[0]["part"] is None and rows[0]["lift_big"] == pytest.approx(rows[0]["mass_big"] / (5 / 6))
    assert rows[1]["part"] == "small" and rows[1]["lift_small"] == pytest.approx(36.0)


def test_guidance_sweep_verdict_per_weight():
    from impressions.explain import guidance_sweep

    a = np.linspace(0.8, 0.9, 50)
    assert guidance_sweep.paired_bootstrap(a, a) == (0.0, 0.0)
    low, high = guidance_sweep.paired_bootstrap(a, a - 0.02)
    assert low == pytest.approx(0.02) and high == pytest.approx(0.02)
    acc = ("delta_accuracy", "delta_low", "delta_high")
    r = ("cam_au_r", "delta_r", "delta_r_low", "delta_r_high")
    rows = [
        {"weight": 0.0, **dict(zip(r, (0.10, 0.0, 0.0, 0.0))), **dict(zip(acc, (0.0, 0.0, 0.0)))},
        {"weight": 1.0, **dict(zip(r, (0.30, 0.2, 0.1, 0.3))), **dict(zip(acc, (-0.001, -0.004, 0.002)))},
        {"weight": 3.0, **dict(zip(r, (0.40, 0.3, 0.2, 0.4))), **dict(zip(acc, (-0.03, -0.05, -0.01)))},
        {"weight": 0.1, **dict(zip(r, (0.05, -0.05, -0.1, 0.0))), **dict(zip(acc, (0.0, -0.01, 0.01)))},
        {"weight": 0.3, **dict(zip(r, (0.2, 0.1, 0.05, 0.15))), **dict(zip(acc, (-0.004, -0.009, 0.001)))},
        # r up by 0.05 on average, but the interval over test clips covers 0: not an improvement
        {"weight": 2.0, **dict(zip(r, (0.15, 0.05, -0.02, 0.12))), **dict(zip(acc, (0.0, -0.001, 0.001)))},
    ]
    judged = guidance_sweep.judge(rows, tolerance=0.005)
    assert [(r["interpretability_improves"], r["accuracy_kept"]) for r in judged] == [
        (None, None), (True, True), (True, False), (False, False), (True, False), (False, True)
    ]  # fmt: skip
    text = guidance_sweep.verdict(judged, tolerance=0.005)
    assert text.startswith("The claim holds at 1 of 5 weights") and "weight 3: " in text
    assert "difference +0.050 [-0.020, +0.120]" in text and "paired bootstrap interval" in text
    assert "one training seed per weight" in text


def test_the_sweep_reads_each_run_from_its_folder_and_pools_seeds_per_clip():
    from impressions.explain import guidance_sweep

    paths = ["s/w0/checkpoint.pt", "s/w0_seed1/checkpoint.pt", "s/w0.3/checkpoint.pt", "s/w0.3_seed12/x.pt"]
    runs = guidance_sweep.read_runs(paths, seed=7)  # no seed in the folder: models.seed
    assert sorted(runs) == [(0.0, 1), (0.0, 7), (0.3, 7), (0.3, 12)]
    assert runs[(0.3, 12)].as_posix() == "s/w0.3_seed12/x.pt"
    # a clip missing from one mapping is left out of the paired difference
    diff = guidance_sweep.paired_difference({"a": 1.0, "b": 2.0, "c": 9.0}, {"a": 0.5, "b": 1.5}, n_boot=20)
    assert diff == pytest.approx((0.5, 0.5, 0.5))
    assert guidance_sweep.clip_means(np.array([1.0, np.nan, 3.0, 5.0]), ["a", "a", "a", "b"]) == {
        "a": 2.0,
        "b": 5.0,
    }
    # pooled: clip a gains 0.2 at seed 0 and 0 at seed 1, clip b 0.4 and 0.2: per clip 0.1 and 0.3
    per_clip = {(0.0, 0): {"a": 0.5, "b": 0.5}, (1.0, 0): {"a": 0.7, "b": 0.9},
                (0.0, 1): {"a": 0.6, "b": 0.6}, (1.0, 1): {"a": 0.6, "b": 0.8}}  # fmt: skip
    zero = ("guidance_scale", "val_accuracy", "cam_au_r", "cam_au_cosine", "att_au_cosine")
    rows = [
        {"weight": w, "seed": s, "seeds": 1, "test_clips": 2, "cam_au_frames": 4, **dict.fromkeys(zero, 0.0),
         "test_accuracy": float(np.mean(list(per_clip[(w, s)].values())))}
        for w, s in per_clip
    ]  # fmt: skip
    pooled = guidance_sweep._pooled_rows(rows, per_clip, per_clip, n_boot=50, seed=0)
    assert [(r["weight"], r["seed"], r["seeds"]) for r in pooled] == [(0.0, None, 2), (1.0, None, 2)]
    assert pooled[1]["delta_accuracy"] == pytest.approx(0.2) and pooled[1]["test_accuracy"] == pytest.approx(
        0.75
    )
    assert 0.1 - 1e-9 <= pooled[1]["delta_low"] <= pooled[1]["delta_high"] <= 0.3 + 1e-9
    assert guidance_sweep._pooled_rows(rows[:2], per_clip, per_clip, n_boot=50, seed=0) == []  # one seed


def _rare_au_and_dead_unit(seed=0, frames=400, present=20, n_units=30):
    rng = np.random.default_rng(seed)
    au = np.zeros((frames, 1))
    au[rng.choice(frames, present, replace=False), 0] = rng.uniform(1, 5, present)
    unit = rng.uniform(0, 1, (frames, n_units))
    unit[:, 5] = 0.0  # a dead ReLU unit
    return au, unit


def test_a_rare_au_and_a_dead_unit_make_no_detector():
    # Row-order tie-breaking gave both zero-filled top-50 sets the earliest frames: I = 34, p = 5e-23.
    au, unit = _rare_au_and_dead_unit()
    (row,) = emergence.emergence(au, unit, n_top=50)
    assert row["positive"] == 20 and row["unit"] is None and row["p_value"] is None
    assert row["units_tested"] == 29 and row["tests"] == 0


def test_a_dead_unit_is_never_the_detector_of_a_common_au():
    au, unit = _rare_au_and_dead_unit(present=120)  # 120 positive frames: a top-50 set exists
    (row,) = emergence.emergence(au, unit, n_top=50)
    assert row["unit"] != 5 and row["units_tested"] == 29 and row["tests"] == 29
    assert row["p_corrected"] > 0.05  # random units: no detector


def test_positive_ties_are_broken_independently_per_column():
    # A quantised AU and a quantised unit, both 1.0 on the same 100 of 400 rows and 0 elsewhere, tie
    # at the top-50 boundary: breaking the ties by row order would align the two top-50 sets exactly.
    au, unit = np.zeros((400, 1)), np.zeros((400, 1))
    au[:100], unit[:100] = 1.0, 1.0
    (row,) = emergence.emergence(au, unit, n_top=50)
    assert row["i_max"] < 40  # about 50 * 50 / 100 = 25 expected from two random halves


def test_youtube_block_permutation_confirms_a_copying_unit_and_not_a_random_one():
    rng = np.random.default_rng(3)
    clip_ids = [f"vid{v:02d}.{c:03d}" for v in range(20) for c in range(4) for _ in range(5)]
    au, unit = rng.random((400, 2)), rng.random((400, 30))
    unit[:, 9] = au[:, 0] + 0.01 * rng.random(400)
    frame_rows, clip_rows, _ = emergence.both_levels(clip_ids, au, unit, frame_top=50, clip_top=10)
    assert frame_rows[0]["unit"] == 9 and frame_rows[0]["p_permutation"] == pytest.approx(0.001)
    assert frame_rows[1]["p_permutation"] is None  # only the strongest row gets the permutation
    # A whole YouTube video's frames on top of the AU and of one unit: per frame a tiny p, but one
    # event; the block permutation keeps the video together: p is about 1/20, the chance that the
    # unit's block lands on the AU's among 20 videos, where the hypergeometric p is below 1e-10.
    au, unit = rng.random((400, 1)), rng.random((400, 30))
    au[:20] += 5
    unit[:20, 4] += 5
    (row,) = emergence.emergence(au, unit, n_top=20)
    assert row["unit"] == 4 and row["p_corrected"] < 1e-10
    groups = [c.rpartition(".")[0] for c in clip_ids]
    assert 0.03 < emergence.permutation_p(au, unit, 20, groups, 0) < 0.08


def test_top_images_take_one_frame_per_clip():
    values = np.array([[9.0], [8.0], [7.0], [1.0], [6.0], [0.5]])
    clips = ["a", "a", "a", "b", "c", "c"]
    np.testing.assert_array_equal(units.top_images(values, 2)[:, 0], [0, 1])  # two frames of clip a
    np.testing.assert_array_equal(units.top_images(values, 2, clips)[:, 0], [0, 4])  # a's best, then c
    np.testing.assert_array_equal(units.top_images(values, 5, clips)[:, 0], [0, 4, 3])  # 3 clips: 3 images


def test_expected_false_detectors_under_the_null_are_the_binomial_tail():
    # The figure: a part with chance 0.35, 20 top images, required share 0.6: about 10 of 512.
    expected = 512 * units.null_pass_probability(20, 0.35, 0.6)
    assert expected == pytest.approx(512 * binom.sf(11, 20, 0.35)) and 8 < expected < 12
    assert units.null_pass_probability(20, 0.0, 0.5) == 0.0 and np.isnan(
        units.null_pass_probability(0, 0.3, 0.5)
    )


def test_uniform_units_pass_the_rule_by_chance_and_not_the_correction():
    """512 units with uniformly placed peaks on a part of chance 1/3: the rule alone calls about as many
    detectors as the binomial expects; Benjamini-Hochberg over units x parts keeps none, and keeps a
    unit whose peaks always fall in the part."""
    from impressions.explain import unit_analyses

    rng = np.random.default_rng(4)
    n, size, grid, n_units = 120, 48, 6, 512
    part = np.zeros((n, size, size), bool)
    part[:, :, :16] = True  # left third: 2 of 6 cell columns
    masks = {"left": part}
    cells = rng.integers(0, grid, (n, n_units, 2))
    cells[:, 0, 0] = 0  # unit 0: always in the left column
    acts = np.zeros((n, n_units, grid, grid), np.float32)
    value = rng.random((n, n_units)).astype(np.float32) + 0.1
    acts[np.arange(n)[:, None], np.arange(n_units)[None], cells[..., 1], cells[..., 0]] = value
    clip_ids = [f"c{i // 2}" for i in range(n)]  # 60 clips of two frames
    rows, chance_rows, *_ = unit_analyses._layer_detectors(
        "m", {"conv": acts}, size, masks, ["left"], 20, 0.5, 0.15, clip_ids
    )
    (chance,) = chance_rows
    assert chance["chance_share"] == pytest.approx(1 / 3) and chance["top_clips"] == 20
    expected = n_units * binom.sf(int(np.ceil(0.5 * 20 - 1e-9)) - 1, 20, 1 / 3)
    assert chance["expected_null"] == pytest.approx(expected) and 30 < expected < 60  # P = 0.09
    assert 0.4 * expected < chance["rule_detectors"] < 2 * expected  # the rule alone: chance detectors
    assert chance["detectors"] == 1 and rows[0]["part"] == "left" and rows[0]["p_corrected"] < 1e-6
    assert all(r["part"] is None for r in rows[1:])
    assert all(r["n_images"] == 20 for r in rows)
