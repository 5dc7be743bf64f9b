"""The contract for the Olist e-commerce files: which file feeds which table, and how.

This is configuration, kept apart from the code that applies it: each
``TableSpec`` names the source file, the warehouse table, how every source
column is typed and renamed, the natural key, the foreign keys that must
resolve, and everything else a stage needs to know about the table: its
conflict key, history (SCD2), links to dimension versions, event time, whether
its rows carry ``dq_flags``, and which table-specific code the transform runs
(by name: ``rules``, ``imputation``, ``shaping``, ``role``). The transform maps
those names to functions the way dlt's ``rest_api/config_setup.py`` maps kinds
to classes; tests/test_architecture.py checks every name resolves and that no
stage branches on a table's name. Adding a table means a spec here and its SQL
file under ``sql/``.

``ingest``, ``transform`` and ``load`` read only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

#: Vendor lineage columns a mapped (non-Olist) record carries beside the Olist columns:
#: the system it came from, the vendor's own id and the currency (etl.ingest.records).
LINEAGE_COLUMNS = ("source_system", "source_id", "currency")

ColumnKind = Literal["id", "text", "int", "money", "timestamp", "zip", "state", "float", "category"]
#: Table-specific checks (etl.transform.checks.RULE_SETS).
RuleSet = Literal["order", "order_item", "payment", "review", "coordinates", "category", "location"]
#: Documented imputations that set a flag column (etl.transform.table.IMPUTATIONS).
Imputation = Literal["category", "location"]
#: Shaping after the checks (etl.transform.table.SHAPINGS).
Shaping = Literal["aggregate_points", "translate_category"]
#: What a table hands the tables after it within a run (etl.transform.roles.ROLES):
#: reference data (translation, places), per-order totals, or the orders themselves
#: (dated, enriched with the totals, spanning the calendar ``dim_dates``).
Role = Literal["translation", "places", "orders", "item_totals", "payment_totals"]

#: Added to every frame read: the row as a spreadsheet numbers it (header = 1).
ROW_NUMBER = "_row_number"


@dataclass(frozen=True)
class Column:
    source: str  # header in the CSV
    target: str  # column in the warehouse table
    kind: ColumnKind
    required: bool = False
    free_text: bool = False  # empty by nature: left out of the null share


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]  # target column names in this table
    table: str  # referenced warehouse table
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class Scd2:
    """A dimension that keeps history: natural key -> versions with a surrogate key."""

    natural_key: str
    surrogate_key: str


@dataclass(frozen=True)
class Link:
    """A fact column holding the surrogate key of the dimension version current at event time."""

    column: str  # e.g. product_key in the fact
    dimension: str  # e.g. dim_products
    natural_key: str  # e.g. product_id, in both the fact and the dimension


@dataclass(frozen=True)
class EventTime:
    """Where a fact's event time comes from: its own column, or another fact by a key."""

    column: str  # e.g. purchased_at
    table: str | None = None  # None: the fact's own column
    join_column: str | None = None  # e.g. order_id (in both tables)


@dataclass(frozen=True)
class TableSpec:
    name: str  # warehouse table
    file_stem: str  # source file without .csv / .csv.gz ("" for a table derived in the run)
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # natural key (target names)
    kind: Literal["dimension", "fact"] = "fact"
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)
    #: Lineage columns the warehouse table has (sql/schema.d/20_ingest_state.sql), carried
    #: from the input when present; Olist files have none, so their rows keep NULL.
    lineage: tuple[str, ...] = ()
    #: The load's ON CONFLICT target when it is not ``key`` (a hypertable's unique keys
    #: must contain its time column; geolocation is keyed by the prefix it aggregates to).
    conflict_key: tuple[str, ...] = ()
    #: Versions kept with a surrogate key instead of updates in place.
    scd2: Scd2 | None = None
    #: Surrogate keys of the dimension versions current at the fact's event time.
    links: tuple[Link, ...] = ()
    #: The fact's event time: which local days its changes touch (time-bucketed aggregates).
    event_time: EventTime | None = None
    #: The conflict key is (natural id, time column) only because of the hypertable: when the
    #: source moves a row in time (a corrected purchase timestamp) the merge deletes the old row.
    movable_in_time: bool = False
    #: Warehouse rows carry ``dq_flags`` (sql/schema.d/33_transform_columns.sql).
    flagged: bool = True
    rules: tuple[RuleSet, ...] = ()
    imputation: Imputation | None = None
    shaping: Shaping | None = None
    role: Role | None = None
    #: Reference data: the columns later runs read back from the warehouse
    #: (a daily run reads only new files and must still check against it).
    reference_columns: tuple[str, ...] = ()

    @property
    def source_columns(self) -> list[str]:
        return [c.source for c in self.columns]

    @property
    def target_columns(self) -> list[str]:
        return [c.target for c in self.columns]

    @property
    def merge_key(self) -> tuple[str, ...]:
        """What the load merges on: ``conflict_key``, else the natural key."""
        return self.conflict_key or self.key

    @property
    def source_key(self) -> tuple[str, ...]:
        """The natural key as source column names (how mapped records name it)."""
        by_target = {c.target: c.source for c in self.columns}
        return tuple(by_target[k] for k in self.key)

    @property
    def aggregated(self) -> bool:
        """Many source rows per warehouse row, merged after the checks (geolocation points
        per zip prefix): no clean file per chunk, and quarantined rows are not retried
        (the table holds aggregates, not the rows)."""
        return self.shaping == "aggregate_points"


