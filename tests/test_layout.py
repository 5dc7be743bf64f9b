"""The layout holds (issue 11): one declared run, migrations in one place, no hidden imports.

These read the code, not its behaviour: they fail when someone reaches around the
layout (a stage that migrates, an import inside a function to dodge a loop, a DAG
whose tasks drift from the declared stages). The import layers themselves are
checked by ``lint-imports`` (pyproject.toml), run by the README's test command.
"""

from __future__ import annotations

import ast
from pathlib import Path

from etl.run import stages
from etl.run.plan import PLAN
from etl.settings import PROJECT_ROOT

PACKAGES = ("etl", "dashboard")
#: The only places that may migrate the schema: the migration itself, the run's
#: setup stage, the partial runs that start with it, and `etl db init`.
MIGRATORS = {"etl/run/setup.py", "etl/run/stages.py", "etl/run/replay.py", "etl/cli.py"}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (PROJECT_ROOT / pkg).rglob("*.py"))


def _own(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] in PACKAGES and node.level == 0 or node.level > 0
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] in PACKAGES for alias in node.names)
    return False


def test_no_project_import_hides_inside_a_function():
    hidden = []
    for path in _modules():
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [f"{path.relative_to(PROJECT_ROOT)}:{n.lineno}" for n in ast.walk(fn) if _own(n)]
    assert hidden == [], "imports of etl/dashboard modules inside functions: " + ", ".join(hidden)


def test_only_the_setup_stage_and_db_init_migrate():
    callers = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "init_schema",
                "ensure_current",
            ):
                callers.add(str(path.relative_to(PROJECT_ROOT)))
    assert callers <= MIGRATORS, f"schema set-up called from a stage: {sorted(callers - MIGRATORS)}"


def test_every_planned_stage_has_its_work_and_the_cli_runs_them_in_order():
    assert [s.name for s in stages.STAGES] == [p.name for p in PLAN]
    for stage in stages.STAGES:
        assert (stage.each and stage.items) if stage.plan.fans_out else stage.run, stage.name


def test_the_dag_maps_one_task_to_each_planned_stage_in_order():
    from airflow.dag_processing.dagbag import DagBag  # Airflow's config is set by tests/conftest.py

    dag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "etl_pipeline.py")).dags["etl_pipeline"]
    expected = []
    for plan in PLAN:
        expected += ["list_sources", plan.name] if plan.fans_out else [plan.name]
    chain = [dag.get_task(expected[0])]
    while chain[-1].downstream_list:
        (nxt,) = chain[-1].downstream_list
        chain.append(nxt)
    assert [t.task_id for t in chain] == expected
    assert {t.task_id: t.execution_timeout for t in dag.tasks if t.task_id != "list_sources"} == {
        p.name: p.timeout for p in PLAN
    }
