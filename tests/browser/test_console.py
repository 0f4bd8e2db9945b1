"""The web console in a real browser against `nexus up`: what the README tour does, done by a
person with a mouse and a keyboard."""

from __future__ import annotations

import re
import secrets

from playwright.async_api import Page, expect

from nexus.kit.validation import JSON, dict_to_struct
from nexus.ontology.v1 import ontology_pb2 as onto
from tests.browser.conftest import NexusUp, sign_up, snap

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
    await page.goto("/")
    await expect(page.get_by_test_id("auth-email")).to_be_visible()
    await snap(page, "00-sign-in")
    await sign_up(page, nickname="Ada")
    await expect(page.get_by_test_id("user-name")).to_have_text("Ada")
    await expect(page.get_by_test_id("command-gallery")).to_contain_text("/summarize")
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


async def test_a_reload_in_the_middle_of_a_stream_resumes_with_no_duplicate_and_no_gap(page: Page) -> None:
    await sign_up(page, nickname="Grace")
    streams: list[str] = []
    page.on("request", lambda request: streams.append(request.url) if "/events?" in request.url else None)
    task_id = await run_scan(page, "https://example.org")
    await expect(page.get_by_test_id("answer-input")).to_be_visible()
    await expect(page.get_by_test_id("stream-state")).to_have_attribute("data-state", "live")
    before = await timeline_seqs(page)
    assert before == list(range(1, len(before) + 1)), before

    await page.reload()
    await expect(page.get_by_test_id("answer-input")).to_be_visible()
    await expect(page.get_by_test_id("stream-state")).to_have_attribute("data-state", "live")
    # The page shows what it had seen and the new stream starts right after it.
    assert f"after_seq={before[-1]}&" in streams[-1], streams
    assert await timeline_seqs(page) == before

    await page.get_by_test_id("answer-input").fill("team")
    await page.get_by_test_id("answer-send").click()
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "finished")
    after = await timeline_seqs(page)
    assert after == list(range(1, len(after) + 1)), after
    assert len(after) > len(before)
    await expect(page.get_by_test_id("timeline")).to_contain_text("Done. The scan report of https://example.org")

    # Archived, it leaves the sidebar for the archive, and comes back.
    await page.get_by_test_id("archive-task").click()
    await expect(page.get_by_test_id("sidebar").locator(f'[data-task-id="{task_id}"]')).to_have_count(0)
    await page.get_by_test_id("open-archive").click()
    row = page.get_by_test_id("archive-list").locator(f'[data-task-id="{task_id}"]')
    await expect(row).to_be_visible()
    await snap(page, "05-archive")
    await row.get_by_role("button", name="Restore").click()
    await expect(page.get_by_test_id("sidebar-recent").locator(f'[data-task-id="{task_id}"]')).to_be_visible()
    assert page.problems == []  # type: ignore[attr-defined]


async def test_settings_profile_and_a_connection_whose_secret_never_comes_back(page: Page) -> None:
    await sign_up(page, nickname="Lin")
    page.on("dialog", lambda dialog: dialog.accept())
    await page.get_by_test_id("open-settings").click()
    nickname = page.get_by_test_id("profile-nickname")
    await nickname.fill("Lin Wei")
    await page.get_by_test_id("pref-theme").select_option("dark")
    await page.get_by_test_id("pref-output_style").select_option("concise")
    await page.get_by_test_id("principle-add").click()
    await page.get_by_test_id("principle-input").last.fill("Cite a source for every claim")
    await page.get_by_test_id("profile-save").click()
    await expect(page.get_by_test_id("user-name")).to_have_text("Lin Wei")
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    await snap(page, "06-settings-profile")
    await page.reload()
    await expect(page.get_by_test_id("profile-nickname")).to_have_value("Lin Wei")
    await expect(page.get_by_test_id("principle-input")).to_have_value("Cite a source for every claim")
    await expect(page.get_by_test_id("pref-output_style")).to_have_value("concise")

    await page.get_by_test_id("tab-agents").click()
    await page.get_by_test_id("agent-list").locator('[data-agent-id="web_researcher_v1"]').click()
    await expect(page.get_by_test_id("agent-name")).to_have_text("Web Researcher")
    await expect(page.locator(".skill").first).to_contain_text("depth")  # from the capabilities snapshot
    secret = "sk-very-secret-4242"
    await page.get_by_test_id("connection-provider").fill("notion_oauth")
    await page.get_by_test_id("connection-name").fill("Team Notion")
    await page.get_by_test_id("secret-key").fill("api_key")
    await page.get_by_test_id("secret-value").fill(secret)
    await page.get_by_test_id("connection-add").click()
    connection = page.get_by_test_id("connection").filter(has_text="Team Notion")
    await expect(connection).to_be_visible()
    assert secret not in await page.content()  # write-only: never shown again
    await expect(connection.get_by_test_id("connection-verified")).to_have_text("Never verified")
    await connection.get_by_test_id("connection-verify").click()
    await expect(connection.get_by_test_id("connection-verified")).to_have_text("Verified just now")
    await snap(page, "07-settings-agent")
    await connection.get_by_test_id("connection-remove").click()
    await expect(page.get_by_test_id("connection")).to_have_count(0)
    assert page.problems == []  # type: ignore[attr-defined]


def render_step(step_id: str, zone: str, component: str, props: dict[str, JSON], after: str = "") -> onto.Step:
    args = dict_to_struct({"target_zone": zone, "component": component, "props": props})
    return onto.Step(id=step_id, action="render", args=args, depends_on=[after] if after else [])


async def test_an_unknown_component_is_a_labelled_card_with_its_json(page: Page, nexus_up: NexusUp) -> None:
    trigger = f"/chart{secrets.token_hex(3)}"
    await nexus_up.add_command(
        trigger,
        [render_step("draw", "sidebar_panel", "stock_chart", {"symbol": "ACME", "points": [3, 1, 4]})],
        "Draw a chart: /chart",
    )
    await sign_up(page, nickname="Ken")
    box = page.get_by_test_id("command-input")
    await box.fill(trigger)
    await box.press("Enter")
    await page.wait_for_url(TASK_URL)
    card = page.get_by_test_id("zone-canvas").locator("[data-component=stock_chart]")
    await expect(card).to_contain_text("stock_chart")
    await expect(card).to_contain_text("zone: sidebar_panel")
    await expect(card.locator("pre.json")).to_contain_text('"symbol": "ACME"')
    await expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "finished")
    await snap(page, "08-unknown-component")
    assert page.problems == []  # type: ignore[attr-defined]
