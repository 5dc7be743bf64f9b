"""Writes the bad-input corpus beside this file (``python tests/data/bad/make_corpus.py``).

Each file replaces one table's source file of the shipped sample
(``data/sample/olist``); its name says which: ``<table stem>__<case>.csv[.gz]``,
e.g. ``order_reviews__nul_bytes.csv`` stands in for
``olist_order_reviews_dataset.csv``. Rows use new ids (one prefix per file) that
point at orders, customers, products and sellers of the sample, so a file's
rows are new to a warehouse holding the sample and nothing else differs.
The files are committed; this script is how they were made, and remakes them
byte for byte. ``tests/reliability/test_bad_inputs.py`` holds the exact outcome
of each.
"""

from __future__ import annotations

import gzip
from pathlib import Path

HERE = Path(__file__).resolve().parent

ORDER = "001ac194d4a326a6fa99b581e9a3d963"  # sample order with one item and a payment
CUSTOMER = "0018f7fde63ca77254dbc47f4ea358b2"  # sample customer
PRODUCT = "dbaee28f4ee64465838a229582d77520"
SELLER = "ffc470761de7d0232558ba5e786e57b7"

ORDERS_HEADER = (
    "order_id,customer_id,order_status,order_purchase_timestamp,order_approved_at,"
    "order_delivered_carrier_date,order_delivered_customer_date,order_estimated_delivery_date"
)
ITEMS_HEADER = "order_id,order_item_id,product_id,seller_id,shipping_limit_date,price,freight_value"
REVIEWS_HEADER = (
    "review_id,order_id,review_score,review_comment_title,review_comment_message,"
    "review_creation_date,review_answer_timestamp"
)


def oid(prefix: str, n: int) -> str:
    """A 32-character id unique to one corpus file and row."""
    return (prefix + f"{n:04d}").rjust(32, "0")


def order(prefix: str, n: int, purchase: str = "2017-10-02 10:00:00", customer: str = CUSTOMER) -> str:
    return f"{oid(prefix, n)},{customer},delivered,{purchase},,,,"


def item(n: int, price: str, order_id: str = ORDER, freight: str = "1.00") -> str:
    return f"{order_id},{100 + n},{PRODUCT},{SELLER},2017-10-05 10:00:00,{price},{freight}"


def review(prefix: str, n: int, message: str, title: str = "") -> str:
    return f"{oid(prefix, n)},{ORDER},5,{title},{message},2017-10-10 00:00:00,2017-10-11 10:00:00"


def lines(*rows: str, header: str, newline: str = "\n") -> bytes:
    return (newline.join([header, *rows]) + newline).encode("utf-8")


