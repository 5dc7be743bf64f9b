"""Progress of the long stages: rich bars on a terminal, plain periodic lines elsewhere.

Stages report through the reporter installed for the process (``install``),
so they need no flag of their own: the CLI installs one for stderr, the
Airflow tasks one that writes to the task log, tests and library callers get
the silent default. A stage opens a ``task`` (files read, rows transformed,
tables loaded, views refreshed) with a total in its own unit and advances it;
rows are counted beside, so every reporter can say rows/s.

* on a terminal (``stream.isatty()``): ``rich`` bars with the count, rows/s
  and the ETA;
* anywhere else (Airflow logs, CI, a pipe): one line every
  ``ETL_PROGRESS_SECONDS`` (10 by default) per running task, and one when it
  ends: ``transform fact_orders: 61% of 3.8 MB, 21,458 rows, 30,120 rows/s, ETA 1 s``;
* ``ETL_PROGRESS=off`` silences both.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBars
from rich.text import Text


def _amount(n: float, unit: str) -> str:
    if unit == "bytes":
        return f"{n / 1_000_000:,.1f} MB" if n >= 100_000 else f"{int(n):,} bytes"
    return f"{int(n):,} {unit}"


class Task:
    """One thing being done: ``advance(n, rows=...)``, then ``done()`` (or use it as a context)."""

    def __init__(self, reporter: Reporter, description: str, total: float | None, unit: str) -> None:
        self.reporter, self.description, self.total, self.unit = reporter, description, total, unit
        self.completed = 0.0
        self.rows = 0
        self.started = time.monotonic()
        self.finished = False

    def advance(self, amount: float = 1, rows: int = 0) -> None:
        self.completed += amount
        self.rows += rows
        self.reporter.update(self)

    def set(self, completed: float, rows: int | None = None) -> None:
        self.completed = completed
        if rows is not None:
            self.rows = rows
        self.reporter.update(self)

    def done(self) -> None:
        if not self.finished:
            self.finished = True
            if self.total is not None:
                self.completed = max(self.completed, self.total)
            self.reporter.finish(self)

    def rows_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.rows / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self) -> float | None:
        if not self.total or self.completed <= 0:
            return None
        elapsed = time.monotonic() - self.started
        return max(0.0, elapsed * (self.total - self.completed) / self.completed)

    def line(self) -> str:
        bits = []
        if self.total:
            share = min(100, round(100 * self.completed / self.total))
            bits.append(f"{share}% of {_amount(self.total, self.unit)}")
        elif self.unit != "rows":
            bits.append(_amount(self.completed, self.unit))
        if self.rows or self.unit == "rows":
            bits += [f"{self.rows:,} rows", f"{self.rows_per_second():,.0f} rows/s"]
        if self.finished:
            bits.append(f"done in {time.monotonic() - self.started:.1f} s")
        elif (eta := self.eta_seconds()) is not None:
            bits.append(f"ETA {eta:.0f} s")
        return f"{self.description}: " + ", ".join(bits)

    def __enter__(self) -> Task:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.done()


class Reporter:
    """Says nothing (the default for library use and tests)."""

    def task(self, description: str, total: float | None = None, unit: str = "rows") -> Task:
        task = Task(self, description, total, unit)
        self.start(task)
        return task

    def start(self, task: Task) -> None:
        pass

    def update(self, task: Task) -> None:
        pass

    def finish(self, task: Task) -> None:
        pass

    def close(self) -> None:
        pass


class PlainLines(Reporter):
    """A line per running task every ``every`` seconds, and one when it ends (logs, CI, pipes).

    A task that ends before its first periodic line says nothing: a log needs
    to hear about the slow stages, not about every quick one.
    """

    def __init__(self, write: Callable[[str], None], every: float = 10.0) -> None:
        self.write, self.every = write, every
        self._last: dict[int, float] = {}
        self._spoke: set[int] = set()

    def start(self, task: Task) -> None:
        self._last[id(task)] = time.monotonic()

    def update(self, task: Task) -> None:
        now = time.monotonic()
        if now - self._last.get(id(task), 0.0) >= self.every:
            self._last[id(task)] = now
            self._spoke.add(id(task))
            self.write(task.line())

    def finish(self, task: Task) -> None:
        self._last.pop(id(task), None)
        if id(task) in self._spoke or self.every <= 0:
            self._spoke.discard(id(task))
            self.write(task.line())


class RowsPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        elapsed = task.elapsed or 0
        rows = task.fields.get("rows", 0)
        return Text(
            f"{rows / elapsed:,.0f} rows/s" if elapsed > 0 and rows else "", style="progress.data.speed"
        )


class Amount(ProgressColumn):
    """'1.2/3.8 MB', '4/10 tables': the task's own unit."""

    def render(self, task) -> Text:
        unit = task.fields.get("unit", "")
        done, total = task.completed, task.total
        if unit == "bytes":
            text = f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB" if total else f"{done / 1e6:,.1f} MB"
        else:
            text = f"{int(done):,}/{int(total):,} {unit}" if total else f"{int(done):,} {unit}"
        return Text(text, style="progress.download")


