"""A real browser (headless Chromium driven by Selenium) logs in to the console through the form,
sees the topics its ACLs let it Describe and not the others, and logs out; and runs an action
through its confirmation step under the secure headers, refused for a principal without the right.

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


def test_under_the_secure_headers_an_action_is_confirmed_and_run_or_refused_like_the_cli(browser):
    """The action forms work under the Content-Security-Policy (no script, form-action 'self'):
    admin deletes a topic through the confirmation step; alice, without Delete, gets the CLI's
    refusal line and nothing is deleted. No error in the browser's console log on any page."""
    from tests.support.browser import severe_log_entries
    from tests.unit.server.http.test_console_actions import admin_on_a_loop

    with admin_on_a_loop(secure=True) as (backend, controller), console_server(backend=backend) as server:
        base = f"http://127.0.0.1:{server.port}"
        for user, result, status_errors in (
            ("alice", "User:alice is not authorized to Delete topic 'orders'", ["409 (Conflict)"]),   # the refusal's status
            ("admin", "deleted topic orders", []),
        ):
            browser.get(base + "/login")
            log_in(browser, user, password(user))
            WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "principal"))
            browser.get(base + "/topics/orders")
            browser.find_element(By.CSS_SELECTOR, "#delete-topic button").click()
            WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "confirm"))
            assert browser.find_element(By.ID, "question").text == "Delete topic orders and every record in it?"
            browser.find_element(By.ID, "confirm").click()
            WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "result"))
            assert browser.find_element(By.ID, "result").text == result
            assert [line.rsplit("status of ", 1)[-1] for line in severe_log_entries(browser)] == status_errors
            browser.find_element(By.ID, "logout").click()
            WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "user"))
        assert controller.calls == [("delete_topics", ["orders"])]          # admin's only
