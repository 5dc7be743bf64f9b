"""The kept RFM scores and segment sizes equal ranking every person, after every change.

clv_segments moves quintile boundaries from histograms and rescores only the
touched people and those a boundary passed (sql/analytics/clv_segments.sql).
Here people are added, removed and changed through ``customer_orders`` in
steps -- from nobody, through fewer people than quintiles, to hundreds with
many ties in last-order day and in spend -- each step refreshed the way a
load's refresh does (customer_totals, then clv_segments, for the touched
people), and compared with ntile(5) over everyone, the definition the
dashboards had before the scores were kept.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import psycopg2
import pytest

from etl.publish import derived
from etl.run import setup

#: The reference: every person ranked (customer_lifetime_value's definition before the scores were kept).
RANK_EVERYONE = """
WITH scored AS (
    SELECT c.*, max(c.last_order_date) OVER () - c.last_order_date AS days FROM customer_totals c
), rfm AS (
    SELECT s.*, ntile(5) OVER (ORDER BY days DESC, customer_unique_id) AS r,
           ntile(5) OVER (ORDER BY total_spent_cents, customer_unique_id) AS m
      FROM scored s
)
SELECT customer_unique_id, r, m,
       CASE WHEN r >= 4 AND orders >= 2 AND m >= 4 THEN 'Champions'
            WHEN orders >= 2 AND r >= 3 THEN 'Loyal'
            WHEN r >= 4 THEN 'New'
            WHEN r = 3 THEN 'Promising'
            WHEN orders >= 2 OR m >= 4 THEN 'At risk'
            ELSE 'Hibernating' END AS segment,
       days > 90 AS churned, total_spent_cents
  FROM rfm
"""
FIRST_DAY = date(2017, 1, 1)


@pytest.fixture
def conn(ready_db):
    connection = psycopg2.connect(ready_db.database_url)
    yield connection
    connection.close()


class People:
    """customer_orders rows written directly; each step refreshes the people it touched."""

    def __init__(self, conn, seed: int) -> None:
        self.conn = conn
        self.rng = random.Random(seed)
        self.orders: dict[str, tuple[str, date, int]] = {}  # order_id -> (person, day, paid cents)
        self.next_order = 0

    def person(self, n: int) -> str:
        return f"{n:032x}"

    def add(self, person: str, day: date, paid: int) -> str:
        self.next_order += 1
        order_id = f"{self.next_order:032x}"
        self.orders[order_id] = (person, day, paid)
        return order_id

    def people(self) -> set[str]:
        return {p for p, _, _ in self.orders.values()}

    def step(self, changes) -> None:
        """Apply ``changes`` (a function of self) and refresh the people whose orders changed."""
        before = dict(self.orders)
        changes(self)
        gone = {k for k in before if k not in self.orders or before[k] != self.orders[k]}
        added = {k for k in self.orders if k not in before or before[k] != self.orders[k]}
        touched = {before[k][0] for k in gone} | {self.orders[k][0] for k in added}
        with self.conn, self.conn.cursor() as cur:
            cur.execute("DELETE FROM customer_orders WHERE order_id = ANY(%s)", (sorted(gone),))
            for order_id in sorted(added):
                person, day, paid = self.orders[order_id]
                at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
                cur.execute(
                    "INSERT INTO customer_orders VALUES (%s, %s, %s, 'SP', %s, %s)",
                    (day, order_id, person, at, paid),
                )
            cur.execute(
                "CREATE TEMP TABLE etl_touched_customers ON COMMIT DROP AS "
                "SELECT unnest(%s::char(32)[]) AS customer_unique_id",
                (sorted(touched),),
            )
            cur.execute(derived.statements("customer_totals"))
            cur.execute(derived.statements("clv_segments"))

    def check(self) -> None:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(RANK_EVERYONE)
            expected = sorted(cur.fetchall())
            cur.execute(
                "SELECT customer_unique_id, recency_score, monetary_score, rfm_segment, churned, total_spent_cents "
                "FROM customer_lifetime_value"
            )
            assert sorted(cur.fetchall()) == expected
            cur.execute(
                f"SELECT segment, count(*), sum(total_spent_cents), count(*) FILTER (WHERE churned) "
                f"FROM ({RANK_EVERYONE}) e GROUP BY 1 ORDER BY 1"
            )
            expected_segments = cur.fetchall()
            cur.execute("SELECT * FROM clv_segments ORDER BY 1")
            assert cur.fetchall() == expected_segments
            assert len(expected) == len(self.people())


def test_kept_scores_equal_ranking_everyone_through_every_kind_of_change(conn):
    people = People(conn, seed=17)
    rng = people.rng
    days = [FIRST_DAY + timedelta(days=d) for d in range(0, 400, 7)]  # few days: many ties
    spends = [1000 * k for k in range(1, 12)]  # few amounts: many ties

    people.check()  # nobody
    for n in range(1, 8):  # fewer people than quintiles, then just more
        people.step(lambda p, n=n: p.add(p.person(n), days[n], spends[n % 3]))
        people.check()

    def crowd(p, start=100, count=300):
        for n in range(start, start + count):
            p.add(p.person(n), rng.choice(days), rng.choice(spends))

    people.step(crowd)
    people.check()

    def next_day_newcomers(p):  # what a daily load mostly brings: new people on the next day
        latest = max(day for _, day, _ in p.orders.values())
        for n in range(1000 + len(p.orders), 1000 + len(p.orders) + 40):
            p.add(p.person(n), latest + timedelta(days=1), rng.choice(spends))
        for person in rng.sample(sorted(p.people()), 5):  # and a few people who bought before
            p.add(person, latest + timedelta(days=1), rng.choice(spends))

    for _ in range(3):
        people.step(next_day_newcomers)
        people.check()

    def corrections(p):  # late corrections: orders canceled (gone), re-paid, moved to other people
        for order_id in rng.sample(sorted(p.orders), 30):
            person, day, paid = p.orders[order_id]
            kind = rng.randrange(3)
            if kind == 0:
                del p.orders[order_id]
            elif kind == 1:
                p.orders[order_id] = (person, day, paid + rng.choice((-500, 250, 3000)))
            else:
                p.orders[order_id] = (p.person(rng.randrange(100, 400)), day, paid)

    for _ in range(3):
        people.step(corrections)
        people.check()

    def the_latest_day_canceled(p):  # the last day moves back: churn counts from an earlier day
        latest = max(day for _, day, _ in p.orders.values())
        for order_id in [k for k, (_, day, _) in p.orders.items() if day == latest]:
            del p.orders[order_id]

    people.step(the_latest_day_canceled)
    people.check()

    def almost_everyone_leaves(p):
        for order_id in sorted(p.orders)[3:]:
            del p.orders[order_id]

    people.step(almost_everyone_leaves)
    people.check()
    people.step(lambda p: p.orders.clear())
    people.check()


def test_a_warehouse_from_before_the_kept_boundaries_is_rebuilt_once(ready_db, conn):
    """People in customer_totals but no boundaries (an upgrade): `etl db init` queues all of time."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO customer_totals VALUES (%s, 'SP', 1, 500, now(), now(), current_date)", ("a" * 32,)
        )
        cur.execute("DELETE FROM aggregate_refresh_queue")
    setup.init_schema(ready_db)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT range_start::text, run_id FROM aggregate_refresh_queue")
        assert cur.fetchall() == [("-infinity", "etl-db-init")]
