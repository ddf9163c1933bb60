"""The AU neutral baseline the AU-linear families get by default, and the other one on request."""

import json

import numpy as np

from impressions import face_template
from impressions.data import defaults, shards, stage_cache
from impressions.data.preprocess_shard import CACHE_FILE
from impressions.expressions import detector, geometry
from impressions.models import registry
from impressions.schemas import AUS, EMOTIONS


def _stage(config: dict):
    """What the expression shard job builds from `config` (workflow_scripts/expression_shard.py): its
    backend and its per-clip cache key settings."""
    options = dict(config["expressions"])
    settings = detector.backend_settings(options)
    return detector.get_backend(options.pop("backend"), **options), settings


def stage_key(clip_dir, settings):
    return stage_cache.stage_key(
        clip_dir,
        "expressions",
        shards.EXPRESSIONS_CACHE_VERSION,
        settings,
        tables=shards.EXPRESSIONS_CACHE_TABLES,
    )


def test_au_linear_reads_population_baseline_aus_by_default_and_clip_stays_selectable(tmp_path):
    # the AU-linear families read the table the expression stage writes (no baseline of their own)
    assert {"au_linear", "au_linear_published"} <= set(registry.with_input("au_table"))
    config = defaults.fill({"expressions": {"device": "cpu"}})
    # chosen by benchmarks/au_baseline.py; the schema is its one home
    assert config["expressions"]["baseline"] == geometry.BASELINE == "population"
    default, default_key = _stage(config)
    other, other_key = _stage(defaults.fill({"expressions": {"device": "cpu", "baseline": "clip"}}))
    assert (default.baseline, other.baseline) == ("population", "clip")

    # a smile held all clip by narrow eyes that blink once: the default keeps the smile, clip removes
    # most of it; the blink is read against the clip's own open eye under both
    smile = face_template.TEMPLATE[:, :2].copy() * 100
    smile[[48, 54], 1] -= 8.0
    smile[[37, 38, 43, 44], 1] += 1.0  # upper lids lower than the template's: narrower eyes
    blink = smile.copy()
    blink[[37, 38, 43, 44], 1] += 3.0
    frames, ids = np.stack([smile] * 19 + [blink]), ["c"] * 20
    crops = np.random.default_rng(0).integers(0, 255, (len(frames), 224, 224, 3), dtype=np.uint8)
    ours, own = (backend.predict(crops, frames * 0.5 + 112, ids) for backend in (default, other))
    np.testing.assert_allclose(ours.select(AUS).to_numpy(), geometry.geometric_aus(frames, ids), atol=1e-4)
    assert ours["AU12"].min() > 2.0 and own["AU12"].max() < 0.25 * ours["AU12"].min()
    np.testing.assert_allclose(ours["AU45"], own["AU45"])
    assert ours["AU45"][:-1].max() < 0.2 < 1.0 < ours["AU45"][-1]
    # the emotions fuse clip-baseline AUs under either setting (expressions/builtin.py)
    np.testing.assert_array_equal(ours.select(EMOTIONS).to_numpy(), own.select(EMOTIONS).to_numpy())

    # switching the baseline changes each clip's expression cache key: cached AUs are recomputed
    (tmp_path / CACHE_FILE).write_text(json.dumps({"video": "abc"}))
    keys = [stage_key(tmp_path, settings) for settings in (default_key, other_key, dict(default_key))]
    assert keys[0] != keys[1] and keys[0] == keys[2]
