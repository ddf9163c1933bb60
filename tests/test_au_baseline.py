"""The AU neutral baseline the AU-linear families get by default, and the other one on request."""

import json

import numpy as np

from impressions import face_template
from impressions.data import defaults, shards, stage_cache
from impressions.data.preprocess_shard import CACHE_FILE
from impressions.expressions import detector, geometry
from impressions.models import registry
from impressions.schemas import AUS


def _stage(config: dict):
    """What the expression shard job builds from `config` (workflow_scripts/expression_shard.py): its
    backend and its per-clip cache key settings."""
    options = dict(config["expressions"])
    settings = detector.backend_settings(options)
    return detector.get_backend(options.pop("backend"), **options), settings


def test_au_linear_reads_clip_baseline_aus_by_default_and_population_stays_selectable(tmp_path):
    # the AU-linear families read the table the expression stage writes (no baseline of their own)
    assert {"au_linear", "au_linear_published"} <= set(registry.with_input("au_table"))
    config = defaults.fill({"expressions": {"device": "cpu"}})
    assert config["expressions"]["baseline"] == geometry.BASELINE == "clip"  # benchmarks/au_baseline.py
    default, default_key = _stage(config)
    population, population_key = _stage(
        defaults.fill({"expressions": {"device": "cpu", "baseline": "population"}})
    )
    assert (default.baseline, population.baseline) == ("clip", "population")

    # a steady smile: the default removes most of it, population keeps it (the choice is real)
    smile = face_template.TEMPLATE[:, :2].copy() * 100
    smile[[48, 54], 1] -= 8.0
    frames, ids = np.stack([smile] * 20), ["c"] * 20
    au12 = AUS.index("AU12")
    ours = geometry.geometric_aus(frames, ids)[:, au12]
    np.testing.assert_array_equal(ours, geometry.geometric_aus(frames, ids, default.baseline)[:, au12])
    kept = geometry.geometric_aus(frames, ids, population.baseline)[:, au12]
    assert kept.min() > 2.0 and ours.max() < 0.25 * kept.min()

    # switching the baseline changes each clip's expression cache key: cached AUs are recomputed
    (tmp_path / CACHE_FILE).write_text(json.dumps({"video": "abc"}))
    keys = [stage_key(tmp_path, settings) for settings in (default_key, population_key, dict(default_key))]
    assert keys[0] != keys[1] and keys[0] == keys[2]


def stage_key(clip_dir, settings):
    return stage_cache.stage_key(
        clip_dir,
        "expressions",
        shards.EXPRESSIONS_CACHE_VERSION,
        settings,
        tables=shards.EXPRESSIONS_CACHE_TABLES,
    )
