"""The workflow's rule graph in a canonical DOT text (`make rulegraph`, docs/rulegraph.dot).

`snakemake --rulegraph` numbers its nodes and lists its edges in an order that changes from run to
run (set iteration), so the checked-in graph names each node by its rule and sorts nodes and edges:
the same workflow always gives the same text, and `tests/test_rulegraph.py` can tell when it is stale.

Usage: ``snakemake --rulegraph | python -m impressions.rulegraph > docs/rulegraph.dot``.
"""

from __future__ import annotations

import re
import sys

_NODE = re.compile(r'^\s*(\d+)\[label = "([^"]+)"(.*)\];\s*$')
_EDGE = re.compile(r"^\s*(\d+) -> (\d+)\s*$")


def canonical(dot: str) -> str:
    """`dot` (snakemake's rule graph) with nodes named by rule, nodes and edges sorted."""
    header, nodes, edges = [], {}, []
    for line in dot.splitlines():
        if match := _NODE.match(line):
            nodes[match[1]] = (match[2], match[3])
        elif match := _EDGE.match(line):
            edges.append((match[1], match[2]))
        elif line.strip() and line.strip() != "}" and not nodes:
            header.append(line.rstrip())
    if not nodes:
        raise ValueError("no rule graph in the input (expected the output of snakemake --rulegraph)")
    # Colours are snakemake's, spread by node number: keep them tied to the rule, sorted by name.
    hues = sorted(attrs for _, attrs in nodes.values())
    names = sorted(label for label, _ in nodes.values())
    lines = [*header]
    lines += [f'\t"{name}"[label = "{name}"{hue}];' for name, hue in zip(names, hues)]
    pairs = sorted({(nodes[a][0], nodes[b][0]) for a, b in edges})
    lines += [f'\t"{a}" -> "{b}"' for a, b in pairs]
    return "\n".join(lines) + "\n}\n"


def rules(dot: str) -> set[str]:
    """The rule names of a canonical graph."""
    return set(re.findall(r'^\t"([^"]+)"\[label', dot, flags=re.M))


if __name__ == "__main__":
    sys.stdout.write(canonical(sys.stdin.read()))
