"""docker-compose.yml, render.yaml and .env.example, checked without a Docker engine.

Against the Compose Specification (its JSON schema, as vendored by the
check-jsonschema package) and against the project: every command, file, port,
setting and variable they name exists; no password has a default; ports stay on
127.0.0.1 unless the user opts in; each long-running part has its own login.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import airflow
import yaml

from dashboard.app import create_app
from dashboard.config import DashboardConfig
from etl.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
RENDER = yaml.safe_load((ROOT / "render.yaml").read_text())
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
SERVICES = COMPOSE["services"]
VAR = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(:?[-?][^}]*)?\}")
SECRET = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN")
#: What the image provides (Dockerfile: python:3.11 + requirements + this package + postgresql-client).
IMAGE_PROGRAMS = {"etl", "airflow", "gunicorn", "streamlit", "sh", "python", "celery"}


def _source_text() -> str:
    files = [*ROOT.glob("etl/**/*.py"), *ROOT.glob("dashboard/**/*.py"), *ROOT.glob("dags/*.py")]
    return "\n".join(p.read_text() for p in files)


def test_compose_follows_the_compose_specification():
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(ROOT / "docker-compose.yml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_secret_has_a_default_and_every_variable_is_in_env_example():
    example = dict(re.findall(r"^#? ?([A-Z_][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE, re.M))
    used = {}
    for name, tail in VAR.findall(COMPOSE_TEXT):
        used.setdefault(name, set()).add(tail)
    assert set(used) <= set(example), set(used) - set(example)
    for name, tails in used.items():
        if SECRET.search(name):
            assert all(t.startswith(":?") for t in tails), f"{name} must be required: ${{{name}:?...}}"
            assert example[name] == "", f".env.example must not suggest a value for {name}"
    # every variable .env.example documents is used by compose, render or the code
    code = _source_text()
    render_keys = {v["key"] for s in RENDER["services"] for v in s["envVars"] if "key" in v}
    for name in example:
        assert name in used or name in render_keys or f'"{name}"' in code, name
    # no URL carries a literal password
    assert not re.search(r"://[^:/@\s]+:(?!\$\{)[^@\s]+@", COMPOSE_TEXT)


def test_ports_stay_on_loopback_unless_opted_in():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert re.fullmatch(
                r"\$\{(WAREHOUSE_)?BIND_ADDRESS:-127\.0\.0\.1\}:\$\{[A-Z_]+:-\d+\}:\d+", port
            ), (
                name,
                port,
            )


def _command(service: dict) -> list[str]:
    command = service.get("command", [])
    return command if isinstance(command, list) else command.split()


def test_every_command_port_and_file_exists_in_the_project():
    bin_dir = Path(sys.executable).parent
    for name, service in SERVICES.items():
        if "build" not in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name
            continue
        command = _command(service)
        assert command[0] in IMAGE_PROGRAMS, (name, command)
        if command[0] in ("etl", "airflow", "gunicorn", "streamlit"):
            assert (bin_dir / command[0]).exists(), command[0]
        text = " ".join(command)
        if command[0] == "gunicorn":
            module, attr = command[-1].split(":")
            assert re.search(rf"^\s*{attr} = ", (ROOT / f"{module}.py").read_text(), re.M)
        if command[0] == "streamlit":
            assert (ROOT / command[2]).exists()
        # the container port a service publishes is the one its command listens on
        for port in service.get("ports", []):
            inner = port.rsplit(":", 1)[1]
            assert inner in text, (name, inner, text)
            assert inner in str(service["healthcheck"]["test"]), name
    assert SERVICES["timescaledb"]["image"] == "timescale/timescaledb:2.19.3-pg15"
    assert (ROOT / "Dockerfile").exists()
    for copied in re.findall(r"^COPY (.+) \./$", (ROOT / "Dockerfile").read_text(), re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), path
    env = SERVICES["airflow-scheduler"]["environment"]
    assert (ROOT / env["AIRFLOW__CORE__DAGS_FOLDER"].removeprefix("/app/")).is_dir()
    assert (ROOT / env["ETL_DATA_DIR"].split("-", 1)[1].rstrip("}").removeprefix("/app/")).is_dir()
    assert "apache-airflow-providers-celery==" in (ROOT / "requirements-celery.txt").read_text()


def test_the_airflow_and_etl_subcommands_exist(tmp_path):
    """`<program> <subcommand> --help` answers for every subcommand compose runs."""
    bin_dir = Path(sys.executable).parent
    wanted = set()
    for service in SERVICES.values():
        if "build" not in service:
            continue
        command = _command(service)
        if command[0] == "sh":
            for part in command[-1].split("&&"):
                wanted.add(tuple(part.split()[:3]))
        else:
            wanted.add(tuple(command[:2]))
        test = service.get("healthcheck", {}).get("test", [])
        if test[1:2] == ["airflow"]:
            wanted.add(tuple(test[1:4]))
    wanted = {w for w in wanted if w[0] in ("etl", "airflow") and w[1:] != ("celery",)}
    assert ("airflow", "db", "migrate") in wanted and ("etl", "db", "init") in wanted
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    for program, *args in sorted(wanted):
        done = subprocess.run(
            [str(bin_dir / program), *args, "--help"], capture_output=True, text=True, env=env, timeout=180
        )
        assert done.returncode == 0, (program, args, done.stderr[-500:])


def test_every_setting_compose_sets_is_one_the_project_or_airflow_reads():
    config = yaml.safe_load((Path(airflow.__file__).parent / "config_templates" / "config.yml").read_text())
    code = _source_text()
    for name, service in SERVICES.items():
        for key in service.get("environment", {}):
            if key.startswith("AIRFLOW__"):
                section, option = key.removeprefix("AIRFLOW__").lower().split("__")
                if section == "celery":  # the celery provider's (requirements-celery.txt)
                    continue
                assert option in config[section]["options"], key
            elif key.startswith("AIRFLOW_CONN_"):
                conn_id = key.removeprefix("AIRFLOW_CONN_").lower()
                assert f'"{conn_id}"' in code, key
            elif name in ("timescaledb", "airflow-db"):
                assert key.startswith(("POSTGRES_", "TIMESCALEDB_")), key
            else:
                assert f'"{key}"' in code or key == "DATABASE_URL", key


def test_each_long_running_part_connects_as_its_own_login():
    def user(url: str) -> str:
        return re.match(r"postgresql(?:\+psycopg2)?://\$\{([A-Z_]+):-(\w+)\}|postgresql://(\w+):", url).group(
            0
        )

    dashboards = {SERVICES[s]["environment"]["DATABASE_URL"] for s in ("dashboard", "streamlit")}
    assert all("${ETL_DASHBOARD_USER:-etl_dashboard}" in url for url in dashboards)
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        env = SERVICES[name]["environment"]
        assert "${ETL_PIPELINE_USER:-etl_pipeline}" in env["AIRFLOW_CONN_WAREHOUSE"]
        assert "DATABASE_URL" not in env
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert "@airflow-db:" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    # the superuser appears in the init job only
    for name, service in SERVICES.items():
        for value in service.get("environment", {}).values():
            if "postgresql://postgres:" in str(value):
                assert name == "init", name
    assert user(SERVICES["init"]["environment"]["DATABASE_URL"]) == "postgresql://postgres:"
    for name, service in SERVICES.items():
        if name != "init":
            assert "healthcheck" in service, name
    assert SERVICES["mailpit"]["image"].startswith("axllent/mailpit:v")
    assert SERVICES["redis"]["profiles"] == SERVICES["airflow-worker"]["profiles"] == ["celery"]


def test_render_blueprint_against_the_project(tmp_path):
    services = {s["name"]: s for s in RENDER["services"]}
    assert {s["type"] for s in services.values()} == {"web", "cron"}
    dashboard, streamlit, cron = services["etl-dashboard"], services["etl-streamlit"], services["etl-daily"]
    assert cron["schedule"] == "0 2 * * *"
    assert '"0 2 * * *"' in (ROOT / "dags" / "etl_pipeline.py").read_text()
    assert dashboard["startCommand"].startswith("gunicorn ") and dashboard["startCommand"].endswith(
        " wsgi:app"
    )
    assert "streamlit run dashboard/streamlit_app.py" in streamlit["startCommand"]
    assert (ROOT / "dashboard" / "streamlit_app.py").exists()
    assert "--server.port $PORT" in streamlit["startCommand"]
    assert dashboard["healthCheckPath"] == "/healthz"
    offline = Settings.from_env({"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/nowhere"})
    app = create_app(DashboardConfig(settings=offline.with_overrides(connect_timeout=1), cache_seconds=0))
    assert "/healthz" in {r.rule for r in app.url_map.iter_rules()}
    assert streamlit["healthCheckPath"] == "/_stcore/health"
    for service in services.values():
        assert service["buildCommand"] == "pip install -r requirements.txt && pip install --no-deps -e ."
        keys = {v.get("key"): v for v in service["envVars"]}
        # each service's own login, typed in by the user; never the database's own user
        assert keys["DATABASE_URL"] == {"key": "DATABASE_URL", "sync": False}
        for key, var in keys.items():
            if key and SECRET.search(key):
                assert var.get("sync") is False, key
    assert cron["startCommand"] == 'DATABASE_URL="$ADMIN_DATABASE_URL" etl db init && etl run'
    admin = {v["key"]: v for v in cron["envVars"] if "key" in v}["ADMIN_DATABASE_URL"]
    assert admin["fromDatabase"]["name"] == RENDER["databases"][0]["name"]
    groups = {g["name"]: g for g in RENDER["envVarGroups"]}
    assert {v["fromGroup"] for v in cron["envVars"] if "fromGroup" in v} <= set(groups)
    group_keys = {v["key"] for v in groups["etl-logins"]["envVars"]}
    assert group_keys == {"ETL_PIPELINE_PASSWORD", "ETL_DASHBOARD_PASSWORD", "ETL_BI_PASSWORD"}
    code = _source_text()
    for key in group_keys | {"DATABASE_URL"}:
        assert key in ENV_EXAMPLE and (f'"{key}"' in code or key == "DATABASE_URL"), key
