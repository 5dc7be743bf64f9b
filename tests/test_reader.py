"""The chunked reader gives what ingest.read gives, a chunk at a time."""

import gzip

import pandas as pd

from etl import ingest
from etl.olist import REVIEWS, ROW_NUMBER, SourceFile
from etl.transform.reader import read_chunks

HEADER = (
    "review_id,order_id,review_score,review_comment_title,review_comment_message,"
    "review_creation_date,review_answer_timestamp"
)


def test_chunks_match_ingest_read_with_bom_quoted_newlines_and_gzip(tmp_path):
    rows = [
        f'{i:032x},{"a" * 32},5,,"line one\r\nline ""two""",2018-01-01 00:00:00,   ' for i in range(1, 2001)
    ]
    rows[3] = f"{4:032x},{'a' * 32},4,  Ótimo  ,,2018-01-02 00:00:00,"
    text = "\ufeff" + HEADER + "\n" + "\n".join(rows) + "\n"
    path = tmp_path / "olist_order_reviews_dataset.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        fh.write(text)
    expected = ingest.read(SourceFile(REVIEWS, path))
    chunks = list(read_chunks(path, REVIEWS, chunk_rows=300, block_bytes=16 << 10))
    assert len(chunks) > 1
    got = pd.concat(chunks, ignore_index=True)
    assert list(got[ROW_NUMBER]) == list(expected[ROW_NUMBER]) == list(range(2, 2002))
    for column in REVIEWS.source_columns:
        assert got[column].fillna("<NA>").tolist() == expected[column].fillna("<NA>").tolist(), column
    assert got.loc[0, "review_comment_message"] == 'line one\r\nline "two"'