@dataclass(frozen=True)
class SourceFile:
    """A located source file of one table."""

    spec: TableSpec
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


C = Column

CATEGORY_TRANSLATION = TableSpec(
    name="category_translation",
    file_stem="product_category_name_translation",
    kind="dimension",
    columns=(
        C("product_category_name", "category_name", "text", True),
        C("product_category_name_english", "category_name_english", "text", True),
    ),
    key=("category_name",),
    flagged=False,
    role="translation",
    reference_columns=("category_name", "category_name_english"),
)

GEOLOCATION = TableSpec(
    name="dim_geolocation",
    file_stem="olist_geolocation_dataset",
    kind="dimension",
    columns=(
        C("geolocation_zip_code_prefix", "zip_code_prefix", "zip", True),
        C("geolocation_lat", "latitude", "float", True),
        C("geolocation_lng", "longitude", "float", True),
        C("geolocation_city", "city", "text", True),
        C("geolocation_state", "state", "state", True),
    ),
    key=(),  # many points per zip prefix: aggregated, not deduplicated
    conflict_key=("zip_code_prefix",),
    flagged=False,
    rules=("coordinates",),
    shaping="aggregate_points",
    role="places",
    reference_columns=("zip_code_prefix", "city", "state"),
)

CUSTOMERS = TableSpec(
    name="dim_customers",
    file_stem="olist_customers_dataset",
    kind="dimension",
    columns=(
        C("customer_id", "customer_id", "id", True),
        C("customer_unique_id", "customer_unique_id", "id", True),
        C("customer_zip_code_prefix", "zip_code_prefix", "zip"),
        C("customer_city", "city", "text"),
        C("customer_state", "state", "state"),
    ),
    key=("customer_id",),
    lineage=("source_system", "source_id"),
    rules=("location",),
    imputation="location",
)

PRODUCTS = TableSpec(
    name="dim_products",
    file_stem="olist_products_dataset",
    kind="dimension",
    columns=(
        C("product_id", "product_id", "id", True),
        C("product_category_name", "category_name", "category"),
        # sic: the Olist headers misspell "length"
        C("product_name_lenght", "name_length", "int"),
        C("product_description_lenght", "description_length", "int"),
        C("product_photos_qty", "photos_qty", "int"),
        C("product_weight_g", "weight_g", "int"),
        C("product_length_cm", "length_cm", "int"),
        C("product_height_cm", "height_cm", "int"),
        C("product_width_cm", "width_cm", "int"),
    ),
    key=("product_id",),
    lineage=("source_system", "source_id"),
    scd2=Scd2("product_id", "product_key"),
    rules=("category",),
    imputation="category",
    shaping="translate_category",
)

SELLERS = TableSpec(
    name="dim_sellers",
    file_stem="olist_sellers_dataset",
    kind="dimension",
    columns=(
        C("seller_id", "seller_id", "id", True),
        C("seller_zip_code_prefix", "zip_code_prefix", "zip"),
        C("seller_city", "city", "text"),
        C("seller_state", "state", "state"),
    ),
    key=("seller_id",),
    lineage=("source_system", "source_id"),
    scd2=Scd2("seller_id", "seller_key"),
    rules=("location",),
    imputation="location",
)

ORDERS = TableSpec(
    name="fact_orders",
    file_stem="olist_orders_dataset",
    columns=(
        C("order_id", "order_id", "id", True),
        C("customer_id", "customer_id", "id", True),
        C("order_status", "order_status", "text", True),
        C("order_purchase_timestamp", "purchased_at", "timestamp", True),
        C("order_approved_at", "approved_at", "timestamp"),
        C("order_delivered_carrier_date", "delivered_carrier_at", "timestamp"),
        C("order_delivered_customer_date", "delivered_customer_at", "timestamp"),
        C("order_estimated_delivery_date", "estimated_delivery_at", "timestamp"),
    ),
    key=("order_id",),
    foreign_keys=(ForeignKey(("customer_id",), "dim_customers", ("customer_id",)),),
    lineage=LINEAGE_COLUMNS,
    conflict_key=("order_id", "purchased_at"),
    event_time=EventTime("purchased_at"),
    movable_in_time=True,
    rules=("order",),
    role="orders",
)