def corpus() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    o = lambda name, *rows, **kw: files.__setitem__(f"orders__{name}.csv", lines(*rows, header=ORDERS_HEADER, **kw))  # noqa: E731
    i = lambda name, *rows, **kw: files.__setitem__(f"order_items__{name}.csv", lines(*rows, header=ITEMS_HEADER, **kw))  # noqa: E731
    r = lambda name, *rows, **kw: files.__setitem__(f"order_reviews__{name}.csv", lines(*rows, header=REVIEWS_HEADER, **kw))  # noqa: E731

    files["orders__empty.csv"] = b""
    o("header_only")
    files["order_reviews__bom.csv"] = b"\xef\xbb\xbf" + lines(review("b0", 1, "ok"), review("b0", 2, "bom"), header=REVIEWS_HEADER)
    r("crlf", review("c0", 1, "linha um"), review("c0", 2, "linha dois"), newline="\r\n")
    files["order_reviews__latin1_in_utf8.csv"] = lines(
        review("1a", 1, "bom"), header=REVIEWS_HEADER
    ) + f"{oid('1a', 2)},{ORDER},4,,Entrega r\xe1pida e not\xe1vel,2017-10-10 00:00:00,2017-10-11 10:00:00\n".encode("latin-1")
    r("unterminated_quote", review("0e", 1, "fine"), review("0e", 2, '"never closed'), review("0e", 3, "lost"))
    r("embedded_newlines", review("e1", 1, '"first line\nsecond line"'), review("e1", 2, '"a\r\nb"'))
    files["orders__extra_column.csv"] = lines(
        *(order("ec", n) + ",surplus" for n in (1, 2)), header=ORDERS_HEADER + ",loyalty_tier"
    )
    files["orders__missing_column.csv"] = lines(
        f"{oid('ac', 1)},{CUSTOMER},2017-10-02 10:00:00,,,,", header=ORDERS_HEADER.replace("order_status,", "")
    )
    files["orders__reordered_columns.csv"] = lines(
        f"delivered,{oid('bc', 1)},2017-10-02 10:00:00,{CUSTOMER},,,,",
        header="order_status,order_id,order_purchase_timestamp,customer_id,order_approved_at,"
        "order_delivered_carrier_date,order_delivered_customer_date,order_estimated_delivery_date",
    )
    files["orders__wrong_delimiter.csv"] = lines(
        order("dd", 1).replace(",", ";"), header=ORDERS_HEADER.replace(",", ";")
    )
    i("comma_decimals", item(1, '"10,50"'), item(2, "10.50"), item(3, '"1.234,56"'))
    o("date_format_dmy", order("d1", 1, "02/10/2017 10:00:00"), order("d1", 2))
    o("date_format_iso_t_z", order("d2", 1, "2017-10-02T10:00:00Z"), order("d2", 2))
    o("date_format_compact", order("d3", 1, "20171002 100000"), order("d3", 2))
    o("date_format_words", order("d4", 1, '"Oct 2, 2017 10:00"'), order("d4", 2))
    o("date_1900", order("19", 1, "1900-01-01 00:00:00"), order("19", 2))
    o("date_2100", order("21", 1, "2100-12-31 23:59:59"), order("21", 2))
    i("negative_price", item(11, "-5.00"), item(12, "5.00"))
    i("zero_price", item(21, "0.00"), item(22, "0"), item(23, "5.00"))
    i("nan_infinity", item(31, "NaN"), item(32, "Infinity"), item(33, "-inf"), item(34, "nan"), item(35, "5.00"))
    big = "x" * (10 << 20)
    files["order_reviews__10mb_field.csv.gz"] = gzip.compress(
        lines(review("10", 1, "short"), review("10", 2, big), review("10", 3, "after"), header=REVIEWS_HEADER),
        compresslevel=9,
        mtime=0,
    )
    files["orders__duplicate_header.csv"] = lines(
        order("de", 1) + ",shipped", header=ORDERS_HEADER + ",order_status"
    )
    # 2 repeats among 42 rows: under the 5 % duplicate share that validation allows a table
    o("duplicate_rows", *(order("df", n) for n in range(1, 41)), order("df", 1), order("df", 40))
    i("orphan_keys", item(41, "5.00", order_id=oid("ff", 1)), item(42, "5.00"))
    o("orphan_customer", order("0c", 1, customer=oid("ffc", 9)), order("0c", 2))
    r("nul_bytes", review("00", 1, "before\x00after"), review("00", 2, "clean"))
    o("nul_in_id", f"{oid('0d', 1)[:-1]}\x00,{CUSTOMER},delivered,2017-10-02 10:00:00,,,,", order("0d", 2))
    r(
        "sql_injection",
        review("5a", 1, "'; DROP TABLE fact_orders; --"),
        review("5a", 2, '"Robert\'); DELETE FROM quarantine; --"'),
        review("5a", 3, "1 OR 1=1"),
    )
    r(
        "formula_injection",
        review("f0", 1, "=cmd|' /C calc'!A0"),
        review("f0", 2, "+SUM(A1:A9)"),
        review("f0", 3, "-2+3"),
        review("f0", 4, "@HYPERLINK(\"http://127.0.0.1\")"),
        review("f0", 5, "plain"),
    )
    r(
        "emoji_rtl",
        review("e0", 1, "adorei 😍👍🏽", title="🎉"),
        review("e0", 2, "ممتاز جدا"),
        review("e0", 3, "שלום \u202eevil\u202c"),
        review("e0", 4, "e\u0301 combining"),
    )
    good = lines(order("ab", 1), order("ab", 2), order("ab", 3), header=ORDERS_HEADER)
    whole = gzip.compress(good * 200, mtime=0)
    files["orders__truncated.csv.gz"] = whole[: len(whole) * 2 // 3]
    corrupt = bytearray(whole)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 16] = bytes(16)
    files["orders__corrupt.csv.gz"] = bytes(corrupt)
    files["orders__not_gzip.csv.gz"] = good
    files["order_reviews__control_chars.csv"] = lines(
        review("cc", 1, "bell\x07 and esc\x1b[31m red"), review("cc", 2, "vertical\x0btab"), header=REVIEWS_HEADER
    )
    files["order_items__huge_numbers.csv"] = lines(
        item(51, "1e308"), item(52, "99999999999999999999.99"), item(53, "5.00"), header=ITEMS_HEADER
    )
    return files


def main() -> None:
    for name, data in corpus().items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(corpus())} files to {HERE}")


if __name__ == "__main__":
    main()
