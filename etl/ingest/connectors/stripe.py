"""Stripe: charges and payment_intents, ``has_more`` + ``starting_after``, bearer key.

Incremental by ``created[gte]`` (Stripe lists have no updated filter, so a
later refund of an old charge is not seen again -- say so in docs). A charge
or PaymentIntent becomes an order of the ``stripe`` system with one payment;
amounts are in minor units (cents) and kept so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from etl.ingest.connectors.base import Connector, Request
from etl.ingest.connectors.common import iso_utc, order_rows, payment_type_for
from etl.ingest.http import Page
from etl.ingest.records import minor_to_major
from etl.ingest.state import Watermark

CHARGE_STATUS = {"succeeded": "approved", "pending": "processing", "failed": "unavailable"}
INTENT_STATUS = {
    "succeeded": "approved",
    "processing": "processing",
    "canceled": "canceled",
    "requires_capture": "approved",
}


@dataclass
class _StripeList(Connector):
    system: str = "stripe"
    resource: str = ""

    def headers(self) -> dict:
        return {**super().headers(), "Authorization": f"Bearer {self.secrets.get('key', '')}"}

    def first_request(self, since: Watermark | None) -> Request:
        params: dict = {"limit": min(self.page_size, 100)}
        start = since.cursor_value if since else self.options.get("start")
        if start:
            params["created[gte]"] = int(datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp())
        return f"{self.base_url.rstrip('/')}/v1/{self.resource}", params

    def next_request(self, page: Page, request: Request, records: list[dict]) -> Request | None:
        if not page.data.get("has_more"):
            return None
        if not records:  # has_more with an empty page: nothing to continue after
            return None
        url, params = request
        return url, {**params, "starting_after": records[-1]["id"]}

    def more_expected(self, page: Page, request: Request) -> bool:
        return bool(page.data.get("has_more"))

    def records(self, data: Any) -> list[dict]:
        return list(data["data"])

    def cursor(self, record: dict) -> str:
        return iso_utc(record["created"])

    def _order(self, r: dict, status: str, amount: int | None, tz: str) -> dict[str, list[dict]]:
        currency = r.get("currency") or ""
        card = (r.get("payment_method_details") or {}).get("card") or {}
        plan = (card.get("installments") or {}).get("plan") or {}
        billing = r.get("billing_details") or {}
        return order_rows(
            system=self.system,
            order_id=r["id"],
            currency=currency,
            customer_key=r.get("customer") or billing.get("email") or r.get("receipt_email") or r["id"],
            address=billing.get("address") or {},
            status=status,
            purchased=r["created"],
            approved=r["created"] if status == "approved" else None,
            seller_key=None,
            items=[],
            shipping=0.0,
            payments=[
                {
                    "type": payment_type_for(
                        f"{card.get('funding', '')} card"
                        if card
                        else ",".join(r.get("payment_method_types") or [])
                    ),
                    "installments": plan.get("count") or 1,
                    "value": minor_to_major(amount, currency),
                }
            ],
            tz=tz,
        )


@dataclass
class StripeCharges(_StripeList):
    entity: str = "charges"
    resource: str = "charges"

    def map(self, r: dict, tz: str) -> dict[str, list[dict]]:
        status = "canceled" if r.get("refunded") else CHARGE_STATUS.get(r.get("status") or "", "created")
        return self._order(r, status, r.get("amount"), tz)


@dataclass
class StripePaymentIntents(_StripeList):
    entity: str = "payment_intents"
    resource: str = "payment_intents"

    def map(self, r: dict, tz: str) -> dict[str, list[dict]]:
        status = INTENT_STATUS.get(r.get("status") or "", "created")
        amount = r.get("amount_received") or r.get("amount")
        return self._order(r, status, amount, tz)
