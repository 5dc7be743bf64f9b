"""File sources: CSV (any delimiter, quoted newlines, BOM, CRLF, declared encoding),
JSON / JSON Lines and Parquet, from a folder or glob, read in bounded chunks.

A file is read only if its name and sha256 are not yet in ``ingest_files`` for
the source; its bytes are archived (gzip) before reading, so a replay reads
the archived copy, not the original.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow.parquet as pq

from etl.errors import ConfigError, SourceError

FORMATS = ("csv", "json", "jsonl", "parquet")


def matching_files(pattern: str, base: Path) -> list[Path]:
    """Files of a folder (all of them) or a glob, in name order."""
    path = Path(pattern)
    if not path.is_absolute():
        path = base / path
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file())
    return sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())


def file_format(path: Path, declared: str | None) -> str:
    fmt = declared or {
        "csv": "csv",
        "tsv": "csv",
        "json": "json",
        "jsonl": "jsonl",
        "ndjson": "jsonl",
        "parquet": "parquet",
    }.get(path.name.split(".")[-2 if path.suffix == ".gz" else -1])
    if fmt not in FORMATS:
        raise ConfigError(f"{path}: cannot tell the format; set format: to one of {', '.join(FORMATS)}")
    return fmt


def _open(source: bytes | Path, name: str) -> BinaryIO:
    """A binary stream of the file's content, gunzipped on the fly for ``.gz`` names."""
    raw: BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    return gzip.GzipFile(fileobj=raw, mode="rb") if name.endswith(".gz") else raw


def read_chunks(
    source: bytes | Path,
    name: str,
    fmt: str,
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    chunk_rows: int = 50_000,
) -> Iterator[list[dict]]:
    """Records of one file (a path, or its bytes from the archive) as dicts of strings, chunk by chunk.

    CSV and JSON Lines stream (a ``.gz`` is decompressed as it is read, never
    whole in memory, and a damaged one is found on the way); a JSON document
    and Parquet are read whole, as their formats need.
    """
    try:
        with _open(source, name) as stream:
            if fmt == "csv":
                # utf-8-sig drops a byte-order mark; the C parser handles CRLF and quoted newlines.
                enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
                reader = pd.read_csv(
                    stream,
                    sep=delimiter,
                    encoding=enc,
                    dtype=str,
                    keep_default_na=False,
                    na_values=[""],
                    chunksize=chunk_rows,
                )
                for chunk in reader:
                    yield _records(chunk)
            elif fmt == "jsonl":
                batch = []
                for line in io.TextIOWrapper(stream, encoding=encoding):
                    if line.strip():
                        batch.append(json.loads(line))
                        if len(batch) >= chunk_rows:
                            yield batch
                            batch = []
                if batch:
                    yield batch
            elif fmt == "json":
                document = json.loads(stream.read().decode(encoding))
                records = (
                    document
                    if isinstance(document, list)
                    else next((v for v in document.values() if isinstance(v, list)), [document])
                )
                for start in range(0, len(records), chunk_rows):
                    yield records[start : start + chunk_rows]
            else:
                parquet = pq.ParquetFile(io.BytesIO(stream.read()))
                for batch in parquet.iter_batches(batch_size=chunk_rows):
                    yield _records(batch.to_pandas().astype("string"))
    except EOFError:
        raise SourceError(f"{name}: the gzip file is truncated; copy or download it again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise SourceError(f"{name}: corrupt gzip data ({exc}); copy or download it again") from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        raise SourceError(
            f"{name}: cannot read as {fmt} with encoding {encoding} "
            f"({' '.join(str(exc).split())[:200]}); check format/delimiter/encoding "
            "in sources.yml"
        ) from None


def _records(frame: pd.DataFrame) -> list[dict]:
    frame.columns = [str(c).strip() for c in frame.columns]
    return [{k: (None if pd.isna(v) else v) for k, v in rec.items()} for rec in frame.to_dict("records")]
