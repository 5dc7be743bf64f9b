"""``etl lookups update``: the lookups built from the data (the real subset and generated typos)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from etl import lookups as lk
from etl import transform
from etl.generate import generate
from etl.lookups_update import update
from etl.olist import ROW_NUMBER, SELLERS
from etl.settings import PROJECT_ROOT
from etl.transform import checks as ck

ETL = [sys.executable, "-m", "etl.cli"]

#: 20 spellings the lookups already map (folding, aliases, case) ...
KNOWN = {
    ("olist_products_dataset.csv", "product_category_name"): {"Cama, Mesa & Banho": 4, "health_beauty": 3},
    ("olist_orders_dataset.csv", "order_status"): {"CANCELLED": 3, "Delivered": 2},
    ("olist_order_payments_dataset.csv", "payment_type"): {"Cartão de Crédito": 3},
    ("olist_customers_dataset.csv", "customer_state"): {"sp": 3, "São Paulo": 2},
}
#: ... and 30 typos they do not: (list, value) -> rows
UNKNOWN = {
    ("olist_products_dataset.csv", "product_category_name"): {
        "beleza_saudez": 5,
        "informatica_acesorios": 3,
        "telefonai": 6,
    },
    ("olist_orders_dataset.csv", "order_status"): {"delivred": 4, "shiped": 2},
    ("olist_order_payments_dataset.csv", "payment_type"): {"credit_crad": 3, "bolleto": 2},
    ("olist_customers_dataset.csv", "customer_state"): {"XX": 3, "S P": 2},
}
LIST_OF = {
    "product_category_name": "categories",
    "order_status": "order_statuses",
    "payment_type": "payment_types",
    "customer_state": "states",
}


@pytest.fixture
def lookup_dir(tmp_path) -> Path:
    target = tmp_path / "lookups"
    shutil.copytree(PROJECT_ROOT / "data" / "lookups", target)
    return target


def etl(*args: str, lookup_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ETL_LOOKUP_DIR": str(lookup_dir)}
    return subprocess.run([*ETL, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def typo_data(tmp_path_factory) -> Path:
    """Clean generated data, then exactly 50 typos written into known rows (disjoint per file)."""
    out = tmp_path_factory.mktemp("typos")
    generate(orders=400, dirty_rate=0.0, seed=7, out=out)
    for file, column in KNOWN:
        path = out / file
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        row = 0
        for value, n in [*KNOWN[(file, column)].items(), *UNKNOWN[(file, column)].items()]:
            frame.loc[row : row + n - 1, column] = value
            row += n
        frame.to_csv(path, index=False)
    assert sum(sum(v.values()) for v in [*KNOWN.values(), *UNKNOWN.values()]) == 50
    return out


def test_real_subset_maps_every_closed_value_and_finds_real_city_typos(olist_dir, lookup_dir):
    before = {p.name: p.read_bytes() for p in lookup_dir.glob("*.json")}
    report = update(olist_dir, lookup_dir)
    by_name = {r.name: r for r in report.lists}
    assert report.unmapped() == []
    assert by_name["states"].values_seen == 27 and by_name["categories"].values_seen >= 71
    assert by_name["order_statuses"].rows_seen == 21_458  # every order row of the subset
    cities = {seen.value: suggestion for seen, suggestion in by_name["cities"].unknown}
    assert cities["sao paluo"] == "sao paulo" and cities["ribeirao pretp"] == "ribeirao preto"
    # nothing written without --apply, and the diff shows the file cities.json would become
    assert {p.name: p.read_bytes() for p in lookup_dir.glob("*.json")} == before
    assert "+++ " + str(lookup_dir / "cities.json") in report.render()
    proc = etl("lookups", "update", str(olist_dir), "--check", lookup_dir=lookup_dir)
    assert proc.returncode == 0, proc.stderr  # city typos are listed, never fail the check


def test_fifty_typos_known_ones_mapped_unknown_ones_listed_with_counts(typo_data, lookup_dir):
    report = update(typo_data, lookup_dir)
    listed = {(name, seen.value): seen.count for name, seen in report.unmapped()}
    expected = {
        (LIST_OF[column], value): n for (_, column), values in UNKNOWN.items() for value, n in values.items()
    }
    assert listed == expected  # every unknown one, with its count, and nothing the lookups map
    by_name = {r.name: r for r in report.lists}
    assert by_name["order_statuses"].mapped.get("alias") == 1  # CANCELLED
    assert by_name["order_statuses"].mapped.get("folded") == 1  # Delivered
    assert by_name["payment_types"].mapped.get("alias") == 1  # Cartão de Crédito
    suggestions = {seen.value: s for r in report.lists for seen, s in r.unknown}
    assert suggestions["delivred"] == "delivered" and suggestions["telefonai"] == "telefonia"
    assert suggestions["credit_crad"] == "credit_card"
    example = next(seen.example for name, seen in report.unmapped() if seen.value == "shiped")
    assert example.startswith("olist_orders_dataset.csv row ")
    row = int(example.split(" row ")[1].split()[0])
    frame = pd.read_csv(typo_data / "olist_orders_dataset.csv", dtype=str, keep_default_na=False)
    assert frame.loc[row - 2, "order_status"] == "shiped"  # the example points at a real row


def test_check_fails_on_unmapped_values_in_one_line(typo_data, lookup_dir):
    proc = etl("lookups", "update", str(typo_data), "--check", lookup_dir=lookup_dir)
    assert proc.returncode == 3
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: 9 value(s)") and "Traceback" not in proc.stderr
    assert "telefonai" in proc.stdout and "x6" in proc.stdout


def test_apply_writes_unknown_values_and_a_person_resolves_one(typo_data, lookup_dir):
    proc = etl("lookups", "update", str(typo_data), "--apply", lookup_dir=lookup_dir)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((lookup_dir / "order_statuses.json").read_text())
    assert doc["unknown"]["bucket"] == "UNKNOWN"
    assert doc["unknown"]["values"]["delivred"]["count"] == 4
    assert doc["unknown"]["values"]["delivred"]["suggestion"] == "delivered"
    lookups = lk.load_lookups(lookup_dir)  # the transform still reads the file
    assert list(lookups.order_statuses.resolve(pd.Series(["delivred", "CANCELLED"]))) == [
        "UNKNOWN",
        "canceled",
    ]
    # a person resolves one typo with an alias; the next update stops listing it
    doc["aliases"]["delivred"] = "delivered"
    (lookup_dir / "order_statuses.json").write_text(json.dumps(doc))
    again = update(typo_data, lookup_dir, apply=True)
    values = {seen.value for _, seen in again.unmapped()}
    assert "delivred" not in values and "shiped" in values
    doc = json.loads((lookup_dir / "order_statuses.json").read_text())
    assert set(doc["unknown"]["values"]) == {"shiped"}
    # a second apply with no change in the data writes nothing
    assert not any(r.changed for r in update(typo_data, lookup_dir).lists)


def test_city_alias_written_by_a_person_is_applied_by_the_transform(olist_dir, lookup_dir):
    update(olist_dir, lookup_dir, apply=True)
    doc = json.loads((lookup_dir / "cities.json").read_text())
    assert doc["unknown"]["values"]["sao paluo"]["suggestion"] == "sao paulo"
    doc["aliases"]["sao paluo"] = "sao paulo"
    (lookup_dir / "cities.json").write_text(json.dumps(doc))
    frame = pd.DataFrame(
        {"seller_id": ["c" * 32], "seller_zip_code_prefix": ["01310"], "seller_city": ["São Paluo"]},
        dtype="string",
    ).assign(seller_state="SP")
    frame[ROW_NUMBER] = [2]
    config = ck.RuleConfig(lookups=lk.load_lookups(lookup_dir), interval_end=pd.Timestamp.now(tz="UTC"))
    result = transform.transform_table(SELLERS, frame, config=config)
    assert list(result.clean["city"]) == ["sao paulo"]


def test_generator_category_typos_are_all_listed(tmp_path, lookup_dir):
    summary = generate(orders=1_500, dirty_rate=0.06, seed=3, out=tmp_path)
    truth = pd.read_csv(tmp_path / "ground_truth.csv")
    typos = truth[truth["defect"] == "category_typo"]
    assert len(typos) >= 10, summary
    products = pd.read_csv(tmp_path / "olist_products_dataset.csv", dtype=str, keep_default_na=False)
    typo_values = products.loc[typos["row_number"] - 2, "product_category_name"].value_counts()
    listed = {seen.value: seen.count for name, seen in update(tmp_path, lookup_dir).unmapped()}
    assert {v: listed.get(v) for v in typo_values.index} == typo_values.to_dict()


def test_missing_folder_is_one_line(tmp_path, lookup_dir):
    proc = etl("lookups", "update", str(tmp_path / "nowhere"), lookup_dir=lookup_dir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {tmp_path / 'nowhere'}: the data folder does not exist"
