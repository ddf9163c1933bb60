"""Reading what the models saw, for the interpretation analyses."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from impressions import schemas
from impressions.explain import analyses
from impressions.explain import images as loader
from impressions.schemas import AUS, EMOTIONS, TRAITS


def tables(tmp_path, size=32):
    """Two clips of 3 frames decoded at 320x160; clip b's frame 1 has no face."""
    frames, faces, expressions = [], [], []
    for clip in ("a", "b"):
        (tmp_path / clip).mkdir()
        np.save(tmp_path / clip / "frames.npy", np.full((3, size, size, 3), ord(clip), np.uint8))
        np.save(tmp_path / clip / "faces.npy", np.full((3, 16, 16, 3), ord(clip) + 1, np.uint8))
        for k in range(3):
            frames.append({"clip_id": clip, "frame_index": k, "width": 320, "height": 160})
            face = not (clip == "b" and k == 1)
            points = np.tile([[160.0, 80.0]], (68, 1))
            points[0] = [32.0, 16.0]
            faces.append({
                "clip_id": clip, "frame_index": k, "has_face": face, "n_faces": int(face),
                "box_left": 80.0 if face else None, "box_top": 40.0 if face else None,
                "box_right": 240.0 if face else None, "box_bottom": 120.0 if face else None,
                "landmarks": points.ravel().tolist() if face else None,
                "landmarks_aligned": (points / 20).ravel().tolist() if face else None,
            })  # fmt: skip
            if face:
                probs = np.eye(len(EMOTIONS))[EMOTIONS.index("happiness" if k else "anger")]
                expressions.append({"clip_id": clip, "frame_index": k, **dict.fromkeys(AUS, float(k)),
                                    **dict(zip(EMOTIONS, probs.tolist()))})  # fmt: skip
    clips = pl.DataFrame({"clip_id": ["a", "b"], "split": ["train", "test"]})
    return (clips, schemas.frame("frames", frames), schemas.frame("faces", faces),
            schemas.frame("expressions", expressions))  # fmt: skip


def test_frames_carry_boxes_and_landmarks_in_stored_pixels(tmp_path):
    clips, frames, faces, expressions = tables(tmp_path)
    images = loader.load_images("frames", clips, frames, faces, expressions, tmp_path)
    assert len(images) == 6 and images.images.shape == (6, 32, 32, 3)
    assert images.clip_ids == ["a"] * 3 + ["b"] * 3 and images.frame_index.tolist() == [0, 1, 2] * 2
    assert images.images[3, 0, 0, 0] == ord("b")
    # 320 x 160 decoded -> 32 x 32 stored: box edges x / 10, y / 5; landmarks are pixel centres, placed
    # as AU guidance places them: (x + 0.5) / 10 - 0.5, (y + 0.5) / 5 - 0.5.
    np.testing.assert_allclose(images.boxes[0], [8, 8, 24, 24])
    np.testing.assert_allclose(images.landmarks[0, 0], [2.75, 2.8], rtol=1e-6)
    assert np.isnan(images.boxes[4]).all() and images.has_face.tolist() == [True] * 4 + [False, True]
    assert images.emotions == ["anger", "happiness", "happiness", "anger", None, "happiness"]
    assert np.isnan(images.aus[4]).all() and images.aus[5, 0] == 2


def test_faces_keep_face_frames_with_aligned_landmarks_splits_and_cap(tmp_path):
    clips, frames, faces, expressions = tables(tmp_path)
    images = loader.load_images("faces", clips, frames, faces, expressions, tmp_path)
    assert len(images) == 5 and images.images.shape[1:] == (16, 16, 3)
    np.testing.assert_allclose(images.landmarks[0, 0], [1.6, 0.8])  # landmarks_aligned, unscaled
    assert np.isnan(images.boxes).all()
    test_only = loader.load_images("faces", clips, frames, faces, None, tmp_path, splits=["test"])
    assert test_only.clip_ids == ["b", "b"] and test_only.emotions == [None, None]
    capped = loader.load_images("frames", clips, frames, faces, expressions, tmp_path, max_frames=3)
    assert list(zip(capped.clip_ids, capped.frame_index.tolist())) == [("a", 0), ("a", 2), ("b", 2)]


