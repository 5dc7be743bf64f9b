"""Quality scores move with their own defects only, and thresholds speak to people."""

import pandas as pd
import pytest

from etl import lookups, quality
from etl.olist import CUSTOMERS, ORDERS, ROW_NUMBER
from etl.settings import DEFAULT_QUALITY_TARGETS, Settings
from etl.transform import checks as ck
from etl.transform import transform_table
from etl.transform.shape import geolocation_places

N = 20
CID = "b" * 32
NOW = pd.Timestamp("2020-01-01", tz="UTC")


def config(**kw) -> ck.RuleConfig:
    return ck.RuleConfig(lookups=lookups.load_lookups(), interval_end=NOW, **kw)


def raw(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, dtype="string").replace("", pd.NA)
    frame[ROW_NUMBER] = range(2, len(frame) + 2)
    return frame


def orders(**changes_for_first) -> pd.DataFrame:
    rows = [
        {
            "order_id": f"{i:032x}",
            "customer_id": CID,
            "order_status": "delivered",
            "order_purchase_timestamp": "2017-10-02 10:56:33",
            "order_approved_at": "2017-10-02 11:07:15",
            "order_delivered_carrier_date": "2017-10-04 19:55:00",
            "order_delivered_customer_date": "2017-10-10 21:25:13",
            "order_estimated_delivery_date": "2017-10-18 00:00:00",
        }
        for i in range(1, N + 1)
    ]
    rows[0].update(changes_for_first)
    return raw(rows)


def scores_of(spec, frame, refs, cfg=None) -> dict[str, float]:
    result = transform_table(spec, frame, reference_keys=refs, config=cfg or config())
    report = quality.QualityReport.from_tallies("t", {spec.name: result.tally}, DEFAULT_QUALITY_TARGETS)
    return {s.dimension: s.score for s in report.scores if s.table == spec.name}


REFS = {"dim_customers": pd.DataFrame({"customer_id": [CID]})}

ORDER_DEFECTS = {
    "completeness": {"customer_id": ""},
    "validity": {"order_status": "teleported"},
    "consistency": {"order_approved_at": "2017-10-01 09:00:00"},
    "timeliness": {
        "order_purchase_timestamp": "2031-10-02 10:56:33",
        "order_approved_at": "",
        "order_delivered_carrier_date": "",
        "order_delivered_customer_date": "",
    },
    "conformity": {"customer_id": "not-a-hex-id"},
    "integrity": {"customer_id": "c" * 32},
}


@pytest.mark.parametrize("dimension", sorted(ORDER_DEFECTS))
def test_each_order_defect_moves_only_its_dimension(dimension):
    base = scores_of(ORDERS, orders(), REFS)
    assert all(v == 100.0 for k, v in base.items()), base
    dirty = scores_of(ORDERS, orders(**ORDER_DEFECTS[dimension]), REFS)
    assert dirty[dimension] < 100.0
    share = 100.0 / N
    for other, score in dirty.items():
        if other not in (dimension, "overall"):
            assert score >= base[other] - share, (other, dirty)


def test_a_duplicate_moves_uniqueness_only():
    frame = orders()
    dup = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)
    dup[ROW_NUMBER] = range(2, len(dup) + 2)
    dirty = scores_of(ORDERS, dup, REFS)
    assert dirty["uniqueness"] < 100
    assert all(v == 100.0 for k, v in dirty.items() if k not in ("uniqueness", "overall"))


def test_a_city_that_disagrees_with_its_zip_moves_accuracy_only():
    points = pd.DataFrame({"zip_code_prefix": ["01001"], "city": ["sao paulo"], "state": ["SP"]})
    refs = {ck.PLACES: geolocation_places(points)}
    rows = [
        {
            "customer_id": f"{i:032x}",
            "customer_unique_id": "e" * 32,
            "customer_zip_code_prefix": "01001",
            "customer_city": "São Paulo",
            "customer_state": "sp",
        }
        for i in range(N)
    ]
    assert scores_of(CUSTOMERS, raw(rows), refs)["accuracy"] == 100.0  # folded: same city
    rows[0]["customer_city"] = "sao pualo"
    dirty = scores_of(CUSTOMERS, raw(rows), refs)
    assert dirty["accuracy"] == 95.0
    assert all(v == 100.0 for k, v in dirty.items() if k not in ("accuracy", "overall"))


