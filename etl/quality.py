"""Data quality scores: eight dimensions per table and for the run, 0-100.

Each dimension's score is the share of checked units that pass:
``100 * (1 - failed / checked)``. Units are cells for completeness (required
fields) and rows for the other seven; what each check counts is defined in
docs/data_quality.md and counted by ``etl.transform`` into a ``Tally``. A table's
``overall`` is the mean of its dimensions that checked something; the run's
scores (``table_name = '_overall'``) pool the counts of all tables.

Scores are written to ``quality_scores`` (the contract with the Airflow
validate task) right after the transform, in a transaction of their own, so a
run that fails its quality gate still leaves its scores for dashboards.
``threshold_violations`` turns scores below target into sentences people act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg2.extensions
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg2.extras import execute_values

from etl import binary_copy
from etl.errors import EtlError

#: The eight quality dimensions every check counts towards (docs/data_quality.md).
DIMENSIONS = (
    "completeness",
    "validity",
    "consistency",
    "timeliness",
    "uniqueness",
    "accuracy",
    "conformity",
    "integrity",
)


@dataclass
class Tally:
    """Counts the scores are computed from: per dimension (checked, failed) units."""

    checked: dict[str, int] = field(default_factory=lambda: {d: 0 for d in DIMENSIONS})
    failed: dict[str, int] = field(default_factory=lambda: {d: 0 for d in DIMENSIONS})
    cells: int = 0
    null_cells: int = 0

    def add(self, other: Tally) -> Tally:
        for d in DIMENSIONS:
            self.checked[d] += other.checked[d]
            self.failed[d] += other.failed[d]
        self.cells += other.cells
        self.null_cells += other.null_cells
        return self

    def to_dict(self) -> dict:
        return {
            "checked": dict(self.checked),
            "failed": dict(self.failed),
            "cells": self.cells,
            "null_cells": self.null_cells,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Tally:
        return cls(dict(d["checked"]), dict(d["failed"]), d["cells"], d["null_cells"])


OVERALL_TABLE = "_overall"
OVERALL = "overall"
METRICS = ("null_pct", "duplicate_pct")
_METRIC_WORDS = {"null_pct": "null cells", "duplicate_pct": "duplicate rows"}


class QualityGateError(EtlError):
    """The run's data quality is below its targets; the message lists every miss."""

    exit_code = 3


@dataclass(frozen=True)
class Score:
    table: str
    dimension: str  # one of DIMENSIONS or 'overall'
    score: float  # 0-100, two decimals
    rows_checked: int  # units checked (cells for completeness)
    rows_failed: int
    target: float | None = None


@dataclass(frozen=True)
class Metric:
    table: str
    metric: str  # null_pct | duplicate_pct
    value: float  # percent
    limit: float | None
    units_checked: int
    units_failed: int


def _pct_pass(checked: int, failed: int) -> float:
    return 100.0 if checked == 0 else round(100.0 * (1 - failed / checked), 2)


@dataclass
class QualityReport:
    run_id: str
    scores: list[Score] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)

    @classmethod
    def from_tallies(
        cls, run_id: str, tallies: Mapping[str, Tally], targets: Mapping[str, float]
    ) -> QualityReport:
        report = cls(run_id)
        total = Tally()
        for table, tally in tallies.items():
            total.add(tally)
            report._add_table(table, tally, targets)
        report._add_table(OVERALL_TABLE, total, targets)
        return report

    def _add_table(self, table: str, tally: Tally, targets: Mapping[str, float]) -> None:
        scores = [
            Score(
                table,
                d,
                _pct_pass(tally.checked[d], tally.failed[d]),
                tally.checked[d],
                tally.failed[d],
                targets.get(d),
            )
            for d in DIMENSIONS
        ]
        measured = [s for s in scores if s.rows_checked > 0]
        overall = round(sum(s.score for s in measured) / len(measured), 2) if measured else 100.0
        self.scores += scores + [
            Score(
                table,
                OVERALL,
                overall,
                sum(s.rows_checked for s in measured),
                sum(s.rows_failed for s in measured),
                targets.get(OVERALL),
            )
        ]
        self.metrics.append(
            Metric(
                table,
                "null_pct",
                round(100.0 * tally.null_cells / tally.cells, 2) if tally.cells else 0.0,
                targets.get("null_pct"),
                tally.cells,
                tally.null_cells,
            )
        )
        checked, failed = tally.checked["uniqueness"], tally.failed["uniqueness"]
        self.metrics.append(
            Metric(
                table,
                "duplicate_pct",
                round(100.0 * failed / checked, 2) if checked else 0.0,
                targets.get("duplicate_pct"),
                checked,
                failed,
            )
        )

    def score(self, table: str, dimension: str) -> Score:
        return next(s for s in self.scores if s.table == table and s.dimension == dimension)

    def tables(self) -> list[str]:
        return list(dict.fromkeys(s.table for s in self.scores))

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "scores": [asdict(s) for s in self.scores],
            "metrics": [asdict(m) for m in self.metrics],
        }

    @classmethod
    def from_dict(cls, d: dict) -> QualityReport:
        return cls(d["run_id"], [Score(**s) for s in d["scores"]], [Metric(**m) for m in d["metrics"]])

    def render(self) -> str:
        """The score grid for the run summary: one line per table, '-' where nothing was checked."""
        short = {d: d[:5] for d in DIMENSIONS}
        width = max(len(t) for t in self.tables())
        head = (
            f"{'quality':<{width}}  " + "  ".join(f"{short[d]:>6}" for d in DIMENSIONS) + f"  {'overall':>7}"
        )
        lines = [head]
        for table in self.tables():
            cells = []
            for d in DIMENSIONS:
                s = self.score(table, d)
                cells.append(f"{s.score:>6.1f}" if s.rows_checked else f"{'-':>6}")
            lines.append(
                f"{table:<{width}}  " + "  ".join(cells) + f"  {self.score(table, OVERALL).score:>7.1f}"
            )
        return "\n".join(lines)


