"""The web UI's tests: a real broker and Debian's Chromium driven by Playwright.

- `browser` (one per module): the system Chromium (`/usr/bin/chromium`, never a downloaded
  one), headless, launched by Playwright into a fresh temporary profile. Missing, the tests
  skip, but fail when CI_REQUIRE_TOOLS is set (CI sets it, `.ci/run`).
- `page`: a fresh context (its own sessionStorage) at 1440x900 for each test. Every console
  error and uncaught page error fails the test, but those it `errors.allow()`s: a test that
  provokes a 4xx on purpose allows Chromium's "Failed to load resource" line for it.
- `screenshot(page, name)`: build/ui-screenshots/<name>.png at desktop width (CI keeps them
  as artifacts; build/ is not committed).
- `open_broker`, `secure_broker` (one per module): authentication off, and on with an admin
  (`ADMIN`, `PASSWORD`) made through bootstrap.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx2
import pytest

from tests.broker import ROOT, Broker, start_broker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 900}
SCREENSHOTS = ROOT / "build" / "ui-screenshots"
TIMEOUT_MS = 10_000  # any wait on the page; generous for 2 busy cores, never a sleep
ADMIN, PASSWORD = "root", "correct horse battery"


def _require_browser() -> None:
    missing = None
    if shutil.which(CHROMIUM) is None:
        missing = f"{CHROMIUM} is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[test]')"
    if missing is None:
        return
    if os.environ.get("CI_REQUIRE_TOOLS"):
        pytest.fail(missing)
    pytest.skip(missing)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class BrowserErrors:
    """Console errors and uncaught exceptions of the test's pages."""
    seen: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [text for text in self.seen
                if not any(pattern.search(text) for pattern in self.allowed)]


@pytest.fixture
def errors() -> BrowserErrors:
    return BrowserErrors()


@pytest.fixture
def page(browser: Any, errors: BrowserErrors) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()

    def on_console(message: Any) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            errors.seen.append(f"console: {message.text} ({where})")

    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: errors.seen.append(f"page error: {exc}"))
    yield opened
    context.close()
    assert errors.unexpected() == [], "the browser logged errors"


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    def save(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
    return save


def _started(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> Broker:
    return start_broker(tmp_path_factory.mktemp(name) / "data", **env)


@pytest.fixture(scope="module")
def open_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = _started(tmp_path_factory, "ui-open", GORTMS_MONITORING_INTERVAL="1s")
    yield broker
    assert broker.stop() == 0, broker.output()


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = _started(tmp_path_factory, "ui-secure", GORTMS_SECURITY_ENABLEAUTHENTICATION="true")
    bootstrap_admin(broker)
    yield broker
    assert broker.stop() == 0, broker.output()


def bootstrap_admin(broker: Broker) -> None:
    """The first admin (ADMIN, PASSWORD) of a broker started with authentication on."""
    with broker.client() as api:
        reply = api.post("/api/auth/bootstrap", json={"username": ADMIN, "password": PASSWORD})
        assert reply.status_code == 201, reply.text


def admin_headers(api: httpx2.Client) -> dict[str, str]:
    reply = api.post("/api/auth/login", json={"username": ADMIN, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def sign_in(page: Any, broker: Broker, username: str = ADMIN, password: str = PASSWORD,
            at: str = "/ui/") -> None:
    """Open `at`, which sends to the sign-in page, and sign in there."""
    page.goto(broker.url + at)
    page.wait_for_selector("main[data-page=signin]")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
