"""The shop in a real browser (headless Debian chromium via Playwright), through the
stack `flaskprod up` runs: sign up, log in, sell a product with an image, order it,
find it in "My orders". Screenshots of each step go to test-artifacts/browser/.

Trust: Chromium reads trust anchors from an NSS database, which needs NSS's certutil
(not installed here). The browser is instead told to accept exactly our server key
(``--ignore-certificate-errors-spki-list`` with its SPKI hash) while certificate
errors stay fatal (``ignore_https_errors=False``): any other certificate still fails.
"""

from __future__ import annotations

import io
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import REPO, ShopStack

from flaskprod.stack.ca import spki_sha256

pytestmark = [pytest.mark.services, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "browser"
ACCENT = "rgb(138, 75, 42)"  # --accent in the shop's style.css


@pytest.fixture
def browser_page(shop_stack: ShopStack) -> Iterator[tuple[Any, dict[str, list[str]]]]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    spki = spki_sha256(shop_stack.dirs.tls / "server.pem")
    problems: dict[str, list[str]] = {"console": [], "failed": [], "http": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--ignore-certificate-errors-spki-list={spki}",
            ],
        )
        context = browser.new_context(
            ignore_https_errors=False, viewport={"width": 1100, "height": 800}
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on(
            "console",
            lambda m: problems["console"].append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: problems["console"].append(str(e)))
        page.on("requestfailed", lambda r: _failed(problems, r))
        page.on(
            "response",
            lambda r: problems["http"].append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        try:
            yield page, problems
        finally:
            context.close()
            browser.close()


def _failed(problems: dict[str, list[str]], request: Any) -> None:
    # ERR_ABORTED is the browser cancelling a request because the page navigated away
    # (a favicon still loading when a form is submitted), not the server failing; an
    # error status from the server is caught by the "response" listener instead.
    if request.failure != "net::ERR_ABORTED":
        problems["failed"].append(f"{request.method} {request.url}: {request.failure}")


def _png() -> bytes:
    from PIL import Image

    image = Image.new("RGB", (240, 160), (40, 120, 200))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _assert_styled(page: Any) -> None:
    """The stylesheet arrived through nginx and applies (computed, not just loaded)."""
    body = page.evaluate("getComputedStyle(document.body).display")
    topbar = page.evaluate("getComputedStyle(document.querySelector('.topbar')).display")
    assert (body, topbar) == ("flex", "flex"), "the page is not styled: style.css did not apply"


def test_sign_up_log_in_sell_order_in_a_real_browser(
    shop_stack: ShopStack, browser_page: tuple[Any, dict[str, list[str]]], tmp_path: Path
) -> None:
    page, problems = browser_page
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    product = f"Blue mug {uuid.uuid4().hex[:6]}"
    base = shop_stack.url

    stylesheets: list[str] = []
    page.on(
        "response",
        lambda r: stylesheets.append(r.headers.get("server", "")) if ".css" in r.url else None,
    )

    # 1. sign up
    page.goto(f"{base}/signup")
    _assert_styled(page)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat password").fill(password)
    _shot(page, "1-signup")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{base}/")
    assert email in page.content()

    # 2. log out, then log in again
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    _shot(page, "2-login")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/**")
    assert email in page.content()

    # 3. a product with an image
    image = tmp_path / "mug.png"
    image.write_bytes(_png())
    page.goto(f"{base}/products/new")
    page.get_by_label("Name").fill(product)
    page.get_by_label("Description").fill("A mug, photographed in a real browser.")
    page.get_by_label("Price (EUR)").fill("12.50")
    page.get_by_label("Image (PNG, JPEG, WebP or GIF)").set_input_files(str(image))
    _shot(page, "3-new-product")
    page.get_by_role("button", name="Create product").click()
    page.wait_for_url(f"{base}/products/*")
    assert page.get_by_role("heading", name=product).is_visible()
    picture = page.locator("article.product img")
    picture.wait_for()
    # The upload is served by nginx from the media folder, and really decodes.
    width = page.evaluate("(img) => img.complete && img.naturalWidth", picture.element_handle())
    assert width == 240
    _shot(page, "4-product")

    # 4. order it
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Order").click()
    page.wait_for_url(f"{base}/orders")

    # 5. see it in "My orders"
    row = page.locator("table.orders tbody tr", has_text=product)
    assert row.count() == 1
    assert "2 \u00d7 " in row.inner_text() and "\u20ac25.00" in row.inner_text()
    _assert_styled(page)
    _shot(page, "5-my-orders")

    assert stylesheets and set(stylesheets) == {"nginx"}, stylesheets  # CSS came from nginx
    assert problems["failed"] == [], problems["failed"]
    assert problems["console"] == [], (problems["console"], problems["http"])
    assert problems["http"] == [], problems["http"]
