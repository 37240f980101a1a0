"""The console end to end in a real browser against a real node: every page renders without a
script error; an operator creates a topic through the UI (form, confirmation, result), sees it in
the topic list and on its page, changes one of its configs and adds partitions; and the issue's
flow: create topic -> produce (SDK) -> browse and search the messages -> the group's page ->
reset its offsets -> the charts.

Method: one in-process combined node (tests/support/inprocess_nodes.py: real gRPC, HTTP, Raft),
Debian's headless Chromium driven by Selenium (tests/support/browser.py), the browser console's
log checked for SEVERE entries after every page. With FRESHET_UPDATE_SCREENSHOTS=1 the test also
writes the README's screenshots (tests/screenshots/console-*.png).
"""

from __future__ import annotations

import os
import pathlib

import pytest

from tests.support.inprocess_nodes import InProcessCluster
from tests.support.waiting import wait_until

pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extras: pip install -e '.[dev]'")
from selenium.webdriver.common.by import By  # noqa: E402 - after the importorskip above
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.support.browser import chrome, severe_log_entries  # noqa: E402 - imports selenium

pytestmark = pytest.mark.slow                   # a node and a browser per test: about 7 s each

SCREENSHOTS = pathlib.Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture
def node(tmp_path):
    with InProcessCluster(tmp_path / "nodes", controllers=1) as nodes:
        nodes.start_all()
        yield nodes


@pytest.fixture
def browser(chromium, tmp_path):
    binary, driver_path = chromium
    with chrome(binary, driver_path, tmp_path / "profile") as driver:
        yield driver


def screenshot(driver, name: str) -> None:
    if os.environ.get("FRESHET_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOTS / f"console-{name}.png"))


def visit(driver, url: str, title: str) -> None:
    """Load a page and check it: its title, and no script error in the browser console."""
    driver.get(url)
    assert driver.find_element(By.TAG_NAME, "title").get_attribute("textContent").startswith(title), url
    assert severe_log_entries(driver) == [], url


def submit_and_confirm(driver, form_id: str) -> str:
    """Submit a form, check the confirmation page, confirm; the result line."""
    driver.find_element(By.CSS_SELECTOR, f"#{form_id} button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "confirm"))
    assert severe_log_entries(driver) == []
    driver.find_element(By.ID, "confirm").click()
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "result"))
    assert severe_log_entries(driver) == []
    return driver.find_element(By.ID, "result").text


def test_every_page_renders_and_a_topic_is_created_and_configured_through_the_ui(node, browser):
    base = f"http://127.0.0.1:{node.ports[1] + 2}"
    visit(browser, base + "/", "Overview")
    visit(browser, base + "/brokers", "Brokers")
    assert "active" in browser.find_element(By.ID, "brokers").text
    screenshot(browser, "brokers")

    visit(browser, base + "/topics", "Topics")
    browser.find_element(By.ID, "new-topic").send_keys("orders")
    browser.find_element(By.ID, "new-partitions").send_keys("3")
    browser.find_element(By.ID, "new-replication").send_keys("1")
    assert submit_and_confirm(browser, "create-topic") == "created topic orders with 3 partitions, replication factor 1"
    wait_until(lambda: node.nodes[1].publisher.image.topic("orders") is not None, 10, "orders in the image")

    visit(browser, base + "/topics?search=ord", "Topics")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#topics a")] == ["orders"]
    screenshot(browser, "topics")
    browser.find_element(By.LINK_TEXT, "orders").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "partitions"))
    assert severe_log_entries(browser) == []
    rows = browser.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")
    cells = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [c[1] for c in cells] == ["1", "1", "1"]                 # the leader
    assert [c[6:9] for c in cells] == [["0", "0", "0"]] * 3         # log start, high watermark, log end
    screenshot(browser, "topic")

    field = browser.find_element(By.CSS_SELECTOR, "input[aria-label='retention.ms']")
    field.clear()
    field.send_keys("3600000")
    field.find_element(By.XPATH, "./following-sibling::button[@value='set']").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "confirm"))
    assert browser.find_element(By.ID, "question").text == "Set retention.ms = 3600000 on topic orders?"
    browser.find_element(By.ID, "confirm").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "result"))
    assert browser.find_element(By.ID, "result").text == "retention.ms of topic orders is now 3600000"
    wait_until(lambda: node.nodes[1].publisher.image.topic("orders").configs.get("retention.ms") == "3600000",
               10, "retention.ms in the image")

    visit(browser, base + "/topics/orders", "Topic orders")
    assert submit_and_confirm(browser, "add-partitions") == "topic orders now has 4 partitions"
    visit(browser, base + "/", "Overview")
    assert "1 topics, 4 partitions" in browser.find_element(By.TAG_NAME, "body").text
    screenshot(browser, "overview")
    visit(browser, base + "/topics/orders", "Topic orders")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")) == 4


