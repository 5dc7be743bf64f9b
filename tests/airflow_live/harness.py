"""A real Airflow 3 deployment for one test module: separate components, PostgreSQL metadata.

``AirflowCluster`` starts what docs/airflow.md tells operators to run — ``airflow
scheduler``, ``airflow dag-processor``, ``airflow api-server`` and ``airflow
triggerer`` — as separate processes with the LocalExecutor, a metadata database
of their own (``airflow_test_<hex>`` on the test PostgreSQL server), free
loopback ports for the API and the log servers, and a throwaway AIRFLOW_HOME.
It talks to Airflow only as an operator would: the REST API (``/api/v2``, a
token from ``/auth/token`` with the simple auth manager) and the ``airflow`` CLI.

Every process is started in a session of its own and stopped by its process
group id (SIGTERM, then SIGKILL after a grace period), never by name.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from etl.warehouse import connection as db

COMPONENTS = ("scheduler", "dag-processor", "api-server", "triggerer")
ADMIN = "admin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AirflowTimeout(AssertionError):
    """A wait ran out: the message says what was awaited and what the logs end with."""


@dataclass
class AirflowCluster:
    home: Path
    venv_bin: Path
    metadata_url: str  # libpq URL of the (not yet existing) metadata database
    extra_env: Mapping[str, str]
    parallelism: int = 2
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    _token: str | None = None

    # --- lifecycle -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        params = db.parse_url(self.metadata_url)
        sqlalchemy_url = (
            f"postgresql+psycopg2://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
            f"{params.get('port', 5432)}/{params['dbname']}"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ETL_", "PYTEST"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[2] / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        """Run an ``airflow`` CLI command against this deployment."""
        result = subprocess.run(
            [str(self.venv_bin / "airflow"), *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
            )
        return result

    def start(self, components: tuple[str, ...] = COMPONENTS, ready_timeout: float = 180) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN: self.password}))
        self._env = self.env()
        db.ensure_database(self.metadata_url)
        self.airflow("db", "migrate", timeout=300)
        for name in components:
            args = [name] + (
                ["--host", "127.0.0.1", "--port", str(self.port)] if name == "api-server" else []
            )
            log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            self.processes[name] = subprocess.Popen(
                [str(self.venv_bin / "airflow"), *args],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped by that id, children too
            )
        self.wait_for(self._healthy, ready_timeout, "the API server to answer /api/v2/monitor/health")

    def stop(self, grace: float = 30) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left after ``grace``."""
        for proc in self.processes.values():
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers of the group (task runners)
            proc.wait(timeout=10)
        self.processes.clear()

    def drop(self) -> None:
        db.drop_database(self.metadata_url)

    def metadata(self, statement: str, params: tuple = ()) -> list[tuple]:
        """Rows from the metadata database (for what the REST API does not show)."""
        conn = db.connect(self.metadata_url)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall()
        finally:
            conn.close()

    def log_tail(self, chars: int = 2500) -> str:
        parts = []
        for name in self.processes or COMPONENTS:
            path = self.home / f"{name}.log"
            if path.exists():
                parts.append(f"--- {name}.log ---\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def task_log_tail(self, dag_id: str, run_id: str) -> str:
        """The errors of the run's task logs, one line each (the task logs are JSON lines)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        lines = []
        for path in sorted(folder.rglob("*.log")):
            for raw in path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "critical"):
                    errors = entry.get("error_detail") or []
                    detail = "; ".join(f"{e.get('exc_type')}: {e.get('exc_value')}" for e in errors)
                    lines.append(f"{path.relative_to(folder)}: {entry.get('event')} {detail}"[:1500])
        return "\n".join(lines) or f"(no task log with an error under {folder})"

    # --- REST API --------------------------------------------------------------------

    def _healthy(self) -> bool:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise AssertionError(f"airflow {name} exited {proc.returncode}:\n{self.log_tail()}")
        try:
            return requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def token(self) -> str:
        if self._token is None:
            resp = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": ADMIN, "password": self.password},
                timeout=30,
            )
            assert resp.status_code in (200, 201), f"/auth/token answered {resp.status_code}: {resp.text}"
            self._token = resp.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, expect: int | tuple[int, ...] = 200, **kwargs) -> Any:
        resp = requests.request(
            method,
            f"{self.base_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=60,
            **kwargs,
        )
        expected = (expect,) if isinstance(expect, int) else expect
        assert resp.status_code in expected, (
            f"{method} {path} answered {resp.status_code}: {resp.text[:2000]}"
        )
        return resp.json() if resp.content else None

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str, every: float = 2.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AirflowTimeout(f"waited {timeout:.0f} s for {what}\n{self.log_tail()}")
            time.sleep(every)

    def wait_for_run(self, dag_id: str, run_id: str, states: tuple[str, ...], timeout: float) -> dict:
        """Wait until the run is in one of ``states``; a run ending in another state fails at once."""

        def done() -> dict | None:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in states:
                return run
            if run["state"] in ("success", "failed") and run["state"] not in states:
                tis = {
                    t["task_id"] + f"[{t['map_index']}]": t["state"]
                    for t in self.task_instances(dag_id, run_id)
                }
                raise AssertionError(
                    f"run {run_id} ended {run['state']} (tasks: {tis})\n"
                    f"{self.task_log_tail(dag_id, run_id)}\n{self.log_tail()}"
                )
            return None

        return self.wait_for(done, timeout, f"run {run_id} to be {'/'.join(states)}")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the group id is the component's own pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass
