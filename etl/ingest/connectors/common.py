"""Shared mapping of a vendor order onto the warehouse tables (Olist source columns).

Olist's grain is kept: one ``fact_order_items`` row per unit (a line of
quantity 3 becomes items 1, 2, 3), the order's shipping goes on its first
item's freight, the shop is the seller, and addresses fill zip/state only for
Brazilian addresses (the warehouse's zip and state columns are Brazilian).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from etl.ingest.records import local_timestamp, vendor_id


def iso_utc(value: Any) -> str:
    """A vendor timestamp (ISO with offset, naive UTC, or epoch) as YYYY-MM-DDTHH:MM:SSZ."""
    if value in (None, ""):
        return ""
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, tz=UTC)
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def first_address(*candidates: dict | None) -> dict:
    for candidate in candidates:
        if candidate:
            return candidate
    return {}


def payment_type_for(method: str) -> str:
    """Vendor payment method -> one of Olist's payment types."""
    method = (method or "").lower()
    if "debit" in method:
        return "debit_card"
    if any(word in method for word in ("card", "credit", "stripe", "shopify_payments", "visa")):
        return "credit_card"
    if "boleto" in method:
        return "boleto"
    if any(word in method for word in ("voucher", "gift")):
        return "voucher"
    return "not_defined"


def customer_row(system: str, key: Any, address: dict, currency: str | None) -> dict:
    brazil = (address.get("country_code") or address.get("country") or "").upper() in ("BR", "BRAZIL")
    zip_digits = "".join(
        ch for ch in str(address.get("zip") or address.get("postcode") or "") if ch.isdigit()
    )
    cid = vendor_id(system, "customer", key)
    return {
        "customer_id": cid,
        "customer_unique_id": cid,
        "customer_zip_code_prefix": zip_digits[:5] if brazil and zip_digits else None,
        "customer_city": address.get("city") or None,
        "customer_state": (address.get("province_code") or address.get("state")) if brazil else None,
        "source_system": system,
        "source_id": str(key),
        "currency": None,
    }


def order_rows(
    *,
    system: str,
    order_id: Any,
    currency: str | None,
    customer_key: Any,
    address: dict,
    status: str,
    purchased: Any,
    approved: Any,
    seller_key: str | None,
    items: list[dict],
    shipping: float,
    payments: list[dict],
    tz: str,
) -> dict[str, list[dict]]:
    currency = (currency or "").upper() or None
    oid = vendor_id(system, "order", order_id)
    customer = customer_row(system, customer_key, address, currency)
    lineage = {"source_system": system, "currency": currency}
    rows: dict[str, list[dict]] = {
        "dim_customers": [customer],
        "fact_orders": [
            {
                "order_id": oid,
                "customer_id": customer["customer_id"],
                "order_status": status,
                "order_purchase_timestamp": local_timestamp(purchased, tz),
                "order_approved_at": local_timestamp(approved, tz),
                "source_id": str(order_id),
                **lineage,
            }
        ],
        "fact_payments": [
            {
                "order_id": oid,
                "payment_sequential": n,
                "payment_type": p["type"],
                "payment_installments": p.get("installments", 1),
                "payment_value": p["value"],
                "source_id": str(order_id),
                **lineage,
            }
            for n, p in enumerate(payments, start=1)
        ],
    }
    if items:
        seller_id = vendor_id(system, "seller", seller_key)
        rows["dim_sellers"] = [
            {"seller_id": seller_id, "source_system": system, "source_id": str(seller_key)}
        ]
        rows["dim_products"], rows["fact_order_items"] = [], []
        n = 0
        for item in items:
            pid = vendor_id(system, "product", item["product_id"])
            rows["dim_products"].append(
                {"product_id": pid, "source_system": system, "source_id": str(item["product_id"])}
            )
            for _ in range(int(item.get("quantity") or 1)):
                n += 1
                rows["fact_order_items"].append(
                    {
                        "order_id": oid,
                        "order_item_id": n,
                        "product_id": pid,
                        "seller_id": seller_id,
                        "shipping_limit_date": local_timestamp(purchased, tz),
                        "price": item["price"],
                        "freight_value": f"{shipping:.2f}" if n == 1 else "0.00",
                        "source_id": str(item["product_id"]),
                        **lineage,
                    }
                )
    return rows
