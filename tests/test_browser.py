"""Notebook 06 in a real browser: JupyterLab on 127.0.0.1, headless Chromium driven by Playwright.

The test opens the notebook (smoke parameters injected), runs every cell from JupyterLab's Run
menu, types a class name into the zero-shot explorer and waits for its ranked results. A
screenshot is written to ``$ZSKIT_TEST_ARTIFACTS`` (default ``runs/test-artifacts/``).
Skipped when Chromium (Debian: ``apt-get install -y chromium``) or Playwright is missing.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import papermill
import pytest
from jupyter_browser import chromium_page, chromium_path, jupyterlab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_semantic_distance_explorer.ipynb"
EXPLORER_PLACEHOLDER = "class names, comma-separated, e.g. cello, tuba"
RUN_TIMEOUT = 1200.0  # seconds for the smoke run in the browser (1 min idle; 5+ min on a busy CPU)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(RUN_TIMEOUT + 300),
    pytest.mark.skipif(chromium_path() is None,
                       reason="Chromium is not installed (Debian/Ubuntu: apt-get install -y "
                              "chromium); the real-browser test needs /usr/bin/chromium"),
]
PlaywrightTimeout = pytest.importorskip(
    "playwright.sync_api", reason="the Python package playwright is not installed").TimeoutError


def _artifacts() -> Path:
    folder = Path(os.environ.get("ZSKIT_TEST_ARTIFACTS", ROOT / "runs" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _run_all_and_wait(page, timeout: float) -> None:
    """Run > Run All Cells, then wait for the last cell's report; fail on the first error output."""
    page.locator(".jp-Notebook").wait_for(timeout=60_000)
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
        timeout=120_000)
    page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=120_000)
    started = page.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    for _ in range(5):  # a run asked for before the kernel session is ready is dropped: retry
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        try:
            started.first.wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    errors = page.locator("[data-mime-type='application/vnd.jupyter.error']")
    done = page.get_by_text(re.compile(r"metrics\.json after \d+ s"))
    deadline = time.monotonic() + timeout
    while not done.count():
        failure = None
        if errors.count():
            failure = f"a cell failed in the browser:\n{errors.first.inner_text()[-3000:]}"
        elif time.monotonic() > deadline:
            prompts = page.locator(".jp-InputPrompt").all_inner_texts()
            failure = (f"notebook 06 did not finish within {timeout:.0f} s in the browser; "
                       f"execution counts: {[p for p in prompts if p]}")
        if failure:
            page.screenshot(path=str(_artifacts() / "browser_06_failure.png"))
            pytest.fail(failure)
        time.sleep(2)


def test_notebook_06_runs_in_jupyterlab_and_the_explorer_answers(tmp_path):
    work = tmp_path / "lab"
    work.mkdir()
    papermill.execute_notebook(str(NOTEBOOK), str(work / NOTEBOOK.name), prepare_only=True,
                               parameters={"smoke": True, "out_dir": str(tmp_path / "out")},
                               progress_bar=False)
    with jupyterlab(work, tmp_path / "jupyter") as lab, \
            chromium_page(tmp_path / "chromium-profile") as page:
        page.goto(lab.page(f"lab/tree/{NOTEBOOK.name}"), timeout=120_000)
        _run_all_and_wait(page, RUN_TIMEOUT)
        assert (tmp_path / "out" / "metrics.json").is_file(), "the notebook wrote no metrics"

        box = page.get_by_placeholder(EXPLORER_PLACEHOLDER)
        box.fill("violin")  # not in the notebook's first query, so its heading is new
        box.press("Enter")
        heading = page.locator(".jupyter-widgets h4", has_text=re.compile(r"^violin$"))
        heading.wait_for(timeout=120_000)
        results = heading.locator(
            "xpath=ancestor::div[contains(@class, 'widget-vbox')][1]").locator(".zskit-result")
        results.first.wait_for(timeout=60_000)
        texts = results.all_inner_texts()
        heading.scroll_into_view_if_needed()
        page.screenshot(path=str(_artifacts() / "browser_06_zero_shot_explorer.png"))
    assert len(texts) == 5, f"top 5 clips expected for 'violin', got {len(texts)}: {texts}"
    scores = [float(re.search(r"P (\d\.\d{3})", t).group(1)) for t in texts]
    assert scores == sorted(scores, reverse=True), f"results are not ranked: {scores}"
    assert all(t.startswith(f"{i}.") and "holds:" in t for i, t in enumerate(texts, 1)), texts
