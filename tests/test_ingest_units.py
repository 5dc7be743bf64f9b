"""Rate limiter, circuit breaker, watermarks, file sources and config, on a fake clock."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest
import yaml

from etl.errors import ConfigError
from etl.ingest import config, files
from etl.ingest.http import parse_retry_after
from etl.ingest.resilience import CircuitBreaker, CircuitOpenError, FakeClock, TokenBucket
from etl.ingest.state import Watermark, advance
from etl.run import replay
from etl.run.pipeline import ingest_stage
from etl.run.stages import run_pipeline
from tests.conftest import query, scalar


def max_in_any_window(stamps: list[float], window: float) -> int:
    """Most events in any half-open window [t, t + window) starting at an event
    (less a nanosecond-scale allowance for float sums of the spacing)."""
    best, j = 0, 0
    for i, start in enumerate(stamps):
        while j < len(stamps) and stamps[j] < start + window * (1 - 1e-9):
            j += 1
        best = max(best, j - i)
    return best


@pytest.mark.parametrize("per_minute", [100, 7])
def test_token_bucket_never_exceeds_the_limit_in_any_window(per_minute):
    clock = FakeClock()
    bucket = TokenBucket(per_minute, window=60, clock=clock)
    stamps = []
    for _ in range(per_minute * 3 + 5):
        bucket.acquire()
        stamps.append(clock.now())
    assert max_in_any_window(stamps, 60) == per_minute
    assert stamps[-1] == pytest.approx((len(stamps) - 1) * 60 / per_minute)  # and no slower


def test_http_client_rate_limit_scaled_down(tmp_path):
    """100 requests/min scaled to a 0.5 s "minute": no window holds more than 100 requests."""
    from etl.ingest.http import HttpClient, HttpPolicy
    from etl.ingest.resilience import Clock
    from tests.vendor_server import STRIPE_KEY, VendorServer

    with VendorServer(n=3) as server:
        client = HttpClient(
            "stripe",
            HttpPolicy(rate_per_minute=100, rate_window=0.5),
            Clock(),
            {"Authorization": f"Bearer {STRIPE_KEY}"},
        )
        for _ in range(130):
            client.get_json(f"{server.url}/v1/charges", {"limit": 1})
    assert max_in_any_window(client.request_times, 0.5) <= 100
    assert len(client.request_times) == 130


def test_circuit_breaker_opens_half_opens_and_closes():
    clock = FakeClock()
    breaker = CircuitBreaker("shop", failure_threshold=3, cooldown=60, clock=clock)
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure("HTTP 503")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError, match="circuit open after 3 consecutive failures"):
        breaker.before_call()
    clock.sleep(60)
    breaker.before_call()  # half-open: one trial goes through
    assert breaker.state == "half-open"
    breaker.record_failure("HTTP 503")  # trial failed -> open again
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.sleep(60)
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.failures == 0


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_watermark_boundary_neither_loses_nor_doubles():
    mark = advance(
        None,
        "orders",
        [("2024-01-01T00:00:01Z", "a"), ("2024-01-01T00:00:02Z", "b"), ("2024-01-01T00:00:02Z", "c")],
    )
    assert mark == Watermark("orders", "2024-01-01T00:00:02Z", ["b", "c"])
    assert not mark.is_new("2024-01-01T00:00:02Z", "b")
    assert mark.is_new("2024-01-01T00:00:02Z", "d")  # same second, not seen: new
    assert mark.is_new("2024-01-01T00:00:03Z", "b")  # updated later: new
    assert not mark.is_new("2024-01-01T00:00:01Z", "z")


def test_config_rejects_unknown_kinds_and_duplicates(tmp_path):
    path = tmp_path / "s.yml"
    path.write_text(yaml.safe_dump({"sources": [{"name": "x", "kind": "ftp"}]}))
    with pytest.raises(ConfigError, match="unknown kind 'ftp'"):
        config.load(path)
    path.write_text(yaml.safe_dump({"sources": [{"name": "x", "kind": "files"}] * 2}))
    with pytest.raises(ConfigError, match="listed twice"):
        config.load(path)


def test_airflow_connection_from_its_environment_variable(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", "postgresql://reader:s%40cret@db.example:5432/shop")
    source = config.SourceConfig(
        "s",
        "postgres",
        True,
        {"url": {"airflow_conn": "shop_db", "field": "uri"}, "pw": {"airflow_conn": "shop_db"}},
    )
    assert source.option("pw") == "s@cret"
    assert source.option("url").startswith("postgresql://reader")


def test_csv_latin1_semicolon_bom_crlf_quoted_newline():
    text = (
        "order_id;payment_sequential;payment_type;payment_installments;payment_value\r\n"
        'a;1;boleto;1;"10,5"\r\nb;1;"credit\ncard";2;3\r\n'
    )
    rows = [
        r
        for chunk in files.read_chunks(
            text.encode("latin-1"), "p.csv", "csv", delimiter=";", encoding="latin-1", chunk_rows=1
        )
        for r in chunk
    ]
    assert [r["order_id"] for r in rows] == ["a", "b"] and rows[1]["payment_type"] == "credit\ncard"
    bom = b"\xef\xbb\xbf" + text.encode()
    first = next(files.read_chunks(bom, "p.csv", "csv", delimiter=";"))
    assert "order_id" in first[0]


def test_jsonl_json_parquet_and_gz(tmp_path):
    records = [{"order_id": "x", "payment_value": "1.5"}, {"order_id": "y", "payment_value": None}]
    jsonl = b"\n".join(pd.Series(records).map(lambda r: pd.io.json.ujson_dumps(r)).str.encode("utf-8"))
    assert [
        r["order_id"] for c in files.read_chunks(gzip.compress(jsonl), "a.jsonl.gz", "jsonl") for r in c
    ] == ["x", "y"]
    assert next(files.read_chunks(b'{"orders": [{"order_id": "z"}]}', "a.json", "json")) == [
        {"order_id": "z"}
    ]
    pd.DataFrame(records).to_parquet(tmp_path / "a.parquet")
    rows = next(files.read_chunks((tmp_path / "a.parquet").read_bytes(), "a.parquet", "parquet"))
    assert rows[0]["order_id"] == "x" and rows[1]["payment_value"] is None
    assert files.file_format(tmp_path / "a.ndjson.gz", None) == "jsonl"


def test_file_source_reads_only_new_files(fresh_db, tmp_path):
    """A daily drop folder: a file is read once by name+checksum; a changed file is read again."""
    drop = tmp_path / "drop"
    drop.mkdir()
    header = "customer_id;customer_unique_id;customer_zip_code_prefix;customer_city;customer_state\r\n"
    (drop / "day1.csv").write_bytes((header + "c1;u1;1001;S\xe3o Paulo;SP\r\n").encode("latin-1"))
    path = tmp_path / "sources.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "drops",
                        "kind": "files",
                        "path": str(drop / "*.csv"),
                        "delimiter": ";",
                        "encoding": "latin-1",
                        "table": "dim_customers",
                        "hash_ids": ["customer_id", "customer_unique_id"],
                    }
                ]
            }
        )
    )
    settings = fresh_db.with_overrides(sources_file=path)
    first = replay.ingest_and_load(settings, "f1")
    assert first["sources"][0]["files_read"] == 1
    # Read as Latin-1 correctly; the transform then folds city names (docs/data_quality.md).
    assert scalar(settings, "SELECT city FROM dim_customers") == "sao paulo"
    second = replay.ingest_and_load(settings, "f2")
    assert second["sources"][0]["files_read"] == 0 and second["sources"][0]["files_already_loaded"] == 1
    (drop / "day2.csv").write_bytes((header + "c2;u2;1002;Rio;RJ\r\n").encode("latin-1"))
    third = replay.ingest_and_load(settings, "f3")
    assert third["sources"][0]["files_read"] == 1
    assert scalar(settings, "SELECT count(*) FROM dim_customers") == 2
    assert query(settings, "SELECT count(*) FROM ingest_files WHERE source = 'drops'") == [(2,)]


def test_olist_folder_second_run_reads_no_file(fresh_db, sample_dir):
    run_pipeline(fresh_db, data_dir=sample_dir, run_id="olist-1")
    manifest = ingest_stage(fresh_db, "olist-2", sample_dir)
    assert len(manifest["files_already_loaded"]) == 9
    assert all(not paths for paths in manifest["inputs"].values())
    assert scalar(fresh_db, "SELECT count(*) FROM ingest_files WHERE source = 'olist'") == 9
