"""The contract for the Olist e-commerce files: which file feeds which table.

This is configuration, kept apart from the code that applies it: each
``TableSpec`` names the source file, the warehouse table, how every source
column is typed and renamed, the natural key, and the foreign keys that must
resolve. ``transform`` and ``load`` read only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: Vendor lineage columns a mapped (non-Olist) record carries beside the Olist columns:
#: the system it came from, the vendor's own id and the currency (etl.ingest.records).
LINEAGE_COLUMNS = ("source_system", "source_id", "currency")

ColumnKind = Literal["id", "text", "int", "money", "timestamp", "zip", "state", "float", "category"]


@dataclass(frozen=True)
class Column:
    source: str  # header in the CSV
    target: str  # column in the warehouse table
    kind: ColumnKind
    required: bool = False


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]  # target column names in this table
    table: str  # referenced warehouse table
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    name: str  # warehouse table
    file_stem: str  # source file without .csv / .csv.gz
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # natural key (target names)
    kind: Literal["dimension", "fact"] = "fact"
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)
    #: Lineage columns the warehouse table has (sql/schema.d/20_ingest_state.sql), carried
    #: from the input when present; Olist files have none, so their rows keep NULL.
    lineage: tuple[str, ...] = ()

    @property
    def source_columns(self) -> list[str]:
        return [c.source for c in self.columns]

    @property
    def target_columns(self) -> list[str]:
        return [c.target for c in self.columns]


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
    lineage=LINEAGE_COLUMNS,
)

REVIEWS = TableSpec(
    name="fact_reviews",
    file_stem="olist_order_reviews_dataset",
    columns=(
        C("review_id", "review_id", "id", True),
        C("order_id", "order_id", "id", True),
        C("review_score", "review_score", "int", True),
        C("review_comment_title", "comment_title", "text"),
        C("review_comment_message", "comment_message", "text"),
        C("review_creation_date", "created_at", "timestamp", True),
        C("review_answer_timestamp", "answered_at", "timestamp"),
    ),
    # review_id alone repeats in the real data (one review covering two orders)
    key=("review_id", "order_id"),
    foreign_keys=(ForeignKey(("order_id",), "fact_orders", ("order_id",)),),
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
WAREHOUSE_TABLES = [t.name for t in ALL_TABLES if t is not CATEGORY_TRANSLATION] + ["dim_dates"]

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
