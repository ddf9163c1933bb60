"""One emotion -> AU codebook: every consumer reads the same table, and no second copy exists."""

from __future__ import annotations

import ast
from pathlib import Path

from impressions.expressions import au_maps, builtin, codebook
from impressions.schemas import AUS, EMOTIONS

PACKAGE = Path(__file__).resolve().parents[1] / "impressions"


def test_every_consumer_reads_the_one_codebook():
    assert au_maps.CODEBOOK is codebook.CODEBOOK
    assert builtin.EMOTION_PROTOTYPES is codebook.CODEBOOK


def test_codebook_is_the_emfacs_prototypes():
    book = codebook.CODEBOOK
    assert set(book) == set(EMOTIONS) and all(set(aus) <= set(AUS) for aus in book.values())
    assert book["happiness"] == ("AU06", "AU12") and book["sadness"] == ("AU01", "AU04", "AU15")
    assert book["disgust"] == ("AU09", "AU15") and book["neutral"] == ()


def _emotion_au_literals(tree: ast.AST) -> list[int]:
    """Lines of dict entries whose key is an emotion name and whose value lists AU names."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values):
            if not (isinstance(key, ast.Constant) and key.value in EMOTIONS):
                continue
            if isinstance(value, ast.Tuple | ast.List | ast.Set) and any(
                isinstance(e, ast.Constant) and e.value in AUS for e in value.elts
            ):
                lines.append(node.lineno)
    return lines


def test_no_second_copy_of_the_codebook_in_the_package():
    copies = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "codebook.py" and (lines := _emotion_au_literals(ast.parse(path.read_text())))
    }
    assert not copies, f"emotion -> AU tables outside impressions/expressions/codebook.py: {copies}"


def test_the_scan_finds_a_copy():
    assert _emotion_au_literals(ast.parse('X = {"disgust": ("AU09", "AU10")}')) == [1]
