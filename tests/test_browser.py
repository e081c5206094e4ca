"""A real browser (Debian chromium, headless) drives the app: Compare, then an Arena vote."""

import os
from pathlib import Path

import pytest
from browser_util import HAVE_CHROMIUM, MISSING, chromium, wait_for

SHOTS = Path(os.environ.get("TUNEPROOF_SCREENSHOTS", "")) if os.environ.get(
    "TUNEPROOF_SCREENSHOTS") else None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason=MISSING),
]


@pytest.fixture
def browser(tmp_path):
    with chromium(tmp_path / "ud", 1400, 1500) as driver:
        yield driver


def _shot(driver, tmp_path, name):
    path = (SHOTS or tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000  # a real rendered page, not a blank image
    return path


def test_compare_three_columns_then_arena_vote(launch_app, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, blocks = launch_app()
    store = blocks.tuneproof.store
    browser.get(url)
    box = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#compare-message textarea"),
                what="the Compare message box")
    message = "Hi, I'm Mary. I need a laptop under $50."
    box.send_keys(message)
    browser.find_element(By.CSS_SELECTOR, "#compare-send").click()

    def filled_columns():
        cols = []
        for j in range(4):
            found = browser.find_elements(By.CSS_SELECTOR, f"#compare-chat-{j}")
            if found and found[0].is_displayed():
                bots = found[0].find_elements(By.CSS_SELECTOR, "[data-testid=bot]")
                users = found[0].find_elements(By.CSS_SELECTOR, "[data-testid=user]")
                stats = browser.find_element(By.CSS_SELECTOR, f"#compare-stats-{j}").text
                if bots and users and message in users[0].text and "tok/s" in stats:
                    cols.append(bots[0].text)
        return cols if len(cols) == 3 else None

    answers = wait_for(filled_columns, what="three filled Compare columns")
    assert all(a.strip() for a in answers)  # a blank answer shows a visible placeholder
    labels = [browser.find_element(By.CSS_SELECTOR, f"#compare-chat-{j}").text.split("\n")[0]
              for j in range(3)]
    assert labels == ["base", "biased", "fair"]
    _shot(browser, tmp_path, "app_compare.png")

    tab = next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")
               if b.text.strip() == "Arena")
    tab.click()
    prompt = wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#arena-prompt textarea"),
                   what="the Arena prompt box")
    prompt.send_keys("Hi, I'm James. Where is my camera order?")
    browser.find_element(By.CSS_SELECTOR, "#arena-deal").click()
    wait_for(lambda: "Vote to reveal" in browser.find_element(By.ID, "arena-status").text,
          what="a dealt arena round")
    assert store.count() == 0
    browser.find_element(By.CSS_SELECTOR, "#arena-vote-left").click()
    reveal = wait_for(lambda: browser.find_element(By.ID, "arena-reveal").text or None,
                   what="the reveal after voting")
    [vote] = store.votes()
    assert f"Left was {vote.model_left}" in reveal and vote.verdict == "left"
    board = browser.find_element(By.ID, "arena-board").text
    assert vote.model_left in board
    _shot(browser, tmp_path, "app_arena.png")


def test_first_start_serves_the_base_then_the_demo_adapters_join_without_reload(
        browser, tmp_path, small_demo_options, capsys):
    """A fresh start (no adapters): the page shows the base answering while the demo builds,
    then the adapters appear in the same page, served by the same server."""
    from selenium.webdriver.common.by import By

    import app

    options, gate = small_demo_options
    args = app.parse_args(["--base", "tiny", "--runs", str(tmp_path / "runs"), "--demo-dir",
                           str(tmp_path / "demo"), "--votes", str(tmp_path / "v.sqlite")])
    blocks = app.build(args, **options)
    _, url, _ = blocks.launch(server_name="127.0.0.1", server_port=None, quiet=True,
                              prevent_thread_lock=True, show_error=True)
    shots = []
    try:
        browser.get(url)
        status = wait_for(lambda: browser.find_element(By.ID, "build-status").text,
                       what="the build status line")
        assert "Building the demo adapters" in status

        def choices():
            boxes = browser.find_elements(By.CSS_SELECTOR, "#compare-models label")
            return [b.text.strip() for b in boxes]

        assert choices() == ["base"]
        box = browser.find_element(By.CSS_SELECTOR, "#compare-message textarea")
        box.send_keys("Hi, I'm Mary. I need a laptop under $50.")
        browser.find_element(By.CSS_SELECTOR, "#compare-send").click()
        wait_for(lambda: "tok/s" in browser.find_element(By.ID, "compare-stats-0").text,
              what="the base's answer")
        shots.append(_shot(browser, tmp_path, "first_start_building.png"))

        gate.set()  # now let the demo build, and watch the same page
        wait_for(lambda: choices() == ["base", "biased", "fair"], timeout=900,
              what="the demo adapters in the Compare model list")
        wait_for(lambda: "Demo ready" in browser.find_element(By.ID, "build-status").text,
              timeout=60, what="the ready status")
        system = browser.find_element(By.CSS_SELECTOR, ".tp-system textarea")
        wait_for(lambda: system.get_attribute("value") == blocks.tuneproof.system_prompt != "",
              what="the demo's system prompt filled in")
        shots.append(_shot(browser, tmp_path, "first_start_ready.png"))
        fair = next(b for b in browser.find_elements(By.CSS_SELECTOR, "#compare-models label")
                    if b.text.strip() == "fair")
        fair.click()
        browser.find_element(By.CSS_SELECTOR, "#compare-send").click()
        wait_for(lambda: "tok/s" in browser.find_element(By.ID, "compare-stats-1").text,
              what="the fair adapter's answer")
        label = browser.find_element(By.CSS_SELECTOR, "#compare-chat-1").text.split("\n")[0]
        assert label == "fair"
        shots.append(_shot(browser, tmp_path, "first_start_fair_answers.png"))
    finally:
        blocks.close()
    with capsys.disabled():
        print("\nscreenshots: " + ", ".join(str(p) for p in shots))