def threshold_violations(
    report: QualityReport | Iterable[Score],
    targets: Mapping[str, float] | None = None,
    metrics: Iterable[Metric] = (),
) -> list[str]:
    """One sentence per score below its target (or share above its limit).

    Targets default to those stored with each score; pass ``targets`` (e.g.
    ``settings.quality_targets``) to judge stored scores against new ones.
    Dimensions that checked nothing are never a violation.
    """
    if isinstance(report, QualityReport):
        scores, metrics = report.scores, report.metrics
    else:
        scores = list(report)
    messages = []
    for s in scores:
        target = targets.get(s.dimension) if targets is not None else s.target
        if target is None or s.rows_checked == 0 or s.score >= target:
            continue
        where = "the run as a whole" if s.table == OVERALL_TABLE else f"table {s.table}"
        counts = (
            ""
            if s.dimension == OVERALL
            else (
                f" ({s.rows_failed:,} of {s.rows_checked:,} {'cells' if s.dimension == 'completeness' else 'rows'} "
                "failed; docs/data_quality.md shows the query that lists them)"
            )
        )
        messages.append(f"{where}: {s.dimension} score {s.score:.2f} is below the target {target:g}{counts}")
    for m in metrics:
        limit = targets.get(m.metric) if targets is not None else m.limit
        if limit is None or m.units_checked == 0 or m.value <= limit:
            continue
        where = "the run as a whole" if m.table == OVERALL_TABLE else f"table {m.table}"
        messages.append(
            f"{where}: {_METRIC_WORDS[m.metric]} are {m.value:.2f} % "
            f"({m.units_failed:,} of {m.units_checked:,}), above the limit of {limit:g} %"
        )
    return messages


def gate(report: QualityReport, targets: Mapping[str, float]) -> None:
    """Raise ``QualityGateError`` naming every table, dimension, score and target missed."""
    messages = threshold_violations(report, targets)
    if messages:
        raise QualityGateError(f"run {report.run_id} failed its data quality targets: " + "; ".join(messages))


# --- the warehouse ----------------------------------------------------------------------


def write_report(cur: psycopg2.extensions.cursor, report: QualityReport) -> None:
    """Replace the run's rows in quality_scores / quality_metrics (caller owns the transaction)."""
    cur.execute("DELETE FROM quality_scores WHERE run_id = %s", (report.run_id,))
    cur.execute("DELETE FROM quality_metrics WHERE run_id = %s", (report.run_id,))
    execute_values(
        cur,
        """INSERT INTO quality_scores (run_id, table_name, dimension, score, rows_checked,
                                                       rows_failed, target) VALUES %s""",
        [
            (report.run_id, s.table, s.dimension, s.score, s.rows_checked, s.rows_failed, s.target)
            for s in report.scores
        ],
    )
    execute_values(
        cur,
        """INSERT INTO quality_metrics (run_id, table_name, metric, value, limit_value,
                                                        units_checked, units_failed) VALUES %s""",
        [
            (report.run_id, m.table, m.metric, m.value, m.limit, m.units_checked, m.units_failed)
            for m in report.metrics
        ],
    )


def read_report(conn: psycopg2.extensions.connection, run_id: str) -> QualityReport:
    """A run's stored scores, e.g. for the validate task: ``threshold_violations(read_report(c, r))``."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT table_name, dimension, score::float8, rows_checked, rows_failed, target::float8
                         FROM quality_scores WHERE run_id = %s ORDER BY table_name, dimension""",
            (run_id,),
        )
        scores = [Score(*row) for row in cur.fetchall()]
        cur.execute(
            """SELECT table_name, metric, value::float8, limit_value::float8, units_checked, units_failed
                         FROM quality_metrics WHERE run_id = %s ORDER BY table_name, metric""",
            (run_id,),
        )
        metrics = [Metric(*row) for row in cur.fetchall()]
    return QualityReport(run_id, scores, metrics)


_ISSUE_COLUMNS = [
    "run_id",
    "table_name",
    "source_file",
    "row_number",
    "dimension",
    "rule",
    "category",
    "hard",
    "detail",
]


def write_issues(
    cur: psycopg2.extensions.cursor, run_id: str, table: str, source_file: str, findings_path: Path
) -> int:
    """COPY one table's findings into quality_issues, a row group at a time, in binary from Arrow.

    As CSV text from pandas they cost ~6.6 s of the transform stage at 1M orders
    (``to_csv`` 5 s of it).
    """
    if not findings_path.exists():
        return 0
    constants = {"run_id": run_id, "table_name": table, "source_file": Path(source_file).name}
    return sum(
        binary_copy.copy_with_constants(
            cur, "quality_issues", pa.Table.from_batches([batch]), _ISSUE_COLUMNS, constants
        )
        for batch in pq.ParquetFile(findings_path).iter_batches(batch_size=200_000)
    )


def store(
    conn: psycopg2.extensions.connection, report: QualityReport, findings: list[tuple[str, str, Path]]
) -> None:
    """Scores, metrics and findings of a run in one transaction (a rerun replaces them)."""
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM quality_issues WHERE run_id = %s", (report.run_id,))
        write_report(cur, report)
        for table, source_file, path in findings:
            write_issues(cur, report.run_id, table, source_file, path)
