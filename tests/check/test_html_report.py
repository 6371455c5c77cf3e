"""The HTML report in a real browser (headless Debian chromium via Playwright): one
self-contained page, readable, with the score, grade and findings by layer. The
screenshot is kept in test-artifacts/check-report.png."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from flaskprod.check.model import LAYERS, Level
from flaskprod.check.report import render
from flaskprod.check.runner import CheckOptions, run_checks
from flaskprod.check.summary import summarize

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def _report(root: Path) -> str:
    files = {
        "requirements.txt": "flask==2.2.2\nwerkzeug==2.2.2\nflask-debugtoolbar==0.16.0\n"
        "requests>=2  # flaskprod: ignore=PRJ004 pinned by the platform's lock\n",
        "Dockerfile": "FROM python:3.11.11-slim\nCOPY . .\nUSER 1000\n"
        'CMD ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]\n',
        "config.py": 'SECRET_KEY = "9f1c2e7a4b8d0f3e6a5c1b9d7e2f4a8c"\n',
        "app.py": "from flask import Flask\napp = Flask(__name__)\n"
        "x = '<script>alert(1)</script>'\n",
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    result = run_checks(CheckOptions(root=root, no_import=True))
    return render(result, summarize(result, Level.WARNING), "html")


def test_html_report_in_chromium(browser: Browser, tmp_path: Path) -> None:
    html = _report(tmp_path)
    assert "<script" not in html  # no scripts at all, and the page escapes what it shows
    page_file = tmp_path / "report.html"
    page_file.write_text(html)
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    external: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith(("file:", "data:")) else external.append(request.url)
        ),
    )
    page.goto(page_file.as_uri())
    assert external == []  # self-contained: nothing fetched from anywhere
    grade = page.locator(".grade b").inner_text()
    assert grade in "ABCDF" and len(grade) == 1
    assert "/100" in page.locator(".grade span").inner_text()
    layers = page.locator("main h2").all_inner_texts()
    shown = [layer.lower() for layer in layers]
    assert shown == sorted(shown, key=LAYERS.index)  # grouped, in the layers' order
    assert {"project", "docker", "deps"} <= set(shown)
    assert page.locator(".f.l-critical").count() >= 1  # werkzeug debugger CVE
    ignored = page.locator(".f.ignored .ign").all_inner_texts()
    assert ignored == ["Ignored: pinned by the platform's lock"]
    # readable: the text of a finding is dark on light, at a normal size
    color = page.locator(".f .msg").first.evaluate("e => getComputedStyle(e).color")
    size = page.locator(".f .msg").first.evaluate("e => getComputedStyle(e).fontSize")
    assert color == "rgb(29, 35, 48)" and float(size.removesuffix("px")) >= 14
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "check-report.png"), full_page=True)
    page.close()
