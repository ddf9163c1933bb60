"""The py-feat backend end to end, offline, through py-feat 2.1.5's real `Detectorv1`.

The weight files are built here in py-feat's real formats and shapes with random values
(tests/pyfeat_weights.py), so this proves the code path (loading, batching, column mapping, the AU45
fill, no network), not the values. Needs requirements-pyfeat.txt: skipped without it in `make test`;
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

try:
    P._import_pyfeat()
    MISSING = None
except P.PyFeatUnavailableError as error:
    MISSING = str(error)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    if MISSING:
        if os.environ.get("IMPRESSIONS_REQUIRE_PYFEAT"):
            pytest.fail(f"IMPRESSIONS_REQUIRE_PYFEAT is set but py-feat cannot load: {MISSING}")
        pytest.skip(
            f"py-feat extras not installed (pip install --no-deps -r requirements-pyfeat.txt): {MISSING}"
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
    monkeypatch.setattr(socket.socket, "connect_ex", lambda sock, address: refuse(sock, address) or 0)
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


def test_pyfeat_missing_weight_file_is_named(weights, tmp_path, no_network):
    import shutil

    partial = tmp_path / "weights"
    shutil.copytree(weights, partial)
    shutil.rmtree(partial / "models--py-feat--resmasknet")
    with pytest.raises(P.PyFeatUnavailableError, match="py-feat/resmasknet/config.json"):
        E.get_backend("pyfeat", device="cpu", pyfeat={"weights_dir": str(partial)})
