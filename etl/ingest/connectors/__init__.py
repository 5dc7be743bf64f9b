"""API connectors: one module per vendor (pagination, auth, mapping)."""

from etl.ingest.connectors.base import Connector, fetch_pages
from etl.ingest.connectors.shopify import ShopifyOrders
from etl.ingest.connectors.stripe import StripeCharges, StripePaymentIntents
from etl.ingest.connectors.woocommerce import WooCommerceOrders

#: sources.yml ``kind`` -> connector class
CONNECTORS: dict[str, type[Connector]] = {
    "shopify": ShopifyOrders,
    "stripe": StripeCharges,
    "stripe_charges": StripeCharges,
    "stripe_payment_intents": StripePaymentIntents,
    "woocommerce": WooCommerceOrders,
}

__all__ = ["CONNECTORS", "Connector", "fetch_pages"]
