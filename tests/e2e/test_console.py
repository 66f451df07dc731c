"""The operator console in a real browser: Debian's Chromium, headless, driven by selenium,
against the session's worker. The page loads and counts what the database holds, a failed
item is found and its retry publishes it, a dead letter's re-drive brings its item, and a
token that is not an operator's is refused with nothing shown."""

from __future__ import annotations

import asyncio
import os

import pytest
from selenium import webdriver
from selenium.common.exceptions import (ElementNotInteractableException, NoSuchElementException,
                                        StaleElementReferenceException)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from app.topics import CLAIMED, CLAIMED_DLQ
from fakes.gateway import Answer
from tests.clients import claim_and_wait, failed_on_snapchat
from tests.factories import new_claimed_event, unique
from tests.support import eventually, operator_token, token
from web.console import console_link

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"  # given: selenium then downloads no driver of its own
API = "/api/v1/distribution"
#: What a redraw or a not-yet-shown element raises while a wait polls: poll again.
TRANSIENT = (NoSuchElementException, StaleElementReferenceException,
             ElementNotInteractableException)


@pytest.fixture(scope="module")
def browser():
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: `make browser` installs them")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP reports land there
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


class Console:
    """The page as an operator uses it. Waits run in a thread: the test's event loop stays
    free for the fixtures that live on it."""

    def __init__(self, driver: webdriver.Chrome, base: str) -> None:
        self.driver = driver
        self.base = base

    async def open(self, jwt: str | None = None) -> None:
        url = console_link(self.base, jwt) if jwt else f"{self.base}/console"
        await asyncio.to_thread(self.driver.get, url)

    async def until(self, condition, what: str, timeout: float = 30):
        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=TRANSIENT)
        return await asyncio.to_thread(wait.until, condition, f"{what} not shown in {timeout} s")

    async def click(self, css: str) -> None:
        """Clicks the element once it is there and visible (found afresh each try: the
        page redraws what it refreshes)."""
        def clicked(driver):
            driver.find_element(By.CSS_SELECTOR, css).click()
            return True
        await self.until(clicked, f"a clickable {css}")

    async def text_is(self, css: str, expected: str, timeout: float = 30) -> None:
        await self.until(lambda d: d.find_element(By.CSS_SELECTOR, css).text == expected,
                         f"{css} saying {expected!r}", timeout)

    async def text_has(self, css: str, part: str, timeout: float = 30) -> str:
        def found(driver):
            text = driver.find_element(By.CSS_SELECTOR, css).text
            return text if part in text else None
        return await self.until(found, f"{css} saying {part!r}", timeout)

    def text(self, css: str) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, css).text

    def all(self, css: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def shown(self, css: str) -> bool:
        return self.driver.find_element(By.CSS_SELECTOR, css).is_displayed()

    def counts(self) -> dict[str, int]:
        """Items by state as the overview holds them (shown or not)."""
        return {e.get_attribute("data-count"): int(e.get_attribute("textContent"))
                for e in self.all("[data-count]")}

    def stored_token(self) -> str | None:
        return self.driver.execute_script(
            "return sessionStorage.getItem('distribution.console.token')")


@pytest.fixture
def console(browser, service):
    """A tab of its own for each test: nothing is left in sessionStorage from another."""
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    yield Console(browser, service.url)
    browser.close()
    browser.switch_to.window(first)


async def database_counts(pool) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await pool.fetch(
        "SELECT status, count(*) AS n FROM distribution_items GROUP BY status")}


async def test_the_page_needs_no_token_and_is_served_under_a_strict_policy(api):
    for path, kind in [("/console", "text/html"), ("/console/console.js", "text/javascript"),
                       ("/console/console.css", "text/css")]:
        async with api.session.get(api.base + path) as r:
            assert r.status == 200 and r.content_type == kind, path
            policy = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "style-src 'self'" in policy
            assert "default-src 'none'" in policy and "unsafe" not in policy
            assert r.headers["X-Content-Type-Options"] == "nosniff"
    async with api.session.get(api.base + "/console/secrets.txt") as r:
        assert r.status == 404
    assert console_link("http://h:1/", "a.b.c") == "http://h:1/console#token=a.b.c"


