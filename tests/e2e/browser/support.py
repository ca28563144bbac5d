"""A seller at the console in a real browser: Debian's chromium driven by Selenium.

Everything a test does goes through the page the way a person does: links and buttons found by
their visible text or accessible name, fields by their label, waits bounded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 30.0
"""Bound on every wait for the page: an action's answer, or an event landing (a Kafka hop,
a charge, an email) and the page's polling showing it."""
BLOCKING = ("serious", "critical")

T = TypeVar("T")


def start_chromium(width: int = 1280, height: int = 1000) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        f"--window-size={width},{height}",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


def _quote(text: str) -> str:
    """An XPath string literal for any text (concat() where it has both quote kinds)."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat('" + "', \"'\", '".join(text.split("'")) + "')"


class Browser:
    def __init__(
        self, driver: webdriver.Chrome, base_url: str, axe_source: str, screenshots: Path
    ) -> None:
        self.driver = driver
        self.base_url = base_url
        self.axe_source = axe_source
        self.screenshots = screenshots
        self.audited: dict[str, list[dict[str, Any]]] = {}
        """Screen name -> its serious or critical axe violations (empty when clean)."""

    # --- session --------------------------------------------------------------------------

    def sign_in_with_token(self, token: str, cookie: str = "jm_seller_token") -> None:
        """As the platform's login does: its session cookie holds the seller's JWT."""
        self.driver.delete_all_cookies()
        self.driver.get(self.base_url + "/healthz")
        self.driver.add_cookie({"name": cookie, "value": token, "path": "/"})

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    # --- reading ---------------------------------------------------------------------------

    @property
    def title(self) -> str:
        return str(self.driver.title)

    def text(self) -> str:
        return self._retry(lambda: str(self.driver.find_element(By.TAG_NAME, "main").text))

    def wait_for(self, predicate: Callable[[], T], what: str, timeout: float = WAIT) -> T:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except (NoSuchElementException, StaleElementReferenceException):
                pass
            time.sleep(0.1)
        raise AssertionError(f"waited {timeout:.0f}s for {what}; the page says:\n{self._page()}")

    def wait_text(self, text: str, timeout: float = WAIT) -> None:
        self.wait_for(lambda: text in self.text(), f"{text!r} on the page", timeout)

    def section(self, heading: str) -> str:
        """The text of the section (or card) titled `heading`."""
        return self._retry(
            lambda: str(
                self.driver.find_element(
                    By.XPATH,
                    f"//*[self::section or self::dialog][.//*[self::h2 or self::h3]"
                    f"[normalize-space()={_quote(heading)}]]",
                ).text
            )
        )

    def error_beside(self, control: WebElement | None = None) -> str:
        """The error text shown on the page (role=alert)."""
        alerts = self.driver.find_elements(By.CSS_SELECTOR, "[role=alert]")
        return "\n".join(alert.text for alert in alerts)

    # --- acting ------------------------------------------------------------------------------

    def click(self, name: str) -> None:
        """Click the link or button whose visible text or accessible name is `name`."""
        literal = _quote(name)
        xpath = (
            f"//a[normalize-space()={literal}] | //button[normalize-space()={literal}] | "
            f"//button[@aria-label={literal}] | //summary[normalize-space()={literal}]"
        )

        def press() -> bool:
            element = next(
                (e for e in self.driver.find_elements(By.XPATH, xpath) if e.is_displayed()), None
            )
            if element is None:
                return False
            element.click()
            return True

        self.wait_for(lambda: self._retry(press), f"a control named {name!r}", timeout=10)

    def double_click(self, name: str) -> None:
        literal = _quote(name)
        button = self.wait_for(
            lambda: self.driver.find_element(By.XPATH, f"//button[normalize-space()={literal}]"),
            f"a button named {name!r}",
            timeout=10,
        )
        ActionChains(self.driver).double_click(button).perform()

    def press_with_keyboard(self, name: str, max_tabs: int = 40) -> None:
        """Tab from the top of the page to the control named `name`, then press Enter: the
        control is reachable and usable by keyboard, and shows where the focus is."""
        self.driver.find_element(By.TAG_NAME, "body").click()
        self.driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
        actions = ActionChains(self.driver)
        for _ in range(max_tabs):
            actions.send_keys(Keys.TAB).perform()
            focused = self.driver.switch_to.active_element
            if (focused.text or "").strip() == name:
                outline = focused.value_of_css_property("outline-style")
                assert outline not in ("none", ""), f"no visible focus on {name!r}"
                focused.send_keys(Keys.ENTER)
                return
        raise AssertionError(f"{name!r} not reached in {max_tabs} presses of Tab")

    def field(self, label: str) -> WebElement:
        def find() -> WebElement:
            found = self.driver.find_element(
                By.XPATH, f"//label[normalize-space()={_quote(label)}]"
            )
            return self.driver.find_element(By.ID, str(found.get_attribute("for")))

        return self.wait_for(lambda: self._retry(find), f"a field labelled {label!r}", timeout=10)

    def fill(self, label: str, value: str) -> None:
        element = self.field(label)
        element.clear()
        element.send_keys(value)

    def choose(self, label: str, option: str) -> None:
        Select(self.field(label)).select_by_visible_text(option)

    def tick(self, label: str) -> None:
        box = self.driver.find_element(By.CSS_SELECTOR, f"input[aria-label={json.dumps(label)}]")
        if not box.is_selected():
            box.click()

    # --- evidence --------------------------------------------------------------------------

    def screenshot(self, name: str) -> Path:
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / f"{name}.png"
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        width = int(self.driver.get_window_size()["width"])
        self.driver.set_window_size(width, min(max(height + 120, 700), 2400))
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.set_window_size(width, 1000)
        return path

    def audit(self, screen: str) -> list[dict[str, Any]]:
        """axe-core on the page as it is: its serious and critical violations (also kept)."""
        self.driver.execute_script(self.axe_source)
        violations: list[dict[str, Any]] = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => done(r.violations), e => done([{id: 'axe-error', impact: 'critical',"
            " help: String(e), nodes: []}]));"
        )
        blocking = [
            {
                "id": violation["id"],
                "impact": violation["impact"],
                "help": violation["help"],
                "nodes": [node.get("target") for node in violation.get("nodes", [])][:5],
            }
            for violation in violations
            if violation.get("impact") in BLOCKING
        ]
        self.audited[screen] = blocking
        return blocking

    def screen(self, name: str) -> None:
        """Screenshot and accessibility check of the screen shown now; fails on a serious or
        critical axe violation, or on anything the page's Content-Security-Policy refused
        (axe itself is injected by the driver, which CSP does not govern)."""
        self.screenshot(name)
        blocking = self.audit(name)
        assert not blocking, f"axe on {name}: {json.dumps(blocking, indent=1)}"
        refused = [
            entry["message"]
            for entry in self.driver.get_log("browser")  # type: ignore[no-untyped-call]
            if "Content Security Policy" in entry["message"]
        ]
        assert not refused, f"{name} broke its Content-Security-Policy: {refused}"

    # --- plumbing ----------------------------------------------------------------------------

    def _retry(self, action: Callable[[], T]) -> T:
        """Polling swaps parts of the page: an element found a moment ago may be replaced."""
        for _ in range(5):
            try:
                return action()
            except StaleElementReferenceException:
                time.sleep(0.05)
        return action()

    def _page(self) -> str:
        try:
            return (
                f"{self.driver.current_url}\n{self.driver.find_element(By.TAG_NAME, 'body').text}"
            )
        except WebDriverException as error:
            return f"(page unreadable: {error})"
