"""End to end in a real browser: `streamlit run ui/app.py` on a free port over an index of the
bundled corpus built with the real model, driven by Debian's headless chromium through
Playwright (no browser download). Saves the screenshots docs/ui.png and docs/audit.png."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from kb.config import REPO_ROOT

pytestmark = pytest.mark.browser

QUESTION = "Compare remission rates for CNIs versus rituximab"
SCREENSHOT = REPO_ROOT / "docs" / "ui.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not become healthy in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium")
    if not path:
        pytest.skip("Debian's chromium is not installed (`make test` installs it with apt-get)")
    return path


@pytest.fixture
def server(chromium: str, corpus_copy: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The app on a free localhost port; its whole process group is stopped afterwards."""
    real_index: Path = request.getfixturevalue("real_index")  # only once chromium is known to exist
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FSGS_KB_INDEX": str(real_index),
           "FSGS_KB_CORPUS": str(corpus_copy), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("FSGS_KB_EMBEDDER", None)  # the real model, as the index records
    env.pop("FSGS_KB_LLM", None)
    log = tmp_path / "streamlit.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "ui/app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_ask_in_browser(chromium: str, server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1350})
            page.goto(server, wait_until="domcontentloaded")
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=120_000)
            expect(page.get_by_role("button", name=QUESTION)).to_be_visible(timeout=60_000)
            box.fill(QUESTION)
            box.press("Enter")

            # The answer: sentences followed by [n] markers that link to the sources panel.
            markers = page.locator(".kb-answer a.kb-cite")
            markers.first.wait_for(timeout=120_000)
            texts = markers.all_inner_texts()
            assert texts and all(re.fullmatch(r"\[\d+\]", t) for t in texts), texts
            href = markers.first.get_attribute("href") or ""
            expect(page.locator(f"[id='{href.lstrip('#')}']")).to_have_count(1)  # its source card

            # Each source shows its passage with the exact cited span highlighted.
            highlighted = page.locator(".kb-passage mark.kb-hl")
            expect(highlighted.first).to_be_visible()
            assert highlighted.first.inner_text().strip()
            expect(page.locator(".kb-src .kb-badges").first).to_be_visible()

            # A comparison question gets its table, each row linked to its source.
            expect(page.locator("table.kb-cmp a.kb-cite").first).to_be_visible()

            # The picture: the question, then the top of the answer (table, notes, sentences, sources),
            # once the script run is over (Streamlit keeps a growing chat scrolled to the bottom).
            expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)
            page.wait_for_timeout(1000)
            page.get_by_test_id("stChatMessage").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.mouse.move(5, 5)
            page.wait_for_timeout(500)
            expect(page.locator("table.kb-cmp")).to_be_in_viewport()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))

            # One click from a passage opens the full document scrolled to that span.
            page.locator(".kb-open").first.click()
            target = page.locator("details.kb-doc mark.kb-hl:target, details.kb-doc .kb-anchor:target")
            expect(target).to_have_count(1, timeout=10_000)
            assert page.locator("details.kb-doc[open]").count() >= 1
            expect(target.first).to_be_in_viewport()
        finally:
            browser.close()


AUDIT_SCREENSHOT = REPO_ROOT / "docs" / "audit.png"


def test_audit_draft_in_browser(chromium: str, server: str) -> None:
    """The "Check a draft" view: the example draft audited, each sentence with its verdict badge
    and its evidence beside it; saves docs/audit.png."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1500})
            page.goto(server, wait_until="domcontentloaded")
            page.get_by_test_id("stChatInputTextArea").wait_for(timeout=120_000)
            page.get_by_test_id("stSidebar").get_by_text("Check a draft", exact=True).click()
            page.get_by_role("button", name="Load an example").click()
            expect(page.get_by_test_id("stTextArea").locator("textarea")).to_contain_text("Belimumab", timeout=30_000)
            page.get_by_role("button", name="Check the draft").click()

            rows = page.locator(".kb-audit .kb-arow")
            rows.first.wait_for(timeout=120_000)
            verdicts = [rows.nth(i).get_attribute("data-verdict") for i in range(rows.count())]
            assert len(verdicts) == 7 and "no-claim" in verdicts, verdicts
            assert "numbers-differ" in verdicts and "not-found" in verdicts, verdicts
            assert "supported-by-cited" in verdicts, verdicts
            differ = page.locator(".kb-arow[data-verdict='numbers-differ']").first
            expect(differ.locator(".kb-fig-bad").first).to_be_visible()  # the differing figures
            expect(differ.locator(".kb-aev").first).to_be_visible()  # the evidence beside it
            expect(page.get_by_role("button", name="Audit CSV")).to_be_visible()

            expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)
            page.wait_for_timeout(800)
            page.locator(".kb-counts").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.mouse.move(5, 5)
            page.wait_for_timeout(400)
            AUDIT_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(AUDIT_SCREENSHOT))
        finally:
            browser.close()