def test_interpretation_scans_the_tables_and_reads_the_picked_rows(tmp_path):
    # interpret.run scans the tables (read_tables(lazy=True)): load_images picks its frames from the
    # key columns and reads the other columns of those rows only (read whole and joined, the tables
    # took about 4 GB at FI's 1,000,000 frames: benchmarks/history/memory_scaling.md). Same images.
    from impressions.data import splits as data_splits
    from impressions.explain import interpret

    clips, frames, faces, expressions = tables(tmp_path)
    paths = {}
    for name, table in (("frames", frames), ("faces", faces), ("expressions", expressions)):
        paths[name] = tmp_path / f"{name}.parquet"
        table.write_parquet(paths[name])
    clips_path = tmp_path / "clips.parquet"
    pl.DataFrame(
        {"clip_id": ["a", "b"], "path": ["a.mp4", "b.mp4"], "split": ["train", "test"]}
    ).write_parquet(clips_path)
    read = clips_path, None, paths["frames"], paths["faces"], paths["expressions"]
    _, *scans = interpret.read_tables(*read, lazy=True)
    assert all(isinstance(t, pl.LazyFrame) for t in scans)
    clips = data_splits.read_clips(clips_path, None)
    for kind, cap in (("frames", 4), ("faces", 3), ("frames", 2000)):
        got = loader.load_images(kind, clips, *scans, tmp_path, max_frames=cap)
        want = loader.load_images(kind, clips, frames, faces, expressions, tmp_path, max_frames=cap)
        assert got.clip_ids == want.clip_ids and got.frame_index.tolist() == want.frame_index.tolist()
        assert got.emotions == want.emotions and len(got) == min(cap, 6 if kind == "frames" else 5)
        for field in ("images", "boxes", "landmarks", "aus"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


# ----------------------------------------------------------------------------------------------------
# Each analysis entry point on tiny data: a random-weight GAP image model (no training) on random
# frames with a face drawn by landmarks (tests/analysis_data.py builds both).


def _tiny(tmp_path, splits=("train", "train", "val", "test", "test")):
    import polars as pl
    from analysis_data import checkpoint, dataset

    paths = dataset(tmp_path, list(splits))
    tables = [pl.read_parquet(paths[k]) for k in ("clips", "frames", "faces", "expressions")]
    return paths, tables, checkpoint(tmp_path)


def _files(tmp_path, analysis):
    from impressions.explain import analyses

    (tmp_path / analysis).mkdir()  # as the workflow's rule does
    return {k: tmp_path / analysis / name for k, name in analyses.get(analysis).files.items()}


def test_cam_analysis_ranks_the_top_clips_and_compares_with_gradcam(tmp_path):
    from impressions.explain import cam_analyses

    _, tables, ckpt = _tiny(tmp_path)
    images = loader.load_images("frames", *tables, tmp_path / "clips")
    files = _files(tmp_path, "cam")
    section = cam_analyses.cam_analysis("image_cam", ckpt, images, files, top_k=2)
    gradcam = pl.read_csv(files["gradcam"])
    assert gradcam["trait"].to_list() == list(TRAITS)
    assert gradcam["mean_r"].is_between(-1, 1).all() and gradcam["mean_r"].max() > 0.5  # related maps
    assert section.figures and all(Path(f["path"]).stat().st_size > 0 for f in section.figures)


def test_cam_overlap_analysis_shares_are_shares_of_test_frames(tmp_path):
    from impressions.explain import cam_analyses

    _, tables, ckpt = _tiny(tmp_path)
    images = loader.load_images("frames", *tables, tmp_path / "clips", splits=["test"])
    files = _files(tmp_path, "cam_overlap")
    cam_analyses.cam_overlap_analysis("image_cam", ckpt, images, files, box_scales=(1.0, 2.0))
    overlap = pl.read_csv(files["overlap"])
    assert set(overlap["box_scale"]) == {1.0, 2.0} and set(overlap["rule"]) == {"raw_max", "min_max"}
    # a share is a share; it is undefined only where a rule found no region (a map with no positive max)
    assert overlap.filter(pl.col("regions") > 0)["share"].is_between(0, 1).all()
    assert overlap.filter(pl.col("regions") == 0)["share"].is_nan().all()
    for rule in ("raw_max", "min_max"):  # a box twice as large holds at least as many regions
        every = overlap.filter(
            (pl.col("rule") == rule) & (pl.col("variant") == "every") & (pl.col("trait") == "all")
        ).sort("box_scale")
        assert every["share"][1] >= every["share"][0]
    assert set(pl.read_parquet(files["regions"])["clip_id"]) == {"clip03", "clip04"}


def _rendered(tmp_path, section_paths) -> str:
    """The report's Markdown of interpretation sections, as the report renders them."""
    from impressions.report import document, render

    doc = document.Document("t")
    render._interpretation_sections(doc, [Path(p) for p in section_paths], tmp_path)
    return "\n".join(doc.md)


def _rendered_column(markdown: str, table_file: str, column: str) -> list[str]:
    """One column's cells of the rendered table whose caption names `table_file`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("*") and f"{table_file})" in line)
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip("|").split("|")])
        elif table or line.strip():
            break
    header, _, *rows = table
    return [row[header.index(column)] for row in rows]


def test_the_deviations_listed_follow_the_settings_the_run_used(tmp_path):
    """The CAM-overlap section under each region rule: the deviations follow the setting, and the
    report (as it renders the section) shows raw-max (Zhou's rule, the default) and min-max rows in
    the overlap table whatever the headline setting."""
    from impressions.explain import cam_analyses, deviations

    _, tables, ckpt = _tiny(tmp_path)
    images = loader.load_images("frames", *tables, tmp_path / "clips", splits=["test"])
    texts, rendered = {}, {}
    for rule in ("raw_max", "min_max"):
        (tmp_path / rule).mkdir()
        files = _files(tmp_path / rule, "cam_overlap")
        section = cam_analyses.cam_overlap_analysis("image_cam", ckpt, images, files, region_rule=rule)
        texts[rule] = section.text
        comparison = pl.read_csv(files["comparison"])
        assert comparison["rule"].to_list()[1] == rule  # the headline rule first, the other after
        rendered[rule] = _rendered(tmp_path, [files["section"]])
        rules = _rendered_column(rendered[rule], "cam_face_overlap.csv", "rule")
        assert set(rules) == {"raw_max", "min_max"} and rules.count("raw_max") == rules.count("min_max")
    deviation = "CAM regions min-max normalised before the 0.2 threshold (interpret.cam_overlap.region_rule"
    assert deviation in rendered["min_max"] and deviation not in rendered["raw_max"]
    assert "Deviations from the published method, from this run's settings" in rendered["raw_max"]
    assert "region_rule: min_max" in texts["min_max"] and "region_rule" not in texts["raw_max"]
    assert (
        "Regions by the min_max rule" in texts["min_max"]
        and "Regions by the raw_max rule" in texts["raw_max"]
    )
    assert "Deviations from the published method, from this run's settings" in texts["raw_max"]
    # the guidance list names the AU-map shape it was given and the scaling only when it was used
    gaussian, ellipse = (deviations.text(deviations.guidance(s, False)) for s in ("gaussian", "ellipse"))
    assert "Gaussian blobs (sigma 0.2" in gaussian and "interpret.au_map: gaussian" in gaussian
    assert "filled ellipses at their anchors" in ellipse and "Gaussian" not in ellipse
    assert len(deviations.guidance("ellipse", True)) == len(deviations.guidance("ellipse", False)) + 1
    with pytest.raises(ValueError, match="unknown AU map shape 'disc'"):
        deviations.guidance("disc", False)
    # the guided layer, named for each guided model in view, from its training settings
    assert "guided layer" not in ellipse
    assert "au_guidance_layer -1" in deviations.text(deviations.guidance("ellipse", False, [-1]))
    assert "body module 6 (au_guidance_layer 6)" in deviations.text(
        deviations.guidance("ellipse", False, [6])
    )
    assert deviations.text([]) == "Deviations from the published method: none under this run's settings."


def test_the_face_part_section_prints_the_detectors_expected_under_the_null_beside_those_found(tmp_path):
    """The units section, rendered as the report renders it, from a small synthetic chance table: the
    detectors found (after the correction), the units the rule alone passes and the number the null
    expects to pass it, each the table's sum."""
    from impressions.explain import unit_analyses

    chance = pl.DataFrame({
        "model": "m", "layer": ["conv4", "conv4", "conv5", "conv5"], "part": ["eyes", "mouth"] * 2,
        "units": 256, "top_clips": 20, "chance_share": [0.3, 0.35, 0.3, 0.35], "required_share": 0.5,
        "rule_detectors": [4, 6, 5, 7], "expected_null": [2.25, 3.5, 2.25, float("nan")],
        "detectors": [1, 0, 2, 0], "mean_share": 0.6, "mean_lift": 1.8, "best_lift": 2.5,
    })  # fmt: skip
    em = pl.DataFrame({"level": ["frame"], "au": ["AU12"], "p_value": [0.01], "p_corrected": [0.04],
                       "p_permutation": [0.2]})  # fmt: skip
    n = 2
    images = loader.Images(
        "faces", np.zeros((n, 8, 8, 3), np.uint8), ["a.000", "b.000"], np.zeros(n, int),
        np.full((n, 4), np.nan), np.zeros((n, 68, 2)), np.full((n, len(AUS)), np.nan), ["happiness"] * n,
        ("test",),
    )  # fmt: skip
    section = unit_analyses._units_section(
        "m", images, images, {"conv4": None, "conv5": None}, em, chance, n_clips=2, n_units=512, top=20,
        threshold=0.5, margin=0.15, notes=[],
    )  # fmt: skip
    section.write(tmp_path / "section.json")
    text = _rendered(tmp_path, [tmp_path / "section.json"])
    # found: 3 after Benjamini-Hochberg; the rule alone: 22; expected under the null: 8.0 (NaN as none)
    assert "3 units are face-part detectors" in text
    assert "The rule alone passes 22 units, where 8.0 are expected by chance" in text
    assert "corrected over 512 units x 2 parts" in text


def test_units_analysis_finds_shares_and_emergence_per_level(tmp_path):
    from impressions.explain import unit_analyses

    _, tables, ckpt = _tiny(tmp_path, ["train"] * 4 + ["test"] * 2)
    images = loader.load_images("faces", *tables, tmp_path / "clips")
    files = _files(tmp_path, "units")
    section = unit_analyses.units_analysis(
        "image_cam", ckpt, images, files, unit_layers=2, unit_top=4, au_top_n=5
    )
    # The segmentation is named for what it computes: not an empirical receptive field.
    captions = [f["caption"] for f in section.figures if "top_units" in f["path"] or "gallery" in f["path"]]
    assert len(captions) == 5 and all("activation_threshold" in c and "occlusion" in c for c in captions)
    assert not any("receptive field (" in c for c in captions)
    # detectors found beside the number the rule passes by chance
    chance = pl.read_csv(files["chance"])
    # ... the very numbers of its chance table
    expected = float(chance["expected_null"].fill_nan(0).sum())
    assert (
        f"The rule alone passes {chance['rule_detectors'].sum()} units, where {expected:.1f} are expected by "
        "chance"
        in section.text
        and f"{chance['detectors'].sum()} units are face-part detectors" in section.text
    )
    assert (chance["detectors"] <= chance["rule_detectors"]).all() and (chance["expected_null"] >= 0).all()
    units = pl.read_parquet(files["units"])
    assert units["layer"].n_unique() == 2 and units["unit"].n_unique() > 1
    masses = units.select(pl.col("^mass_.*$")).to_numpy()
    assert ((masses >= 0) & (masses <= 1 + 1e-9)).all()
    emergence = pl.read_csv(files["emergence"])
    assert set(emergence["level"]) == {"frame", "clip"} and emergence["p_value"].is_between(0, 1).all()
    tested = emergence.filter(pl.col("p_value").is_not_null())
    assert (tested["positive"] >= tested["n_top"]).all()  # only AUs with a top-N set of positive values
    untested = emergence.filter(pl.col("p_value").is_null())
    assert (untested["positive"] < untested["n_top"]).all() and untested[
        "unit"
    ].null_count() == untested.height


def test_au_map_analysis_correlates_only_frames_with_an_emotion_map(tmp_path):
    from impressions.explain import au_analyses

    _, (clips, frames, faces, expressions), ckpt = _tiny(tmp_path)
    # frame 0 of every clip is neutral: no AU map, no correlation
    first = pl.col("frame_index") == 0
    neutral = [pl.when(first).then(float(e == "neutral")).otherwise(pl.col(e)).alias(e) for e in EMOTIONS]
    expressions = expressions.with_columns(neutral)
    images = loader.load_images("faces", clips, frames, faces, expressions, tmp_path / "clips")
    files = _files(tmp_path, "au_maps")
    au_analyses.au_map_analysis("image_cam", ckpt, images, files)
    per_frame = pl.read_parquet(files["frames"])
    r = per_frame.select(TRAITS).to_numpy()
    neutral_rows = (per_frame["emotion"] == "neutral").to_numpy()
    assert neutral_rows.sum() == 5 and np.isnan(r[neutral_rows]).all()
    assert np.isfinite(r[~neutral_rows]).all() and (np.abs(r[~neutral_rows]) <= 1 + 1e-9).all()
    table = pl.read_csv(files["correlation"])
    assert table.filter(pl.col("trait") == TRAITS[0])["frames"][0] == (~neutral_rows).sum()
    assert table["mean_cosine"].is_between(-1, 1).all()  # CAM-COS beside Pearson r
    assert np.isfinite(per_frame.filter(~pl.Series(neutral_rows))[f"cos_{TRAITS[0]}"].to_numpy()).all()
    # interpret.au_map picks the shape: the section says which, its deviations list follows, the maps change
    (tmp_path / "gaussian").mkdir()
    other = _files(tmp_path / "gaussian", "au_maps")
    options = analyses.get("au_maps").job_options({"au_map": "gaussian", "top_k": 3}, {})
    section = au_analyses.au_map_analysis("image_cam", ckpt, images, other,
                                          **analyses.get("au_maps").arguments(options))  # fmt: skip
    default = json.loads(files["section"].read_text())["text"]
    assert "interpret.au_map: gaussian" in section.text and "Gaussian blobs" in section.text
    assert "interpret.au_map" not in default and "filled ellipses" in default
    assert not np.allclose(pl.read_parquet(other["frames"])[TRAITS[0]].to_numpy()[~neutral_rows],
                           r[~neutral_rows, 0])  # fmt: skip


def _au_frames(clips, r_by_split: dict, cos_by_split: dict | None = None):
    """An au_maps per-frame table (two frames per clip) whose r (and cosine) is set per split."""
    ids = clips["clip_id"].to_list()
    split = dict(zip(ids, clips["split"].to_list()))
    rows = [c for c in ids for _ in range(2)]
    r = [r_by_split[split[c]] for c in rows]
    cos = [(cos_by_split or r_by_split)[split[c]] for c in rows]
    return pl.DataFrame({"model": "m", "clip_id": rows, "frame_index": [0, 1] * len(ids), "emotion": "happy",
                         **{t: r for t in TRAITS}, **{f"cos_{t}": cos for t in TRAITS}})  # fmt: skip


def test_a_guided_model_that_only_fits_its_training_frames_shows_no_effect(tmp_path):
    """Guided: CAM-AU r 0.9 on its training frames, 0.2 on test frames like its unguided twin. The
    effect is taken on test clips only: none. (Pooled over every split, as before, it read as one.)"""
    import json

    from impressions.explain import au_analyses
    from impressions.training import loop as training

    _, (clips, frames, faces, expressions), ckpt = _tiny(tmp_path, ["train"] * 5 + ["val", "test", "test"])
    test = {"faces": loader.load_images("faces", clips, frames, faces, expressions, tmp_path / "clips",
                                        splits=["test"])}  # fmt: skip
    layers, real = [], au_analyses.attention_cosines_at

    def attention(checkpoint, images, au_map, layer):  # the real ATT-COS, recording the layer it reads
        layers.append(layer)
        return real(checkpoint, images, au_map, layer)

    paths = {"frames": {}, "preds": {}, "summaries": {}}
    for name, weight, train_r in (("face", 0.0, 0.2), ("face_au_guided", 1.0, 0.9)):
        folder = tmp_path / name
        folder.mkdir()
        paths["frames"][name] = folder / "cam_au_frames.parquet"
        r, cos = {"train": train_r, "val": 0.2, "test": 0.2}, {"train": train_r, "val": 0.5, "test": 0.5}
        _au_frames(clips, r, cos).write_parquet(paths["frames"][name])
        by_split = {}
        for s in ("val", "test"):
            part = clips.filter(pl.col("split") == s)
            by_split[s] = (part["clip_id"].to_list(), part.select(TRAITS).to_numpy())
        paths["preds"][name] = folder / "predictions.parquet"
        training.predictions_frame(name, by_split).write_parquet(paths["preds"][name])
        paths["summaries"][name] = folder / "summary.json"
        settings = {"au_guidance_weight": weight, **({"au_guidance_layer": 6} if weight else {})}
        paths["summaries"][name].write_text(json.dumps({"settings": settings}))
    files = {"section": tmp_path / "g" / "section.json", "table": tmp_path / "g" / "guidance.csv"}
    pair = [("face", "face_au_guided")]
    both = {"face": ckpt, "face_au_guided": ckpt}  # one network twice: any ATT-COS effect is spurious
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(au_analyses, "attention_cosines_at", attention)
        section = au_analyses.guidance_effect(
            pair, paths["frames"], paths["preds"], paths["summaries"], both, test, clips, files, n_boot=50
        )
    table = pl.read_csv(files["table"]).sort("au_guidance_weight")
    assert table["cam_au_r"].to_list() == pytest.approx([0.2, 0.2])  # no effect on test
    assert table["cam_au_cosine"].to_list() == pytest.approx([0.5, 0.5])
    assert table["cam_au_frames"].to_list() == [4, 4]  # two test clips, two frames each
    # the paired differences, on the guided row: none, with an interval of zero width
    guided = table.row(1, named=True)
    for keys in au_analyses.EFFECT_DIFFERENCES.values():
        assert [guided[k] for k in keys] == pytest.approx([0.0, 0.0, 0.0]), keys
        assert table.row(0, named=True)[keys[0]] is None  # the twin's row holds none
    # ATT-COS beside CAM-COS: both models read at the guided model's layer (6), on the 6 test frames
    assert layers == [6, 6] and table["att_layer"].to_list() == [6, 6]
    assert table["att_au_frames"].to_list() == [6, 6] and table["att_au_cosine"].is_between(0, 1).all()
    assert "ATT-COS at body module 6" in section.text
    pooled = [pl.read_parquet(paths["frames"][m])["openness"].mean() for m in ("face", "face_au_guided")]
    assert pooled[1] - pooled[0] > 0.3  # what the in-sample comparison would have called an effect
    assert "test clips only" in section.text and "cosine" in section.text
    # its deviations name the guided model's layer, from its training settings
    assert (
        "body module 6 (au_guidance_layer 6)" in section.text and "au_guidance_layer -1" not in section.text
    )


def test_guidance_effect_and_sweep_compare_weights(tmp_path):
    import json

    from impressions.explain import au_analyses, guidance_sweep
    from impressions.training import loop as training

    paths, (clips, frames, faces, expressions), ckpt = _tiny(tmp_path)
    rng = np.random.default_rng(0)
    held_out = clips.filter(pl.col("split").is_in(["val", "test"]))
    preds, summaries, corrs, histories = {}, {}, {}, {}
    for name, weight in (("face", 0.0), ("face_au_guided", 1.0)):
        folder = tmp_path / name
        folder.mkdir()
        # the guided model predicts the labels exactly; the plain one is off by 0.1
        y = held_out.select(TRAITS).to_numpy() + (0.0 if weight else 0.1)
        by_split = {}
        for split in ("val", "test"):
            rows = (held_out["split"] == split).to_numpy()
            by_split[split] = (held_out["clip_id"].filter(rows).to_list(), y[rows])
        preds[name] = folder / "predictions.parquet"
        training.predictions_frame(name, by_split).write_parquet(preds[name])
        summaries[name] = folder / "summary.json"
        summaries[name].write_text(json.dumps({"settings": {"au_guidance_weight": weight}}))
        corrs[name] = folder / "cam_au_frames.parquet"
        _au_frames(clips, {"train": 0.1 + weight, "val": 0.1, "test": 0.1 + weight}).write_parquet(
            corrs[name]
        )
        histories[weight] = folder / "metrics.csv"
        pl.DataFrame({"epoch": [0], "val_mean": [rng.random()], "best": [True]}).write_csv(histories[weight])
    files = {"section": tmp_path / "g" / "section.json", "table": tmp_path / "g" / "guidance.csv"}
    test = {"faces": loader.load_images("faces", clips, frames, faces, expressions, tmp_path / "clips",
                                        splits=["test"])}  # fmt: skip
    both = {"face": ckpt, "face_au_guided": ckpt}
    au_analyses.guidance_effect(
        [("face", "face_au_guided")], corrs, preds, summaries, both, test, clips, files, n_boot=50
    )
    table = pl.read_csv(files["table"]).sort("au_guidance_weight")
    assert table["test_accuracy"][1] == 1.0 and table["test_accuracy"][0] < 1.0
    assert table["cam_au_r"].to_list() == pytest.approx([0.1, 1.1])  # test frames only
    # the paired intervals see the effects: r up by 1.0 on every test clip, accuracy up by 0.1
    guided = table.row(1, named=True)
    assert [guided[k] for k in ("delta_r", "delta_r_low", "delta_r_high")] == pytest.approx([1.0] * 3)
    assert guided["delta_accuracy"] == pytest.approx(0.1) and guided["delta_low"] > 0

    sweep = {k: tmp_path / "sweep" / n for k, n in (("section", "section.json"), ("table", "sweep.csv"),
                                                    ("figure", "sweep.png"))}  # fmt: skip
    runs = [(0.0, 0), (1.0, 0)]  # one training seed
    weights = {(0.0, 0): preds["face"], (1.0, 0): preds["face_au_guided"]}
    guidance_sweep.sweep_analysis(
        "face", runs, dict.fromkeys(runs, ckpt), weights, {(w, 0): h for w, h in histories.items()}, clips,
        frames, faces, expressions, tmp_path / "clips", sweep, n_boot=20,
    )  # fmt: skip
    rows = pl.read_csv(sweep["table"]).sort("weight")
    assert rows["weight"].to_list() == [0.0, 1.0] and rows["seed"].to_list() == [0, 0]  # no pooled row
    assert rows["test_accuracy"][1] > rows["test_accuracy"][0]  # the exact predictions win
    assert rows["cam_au_r"][0] == rows["cam_au_r"][1]  # the same model at both weights: the same maps
    # ... so no difference, an interval of zero width, and no improvement claimed
    assert rows["delta_r"][1] == 0 and rows["delta_r_low"][1] == rows["delta_r_high"][1] == 0
    assert rows["interpretability_improves"][1] is False and rows["cam_au_cosine"].is_between(-1, 1).all()
    # ATT-COS, the similarity guidance trains, beside CAM-COS: non-negative maps, the same model twice
    assert (
        rows["att_au_cosine"].is_between(0, 1).all() and rows["att_au_cosine"][0] == rows["att_au_cosine"][1]
    )
    assert "ATT-COS" in json.loads(sweep["section"].read_text())["text"]

    # Two seeds: at seed 0 guidance makes the predictions exact (+0.1 accuracy), at seed 1 it changes
    # nothing. Per-seed rows keep each seed's difference; the pooled row averages each clip's over seeds.
    runs = [(0.0, 0), (1.0, 0), (0.0, 1), (1.0, 1)]
    seeded = weights | {(0.0, 1): preds["face"], (1.0, 1): preds["face"]}
    guidance_sweep.sweep_analysis(
        "face", runs, dict.fromkeys(runs, ckpt), seeded, {(w, s): histories[w] for w, s in runs}, clips,
        frames, faces, expressions, tmp_path / "clips", sweep, n_boot=20,
    )  # fmt: skip
    rows = pl.read_csv(sweep["table"])
    guided = {s: rows.filter((pl.col("weight") == 1) & pl.col("seed").eq_missing(s)).row(0, named=True)
              for s in (0, 1, None)}  # fmt: skip
    assert guided[0]["delta_accuracy"] == pytest.approx(0.1) and guided[1]["delta_accuracy"] == 0
    assert guided[None]["seeds"] == 2 and guided[None]["delta_accuracy"] == pytest.approx(0.05)
    assert guided[None]["delta_low"] > 0 and guided[None]["accuracy_kept"] is True
    assert rows.height == 6  # two weights x two seeds, and one pooled row per weight
    text = json.loads(sweep["section"].read_text())["text"]
    assert "pooled over 2 training seeds" in text and "training seed (0, 1)" in text


def test_emergence_finds_the_unit_that_tracks_an_au():
    from impressions.explain import emergence

    rng = np.random.default_rng(0)
    au = rng.random((200, 2))
    units = rng.random((200, 5))
    units[:, 3] = au[:, 1] + 0.01 * rng.random(200)  # unit 3 follows AU 2
    rows = emergence.emergence(au, units, n_top=20)
    assert rows[1]["unit"] == 3 and rows[1]["i_max"] >= 18 and rows[1]["p_corrected"] < 1e-10
    assert rows[0]["p_corrected"] > 1e-3  # AU 1 has no unit
