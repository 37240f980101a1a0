"""A real browser (headless Chromium driven by Selenium) logs in to the console through the form,
sees the topics its ACLs let it Describe and not the others, and logs out.

What the HTTP-level tests cannot show: that a browser keeps and sends the session cookie with its
attributes (__Host- prefix, Secure, HttpOnly, SameSite=Strict), submits the forms with their CSRF
tokens, follows the 303s, and that the pages work under the Content-Security-Policy. Chromium and
chromedriver are Debian's (the `chromium` fixture installs them when missing); the server is the
node's real HTTP server in-process on 127.0.0.1, which Chromium treats as a secure context.
"""

from __future__ import annotations

import pytest

from tests.support.console_server import console_server
from tests.support.secure_images import password

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extras: pip install -e '.[dev]'")
from selenium.webdriver.common.by import By  # noqa: E402 - after the importorskip above
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.support.browser import chrome  # noqa: E402 - imports selenium


@pytest.fixture
def browser(chromium, tmp_path):
    binary, driver_path = chromium
    with chrome(binary, driver_path, tmp_path / "profile") as driver:
        yield driver


def log_in(driver, user: str, secret: str) -> None:
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(secret)
    driver.find_element(By.ID, "login").click()


def test_a_browser_logs_in_sees_only_its_topics_and_logs_out(browser):
    with console_server() as server:
        base = f"http://127.0.0.1:{server.port}"
        browser.get(base + "/")
        assert browser.current_url == base + "/login"                  # the 303 to the form

        log_in(browser, "alice", "not-her-password")
        # A click on submit does not wait for the next page: wait for what it must show.
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "message"))
        assert browser.find_element(By.ID, "message").text == "invalid user name or password"

        log_in(browser, "alice", password("alice"))
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "principal"))
        assert browser.current_url == base + "/"
        assert browser.find_element(By.ID, "principal").text == "User:alice"
        topics = {h.text.split()[0] for h in browser.find_elements(By.TAG_NAME, "h3")}
        assert topics == {"orders", "payments"}                        # not audit-log
        assert "is not authorized to Describe the cluster" in browser.find_element(By.TAG_NAME, "body").text
        cookie = browser.get_cookie("__Host-freshet-session")
        assert cookie is not None and cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"

        browser.find_element(By.ID, "logout").click()
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "user"))
        assert browser.current_url == base + "/login"
        assert browser.get_cookie("__Host-freshet-session") is None
        browser.get(base + "/")
        assert browser.current_url == base + "/login"                  # the session is gone
