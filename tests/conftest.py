import sys
from pathlib import Path

import pytest

from impressions import testing

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helpers: workflow, model_data

SHARED_FI = Path(__file__).resolve().parents[2] / "shared" / "fi_annotations"


@pytest.fixture(scope="session")
def bad_media(tmp_path_factory) -> dict[str, Path]:
    """Every kind of bad input plus awkwardly named good clips (built once per session)."""
    return testing.bad_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def fi_annotations() -> Path:
    """The real First Impressions annotation pickles, when this checkout has them beside it."""
    if not (SHARED_FI / "annotation_training.pkl").is_file():
        pytest.skip(f"real FI annotations not found at {SHARED_FI}")
    return SHARED_FI
