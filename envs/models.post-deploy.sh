#!/usr/bin/env bash
# The workflow's own package, without its dependencies (the env above pins what training needs).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pip install --no-deps "$here/.."
