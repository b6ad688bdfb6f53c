"""The results page and the published picture in a real browser: headless Chromium driven by
Selenium (Debian's chromium and chromium-driver; .ci/run installs them). Skipped, saying so,
only where Chromium, its driver or selenium cannot be found."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.report.index import write_index
from harness.report.runs import find_runs

PROJECT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("Chromium or chromedriver not found: apt-get install chromium "
                    "chromium-driver (as .ci/run does) to run the browser tests")
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1600",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def visible_rows(driver) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr") if tr.is_displayed()]


def choose(driver, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, f"filter-{name}")).select_by_value(value)


def severe(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]


def test_the_page_lists_the_runs_and_filters_them(browser, null_results: Path,
                                                  tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    root = tmp_path / "results"
    shutil.copytree(null_results, root)
    page, count = write_index(root)
    runs = find_runs(root)
    browser.get(page.as_uri())
    assert browser.title == "Results: results"
    rows = visible_rows(browser)
    assert len(rows) == count == len(runs) == 6
    # the table shows each run: date, system, backend, model, scenario in its columns
    assert sorted((r[1], r[2], r[4]) for r in rows) == sorted(
        (r.system, r.backend, r.scenario) for r in runs)
    assert browser.find_element(By.ID, "shown").text == "6"
    choose(browser, "scenario", "Server")
    rows = visible_rows(browser)
    assert [r[4] for r in rows] == ["Server"] and browser.find_element(By.ID, "shown").text == "1"
    sections = browser.find_elements(By.CSS_SELECTOR, "section.scenario-block")
    assert [s.get_attribute("data-scenario") for s in sections if s.is_displayed()] == ["Server"]
    choose(browser, "scenario", "")
    choose(browser, "backend", "wafer")
    rows = visible_rows(browser)
    assert [(r[2], r[4]) for r in rows] == [("wafer", "SingleStream")]
    points = browser.find_elements(By.CSS_SELECTOR, "circle.pt")
    assert points and all(p.get_attribute("data-backend") == "wafer"
                          for p in points if p.is_displayed())
    choose(browser, "backend", "")
    assert len(visible_rows(browser)) == 6
    # the links of a run open its summary
    link = browser.find_element(By.LINK_TEXT, "summary")
    link.click()
    assert "samples/s" in browser.find_element(By.TAG_NAME, "body").text \
        or "latency" in browser.find_element(By.TAG_NAME, "body").text
    assert severe(browser) == []


def test_the_published_picture_renders_and_is_not_blank(browser, null_results: Path,
                                                        tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    png = tmp_path / "published.png"
    done = subprocess.run([sys.executable, "-m", "harness", "compare", "--published", "v1.0",
                           str(null_results), "--plot", str(png)], cwd=PROJECT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    wrapper = tmp_path / "view.html"
    wrapper.write_text(f'<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head>'
                       f'<body style="margin:0"><img id="p" src="{png.name}"></body></html>')
    browser.get(wrapper.as_uri())
    image = browser.find_element(By.ID, "p")
    width = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                   image)
    assert width and width > 1000
    # what Chromium drew: many colours, not one blank canvas
    shot = tmp_path / "shot.png"
    image.screenshot(str(shot))
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3].reshape(-1, 3)
    assert len({tuple(p) for p in (pixels * 255).round().astype(int)[::7]}) > 50
    assert severe(browser) == []
