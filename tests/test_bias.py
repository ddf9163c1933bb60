"""Known-answer tests of the bias audit (impressions.bias) on synthetic people with planted gaps."""

import numpy as np
import polars as pl
import pytest

from impressions import bias
from impressions.schemas import TRAITS


def synthetic(seed=0, people=60, clips=4, label_gap=0.0, model_gap=0.0, person_sd=0.03, noise=0.03):
    """(clips table, predictions table) of one test split: half the people female, each with `clips`
    clips. Labels: 0.5 + label_gap for women + a person effect + clip noise; predictions: the label +
    model_gap for women + clip noise. Ethnicity is independent of gender."""
    rng = np.random.default_rng(seed)
    rows, preds = [], []
    for k in range(people):
        female = k % 2 == 1
        ethnicity = ["Asian", "Caucasian", "African-American"][(k // 2) % 3]
        offset = rng.normal(0, person_sd, len(TRAITS) + 1)
        for c in range(clips):
            y = 0.5 + label_gap * female + offset + rng.normal(0, noise, len(TRAITS) + 1)
            p = y[: len(TRAITS)] + model_gap * female + rng.normal(0, noise, len(TRAITS))
            clip = f"p{k:03d}.{c:03d}"
            rows.append({"clip_id": clip, "split": "test", **dict(zip((*TRAITS, "interview"), y)),
                         "gender": "female" if female else "male", "ethnicity": ethnicity,
                         "age_group": None, "youtube_id": f"p{k:03d}"})  # fmt: skip
            preds.append({"clip_id": clip, "split": "test", "model": "face", **dict(zip(TRAITS, p))})
    return pl.DataFrame(rows), pl.DataFrame(preds)


def gap_row(gaps, kind, attribute="gender", trait="extraversion"):
    return gaps.filter(
        (pl.col("kind") == kind) & (pl.col("attribute") == attribute) & (pl.col("trait") == trait)
    ).row(0, named=True)


def run(clips, preds, **kw):
    kw = {"min_people": 10, "n_boot": 500, "n_perm": 500, "seed": 0, **kw}
    return bias.audit(clips, preds, **kw)


def test_a_planted_label_gap_is_recovered_in_the_labels_and_not_charged_to_the_model():
    groups, gaps = run(*synthetic(label_gap=0.06))
    for trait in (*TRAITS, "interview"):
        row = gap_row(gaps, "label", trait=trait)
        assert (row["high"], row["low"]) == ("female", "male")
        assert row["ci_low"] <= 0.06 <= row["ci_high"], trait
        assert row["p_holm"] < 0.05 and row["p_bh"] < 0.05
    # the model reproduces the labels: no signed bias gap
    for trait in TRAITS:
        model = gap_row(gaps, "model", trait=trait)
        assert model["ci_low"] <= 0 <= model["ci_high"] and model["p_holm"] > 0.05
    signed = groups.filter((pl.col("kind") == "model") & (pl.col("attribute") == "gender"))
    assert signed["value"].abs().max() < 0.01  # 5 traits x 2 groups of 95% intervals: some miss 0 by chance


def test_a_planted_model_gap_is_recovered_as_signed_bias_and_the_labels_show_none():
    groups, gaps = run(*synthetic(model_gap=0.05))
    for trait in TRAITS:
        row = gap_row(gaps, "model", trait=trait)
        assert (row["high"], row["low"]) == ("female", "male")
        assert row["ci_low"] <= 0.05 <= row["ci_high"] and row["p_holm"] < 0.05, trait
        women = groups.filter((pl.col("kind") == "model") & (pl.col("group") == "female")
                              & (pl.col("trait") == trait)).row(0, named=True)  # fmt: skip
        assert women["value"] == pytest.approx(0.05, abs=0.01) and (women["people"], women["clips"]) == (
            30,
            120,
        )
        assert gap_row(gaps, "label", trait=trait)["p_holm"] > 0.05
    # ethnicity was planted nothing: its gaps are not significant after correction
    eth = gaps.filter((pl.col("attribute") == "ethnicity") & (pl.col("kind") == "model"))
    assert (eth["p_holm"] > 0.05).all() and eth["groups_tested"].unique().to_list() == [3]


def test_no_gap_is_found_where_none_was_planted():
    _, gaps = run(*synthetic(seed=3))
    tested = gaps.filter(pl.col("p_value").is_not_nan())
    assert tested.height == 3 * (len(TRAITS) + 1 + len(TRAITS))  # gender, ethnicity, their cross (10 each)
    assert (tested["p_holm"] > 0.05).all() and (tested["p_bh"] > 0.05).all()


def test_the_gap_interval_covers_a_planted_gap_about_95_percent_of_the_time():
    """Over 40 data sets with a planted gap of 0.04, the interval misses it at most 6 times (the
    percentile bootstrap with 20 people a group undercovers a little; 2 misses expected)."""
    misses = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        person = np.repeat(np.arange(40), 3)
        group = np.where(person % 2 == 0, "a", "b")
        values = 0.04 * (group == "b") + rng.normal(0, 0.05, 40)[person] + rng.normal(0, 0.03, 120)
        res = bias.audit_attribute(bias.people(values, person, group), ["x"], min_people=5, n_boot=400,
                                   n_perm=0, seed=seed)  # fmt: skip
        row = res.gaps[0]
        signed = (row["ci_low"], row["ci_high"]) if row["high"] == "b" else (-row["ci_high"], -row["ci_low"])
        misses += not signed[0] <= 0.04 <= signed[1]
    assert misses <= 6


def test_the_permutation_test_keeps_its_level_under_no_gap():
    """Over 40 null data sets, about 5% of uncorrected p-values fall below 0.05 (binomial: at most 9 of
    40 with probability > 0.999 when the test is exact)."""
    hits = 0
    for seed in range(40):
        pp = bias.people(np.random.default_rng(seed).normal(0, 1, (120, 1)), np.arange(120) // 4,
                         np.where(np.arange(120) // 4 % 2 == 0, "a", "b"))  # fmt: skip
        res = bias.audit_attribute(pp, ["x"], min_people=5, n_boot=0, n_perm=200, seed=seed)
        hits += res.gaps[0]["p_value"] < 0.05
    assert hits <= 9


def test_the_permutation_shuffles_people_not_clips():
    """People differ a lot (person effects), groups do not: shuffling clips would find a gap."""
    rng = np.random.default_rng(0)
    n_people, per = 30, 10
    person = np.repeat(np.arange(n_people), per)
    group = np.where(person % 2 == 0, "a", "b")
    values = rng.normal(0, 0.2, n_people)[person] + rng.normal(0, 0.01, len(person))
    by_people = bias.audit_attribute(bias.people(values, person, group), ["x"], min_people=5,
                                     n_boot=0, n_perm=1000, seed=0)  # fmt: skip
    by_clips = bias.audit_attribute(bias.people(values, np.arange(len(person)), group), ["x"],
                                    min_people=5, n_boot=0, n_perm=1000, seed=0)  # fmt: skip
    assert by_people.gaps[0]["gap"] == pytest.approx(by_clips.gaps[0]["gap"])  # same statistic
    assert by_clips.gaps[0]["p_value"] < 0.01 < 0.2 < by_people.gaps[0]["p_value"]
    # each permutation moves whole people: a person's clips stay together, group sizes stay
    codes = np.array([0] * 15 + [1] * 15)
    perm = bias.shuffled_groups(codes, 50, np.random.default_rng(1))
    assert perm.shape == (50, 30) and (perm.sum(axis=1) == 15).all()
    assert len({tuple(r) for r in perm}) > 40
    # giving every person twice the clips (the same values) changes neither the statistic nor p
    twice = bias.people(np.repeat(values, 2), np.repeat(person, 2), np.repeat(group, 2))
    again = bias.audit_attribute(twice, ["x"], min_people=5, n_boot=0, n_perm=1000, seed=0)
    assert again.gaps[0]["p_value"] == by_people.gaps[0]["p_value"]


def test_the_bootstrap_resamples_people():
    """With strong person effects, an interval over 3 clips x 40 people is as wide as over 40 people."""
    rng = np.random.default_rng(0)
    person = np.repeat(np.arange(40), 3)
    values = rng.normal(0, 0.2, 40)[person]
    one = bias.audit_attribute(bias.people(values, person, ["g"] * 120), ["x"], min_people=5, n_boot=2000)
    clipwise = bias.audit_attribute(bias.people(values, np.arange(120), ["g"] * 120), ["x"], min_people=5,
                                    n_boot=2000)  # fmt: skip
    width = one.groups[0]["ci_high"] - one.groups[0]["ci_low"]
    assert width > 1.5 * (clipwise.groups[0]["ci_high"] - clipwise.groups[0]["ci_low"])


def test_small_cells_are_too_few_and_untested():
    clips, preds = synthetic(people=24)
    groups, gaps = run(clips, preds, min_people=5)
    cross = groups.filter((pl.col("attribute") == "gender x ethnicity") & (pl.col("kind") == "model"))
    assert cross["people"].unique().to_list() == [4] and not cross["tested"].any()
    assert cross["ci_low"].is_nan().all()
    row = gap_row(gaps, "model", attribute="gender x ethnicity")
    assert row["groups_tested"] == 0 and np.isnan(row["p_value"]) and np.isnan(row["p_holm"])
    assert gap_row(gaps, "model")["groups_tested"] == 2  # gender: 12 people each


def test_unknown_is_shown_never_tested_and_a_person_takes_their_most_frequent_value():
    pp = bias.people(np.zeros(5), ["a", "a", "a", "b", "c"], ["f", "f", "m", None, "m"])
    assert pp.groups.tolist() == ["f", bias.UNKNOWN, "m"] and pp.mixed == 1
    clips, preds = synthetic(people=30)
    clips = clips.with_columns(pl.when(pl.col("youtube_id") == "p000").then(None).otherwise(pl.col("gender"))
                               .alias("gender"))  # fmt: skip
    groups, gaps = run(clips, preds)
    unknown = groups.filter((pl.col("group") == bias.UNKNOWN) & (pl.col("attribute") == "gender"))
    assert unknown.height and not unknown["tested"].any() and unknown["people"].unique().to_list() == [1]
    assert gap_row(gaps, "label")["people"] == 29


def test_holm_and_benjamini_hochberg_match_hand_computed_values():
    p = [0.01, 0.04, 0.03, np.nan, 0.005]
    assert bias.holm(p)[[4, 0, 2, 1]] == pytest.approx([0.02, 0.03, 0.06, 0.06])
    assert np.isnan(bias.holm(p)[3]) and np.isnan(bias.benjamini_hochberg(p)[3])
    assert bias.benjamini_hochberg(p)[[4, 0, 2, 1]] == pytest.approx([0.02, 0.02, 0.04, 0.04])
    assert np.isnan(bias.holm([np.nan])).all()


def test_every_model_in_the_predictions_gets_rows_and_its_own_family():
    clips, preds = synthetic(model_gap=0.05)
    other = preds.with_columns(pl.lit("text").alias("model"), *[(pl.col(t) - 0.05 * 0) for t in TRAITS])
    groups, gaps = run(clips, pl.concat([preds, other]))
    assert set(groups["model"]) == {"labels", "face", "text"}
    assert gaps.filter(pl.col("model") == "text").height == gaps.filter(pl.col("model") == "face").height
    overall = groups.filter((pl.col("attribute") == bias.ALL) & (pl.col("kind") == "label"))
    assert overall["people"].unique().to_list() == [60] and overall.height == len(TRAITS) + 1


def test_the_command_prints_the_reports_tables_from_a_finished_run(tmp_path, capsys):
    from impressions import cli
    from impressions.report import bias as bias_report
    from impressions.report.document import md_table

    with pytest.raises(SystemExit, match="no bias_groups.parquet, bias_gaps.parquet"):
        cli.main(["bias", str(tmp_path)])
    # 1000 permutations: the smallest Holm p of a family of 15 tests is 15 / 1001
    groups, gaps = run(*synthetic(model_gap=0.05), n_boot=100, n_perm=1000)
    (tmp_path / "report").mkdir()
    groups.write_parquet(tmp_path / "report" / "bias_groups.parquet")
    gaps.write_parquet(tmp_path / "report" / "bias_gaps.parquet")
    assert cli.main(["bias", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    tables = bias_report.tables(groups, gaps, "test")
    titles = [t[0] for t in tables]
    assert titles[0] == "Group gaps (test): labels and every model" and titles[1].startswith(
        "All clips (test)"
    )
    for title, header, rows in tables:
        assert f"{title}\n\n{md_table(header, rows)}\n" in out
    assert "| gender | extraversion | " in out and "female - male: +0.05" in out and "Holm" in out
    assert (
        "- labels: no gap with Holm p < 0.05" in out
        and "- face: gender extraversion (female - male +0.04" in out
    )
    with pytest.raises(SystemExit, match="no model image"):
        cli.main(["bias", str(tmp_path), "--model", "image"])
