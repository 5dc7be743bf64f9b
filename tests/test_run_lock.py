"""The warehouse lock (etl.run.lock) against the real PostgreSQL: one holder, named, never stale."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from etl.run.lock import WarehouseBusy, holder, warehouse_lock
from etl.warehouse import connection as db


@pytest.fixture
def settings(fresh_db):
    db.ensure_database(fresh_db.database_url)
    return fresh_db


def test_a_second_holder_is_refused_with_the_first_ones_name(settings):
    with warehouse_lock(settings, "run daily-2018-08-01 load"):
        with pytest.raises(WarehouseBusy) as err:
            with warehouse_lock(settings, "etl run", wait=0):
                pytest.fail("two holders at once")
    message = str(err.value)
    assert message.startswith("the warehouse is busy: run daily-2018-08-01 load (pid ")
    assert message.endswith("holds the etl run lock; wait for it to finish, or stop it")
    assert len(message.splitlines()) == 1
    with warehouse_lock(settings, "after", wait=0):  # released at the end of the block
        pass


def test_a_waiting_holder_gets_the_lock_when_the_first_releases(settings):
    events: list[str] = []
    first_has_it = threading.Event()

    def first():
        with warehouse_lock(settings, "first"):
            events.append("first in")
            first_has_it.set()
            time.sleep(1.5)
            events.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    first_has_it.wait(10)
    with warehouse_lock(settings, "second", wait=30, poll=0.2):
        events.append("second in")
    thread.join()
    assert events == ["first in", "first out", "second in"]


def test_a_killed_holder_leaves_no_lock_behind(settings):
    code = (
        "import sys, time\n"
        "from etl.run.lock import warehouse_lock\n"
        "from etl.settings import Settings\n"
        f"s = Settings.from_env().with_overrides(database_url={settings.database_url!r})\n"
        "with warehouse_lock(s, 'doomed'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        conn = db.connect(settings.database_url)
        try:
            seen = holder(conn)
        finally:
            conn.close()
        assert seen is not None and seen.label == "doomed"
    finally:
        child.kill()  # the process we started, by its handle
        child.wait(10)
    with warehouse_lock(settings, "survivor", wait=10, poll=0.2):
        pass