async def test_a_link_with_an_operator_token_opens_the_overview_of_the_databases_counts(
        console, api, topics, pool):
    await claim_and_wait(topics, api)  # something to count
    expected = await database_counts(pool)
    jwt = operator_token()
    await console.open(jwt)

    def showing_the_database(_):
        shown = console.counts()
        matches = {s: n for s, n in shown.items() if n} == expected
        return shown if matches and console.shown("#console") else None

    shown = await console.until(showing_the_database, f"the counts {expected}")
    assert await database_counts(pool) == expected  # nothing moved while the page loaded
    assert set(shown) >= {"claimed", "scheduled", "publishing", "published", "failed"}
    assert "#token" not in console.driver.current_url  # out of the address bar
    assert console.stored_token() == jwt
    assert "signed in as operator-1" in console.text("#who")
    platforms = [row.get_attribute("data-platform") for row in console.all("#platform-rows tr")]
    assert platforms == ["tiktok", "instagram", "youtube", "snapchat"]
    assert console.text("#outbox-pending").isdigit() and console.text("#oldest-overdue")
    refused = [e["message"] for e in console.driver.get_log("browser")
               if "Content Security Policy" in e["message"]]
    assert refused == []  # nothing of the page's own broke the policy

    await console.click("#sign-out")
    await console.text_is("#message", "Signed out.")
    assert console.stored_token() is None and not console.shown("#console")
    assert console.counts() == {}


async def test_a_failed_item_is_found_its_timeline_shows_the_failure_and_retry_publishes_it(
        console, api, topics, fake_platforms):
    item_id, influencer, _ = await failed_on_snapchat(topics, api, fake_platforms)

    await console.open(operator_token())
    await console.until(lambda d: console.shown("#search-form"), "the search form")
    Select(console.driver.find_element(By.ID, "search-status")).select_by_visible_text("failed")
    console.driver.find_element(By.ID, "search-influencer").send_keys(influencer)
    await console.click("#search-submit")
    row = f'#search-rows tr[data-item-id="{item_id}"]'
    await console.text_is(f"{row} [data-field=status]", "failed")
    assert len(console.all("#search-rows tr")) == 1
    assert "snapchat failed" in console.text(row) and "tiktok published" in console.text(row)

    await console.click(f"{row} button")
    attempt = ('#timeline-rows tr[data-entry="attempt"][data-platform="snapchat"]'
               '[data-what="failed"]')
    assert "caption rejected" in await console.text_has(attempt, "permanent")
    assert console.text("#item-status") == "failed" and console.shown("#retry")

    fake_platforms.script("snapchat", Answer.ok())
    await console.click("#retry")
    await console.text_has("#message", f"Retry sent: {item_id} is publishing")
    await console.text_is("#item-status", "published")  # the open item refreshes itself
    states = {row.get_attribute("data-platform"): row.find_element(
        By.CSS_SELECTOR, "[data-field=status]").text for row in console.all("#item-platforms tr")}
    assert states == {"tiktok": "published", "snapchat": "published"}
    assert not console.shown("#retry")
    code, item = await api.get(item_id, influencer)
    assert code == 200 and item["status"] == "published"


async def test_a_dead_letter_is_listed_and_its_re_drive_button_brings_the_item(
        console, api, topics, pool):
    event = new_claimed_event()
    del event["data"]["campaign_id"]  # an unknown clip without a campaign: dead-lettered
    item_id, clip_id = event["data"]["claim_id"], event["data"]["clip_id"]
    await topics.produce(CLAIMED, event, key=item_id)
    operator = {"Authorization": f"Bearer {operator_token()}"}

    async def listed():
        code, body = await api.call(
            "GET", f"{api.base}{API}/dead-letters?topic={CLAIMED_DLQ}&limit=200",
            headers=operator)
        return next((r for r in body["records"] if r["key"] == item_id), None)
    await eventually(listed, timeout=30, what="the claim in the DLQ")

    await console.open(operator_token())
    row = f'#dead-letter-rows tr[data-key="{item_id}"]'
    await console.text_is(f"{row} [data-field=reason]", "unknown_clip")
    assert console.text(f"{row} [data-field=topic]") == CLAIMED

    # M09 knows the clip now: the re-drive makes the item
    await pool.execute("INSERT INTO clips (id, campaign_id) VALUES ($1, $2)", clip_id,
                       unique("campaign"))
    await console.click(f"{row} button.redrive")
    done = await console.text_has(f"{row} [data-redriven]", "re-driven at")
    assert "by operator-1" in done and not console.all(f"{row} button.redrive")
    assert (await listed())["redriven_at"]

    await console.click(f"{row} [data-field=key] button")  # the key is the item's id
    await console.text_is("#item-status", "claimed")  # shown once it exists
    assert console.text("#item-id") == item_id


async def test_a_pasted_token_that_is_not_an_operators_is_refused_and_nothing_is_shown(
        console):
    await console.open()
    for pasted, refusal in [(token("influencer-1"), "this token is not an operator's"),
                            ("not-a-token", "this token is not valid here")]:
        field = await console.until(
            lambda d: d.find_element(By.ID, "token-input") if console.shown("#token-input")
            else None, "the token field")
        field.send_keys(pasted)
        await console.click("#token-submit")
        await console.text_has("#message", refusal)
        assert not console.shown("#console")
        assert console.counts() == {} and console.all("#dead-letter-rows tr") == []
        assert console.stored_token() is None
