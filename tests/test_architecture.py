"""The layout's rules, read from the source (no database needed).

Per-table knowledge lives on the table's spec (``etl.olist.TableSpec``); the
stages apply it by the names the spec gives (``rules``, ``imputation``,
``shaping``, ``role``), never by the table's name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from etl import olist
from etl.transform import checks, roles, table

ROOT = Path(__file__).resolve().parent.parent

#: Files allowed to name tables:
#: * ``etl/olist.py`` is the contract: it is where a table is described;
#: * ``etl/generate.py`` writes test data file by file, and every file is a table's;
#: * ``etl/ingest/connectors/common.py`` maps a vendor's order onto the rows of the
#:   tables it feeds (customer, order, payments, items...). That is a data mapping
#:   of a vendor's record, not a stage treating a table differently: a new table no
#:   vendor fills needs no change there.
NAMES_TABLES = {"etl/olist.py", "etl/generate.py", "etl/ingest/connectors/common.py"}

TABLE_NAMES = set(olist.SPECS)
SPEC_CONSTANTS = {name for name, value in vars(olist).items() if isinstance(value, olist.TableSpec)}


def _sources() -> list[tuple[str, ast.Module]]:
    files = sorted([*ROOT.glob("etl/**/*.py"), *ROOT.glob("dashboard/**/*.py")])
    return [(str(p.relative_to(ROOT)), ast.parse(p.read_text(), str(p))) for p in files]


def _names_a_table(node: ast.AST) -> bool:
    """A string constant that is a table's name (or ``table:thing``, ``table.thing``)."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return False
    value = node.value
    return value in TABLE_NAMES or any(value.startswith((t + ":", t + ".")) for t in TABLE_NAMES)


def _is_spec_constant(node: ast.AST) -> bool:
    """``ORDERS`` or ``olist.ORDERS`` (or ``ORDERS.name``)."""
    if isinstance(node, ast.Attribute) and node.attr == "name":
        node = node.value
    if isinstance(node, ast.Name):
        return node.id in SPEC_CONSTANTS
    return isinstance(node, ast.Attribute) and node.attr in SPEC_CONSTANTS


def _per_table_branches(path: str, tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operand in list(operands):
                if isinstance(operand, ast.Tuple | ast.List | ast.Set):
                    operands += operand.elts
            if any(_names_a_table(o) or _is_spec_constant(o) for o in operands):
                found.append(f"{path}:{node.lineno}: compares with a table ({ast.unparse(node)[:80]})")
        elif isinstance(node, ast.Dict):
            if any(k is not None and (_names_a_table(k) or _is_spec_constant(k)) for k in node.keys):
                found.append(f"{path}:{node.lineno}: a dict keyed by tables")
        elif isinstance(node, ast.Set | ast.Tuple | ast.List):
            if any(_names_a_table(e) for e in node.elts):
                found.append(f"{path}:{node.lineno}: a collection of table names")
        elif _names_a_table(node):
            found.append(f"{path}:{node.lineno}: names table {node.value!r}")
    return found


def test_no_stage_branches_on_a_table_name():
    """No ``name == "fact_orders"``, ``table in ("dim_customers", ...)``, dict keyed by
    table names (or by spec constants), or table name literal at all in etl/ and
    dashboard/, outside the files in ``NAMES_TABLES`` (see there why each may).
    SQL text naming tables is fine: it is a query, not a branch."""
    found = [
        f for path, tree in _sources() if path not in NAMES_TABLES for f in _per_table_branches(path, tree)
    ]
    assert found == [], "per-table knowledge outside etl/olist.py:\n" + "\n".join(found)


def test_the_branch_finder_finds_branches():
    """The test above can fail: each kind of branch it forbids is found."""
    samples = {
        'if spec.name == "fact_orders": pass': True,
        'if table in ("dim_customers", "dim_sellers"): pass': True,
        'KEYS = {"dim_products": ("product_id",)}': True,
        'refs.get("dim_geolocation:places")': True,
        "if spec is olist.ORDERS: pass": True,
        "if spec.name == ORDERS.name: pass": True,
        "HOOKS = {ORDERS: enrich}": True,
        'cur.execute("SELECT 1 FROM fact_orders")': False,
        'if spec.role == "orders": pass': False,
    }
    for code, forbidden in samples.items():
        assert bool(_per_table_branches("sample.py", ast.parse(code))) is forbidden, code


def test_every_name_a_spec_gives_is_known():
    """A spec names its table-specific code; each name must resolve (a typo fails here,
    not in the middle of a run)."""
    for spec in olist.SPECS.values():
        assert all(rule in checks.RULE_SETS for rule in spec.rules), spec.name
        assert spec.imputation is None or spec.imputation in table.IMPUTATIONS, spec.name
        assert spec.shaping is None or spec.shaping in table.SHAPINGS, spec.name
        assert spec.role in roles.ROLES, spec.name
        columns = set(spec.target_columns)
        assert set(spec.merge_key) <= columns | {"date_key"}, spec.name
        assert set(spec.reference_columns) <= columns, spec.name
        if spec.scd2 is not None:
            assert spec.scd2.natural_key in spec.key, spec.name
        for link in spec.links:
            assert olist.SPECS[link.dimension].scd2 is not None, (
                f"{spec.name}: {link.dimension} keeps no versions"
            )
        if spec.event_time is not None and spec.event_time.table is not None:
            assert spec.event_time.table in olist.SPECS, spec.name
    for fk_table in olist.REFERENCED:
        assert fk_table in olist.SPECS


def _own_imports(tree: ast.Module) -> tuple[set[str], list[int]]:
    """Project modules a file imports at its top level, and the lines of those inside functions."""
    top, nested = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            )
            own = {n for n in names if n.split(".")[0] in ("etl", "dashboard")}
            if own:
                top |= own
                nested.append(node.lineno)
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom) and node.lineno in nested:
            nested.remove(node.lineno)
    return top, nested


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("etl/transform", ("etl.ingest", "etl.run", "etl.load", "etl.warehouse", "etl.publish")),
        ("etl/quality.py", ("etl.transform", "etl.ingest", "etl.run", "etl.load")),
        ("etl/olist.py", ("etl.",)),
        ("etl/staging.py", ("etl.ingest", "etl.transform", "etl.run", "etl.load")),
    ],
)
def test_transform_and_quality_sit_on_the_contract(module, forbidden):
    """transform imports quality and olist, never ingest; quality imports no transform
    module; the contract imports no stage. All at the top of the file: an import inside
    a function is how a loop hides."""
    paths = [ROOT / module] if module.endswith(".py") else sorted((ROOT / module).glob("**/*.py"))
    for path in paths:
        imported, nested = _own_imports(ast.parse(path.read_text()))
        bad = sorted(n for n in imported if n.startswith(forbidden))
        assert bad == [], f"{path.relative_to(ROOT)} imports {', '.join(bad)}"
        assert nested == [], f"{path.relative_to(ROOT)}: project imports inside functions at lines {nested}"