ORDER_ITEMS = TableSpec(
    name="fact_order_items",
    file_stem="olist_order_items_dataset",
    columns=(
        C("order_id", "order_id", "id", True),
        C("order_item_id", "order_item_id", "int", True),
        C("product_id", "product_id", "id", True),
        C("seller_id", "seller_id", "id", True),
        C("shipping_limit_date", "shipping_limit_at", "timestamp", True),
        C("price", "price_cents", "money", True),
        C("freight_value", "freight_cents", "money", True),
    ),
    key=("order_id", "order_item_id"),
    foreign_keys=(
        ForeignKey(("order_id",), "fact_orders", ("order_id",)),
        ForeignKey(("product_id",), "dim_products", ("product_id",)),
        ForeignKey(("seller_id",), "dim_sellers", ("seller_id",)),
    ),
    lineage=LINEAGE_COLUMNS,
    links=(
        Link("product_key", "dim_products", "product_id"),
        Link("seller_key", "dim_sellers", "seller_id"),
    ),
    event_time=EventTime("purchased_at", "fact_orders", "order_id"),
    rules=("order_item",),
    role="item_totals",
)

PAYMENTS = TableSpec(
    name="fact_payments",
    file_stem="olist_order_payments_dataset",
    columns=(
        C("order_id", "order_id", "id", True),
        C("payment_sequential", "payment_sequential", "int", True),
        C("payment_type", "payment_type", "text", True),
        C("payment_installments", "payment_installments", "int", True),
        C("payment_value", "payment_value_cents", "money", True),
    ),
    key=("order_id", "payment_sequential"),
    foreign_keys=(ForeignKey(("order_id",), "fact_orders", ("order_id",)),),
    # payments feed customer lifetime value and the category figures (etl/publish/derived.py)
    event_time=EventTime("purchased_at", "fact_orders", "order_id"),
    lineage=LINEAGE_COLUMNS,
    rules=("payment",),
    role="payment_totals",
)

REVIEWS = TableSpec(
    name="fact_reviews",
    file_stem="olist_order_reviews_dataset",
    columns=(
        C("review_id", "review_id", "id", True),
        C("order_id", "order_id", "id", True),
        C("review_score", "review_score", "int", True),
        C("review_comment_title", "comment_title", "text", free_text=True),
        C("review_comment_message", "comment_message", "text", free_text=True),
        C("review_creation_date", "created_at", "timestamp", True),
        C("review_answer_timestamp", "answered_at", "timestamp"),
    ),
    # review_id alone repeats in the real data (one review covering two orders)
    key=("review_id", "order_id"),
    foreign_keys=(ForeignKey(("order_id",), "fact_orders", ("order_id",)),),
    rules=("review",),
)

#: The calendar, derived in the run from the orders' purchase dates (no source file).
DATES = TableSpec(
    name="dim_dates",
    file_stem="",
    kind="dimension",
    columns=(),
    key=("date_key",),
    flagged=False,
)

#: In dependency order: what a table references is processed before it.
ALL_TABLES: tuple[TableSpec, ...] = (
    CATEGORY_TRANSLATION,
    GEOLOCATION,
    CUSTOMERS,
    PRODUCTS,
    SELLERS,
    ORDERS,
    ORDER_ITEMS,
    PAYMENTS,
    REVIEWS,
)
#: Tables a run derives instead of reading (loaded after the sources' tables).
DERIVED_TABLES: tuple[TableSpec, ...] = (DATES,)
#: Every table a run loads, by name.
SPECS: dict[str, TableSpec] = {t.name: t for t in ALL_TABLES + DERIVED_TABLES}
WAREHOUSE_TABLES = [t.name for t in ALL_TABLES if t is not CATEGORY_TRANSLATION] + [DATES.name]
#: Tables other tables point at, and the column they point at (their keys cross chunks and runs).
REFERENCED: dict[str, str] = {
    fk.table: fk.ref_columns[0] for spec in ALL_TABLES for fk in spec.foreign_keys if len(fk.ref_columns) == 1
}

ORDER_STATUSES = frozenset(
    {"created", "approved", "invoiced", "processing", "shipped", "delivered", "canceled", "unavailable"}
)
PAYMENT_TYPES = frozenset({"credit_card", "boleto", "voucher", "debit_card", "not_defined"})
BRAZIL_STATES = frozenset(
    {
        "AC",
        "AL",
        "AM",
        "AP",
        "BA",
        "CE",
        "DF",
        "ES",
        "GO",
        "MA",
        "MG",
        "MS",
        "MT",
        "PA",
        "PB",
        "PE",
        "PI",
        "PR",
        "RJ",
        "RN",
        "RO",
        "RR",
        "RS",
        "SC",
        "SE",
        "SP",
        "TO",
    }
)