def test_soft_rules_load_and_flag_hard_rules_quarantine_and_config_decides():
    frame = orders(order_approved_at="2017-10-01 09:00:00")
    result = transform_table(ORDERS, frame, reference_keys=REFS, config=config())
    assert result.quarantined.empty
    assert result.clean.loc[0, "dq_flags"] == "approved_after_purchase"
    assert result.clean["dq_flags"].isna().sum() == N - 1
    hard = transform_table(
        ORDERS, frame, reference_keys=REFS, config=config(hard_rules=frozenset({"approved_*"}))
    )
    assert list(hard.quarantined["rule"]) == ["approved_after_purchase"]
    assert hard.quarantined.loc[0, "category"] == "DATA_QUALITY_ISSUE"
    soft = transform_table(
        ORDERS,
        orders(order_status="teleported"),
        reference_keys=REFS,
        config=config(soft_rules=frozenset({"order_status_known"})),
    )
    assert soft.quarantined.empty and soft.clean.loc[0, "order_status"] == "UNKNOWN"


def test_lookups_map_aliases_and_unknowns_to_the_bucket():
    lk = lookups.load_lookups()
    values = pd.Series(["Cama Mesa Banho", "bed_bath_table", "cama_mesa_banho", "zzz", None], dtype="string")
    assert list(lk.categories.resolve(values).fillna("<NA>")) == [
        "cama_mesa_banho",
        "cama_mesa_banho",
        "cama_mesa_banho",
        "UNKNOWN",
        "<NA>",
    ]
    assert list(lk.states.resolve(pd.Series(["sp", "São Paulo", "XX"], dtype="string"))) == [
        "SP",
        "SP",
        "UNKNOWN",
    ]
    assert lookups.repair_mojibake("sÃ£o paulo") == "são paulo"


def test_threshold_violations_name_table_dimension_score_and_target():
    report = quality.QualityReport.from_tallies("r1", {}, DEFAULT_QUALITY_TARGETS)
    assert quality.threshold_violations(report) == []
    tally = quality.Tally()
    tally.checked["integrity"], tally.failed["integrity"] = 200, 3
    tally.checked["uniqueness"], tally.failed["uniqueness"] = 200, 20
    tally.cells, tally.null_cells = 1000, 300
    report = quality.QualityReport.from_tallies("r1", {"fact_order_items": tally}, DEFAULT_QUALITY_TARGETS)
    messages = quality.threshold_violations(report)
    assert (
        "table fact_order_items: integrity score 98.50 is below the target 100 (3 of 200 rows failed; "
        "docs/data_quality.md shows the query that lists them)"
    ) in messages
    assert any("uniqueness score 90.00 is below the target 95" in m for m in messages)
    assert any("null cells are 30.00 %" in m and "limit of 20 %" in m for m in messages)
    assert any("duplicate rows are 10.00 %" in m for m in messages)
    with pytest.raises(quality.QualityGateError, match="fact_order_items: integrity score 98.50"):
        quality.gate(report, DEFAULT_QUALITY_TARGETS)
    relaxed = dict(DEFAULT_QUALITY_TARGETS, integrity=98, uniqueness=90, duplicate_pct=10, null_pct=30)
    assert quality.threshold_violations(report, relaxed) == []


def test_targets_and_rule_hardness_come_from_settings():
    s = Settings.from_env(
        {
            "ETL_DQ_TARGET_INTEGRITY": "99.5",
            "ETL_DQ_HARD_RULES": "category_known, city_*",
            "ETL_DQ_SOFT_RULES": "fk:*",
        }
    )
    assert s.quality_targets["integrity"] == 99.5 and s.quality_targets["completeness"] == 90
    cfg = ck.RuleConfig.from_settings(s, lookups.load_lookups())
    assert cfg.is_hard(ck.CATEGORY_KNOWN) and cfg.is_hard(ck.CITY_MATCHES_ZIP)
    assert not cfg.is_hard(ck.fk_check("order_id", "fact_orders"))
