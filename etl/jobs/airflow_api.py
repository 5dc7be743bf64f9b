"""Jobs as Airflow DAG runs: trigger ``etl_pipeline`` through Airflow's REST API, read the state back.

When the upload part is given an Airflow API (``DASHBOARD_JOBS_AIRFLOW_URL`` and
a user), a job is not left for ``etl jobs worker``: it is triggered as a DAG run
of ``etl_pipeline`` whose ``conf`` names the job (``job_id``, ``run_id``, the drop
folder and each file's sha256), and the DAG's tasks load that folder under
that run id (``etl.run.airflow.current_run``). Its state is read back from
``GET /api/v2/dags/etl_pipeline/dagRuns/<id>``.

Airflow 3's API takes a JWT from ``POST /auth/token`` (user and password of
the deployment's auth manager); the token is fetched per call, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import requests

from etl.errors import EtlError

DAG_ID = "etl_pipeline"
#: Airflow DAG run state -> job status
STATES = {"queued": "queued", "running": "running", "success": "succeeded", "failed": "failed"}


class AirflowApiError(EtlError):
    """Airflow's API refused or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class AirflowApi:
    base_url: str
    username: str
    password: str = field(repr=False, default="")
    timeout: float = 10.0

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def _headers(self, http: requests.Session) -> dict:
        try:
            response = http.post(
                self._url("/auth/token"),
                json={"username": self.username, "password": self.password},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise AirflowApiError(
                f"Airflow's API at {self.base_url} is unreachable ({type(exc).__name__})"
            ) from exc
        if response.status_code >= 300:
            raise AirflowApiError(
                f"Airflow's API at {self.base_url} refused user {self.username} (HTTP {response.status_code}); "
                "check DASHBOARD_JOBS_AIRFLOW_USER / _PASSWORD"
            )
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def _call(self, method: str, path: str, json_body: dict | None = None) -> dict:
        with requests.Session() as http:
            headers = self._headers(http)
            try:
                response = http.request(
                    method, self._url(path), json=json_body, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                raise AirflowApiError(f"Airflow's API at {self.base_url} did not answer {path}") from exc
        if response.status_code >= 300:
            detail = " ".join(response.text.split())[:300]
            raise AirflowApiError(
                f"Airflow's API answered {method} {path} with HTTP {response.status_code}: {detail}"
            )
        return response.json()

    def trigger(self, dag_run_id: str, conf: dict) -> str:
        """Start a DAG run of etl_pipeline now with ``conf``; its dag_run_id."""
        body = {"dag_run_id": dag_run_id, "logical_date": None, "conf": conf}
        return self._call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", body)["dag_run_id"]

    def state(self, dag_run_id: str) -> str:
        """The job status of a DAG run (queued, running, succeeded, failed)."""
        run = self._call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{dag_run_id}")
        return STATES.get(run.get("state") or "queued", "running")
