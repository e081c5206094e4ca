"""A real browser on the Reports tab: the verdict card and a chart on the first screen, the
HTML report downloaded and printed to PDF. Screenshots are kept as artefacts.

Artefacts go to ``$TUNEPROOF_SCREENSHOTS`` (default: the test's tmp folder); their paths are
printed. Needs Debian chromium + chromedriver (``make browser-deps``) and poppler's pdftoppm.
"""

import base64
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from browser_util import HAVE_CHROMIUM, chromium, wait_for

from evalsuite.verdict import verdicts

PDFTOPPM = shutil.which("pdftoppm")
WIDTH, HEIGHT = 1400, 900

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not HAVE_CHROMIUM or not PDFTOPPM,
                       reason="needs Debian chromium, chromedriver and pdftoppm: apt-get install "
                              "chromium chromium-driver poppler-utils (make browser-deps)"),
]


@pytest.fixture
def shots(tmp_path):
    given = os.environ.get("TUNEPROOF_SCREENSHOTS")
    out = Path(given) if given else tmp_path / "shots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def browser(tmp_path):
    with chromium(tmp_path / "ud", WIDTH, HEIGHT, "--hide-scrollbars") as driver:
        driver.set_window_size(WIDTH, HEIGHT)
        yield driver


def _visible_box(driver, element) -> dict:
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, height: r.height, inner: window.innerHeight};",
        element)


def test_reports_tab_verdict_chart_and_printed_report(launch_app, built_demo, browser, shots,
                                                       tmp_path, capsys):
    from selenium.webdriver.common.by import By

    results = json.loads((built_demo / "eval" / "results.json").read_text())
    expected = verdicts(results)
    assert {v.model for v in expected} == {"biased", "fair"}
    url, _ = launch_app(results_dirs=[built_demo / "eval"])
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(downloads)})
    browser.get(url)
    tab = wait_for(lambda: next(b for b in browser.find_elements(By.CSS_SELECTOR,
                                                                  "button[role=tab]")
                                if b.text.strip() == "Reports"), what="the Reports tab")
    tab.click()
    card = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#reports-verdict .verdict"),
                 what="the verdict card")
    lines = [li.text for li in card.find_elements(By.TAG_NAME, "li")]
    # the card names each adapter with its outcome, as generated from results.json
    for v in expected:
        assert any(line.startswith(f"{v.model} — {v.outcome}") for line in lines), (v, lines)
    chart = browser.find_element(By.CSS_SELECTOR, "#reports-chart-flip svg")
    box, card_box = _visible_box(browser, chart), _visible_box(browser, card)
    assert card_box["top"] >= 0 and card_box["bottom"] <= card_box["inner"], card_box
    assert box["height"] > 50 and box["bottom"] <= box["inner"], box  # no scrolling needed
    paths = {"reports_tab": shots / "reports_tab.png", "chart": shots / "chart_flip_rate.png",
             "pdf": shots / "report.pdf", "pdf_page1": shots / "report_page1.png"}
    browser.save_screenshot(str(paths["reports_tab"]))
    chart.screenshot(str(paths["chart"]))

    browser.find_element(By.CSS_SELECTOR, "#reports-download-html").click()
    page = wait_for(lambda: next((p for p in downloads.glob("*.html")), None), timeout=30,
                 what="the downloaded report.html")
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and all(v.model in text for v in expected)
    browser.find_element(By.CSS_SELECTOR, "#reports-download-zip").click()
    bundle = wait_for(lambda: next((p for p in downloads.glob("*.zip")), None), timeout=30,
                   what="the downloaded bundle")
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
    assert {"report.html", "results.json", "predictions.jsonl"} <= names
    for v in expected:  # each adapter's model card and data report travel with the results
        assert {f"runs/{v.model}/README.md", f"runs/{v.model}/data_report.json"} <= names
    browser.get(page.as_uri())
    pdf = browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": True,
                                                      "preferCSSPageSize": True})
    paths["pdf"].write_bytes(base64.b64decode(pdf["data"]))
    stem = paths["pdf_page1"].with_suffix("")
    subprocess.run([PDFTOPPM, "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile",
                    str(paths["pdf"]), str(stem)], check=True, timeout=60)
    # Compare: one click puts the pair that shows the bias side by side
    browser.get(url)
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#compare-bias"),
          what="the Show me the bias button").click()
    table = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#compare-bias-table table"),
                  timeout=120, what="the bias pair's answers")
    assert len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
    assert "other name" in table.text and "biased" in table.text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", table)
    paths["compare_bias"] = shots / "compare_bias.png"
    browser.save_screenshot(str(paths["compare_bias"]))
    for name, path in paths.items():
        assert path.stat().st_size > 5_000, name  # a rendered picture, not a blank file
    with capsys.disabled():
        print("\nbrowser artefacts:\n" + "\n".join(f"  {k}: {p}" for k, p in paths.items()))