def produce_and_consume(bootstrap: str) -> None:
    """Three records on orders-0 (JSON, text with headers, binary), read and committed by group
    billing, whose consumer then leaves (an empty group: its offsets may be reset)."""
    from freshet.client import Consumer, Producer

    producer = Producer(bootstrap)
    try:
        producer.send("orders", b'{"id": 7, "item": "kettle"}', key=b"order-7", partition=0)
        producer.send("orders", b"paid in full", key=b"order-8", headers=[("source", b"web")], partition=0)
        producer.send("orders", bytes([0, 1, 2, 255]), key=None, partition=0)
        producer.flush(30)
    finally:
        producer.close(10)
    consumer = Consumer(bootstrap, group_id="billing", auto_offset_reset="earliest")
    try:
        consumer.subscribe(["orders"])
        seen: list = []
        wait_until(lambda: seen.extend(consumer.poll(500)) or len(seen) >= 3, 30, "three records consumed")
        consumer.commit()
    finally:
        consumer.close()


def test_create_topic_produce_browse_and_reset_offsets_end_to_end(node, browser):
    base = f"http://127.0.0.1:{node.ports[1] + 2}"
    visit(browser, base + "/topics", "Topics")
    browser.find_element(By.ID, "new-topic").send_keys("orders")
    browser.find_element(By.ID, "new-partitions").send_keys("2")
    assert submit_and_confirm(browser, "create-topic").startswith("created topic orders with 2 partitions")
    wait_until(lambda: node.nodes[1].publisher.image.topic("orders") is not None, 10, "orders in the image")
    history = node.nodes[1].console.history
    history.sample()                            # the sampler's own 10 s tick, taken now: rates need two
    produce_and_consume(f"127.0.0.1:{node.ports[1]}")
    history.sample()

    visit(browser, base + "/topics/orders/messages", "Messages of orders")
    rows = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")]
    assert [row[:2] for row in rows] == [["0", "2"], ["0", "1"], ["0", "0"]]     # newest first
    assert rows[0][3:] == ["null", "00 01 02 ff", "-"]                           # binary as hex
    assert rows[1][3:] == ["order-8", "paid in full", "source: web"]
    assert rows[2][4] == '{\n  "id": 7,\n  "item": "kettle"\n}'                  # JSON pretty-printed
    screenshot(browser, "messages")

    browser.find_element(By.ID, "search").send_keys("WEB")
    browser.find_element(By.CSS_SELECTOR, "input[name=icase]").click()
    browser.find_element(By.ID, "browse-button").click()
    WebDriverWait(browser, 10).until(lambda d: "search=WEB" in d.current_url)
    assert severe_log_entries(browser) == []
    offsets = [row.find_elements(By.TAG_NAME, "td")[1].text for row in browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")]
    assert offsets == ["1"]                                                      # found in a header, on the server
    assert "scanned 3 records" in browser.find_element(By.ID, "scan-stats").text

    visit(browser, base + "/groups", "Consumer groups")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#groups a")] == ["billing"]
    screenshot(browser, "groups")
    browser.find_element(By.LINK_TEXT, "billing").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "lag"))
    assert severe_log_entries(browser) == []
    lag = {row.find_elements(By.TAG_NAME, "td")[1].text: row.find_elements(By.TAG_NAME, "td")[2].text
           for row in browser.find_elements(By.CSS_SELECTOR, "#lag tbody tr")}
    assert lag["0"] == "3"                                                       # committed after the three records
    screenshot(browser, "group")

    browser.find_element(By.CSS_SELECTOR, "#reset-mode option[value=earliest]").click()
    browser.find_element(By.ID, "reset-button").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "confirm"))
    assert "orders-0: 3 -> 0" in browser.find_element(By.TAG_NAME, "ul").text   # the dry run, before anything changes
    browser.find_element(By.ID, "confirm").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "result"))
    assert browser.find_element(By.ID, "result").text == "reset the offsets of group billing on orders"
    assert "orders-0: 3 -> 0" in browser.find_element(By.ID, "result-details").text
    visit(browser, base + "/groups/billing", "Group billing")
    lag = {row.find_elements(By.TAG_NAME, "td")[1].text: row.find_elements(By.TAG_NAME, "td")[4].text
           for row in browser.find_elements(By.CSS_SELECTOR, "#lag tbody tr")}
    assert lag["0"] == "3"                                                       # three records to read again

    visit(browser, base + "/charts", "Charts")
    labels = [svg.get_attribute("aria-label") for svg in browser.find_elements(By.CSS_SELECTOR, "figure.chart svg")]
    assert {"orders: bytes in", "orders: records in", "orders: bytes out"} <= set(labels)
    screenshot(browser, "charts")
