"""A real headless Chromium loads every page from gunicorn on 127.0.0.1.

For each page: the charts are drawn (Plotly SVG present, from the app's own
plotly.min.js), the console has no errors, no request left 127.0.0.1, and a
screenshot is saved (to docs/screenshots/<page>.png, shown in the README, when
ETL_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard.app import PAGES

ROOT = Path(__file__).resolve().parents[2]
# Screenshots refresh the README's pictures only when asked (ETL_UPDATE_SCREENSHOTS=1),
# so a test run leaves the checkout clean; otherwise they go to a temp folder.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("ETL_UPDATE_SCREENSHOTS") == "1"
    else Path(os.environ.get("TMPDIR", "/tmp")) / "etl-screenshots"
)
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(dashboard_settings, tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": dashboard_settings.database_url}
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(gunicorn), "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/api/", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"gunicorn exited: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        else:
            pytest.fail(f"gunicorn did not answer on {base}: {log.read_text()[-2000:]}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "Debian chromium/chromium-driver are not installed (scripts/bootstrap.sh installs them as root)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1100",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.mark.parametrize("key, href, label", PAGES)
def test_page_draws_its_charts_in_chromium(server, browser, key, href, label):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # forget the previous page's messages
    browser.get(server + href)
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return document.body.dataset.chartsReady === 'true'")
    )
    charts = browser.find_elements(By.CSS_SELECTOR, "[data-chart]")
    assert charts, f"{href} has no charts"
    for chart in charts:
        assert chart.get_attribute("data-drawn") == "true", (
            href,
            chart.get_attribute("data-chart"),
            chart.text,
        )
        # Plotly drew real marks (bars, slices, points) into an SVG.
        marks = chart.find_elements(By.CSS_SELECTOR, "g.point, g.slice, g.trace path")
        assert marks, (href, chart.get_attribute("data-chart"))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(url.startswith(server) for url in resources), resources
    assert any(url.endswith("/vendor/plotly.min.js") for url in resources)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{key}.png"))
