"""The success summary of a run: counts, scores, seconds — mailed, or logged.

Built from what the warehouse recorded for the run (``ingest_audit`` and
``quality_scores``), so it says what was really committed, not what a task
believed. Sending is injected (``Sender``): the DAG passes one backed by the
Airflow SMTP connection; with no recipients configured the summary is logged,
so a laptop without mail still sees it in the task log.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from etl.run import events
from etl.settings import Settings
from etl.warehouse import connection as db

log = logging.getLogger(__name__)

#: send(recipients, subject, html_body)
Sender = Callable[[Sequence[str], str, str], None]


@dataclass
class RunReport:
    run_id: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    tables: list[dict] = field(default_factory=list)
    quality_overall: float | None = None
    seconds: float | None = None

    def subject(self, dag_id: str = "etl_pipeline") -> str:
        return f"[{dag_id}] run {self.run_id} succeeded: {self.rows_loaded:,} rows loaded"

    def text(self) -> str:
        quality = f"{self.quality_overall:.1f}" if self.quality_overall is not None else "not scored"
        seconds = f"{self.seconds:.1f} s" if self.seconds is not None else "unknown"
        lines = [
            f"run {self.run_id}: {self.rows_read:,} read, {self.rows_loaded:,} loaded, "
            f"{self.rows_quarantined:,} quarantined; quality {quality}; {seconds}"
        ]
        for t in self.tables:
            lines.append(
                f"  {t['table']:<22} read {t['rows_read']:>9,}  loaded {t['rows_loaded']:>9,}  "
                f"quarantined {t['rows_quarantined']:>7,}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def build_report(settings: Settings, run_id: str, seconds: float | None = None) -> RunReport:
    """What the warehouse holds about the run. ``seconds`` defaults to the audit's span."""
    report = RunReport(run_id, seconds=seconds)
    conn = db.connect(settings.database_url, settings.connect_timeout)
    try:
        with conn.cursor() as cur:
            cur.execute(
                """SELECT table_name, rows_read, rows_loaded, rows_quarantined
                             FROM ingest_audit WHERE run_id = %s ORDER BY audit_id""",
                (run_id,),
            )
            for table, read, loaded, quarantined in cur.fetchall():
                report.tables.append(
                    {
                        "table": table,
                        "rows_read": read,
                        "rows_loaded": loaded,
                        "rows_quarantined": quarantined,
                    }
                )
                report.rows_read += read
                report.rows_loaded += loaded
                report.rows_quarantined += quarantined
            if seconds is None:
                cur.execute(
                    """SELECT extract(epoch FROM max(finished_at) - min(started_at))
                                 FROM ingest_audit WHERE run_id = %s""",
                    (run_id,),
                )
                span = cur.fetchone()[0]
                report.seconds = float(span) if span is not None else None
            cur.execute("SELECT to_regclass('quality_scores') IS NOT NULL")
            if cur.fetchone()[0]:
                cur.execute(
                    """SELECT score FROM quality_scores WHERE run_id = %s
                                  AND table_name = '_overall' AND dimension = 'overall'""",
                    (run_id,),
                )
                row = cur.fetchone()
                report.quality_overall = float(row[0]) if row else None
    finally:
        conn.close()
    return report


def deliver(report: RunReport, recipients: Sequence[str], send: Sender | None = None) -> str:
    """Mail the summary to ``recipients``, or log it when there are none (or no sender)."""
    text = report.text()
    if not recipients or send is None:
        log.info("success summary (no recipients configured, logged only):\n%s", text)
        return "logged"
    send(list(recipients), report.subject(), f"<pre>{html.escape(text)}</pre>")
    log.info("success summary sent to %s:\n%s", ", ".join(recipients), text)
    return f"sent to {len(recipients)}"


@events.recorded("notify", events.notified)
def notify_stage(
    settings: Settings, run_id: str, send: Sender | None = None, seconds: float | None = None
) -> dict:
    """Build and deliver the success summary; returns a small dict (an XCom)."""
    report = build_report(settings, run_id, seconds)
    outcome = deliver(report, settings.notify_emails, send)
    return {
        "run_id": run_id,
        "delivery": outcome,
        "rows_loaded": report.rows_loaded,
        "rows_quarantined": report.rows_quarantined,
        "quality_overall": report.quality_overall,
        "seconds": report.seconds,
    }
