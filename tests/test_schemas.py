from pathlib import Path

from impressions import schemas
from impressions.data import shards


def test_readme_documents_every_table_column():
    readme = (Path(__file__).resolve().parents[1] / "docs" / "tables.md").read_text()
    assert schemas.markdown() in readme, "README's table section is stale: paste schemas.markdown()"


def test_expression_columns_are_named_exactly():
    columns = list(schemas.TABLES["expressions"])
    assert columns[2:19] == ["AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
                             "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45"]  # fmt: skip
    assert columns[19:] == ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]


def test_shard_of_depends_on_the_clip_alone():
    ids = [f"clip{i:04d}.000" for i in range(1000)]
    before = {c: shards.shard_of(c, 10) for c in ids}
    after = shards.assign([*ids, "-new.001"], 10)
    assert all(c in after[before[c]] for c in ids)  # adding a clip moves nobody
    assert sum(map(len, after.values())) == 1001
    assert min(map(len, after.values())) > 60  # spread evenly enough


def test_shard_of_is_crc32_of_the_utf8_id():
    # 0xCBF43926 is CRC-32's published check value (of "123456789"); a different hash, seed or
    # encoding moves clips to other shards, and with them every stored shard output
    assert shards.shard_of("123456789", 2**32) == 0xCBF43926
    assert shards.shard_of("123456789", 1000) == 0xCBF43926 % 1000 == 262
    assert shards.shard_of("-6otZ7M-Mro.003", 100) == 82
    assert shards.shard_of("é", 2**32) == 0x0E048D3E  # of UTF-8 bytes c3 a9 (Latin-1 e9: 0x0BD4B551)
