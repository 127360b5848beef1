"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium,
for the tests and benchmarks that open pages vgrc writes. ``.ci/run`` installs the two
packages when they are missing (CI runs as root)."""

import os
import shutil
import tempfile
from contextlib import contextmanager

CHROMIUM = os.environ.get("VGRC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("VGRC_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"


def missing() -> str | None:
    """Why no browser can be driven here, or None."""
    import importlib.util

    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.path.exists(path):
            return f"{path} is missing (apt-get install chromium chromium-driver; package {package})"
    return None


@contextmanager
def chromium(width: int = 1500, height: int = 1000):
    """A headless Chromium session, quit (and its profile removed) on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="vgrc-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # this machine's network is closed: background networking would only fail (and slow the start)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_ready(driver, timeout: float = 30.0) -> float:
    """Wait until a vgrc show page has drawn its first rows; the page's own load time (ms)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.execute_script("return document.body && document.body.dataset.ready === '1'"))
    return float(driver.execute_script("return window.VGRC_READY_MS"))


def page_errors(driver) -> list[str]:
    """Errors the page's scripts logged (a broken script would pass silently otherwise)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
