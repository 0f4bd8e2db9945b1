"""The web console in a real browser against `nexus up`: what the README tour does, done by a
person with a mouse and a keyboard."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.conftest import sign_up, snap

TASK_URL = re.compile(r"#/task/([0-9a-f-]{36})$")


async def timeline_seqs(page: Page) -> list[int]:
    values = (
        await page.get_by_test_id("timeline")
        .locator("li[data-seq]")
        .evaluate_all("items => items.map(item => Number(item.dataset.seq))")
    )
    return [int(v) for v in values]


async def run_scan(page: Page, url: str = "https://example.com") -> str:
    box = page.get_by_test_id("command-input")
    await box.click()
    await box.press_sequentially("/sc")
    completion = page.get_by_test_id("completion").filter(has_text="/scan")
    await expect(completion).to_be_visible()
    await expect(completion).to_contain_text("depth=quick|standard|deep")  # each command's usage
    await box.press("Tab")
    await expect(box).to_have_value("/scan ")
    await expect(page.get_by_test_id("command-usage")).to_contain_text("/scan <url>")
    await box.press_sequentially(f"{url} depth=quick")
    await box.press("Enter")
    await page.wait_for_url(TASK_URL)
    found = TASK_URL.search(page.url)
    assert found
    return found.group(1)


async def test_sign_up_run_scan_answer_open_the_report_pin_and_sign_out(page: Page) -> None:
    await sign_up(page, nickname="Ada")
    await expect(page.get_by_test_id("user-name")).to_have_text("Ada")
    await snap(page, "01-home")

    task_id = await run_scan(page)
    # Events arrive live: the plan, the agent's message, the preview in the canvas, the question.
    await expect(page.get_by_test_id("plan")).to_be_visible()
    await expect(page.get_by_test_id("timeline")).to_contain_text("Scanning https://example.com (quick scan).")
    await expect(page.get_by_test_id("zone-canvas").locator("[data-component=web_preview]")).to_contain_text(
        "example.com"
    )
    answer = page.get_by_test_id("answer-input")
    await expect(answer).to_be_visible()
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "waiting_input")
    await snap(page, "02-task-waiting")

    await answer.fill("pricing")
    await page.get_by_test_id("answer-send").click()
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "finished")
    await expect(page.get_by_test_id("composer")).to_be_hidden()
    await expect(page.get_by_test_id("zone-status").locator("[data-component=progress]")).to_contain_text("pricing")
    viewer = page.get_by_test_id("zone-canvas").locator("[data-component=artifact_viewer]")
    await expect(viewer).to_contain_text("Focus: pricing")
    await expect(page.get_by_test_id("plan-count")).to_have_text(re.compile(r"(\d+) of \1 steps"))
    await snap(page, "03-task-finished")

    seqs = await timeline_seqs(page)
    assert seqs == list(range(1, len(seqs) + 1)), seqs

    # The report, opened from the task's files.
    await page.get_by_test_id("artifact").first.get_by_test_id("artifact-open").click()
    modal = page.get_by_test_id("artifact-modal")
    await expect(modal.locator("h2").first).to_have_text("Scan of https://example.com")
    await expect(modal).to_contain_text("The quick scan of https://example.com looked at pricing.")
    await snap(page, "04-artifact")
    await page.get_by_test_id("modal-close").click()
    await expect(modal).to_be_hidden()

    # Pinned tasks come first in the sidebar.
    await page.get_by_test_id("pin-task").click()
    pinned = page.get_by_test_id("sidebar-pinned").locator(f'[data-task-id="{task_id}"]')
    await expect(pinned).to_be_visible()
    await expect(page.get_by_test_id("pin-task")).to_have_attribute("data-pinned", "true")

    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("auth-email")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    assert page.problems == []  # type: ignore[attr-defined]
