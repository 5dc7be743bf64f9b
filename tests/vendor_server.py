"""A real HTTP server on 127.0.0.1 playing Shopify, Stripe and WooCommerce.

It serves the vendors' real example bodies (../shared/data/api_fixtures), each
record cloned into ``n`` records with new ids and increasing timestamps (the
fixtures hold one or two records; pagination needs more), split into pages
with each vendor's own pagination: Shopify's ``Link: <...page_info=...>;
rel="next"``, Stripe's ``has_more`` + ``starting_after``, WooCommerce's
``X-WP-Total`` / ``X-WP-TotalPages``. Incremental filters are honoured
(``updated_at_min``, ``created[gte]``, ``modified_after``) and auth is checked.

Faults are injected on demand, one per request, from ``server.faults``:
``429`` (with Retry-After), ``500``/``502``/``503``, ``slow`` (answers after the
client's timeout), ``reset`` (connection dropped without a response),
``invalid_json``, ``empty`` (an empty page that still says more follow) and
``repeat`` (the previous page again). ``server.permanent`` fails every request.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import socket
import struct
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(os.environ.get("ETL_API_FIXTURES", "/work/shared/data/api_fixtures"))
SHOPIFY_TOKEN, STRIPE_KEY, WOO_KEY, WOO_SECRET = "shpat_test", "sk_test_123", "ck_test", "cs_test"
BASE_TIME = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def _load(path: str):
    return json.loads((FIXTURES / path).read_text())


def shopify_orders(n: int) -> list[dict]:
    template = _load("shopify/orders_list_2024-01.json")["orders"][0]
    out = []
    for k in range(n):
        order = copy.deepcopy(template)
        order["id"] = template["id"] + k
        order["updated_at"] = (BASE_TIME + timedelta(hours=k)).isoformat()
        order["created_at"] = (BASE_TIME + timedelta(hours=k)).isoformat()
        order["customer"]["id"] = template["customer"]["id"] + k % 3  # customers repeat
        out.append(order)
    return out


def stripe_charges(n: int) -> list[dict]:
    template = _load("stripe/charges_list.json")["data"][0]
    out = []
    for k in range(n):
        charge = copy.deepcopy(template)
        charge["id"] = f"{template['id']}_{k:03d}"
        charge["created"] = int((BASE_TIME + timedelta(hours=k)).timestamp())
        charge["amount"] = template["amount"] + k
        out.append(charge)
    return list(reversed(out))  # Stripe lists newest first


def woo_orders(n: int) -> list[dict]:
    templates = _load("woocommerce/orders_list.json")
    out = []
    for k in range(n):
        order = copy.deepcopy(templates[k % len(templates)])
        order["id"] = 1000 + k
        stamp = (BASE_TIME + timedelta(hours=k)).strftime("%Y-%m-%dT%H:%M:%S")
        order["date_created_gmt"] = order["date_modified_gmt"] = stamp
        out.append(order)
    return out


class VendorServer:
    def __init__(self, n: int = 7, page_size: int = 3, slow_seconds: float = 1.0) -> None:
        self.data = {"shopify": shopify_orders(n), "stripe": stripe_charges(n), "woocommerce": woo_orders(n)}
        self.page_size = page_size
        self.slow_seconds = slow_seconds
        self.faults: list[str | None] = []
        self.permanent: str | None = None
        self.log: list[tuple[str, str, int]] = []  # (vendor, path?query, status)
        self.last_page: dict[str, tuple[int, dict, bytes]] = {}
        self.lock = threading.Lock()
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> VendorServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def next_fault(self) -> str | None:
        with self.lock:
            if self.permanent:
                return self.permanent
            return self.faults.pop(0) if self.faults else None

    def ok_pages(self, vendor: str) -> int:
        return sum(1 for v, _, status in self.log if v == vendor and status == 200)

    # --- pages per vendor: (status, headers, body) ---------------------------------------
    def shopify(self, query: dict, path: str) -> tuple[int, dict, bytes]:
        # page_info is opaque to clients; here it carries "<offset>.<updated_at_min epoch>".
        if "page_info" in query:
            start, since_epoch = (int(x) for x in query["page_info"].split("."))
        else:
            start = 0
            since = query.get("updated_at_min")
            since_epoch = (
                int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()) if since else 0
            )
        records = [
            r
            for r in self.data["shopify"]
            if datetime.fromisoformat(r["updated_at"]).timestamp() >= since_epoch
        ]
        limit = int(query.get("limit", 50))
        page = records[start : start + limit]
        links = []
        if start + limit < len(records):
            links.append(
                f'<{self.url}{path}?page_info={start + limit}.{since_epoch}&limit={limit}>; rel="next"'
            )
        if start > 0:
            links.append(
                f"<{self.url}{path}?page_info={max(0, start - limit)}.{since_epoch}&limit={limit}>; "
                'rel="previous"'
            )
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, headers, json.dumps({"orders": page}).encode()

    def stripe(self, query: dict) -> tuple[int, dict, bytes]:
        records = self.data["stripe"]
        if "created[gte]" in query:
            records = [r for r in records if r["created"] >= int(query["created[gte]"])]
        if "starting_after" in query:
            ids = [r["id"] for r in records]
            records = records[ids.index(query["starting_after"]) + 1 :]
        limit = int(query.get("limit", 10))
        body = {
            "object": "list",
            "url": "/v1/charges",
            "has_more": len(records) > limit,
            "data": records[:limit],
        }
        return 200, {}, json.dumps(body).encode()

    def woocommerce(self, query: dict) -> tuple[int, dict, bytes]:
        records = self.data["woocommerce"]
        if "modified_after" in query:
            records = [r for r in records if r["date_modified_gmt"] > query["modified_after"]]
        per_page, page = int(query.get("per_page", 10)), int(query.get("page", 1))
        total_pages = max(1, -(-len(records) // per_page))
        headers = {"X-WP-Total": str(len(records)), "X-WP-TotalPages": str(total_pages)}
        return 200, headers, json.dumps(records[(page - 1) * per_page : page * per_page]).encode()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                vendor = (
                    "shopify"
                    if "/admin/api/" in parts.path
                    else "stripe"
                    if parts.path.startswith("/v1/")
                    else "woocommerce"
                )
                if not self._authorised(vendor):
                    return self._send(vendor, 401, {}, b'{"errors":"unauthorised"}')
                fault = server.next_fault()
                if fault == "reset":
                    # RST instead of a response: the client sees "connection reset by peer".
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    server.log.append((vendor, self.path, 0))
                    self.connection.close()
                    return
                if fault in ("429", "500", "502", "503"):
                    headers = {"Retry-After": "2"} if fault in ("429", "503") else {}
                    return self._send(vendor, int(fault), headers, b'{"errors":"try later"}')
                if fault == "slow":
                    # Logged now, not when the late answer goes out to a client that gave up.
                    server.log.append((vendor, self.path, -1))
                    time.sleep(server.slow_seconds)
                    self.close_connection = True
                    return
                if fault == "repeat" and vendor in server.last_page:
                    status, headers, body = server.last_page[vendor]
                    return self._send(vendor, status, headers, body)
                if vendor == "shopify":
                    status, headers, body = server.shopify(query, parts.path)
                elif vendor == "stripe":
                    status, headers, body = server.stripe(query)
                else:
                    status, headers, body = server.woocommerce(query)
                if fault == "invalid_json":
                    server.log.append((vendor, self.path, -2))
                    return self._send(vendor, 200, headers, body[: len(body) // 2], log=False)
                if fault == "empty":
                    empty = {
                        "shopify": b'{"orders": []}',
                        "woocommerce": b"[]",
                        "stripe": json.dumps({"object": "list", "has_more": True, "data": []}).encode(),
                    }[vendor]
                    return self._send(vendor, 200, headers, empty)
                server.last_page[vendor] = (status, headers, body)
                self._send(vendor, status, headers, body)

            def _authorised(self, vendor: str) -> bool:
                if vendor == "shopify":
                    return self.headers.get("X-Shopify-Access-Token") == SHOPIFY_TOKEN
                if vendor == "stripe":
                    return self.headers.get("Authorization") == f"Bearer {STRIPE_KEY}"
                expected = base64.b64encode(f"{WOO_KEY}:{WOO_SECRET}".encode()).decode()
                return self.headers.get("Authorization") == f"Basic {expected}"

            def _send(self, vendor: str, status: int, headers: dict, body: bytes, log: bool = True) -> None:
                if log:
                    server.log.append((vendor, self.path, status))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): expected with the slow fault

        return Handler
