"""The py-feat backend end to end, offline, through py-feat 2.1.5's real `Detectorv1`.

The weight files are built here in py-feat's real formats and shapes with random values
(tests/pyfeat_weights.py), so this proves the code path (loading, batching, column mapping, the AU45
fill, no network), not the values. Only the face detector's box and the landmark net's output are
set: one centred face and a mean-face layout, so py-feat's alignment, HOG and face masks run on a
plausible face. One test calls the backend in process, one runs the workflow's expression stage on
demo clips with snakemake. Needs requirements-pyfeat.txt: skipped without it in `make test`;
`make test-all` sets IMPRESSIONS_REQUIRE_PYFEAT=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from impressions.expressions import detector as E
from impressions.expressions import pyfeat_adapter as P
from impressions.expressions.geometry import geometric_aus
from impressions.schemas import AUS, EMOTIONS

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    # imported here, not at collection: `make test` deselects this file and should not load py-feat
    try:
        P._import_pyfeat()
    except P.PyFeatUnavailableError as error:
        if os.environ.get("IMPRESSIONS_REQUIRE_PYFEAT"):
            pytest.fail(f"IMPRESSIONS_REQUIRE_PYFEAT is set but py-feat cannot load: {error}")
        pytest.skip(
            f"py-feat extras not installed (pip install --no-deps -r requirements-pyfeat.txt): {error}"
        )
    import pyfeat_weights

    return pyfeat_weights.write_weights(tmp_path_factory.mktemp("pyfeat-weights"))


@pytest.fixture(scope="module")
def face():
    """The aligned crop and landmarks of a real face (py-feat's test still), as the face stage makes them."""
    from PIL import Image

    from impressions import media
    from impressions.data.faces import FaceDetector

    image = np.asarray(Image.open(media.pyfeat_test_media("single_face.jpg")).convert("RGB"))
    found = FaceDetector(upsample=1).detect(image)
    assert found.found
    return found.crop, found.landmarks_aligned


@pytest.fixture
def no_network(monkeypatch):
    """HF_HUB_OFFLINE=1, and the test fails if anything opened an internet socket (a download tried).

    Guarded at the socket, not in huggingface_hub: offline, the hub still calls its metadata
    function and falls back to the cache when its offline adapter refuses, so patching that call
    would fail legitimate cache reads. A refused connection is swallowed by that fallback too, hence
    the record checked after the test.
    """
    import socket

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tried = []
    connect = socket.socket.connect

    def refuse(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            tried.append(address)
            raise OSError(f"test: no network ({address})")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield
    assert not tried, f"something tried the network: {tried}"


def test_pyfeat_backend_runs_detectorv1_offline(weights, no_network, face):
    backend = E.get_backend("pyfeat", device="cpu", batch_size=2, pyfeat={"weights_dir": str(weights)})
    crop, landmarks = face
    crops, marks, ids = np.stack([crop] * 3), np.stack([landmarks] * 3), ["a", "a", "b"]  # 2 batches
    table = backend.predict(crops, marks, ids)
    assert table.columns == [*AUS, *EMOTIONS] and table.height == 3
    # provenance: py-feat gives 16 AUs and the 7 emotions, our landmark geometry gives AU45
    sources = backend.column_sources
    assert {c for c, s in sources.items() if s != "py-feat"} == {"AU45"}
    assert set(sources) == set(table.columns)
    assert E.SOURCES["pyfeat"]["aus"].startswith("py-feat xgb") and "AU45" in E.SOURCES["pyfeat"]["aus"]
    expected_au45 = geometric_aus(marks, ids, backend.baseline)[:, AUS.index("AU45")]
    np.testing.assert_allclose(table["AU45"].to_numpy(), expected_au45, rtol=1e-6)
    from_pyfeat = table.select([c for c, s in sources.items() if s == "py-feat"]).to_numpy()
    assert np.isfinite(from_pyfeat).all()  # py-feat found a face in every crop and scored it
    aus = table.select([c for c in AUS if c != "AU45"]).to_numpy()
    assert ((aus >= 0) & (aus <= 5)).all()  # xgb probabilities x 5
    np.testing.assert_allclose(table.select(list(EMOTIONS)).to_numpy().sum(axis=1), 1.0, atol=1e-4)
    # column mapping: each of our columns is py-feat's column of the same name (AUs x 5), frame by frame
    import torch

    images = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).float()
    with P._hub_offline():
        raw = backend.detector.detect(images, data_type="tensor", batch_size=3, progress_bar=False)
    assert list(raw["frame"]) == [0, 1, 2]  # one face per crop
    for column in P.PYFEAT_AUS:
        np.testing.assert_allclose(table[column].to_numpy(), 5 * raw[column].to_numpy(), rtol=1e-5)
    for column in EMOTIONS:
        np.testing.assert_allclose(table[column].to_numpy(), raw[column].to_numpy(), rtol=1e-5)


def test_hub_offline_replaces_a_session_made_online(weights, monkeypatch):
    """A hub session made before the backend's offline block (online adapter) is not reused in it."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _http, get_session, reset_sessions

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online, whatever the shell says
    reset_sessions()
    assert not isinstance(get_session().get_adapter("https://huggingface.co"), _http.OfflineAdapter)
    with P._hub_offline():
        assert isinstance(get_session().get_adapter("https://huggingface.co"), _http.OfflineAdapter)
    assert not isinstance(get_session().get_adapter("https://huggingface.co"), _http.OfflineAdapter)


def test_pyfeat_missing_weight_file_is_named(weights, tmp_path, no_network):
    import shutil

    partial = tmp_path / "weights"
    shutil.copytree(weights, partial)
    shutil.rmtree(partial / "models--py-feat--resmasknet")
    with pytest.raises(P.PyFeatUnavailableError, match="py-feat/resmasknet/config.json"):
        E.get_backend("pyfeat", device="cpu", pyfeat={"weights_dir": str(partial)})


# Four demo clips: a cut of the Wolfgang video, one of single_face.mp4, a posed still, and a clip
# without a face (no expression rows, a QC row with 0 frames scored).
DEMO_SOURCES = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "0-f15-hao-ph.jpg", "no_face.mp4")


@pytest.fixture
def proxy_log(monkeypatch):
    """Point every HTTP(S) proxy variable at a local listener that records each connection, so a
    download tried anywhere in a subprocess (hub, urllib, requests) is seen, not just refused."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    seen = []

    def serve():
        while True:
            try:
                connection, peer = server.accept()
            except OSError:  # closed at teardown
                return
            seen.append(connection.recv(200).decode(errors="replace"))
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield seen
    server.close()


@pytest.mark.workflow
def test_workflow_expression_stage_with_pyfeat(weights, demo_root, proxy_log, tmp_path, monkeypatch):
    """The workflow's expression stage on demo clips through Detectorv1: all 17 AUs and 7 emotions,
    16 AUs and the emotions from py-feat, AU45 from the builtin landmark geometry."""
    import shutil
    import subprocess
    import sys

    import polars as pl
    from workflow import run, write_config

    from impressions.data import demo
    from impressions.testing import write_fi_annotations

    # the guard sees a request when one is made (else an empty log below would prove nothing)
    probe = "import urllib.request as u\ntry: u.urlopen('https://huggingface.co', timeout=5)\n"
    probe += "except OSError: pass"
    subprocess.run([sys.executable, "-c", probe], check=True)
    assert len(proxy_log) == 1 and "huggingface.co" in proxy_log.pop()
    # HF_HUB_OFFLINE is left unset on purpose: the backend must keep the hub offline by itself
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    clips = [next(c for c in demo.demo_clips() if c.source == source) for source in DEMO_SOURCES]
    root = tmp_path / "fi"
    root.mkdir()
    for clip in clips:
        shutil.copy(demo_root / clip.relpath, root / f"{clip.clip_id}.mp4")
    ids = [c.clip_id for c in clips]
    write_fi_annotations(root, {"train": ids[:2], "val": ids[2:3], "test": ids[3:]})
    work = tmp_path / "work"
    work.mkdir()
    expressions = {
        "backend": "pyfeat",
        "device": "cpu",
        "batch_size": 3,
        "pyfeat": {"weights_dir": str(weights)},
    }
    # 224 px crops: the synthetic face detector finds its one face there (tests/pyfeat_weights.py)
    write_config(work, data_root=str(root), results_dir="out", expressions=expressions, faces={"size": 224})
    run(work, "--", "out/tables/expressions.parquet", "out/tables/faces.parquet")
    assert proxy_log == [], f"the workflow tried the network: {proxy_log}"

    tables = work / "out" / "tables"
    table = pl.read_parquet(tables / "expressions.parquet")
    assert table.columns == ["clip_id", "frame_index", *AUS, *EMOTIONS]
    faces = (
        pl.read_parquet(tables / "faces.parquet").filter("has_face", "success").sort("clip_id", "frame_index")
    )
    scored = sorted(set(faces["clip_id"]))
    assert len(scored) == 3 and ids[3] not in scored  # the no-face clip has no rows
    assert (
        table.select("clip_id", "frame_index")
        .sort("clip_id", "frame_index")
        .equals(faces.select("clip_id", "frame_index"))
    )
    assert table.select([*AUS, *EMOTIONS]).null_count().sum_horizontal().item() == 0
    assert {table.schema[c] for c in (*AUS, *EMOTIONS)} == {pl.Float32}
    values = table.sort("clip_id", "frame_index")
    assert np.isfinite(values.select([*AUS, *EMOTIONS]).to_numpy()).all()  # py-feat found every face

    # which column came from where: AU45 is the builtin geometry of the face stage's landmarks,
    # the other 16 AUs are not (py-feat's xgb probabilities x 5), the emotions are a softmax
    marks = np.asarray(faces["landmarks_aligned"].to_list(), np.float32).reshape(-1, 68, 2)
    geometry = geometric_aus(marks, faces["clip_id"].to_list(), "clip")
    np.testing.assert_allclose(values["AU45"].to_numpy(), geometry[:, AUS.index("AU45")], atol=1e-5)
    from_pyfeat = values.select(list(P.PYFEAT_AUS)).to_numpy()
    assert ((from_pyfeat >= 0) & (from_pyfeat <= 5)).all()
    assert not np.allclose(from_pyfeat, np.delete(geometry, AUS.index("AU45"), axis=1), atol=1e-3)
    np.testing.assert_allclose(values.select(list(EMOTIONS)).to_numpy().sum(axis=1), 1.0, atol=1e-4)
    assert {c for c, s in P.PyFeatBackend.column_sources.items() if s != "py-feat"} == {"AU45"}

    # the provenance the workflow writes beside every clip
    qc = {r["clip_id"]: r for r in pl.read_parquet(tables / "expression_qc.parquet").to_dicts()}
    assert set(qc) == set(ids)
    for cid, row in qc.items():
        assert row["backend"] == "pyfeat" and row["reason"] == ""
        assert row["au_source"] == "py-feat xgb (AU45: builtin landmark geometry)"
        assert row["emotion_source"] == "py-feat resmasknet"
        assert row["frames_scored"] == (faces["clip_id"] == cid).sum()
