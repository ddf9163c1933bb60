"""Registry entries added from outside the package, named by an environment variable.

The model registry (`IMPRESSIONS_EXTRA_FAMILIES`) and the analysis registry
(`IMPRESSIONS_EXTRA_ANALYSES`) each read a comma-separated list of importable modules and add the
entries of a sequence each module holds, refusing one that redefines a built-in entry.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import MutableMapping


def add_entries(table: MutableMapping, variable: str, attribute: str, what: str) -> None:
    """Add to `table` (name -> entry) the entries `module.<attribute>` of each module `variable` names."""
    for module in filter(None, (m.strip() for m in os.environ.get(variable, "").split(","))):
        for entry in getattr(importlib.import_module(module), attribute):
            if entry.name in table:
                raise ValueError(f"{variable}: {module} redefines {what} {entry.name!r}")
            table[entry.name] = entry
