"""A headless Debian Chromium driven by Selenium, for the console's browser tests. Not a test module.

`chrome(binary, driver_path, profile)` starts one (no download ever: Selenium Manager is kept
offline) with the browser's console log recorded, so a test can assert that a page raised no
script error (`severe_log_entries`).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator

from selenium import webdriver


@contextlib.contextmanager
def chrome(binary: str, driver_path: str, profile: pathlib.Path, width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A started driver, quit on exit."""
    os.environ["SE_OFFLINE"] = "true"        # never let Selenium Manager download a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def severe_log_entries(driver: webdriver.Chrome) -> list[str]:
    """The browser console's errors since the last call (script errors, CSP violations, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