class RowsDone(ProgressColumn):
    def render(self, task) -> Text:
        rows = task.fields.get("rows", 0)
        return Text(f"{rows:,} rows" if rows else "", style="progress.download")


class Bars(Reporter):
    """rich progress bars on a terminal: count, rows, rows/s, elapsed and ETA."""

    def __init__(self, stream: IO[str]) -> None:
        self.bars = RichBars(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            Amount(),
            RowsDone(),
            RowsPerSecond(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=stream, force_terminal=True),
            transient=False,
            # stdout stays stdout (summaries, `etl export` listings); only the bars use the stream
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.bars.start()
        self._ids: dict[int, Any] = {}

    def start(self, task: Task) -> None:
        self._ids[id(task)] = self.bars.add_task(task.description, total=task.total, rows=0, unit=task.unit)

    def update(self, task: Task) -> None:
        self.bars.update(
            self._ids[id(task)], description=task.description, completed=task.completed, rows=task.rows
        )

    def finish(self, task: Task) -> None:
        task_id = self._ids.pop(id(task))
        self.bars.update(
            task_id,
            description=task.description,
            completed=task.completed,
            total=task.total or task.completed,
            rows=task.rows,
        )
        self.bars.stop_task(task_id)

    def close(self) -> None:
        self.bars.stop()


_current: Reporter = Reporter()


def current() -> Reporter:
    return _current


def for_stream(stream: IO[str] | None = None, env: dict | None = None) -> Reporter:
    """Bars when ``stream`` is a terminal, plain lines otherwise, nothing with ETL_PROGRESS=off."""
    env = os.environ if env is None else env
    stream = stream or sys.stderr
    mode = env.get("ETL_PROGRESS", "auto").lower()
    if mode in ("off", "0", "false", "no"):
        return Reporter()
    if mode != "plain" and hasattr(stream, "isatty") and stream.isatty():
        return Bars(stream)
    every = float(env.get("ETL_PROGRESS_SECONDS", "10"))
    return PlainLines(lambda line: print(line, file=stream, flush=True), every)


def for_log(logger: logging.Logger, env: dict | None = None) -> Reporter:
    """Plain lines into a log (the Airflow tasks)."""
    env = os.environ if env is None else env
    if env.get("ETL_PROGRESS", "auto").lower() in ("off", "0", "false", "no"):
        return Reporter()
    return PlainLines(logger.info, float(env.get("ETL_PROGRESS_SECONDS", "10")))


@contextmanager
def installed(reporter: Reporter):
    """Make ``reporter`` the process's reporter for the duration (restores the previous one)."""
    global _current
    previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = previous
        reporter.close()


def install(reporter: Reporter) -> Reporter:
    """Make ``reporter`` the process's reporter (an Airflow task: for the rest of the task)."""
    global _current
    _current = reporter
    return reporter
