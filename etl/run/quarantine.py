"""``etl quarantine retry``: re-run a run's rejected rows after a person fixed a lookup.

(Reading them, ``etl quarantine list|show|export``, is ``etl.publish.quarantine``.)

Nothing is ever deleted from ``quarantine``. ``retry --run R`` re-runs the
still-open rows of run R through the same transform with today's lookups
(``data/lookups/*.json``) and the warehouse as reference, in one transaction:

* rows that now pass are loaded; their quarantine rows get
  ``retried_by_run`` = the retry run and ``retry_outcome = 'loaded'``;
* rows that still fail are marked ``'quarantined again'`` and quarantined anew
  under the retry run, with the rule they break now;
* the retry run gets its ``ingest_audit`` rows: read = loaded + quarantined.

A row whose natural key is already in the warehouse stays a DUPLICATE.
Geolocation points are not retried (the table holds per-prefix aggregates).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from psycopg2 import sql
from psycopg2.extras import execute_values

from etl import lookups as lk
from etl.errors import ConfigError
from etl.load import audit, merge
from etl.olist import ALL_TABLES, CATEGORY_TRANSLATION, REFERENCED, ROW_NUMBER
from etl.publish.quarantine import connect_current, open_rows_where
from etl.settings import Settings
from etl.transform import checks as ck
from etl.transform.columns import KeySet, parse_hex_ids
from etl.transform.roles import prepare_clean
from etl.transform.table import TableState, transform_table
from etl.warehouse import keys

SPECS = {spec.name: spec for spec in ALL_TABLES}
#: Aggregated tables hold one row per group, not the source rows: nothing to retry into.
_NOT_RETRIED = {spec.name for spec in ALL_TABLES if spec.aggregated}


@dataclass
class RetryResult:
    run_id: str
    retry_run_id: str
    tables: dict[str, dict] = field(default_factory=dict)  # table -> read/loaded/quarantined

    def render(self) -> str:
        if not self.tables:
            return f"run {self.run_id}: no open quarantined rows to retry"
        lines = [f"retry of run {self.run_id} as run {self.retry_run_id}:"]
        for table, c in self.tables.items():
            lines.append(
                f"  {table:<20} retried {c['rows_read']:>7,}  loaded {c['rows_loaded']:>7,}  "
                f"still quarantined {c['rows_quarantined']:>7,}"
            )
        return "\n".join(lines)


def retry(settings: Settings, run_id: str, table: str | None = None) -> RetryResult:
    """Re-run the open quarantined rows of ``run_id`` and load those that pass now."""
    if table and table not in SPECS:
        raise ConfigError(f"unknown table {table!r} (one of {', '.join(SPECS)})")
    retry_run = f"{run_id}-retry-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    result = RetryResult(run_id, retry_run)
    config = ck.RuleConfig.from_settings(settings, lk.load_lookups(settings.lookup_dir))
    conn = connect_current(settings)
    try:
        where, params = open_rows_where(run_id, table)
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("""SELECT quarantine_id, table_name, source_file, row_number, raw_record::text
                                     FROM quarantine WHERE {} ORDER BY quarantine_id""").format(where),
                params,
            )
            pending = pd.DataFrame(
                cur.fetchall(),
                columns=["quarantine_id", "table_name", "source_file", "row_number", "raw_record"],
            )
        pending = pending[~pending["table_name"].isin(_NOT_RETRIED)]
        if pending.empty:
            return result
        tables = [s.name for s in ALL_TABLES if s.name in set(pending["table_name"])]
        audit.open_run(conn, retry_run, [audit.AuditEntry(t, "retry:" + run_id) for t in tables])
        with conn, conn.cursor() as cur:
            references: dict = {}
            translation = _translation(cur)
            if translation is not None:
                references[ck.TRANSLATION] = translation
                references[ck.TRANSLATED_NAMES] = pd.Index(translation["category_name"])
            for name in tables:
                counts = _retry_table(
                    cur,
                    settings,
                    config,
                    run_id,
                    retry_run,
                    SPECS[name],
                    pending[pending["table_name"] == name],
                    references,
                )
                audit.close_table(cur, retry_run, name, **counts)
                result.tables[name] = counts
        return result
    finally:
        conn.close()


def _translation(cur) -> pd.DataFrame | None:
    """The stored category translation (products are checked and translated against it)."""
    columns = list(CATEGORY_TRANSLATION.reference_columns)
    cur.execute(
        sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(CATEGORY_TRANSLATION.name)
        )
    )
    rows_ = cur.fetchall()
    return pd.DataFrame(rows_, columns=columns) if rows_ else None


def _retry_table(
    cur,
    settings: Settings,
    config: ck.RuleConfig,
    run_id: str,
    retry_run: str,
    spec,
    pending: pd.DataFrame,
    references: dict,
) -> dict:
    records = [json.loads(r) for r in pending["raw_record"]]
    raw = pd.DataFrame(
        {c: pd.Series([rec.get(c) for rec in records], dtype="string") for c in spec.source_columns}
    )
    raw[ROW_NUMBER] = pending["row_number"].to_numpy(dtype=np.int64)
    res = transform_table(
        spec,
        raw,
        settings.source_timezone,
        references,
        keys.foreign_key_lookup(cur.connection),
        config,
        TableState(),
    )
    clean = res.clean
    already = keys.existing_keys(cur, spec.name, spec.key, clean)
    if len(clean):
        prepare_clean(spec, clean, settings.source_timezone)
    loadable = clean.loc[~already].reset_index(drop=True)
    if len(loadable):
        merge.load_table(cur, spec.name, loadable)
    if spec.name in REFERENCED:
        known = references.setdefault(spec.name, KeySet())
        known.add(parse_hex_ids(loadable[REFERENCED[spec.name]]).hashes)
    loaded_rows = set(res.row_numbers[~already].tolist())
    again = res.quarantined
    if already.any():
        again = pd.concat(
            [
                again,
                pd.DataFrame(
                    {
                        "row_number": res.row_numbers[already],
                        "category": ck.DUPLICATE,
                        "rule": "unique:" + "+".join(spec.key),
                        "detail": "the same " + ", ".join(spec.key) + " is already in the warehouse",
                        "raw_record": raw.set_index(ROW_NUMBER)
                        .loc[res.row_numbers[already], spec.source_columns]
                        .astype(object)
                        .where(lambda f: f.notna(), None)
                        .apply(lambda r: json.dumps(r.to_dict(), ensure_ascii=False), axis=1)
                        .to_numpy(),
                    }
                ),
            ],
            ignore_index=True,
        )
    source_file = pending["source_file"].iloc[0]
    if len(again):
        merge.insert_quarantine(cur, retry_run, source_file, spec.name, again)
    outcome = np.where(pending["row_number"].isin(loaded_rows), "loaded", "quarantined again")
    execute_values(
        cur,
        """UPDATE quarantine AS q SET retried_by_run = v.run, retry_outcome = v.outcome,
                                                      retried_at = now()
                             FROM (VALUES %s) AS v(id, run, outcome) WHERE q.quarantine_id = v.id""",
        [(int(q), retry_run, o) for o, q in zip(outcome, pending["quarantine_id"])],
    )
    return {"rows_read": len(pending), "rows_loaded": len(loaded_rows), "rows_quarantined": len(again)}
