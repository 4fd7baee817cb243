"""`lmbench explore` in a real browser: headless Chromium driven by Selenium through Debian's chromium-driver.

Types a prefix, waits for every model's bars, checks the n-gram back-off path and the Transformer's
attention map, switches heads, reads the browser console, and checks a screenshot is not blank.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import numpy as np
import pytest

from tests.conftest import import_or_fail, require_tool
from tests.explore_runs import make_small_run

import_or_fail("fastapi", "the explore extra: pip install -e '.[explore]'")
import_or_fail("uvicorn", "the explore extra: pip install -e '.[explore]'")
import_or_fail("selenium", "selenium: the dev extra")
require_tool("chromium", "Debian's chromium; .ci/run installs it")
CHROMEDRIVER = require_tool("chromedriver", "Debian's chromium-driver; .ci/run installs it")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from lmbench.explore import Explorer
    from lmbench.explore.app import create_app

    runs, _ = make_small_run(tmp_path_factory.mktemp("browser"))
    shutil.copytree(runs / "kn3", runs / "broken")  # a model whose file is damaged: its card shows the error
    (runs / "broken" / "model.bin").write_bytes(b"damaged")
    explorer = Explorer(runs)
    port = _free_port()
    config = uvicorn.Config(create_app(explorer), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if uv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    uv.should_exit = True
    thread.join(timeout=10)
    explorer.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1800", f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _settling_wait(browser):
    """A 60 s wait that retries when the page re-renders an element between finding and reading it."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 60, ignored_exceptions=(StaleElementReferenceException,))


def test_type_a_prefix_and_see_every_model(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    wait = _settling_wait(browser)
    browser.get(server)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".model-card")) == 5)
    box = browser.find_element(By.ID, "prefix")
    box.send_keys("A3 w01 w02 w03 w04 w05 w06 w07")

    def every_card_has_bars(d):
        cards = d.find_elements(By.CSS_SELECTOR, '.model-card:not([data-model="broken"])')
        return all(len(c.find_elements(By.CSS_SELECTOR, ".bar-row")) == 8 for c in cards) and (
            d.execute_script(
                "const s = document.querySelectorAll('#tokens span'); return s.length ? s[s.length - 1].textContent : ''"
            )
            == "w07"
        )

    wait.until(every_card_has_bars)
    names = {c.get_attribute("data-model") for c in browser.find_elements(By.CSS_SELECTOR, ".model-card")}
    assert names == {"kn3", "lstm/seed-0", "transformer/seed-0", "unigram", "broken"}
    broken = browser.find_element(By.CSS_SELECTOR, '.model-card[data-model="broken"]')
    wait.until(lambda d: broken.find_elements(By.CSS_SELECTOR, ".bars .error"))
    message = broken.find_element(By.CSS_SELECTOR, ".bars .error").text
    assert message.startswith("broken: failed to load:") and "\n" not in message
    for card in browser.find_elements(By.CSS_SELECTOR, '.model-card:not([data-model="broken"])'):
        widths = [b.size["width"] for b in card.find_elements(By.CSS_SELECTOR, ".bar")]
        assert widths[0] > 0 and widths == sorted(widths, reverse=True)  # drawn, most probable first

    kn3 = browser.find_element(By.CSS_SELECTOR, '.model-card[data-model="kn3"]')
    wait.until(lambda d: kn3.find_elements(By.CSS_SELECTOR, ".backoff-step.found"))
    assert "order 3" in kn3.find_element(By.CSS_SELECTOR, ".backoff-step").text

    transformer = browser.find_element(By.CSS_SELECTOR, '.model-card[data-model="transformer/seed-0"]')
    wait.until(lambda d: transformer.find_elements(By.CSS_SELECTOR, "canvas.attention[data-layer]"))
    buttons = transformer.find_elements(By.CSS_SELECTOR, ".head-button")
    assert len(buttons) == 4 and len(transformer.find_elements(By.CSS_SELECTOR, ".head-button.furthest")) == 1
    canvas = transformer.find_element(By.CSS_SELECTOR, "canvas.attention")
    shown = (canvas.get_attribute("data-layer"), canvas.get_attribute("data-head"))
    pixels = browser.execute_script("return arguments[0].toDataURL()", canvas)
    other = next(b for b in buttons if (b.get_attribute("data-layer"), b.get_attribute("data-head")) != shown)
    other.click()
    canvas = transformer.find_element(By.CSS_SELECTOR, "canvas.attention")
    assert (canvas.get_attribute("data-layer"), canvas.get_attribute("data-head")) == (
        other.get_attribute("data-layer"),
        other.get_attribute("data-head"),
    )
    assert "selected" in other.get_attribute("class")
    assert browser.execute_script("return arguments[0].toDataURL()", canvas) != pixels  # a new map drawn

    browser.find_element(By.ID, "sample").click()
    wait.until(lambda d: all(c.find_elements(By.CSS_SELECTOR, ".sample code")
                             for c in d.find_elements(By.CSS_SELECTOR, '.model-card:not([data-model="broken"])')))  # fmt: skip

    # no console errors beyond the broken model's 503 answers: no other failed request, no uncaught exception
    errors = [
        e for e in browser.get_log("browser")
        if e["level"] in ("SEVERE", "ERROR") and not ("model=broken" in e["message"] and "503" in e["message"])
    ]  # fmt: skip
    assert errors == [], errors

    shot = tmp_path / "explore.png"
    browser.save_screenshot(str(shot))
    from PIL import Image

    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB").resize((280, 360))).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50  # bars, text and attention maps, not a blank page


