"""What every API connector provides, and the one paging loop they all share.

A connector knows its vendor's URLs, auth, pagination and record shape; the
loop here adds what real networks need on top of the HTTP client's retries:
a page whose records were all seen already (a repeated page) or an empty page
while the vendor says more follow is fetched again (up to ``refetch_limit``
times) before moving on, and every page received is handed to the caller
(which archives it) -- duplicates are dropped by record id downstream.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from etl.errors import SourceError
from etl.ingest.http import HttpClient, Page
from etl.ingest.state import Watermark

log = logging.getLogger(__name__)

Request = tuple[str, dict]  # (url, query parameters)


@dataclass
class Connector(ABC):
    """One vendor endpoint. ``options`` is the source's entry in sources.yml."""

    name: str  # the source name in sources.yml
    base_url: str
    options: dict = field(default_factory=dict)
    secrets: dict = field(default_factory=dict)

    system: str = ""  # lineage: source_system
    entity: str = ""  # watermark entity (orders, charges...)

    # --- how to talk to the vendor ---------------------------------------------------
    def headers(self) -> dict:
        return {"Accept": "application/json"}

    def auth(self) -> Any:
        return None

    @abstractmethod
    def first_request(self, since: Watermark | None) -> Request: ...

    @abstractmethod
    def next_request(self, page: Page, request: Request, records: list[dict]) -> Request | None: ...

    def more_expected(self, page: Page, request: Request) -> bool:
        """Does the vendor say further pages follow this one?"""
        return self.next_request(page, request, []) is not None

    # --- what a page holds ---------------------------------------------------------------
    @abstractmethod
    def records(self, data: Any) -> list[dict]: ...

    def record_id(self, record: dict) -> str:
        return str(record["id"])

    @abstractmethod
    def cursor(self, record: dict) -> str:
        """The record's incremental cursor as a sortable UTC string (YYYY-MM-DDTHH:MM:SSZ)."""

    @abstractmethod
    def map(self, record: dict, tz: str) -> dict[str, list[dict]]:
        """The record as rows of warehouse tables, in Olist source columns (etl.ingest.records)."""

    @property
    def page_size(self) -> int:
        return int(self.options.get("page_size", 100))


def fetch_pages(
    connector: Connector,
    client: HttpClient,
    since: Watermark | None,
    refetch_limit: int = 2,
    max_pages: int = 100_000,
) -> Iterator[Page]:
    """Every page of the endpoint from the watermark on, as received (including glitches)."""
    request: Request | None = connector.first_request(since)
    seen: set[str] = set()
    refetches = 0
    pages = 0
    while request is not None:
        pages += 1
        if pages > max_pages:
            raise SourceError(
                f"source {connector.name}: more than {max_pages} pages; "
                "the vendor's pagination does not end (check page_size/filters)"
            )
        page = client.get_json(*request)
        try:
            records = connector.records(page.data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise SourceError(
                f"source {connector.name}: {page.url} did not answer a "
                f"{connector.system} list body ({type(exc).__name__}: {exc})"
            ) from exc
        yield page
        ids = [connector.record_id(r) for r in records]
        repeated = bool(ids) and all(i in seen for i in ids)
        empty_but_more = not ids and connector.more_expected(page, request)
        if (repeated or empty_but_more) and refetches < refetch_limit:
            refetches += 1
            log.warning(
                "%s: %s page at %s; fetching it again",
                connector.name,
                "repeated" if repeated else "empty",
                page.url,
            )
            continue
        refetches = 0
        seen.update(ids)
        request = connector.next_request(page, request, records)
