"""Cut the small sample shipped in data/sample/olist from the shared Olist subset.

The sample is referentially consistent: N orders chosen at random (fixed seed)
with all their items, payments, reviews and customers, the products and
sellers those items reference, the geolocation points of every zip prefix
they use, and the full category translation. Fields are copied as strings,
byte for byte, so the sample is as messy as the source.

    python scripts/make_sample.py --source ../shared/data/olist --orders 2000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent.parent / "data" / "sample" / "olist"


def read(source: Path, stem: str) -> pd.DataFrame:
    path = source / f"{stem}.csv.gz"
    if not path.exists():
        path = source / f"{stem}.csv"
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def write(frame: pd.DataFrame, stem: str) -> None:
    frame.to_csv(OUT / f"{stem}.csv", index=False, lineterminator="\n")
    print(f"{stem}.csv: {len(frame):,} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    orders = read(args.source, "olist_orders_dataset").sample(n=args.orders, random_state=args.seed)
    orders = orders.sort_values("order_purchase_timestamp")
    ids = set(orders["order_id"])
    items = read(args.source, "olist_order_items_dataset")
    items = items[items["order_id"].isin(ids)]
    payments = read(args.source, "olist_order_payments_dataset")
    reviews = read(args.source, "olist_order_reviews_dataset")
    customers = read(args.source, "olist_customers_dataset")
    customers = customers[customers["customer_id"].isin(set(orders["customer_id"]))]
    products = read(args.source, "olist_products_dataset")
    products = products[products["product_id"].isin(set(items["product_id"]))]
    sellers = read(args.source, "olist_sellers_dataset")
    sellers = sellers[sellers["seller_id"].isin(set(items["seller_id"]))]
    zips = set(customers["customer_zip_code_prefix"]) | set(sellers["seller_zip_code_prefix"])
    geo = read(args.source, "olist_geolocation_dataset")

    write(orders, "olist_orders_dataset")
    write(items, "olist_order_items_dataset")
    write(payments[payments["order_id"].isin(ids)], "olist_order_payments_dataset")
    write(reviews[reviews["order_id"].isin(ids)], "olist_order_reviews_dataset")
    write(customers, "olist_customers_dataset")
    write(products, "olist_products_dataset")
    write(sellers, "olist_sellers_dataset")
    write(geo[geo["geolocation_zip_code_prefix"].isin(zips)], "olist_geolocation_dataset")
    write(read(args.source, "product_category_name_translation"), "product_category_name_translation")


if __name__ == "__main__":
    main()