def test_a_link_restores_the_chosen_models_prefix_and_settings(server, browser):
    from urllib.parse import quote

    from selenium.webdriver.common.by import By

    wait = _settling_wait(browser)
    link = (
        server + "#prefix=A3+w01+w02&k=3&picked=w03&seed=7&model=kn3&model=" + quote("lstm/seed-0", safe="")
    )
    browser.get(link)

    def shown(d):
        return [
            c.get_attribute("data-model")
            for c in d.find_elements(By.CSS_SELECTOR, ".model-card")
            if c.is_displayed()
        ]

    wait.until(lambda d: shown(d) == ["kn3", "lstm/seed-0"])
    assert browser.find_element(By.ID, "prefix").get_attribute("value") == "A3 w01 w02"
    assert browser.find_element(By.ID, "k").get_attribute("value") == "3"
    assert browser.find_element(By.ID, "picked").get_attribute("value") == "w03"
    assert browser.find_element(By.ID, "seed").get_attribute("value") == "7"
    wait.until(lambda d: all(
        len(d.find_element(By.CSS_SELECTOR, f'.model-card[data-model="{name}"]').find_elements(By.CSS_SELECTOR, ".bar-row")) == 3
        for name in ("kn3", "lstm/seed-0")
    ))  # fmt: skip
    boxes = {
        b.get_attribute("value"): b for b in browser.find_elements(By.CSS_SELECTOR, "#model-picker input")
    }
    assert {name for name, b in boxes.items() if b.is_selected()} == {"kn3", "lstm/seed-0"}

    # changing the page changes its link: more text, one more model, a sample
    browser.find_element(By.ID, "prefix").send_keys(" w04")
    boxes["unigram"].click()
    browser.find_element(By.ID, "sample").click()
    wait.until(
        lambda d: (
            "w04" in d.execute_script("return location.hash")
            and "sampled=1" in d.execute_script("return location.hash")
        )
    )
    url = browser.current_url
    assert "model=unigram" in url and "prefix=A3+w01+w02+w04" in url

    browser.get("about:blank")
    browser.get(url)  # the link opened afresh: the same models, text and samples
    wait.until(lambda d: shown(d) == ["unigram", "kn3", "lstm/seed-0"])
    assert browser.find_element(By.ID, "prefix").get_attribute("value") == "A3 w01 w02 w04"
    wait.until(lambda d: all(c.find_elements(By.CSS_SELECTOR, ".sample code")
                             for c in d.find_elements(By.CSS_SELECTOR, ".model-card") if c.is_displayed()))  # fmt: skip
