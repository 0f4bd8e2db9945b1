"""`nexus run`'s rendering, as pure functions of events."""

from __future__ import annotations

from typing import Any

from nexus.client.render import (
    PlanStep,
    View,
    command_list,
    command_usage,
    progress_line,
    render,
    summarize_render,
)
from nexus.ontology.v1 import ontology_pb2 as onto
from nexus.runtime.v1 import task_pb2


def event(
    type_: task_pb2.EventType.ValueType,
    role: task_pb2.EventRole.ValueType = task_pb2.EVENT_ROLE_ASSISTANT,
    text: str = "",
    **parts: dict[str, Any],
) -> task_pb2.TaskEvent:
    message = task_pb2.TaskEvent(type=type_, role=role, content_text=text)
    for name, value in parts.items():
        getattr(message, name).update(value)
    return message


def status(value: str, reason: str, text: str = "", **extra: Any) -> task_pb2.TaskEvent:
    return event(
        task_pb2.EVENT_TYPE_STATUS,
        task_pb2.EVENT_ROLE_SYSTEM,
        text or value,
        metadata={"status": value, "reason": reason, **extra},
    )


def plan_set(*steps: tuple[str, str, str]) -> task_pb2.TaskEvent:
    outline = [{"id": i, "title": t, "status": s, "action": "message", "depends_on": []} for i, t, s in steps]
    return event(task_pb2.EVENT_TYPE_PLAN, task_pb2.EVENT_ROLE_SYSTEM, metadata={"change": "set", "steps": outline})


def plan_step(step_id: str, value: str) -> task_pb2.TaskEvent:
    return event(
        task_pb2.EVENT_TYPE_PLAN,
        task_pb2.EVENT_ROLE_SYSTEM,
        metadata={"change": "step", "step_id": step_id, "status": value},
    )


def test_the_progress_line_counts_settled_steps_and_names_the_current_one() -> None:
    steps = [
        PlanStep("announce", "Announce", "done"),
        PlanStep("preview", "Open a preview", "skipped"),
        PlanStep("ask", "Ask what to focus on", "running"),
        PlanStep("report", "Write the report", "pending"),
    ]
    assert progress_line(steps) == "plan [✓-▶·] 2/4 · Ask what to focus on"
    steps[2].status = "done"
    assert progress_line(steps) == "plan [✓-✓·] 3/4 · Write the report"
    steps[3].status = "failed"
    assert progress_line(steps) == "plan [✓-✓✗] 3/4 · failed: Write the report"
    assert progress_line([PlanStep("a", "", "done")]) == "plan [✓] 1/1 · done"
    assert progress_line([]) == ""


def test_plan_events_update_one_progress_line_printed_only_when_it_changes() -> None:
    view = View()
    assert render(plan_set(("a", "First", "pending"), ("b", "", "pending")), view) == ["plan [··] 0/2 · First"]
    assert render(plan_step("a", "running"), view) == ["plan [▶·] 0/2 · First"]
    assert render(plan_step("a", "running"), view) == []  # unchanged: nothing printed
    assert render(plan_step("a", "done"), view) == ["plan [✓·] 1/2 · b"]
    assert render(plan_step("unknown", "done"), view) == []


def test_messages_are_printed_with_who_said_them() -> None:
    view = View()
    assert render(event(task_pb2.EVENT_TYPE_MESSAGE, text="Scanning acme.com"), view) == ["agent: Scanning acme.com"]
    assert render(event(task_pb2.EVENT_TYPE_MESSAGE, task_pb2.EVENT_ROLE_USER, "pricing"), view) == ["you: pricing"]
    assert render(event(task_pb2.EVENT_TYPE_MESSAGE, text="line one\nline two"), view) == [
        "agent: line one",
        "  line two",
    ]
    image = event(task_pb2.EVENT_TYPE_MESSAGE, metadata={"message_type": "image", "name": "shot.png"})
    assert render(image, view) == ["agent: [image] shot.png"]


def test_render_instructions_are_summarised() -> None:
    payload = {"target_zone": "canvas", "component": "web_preview", "props": {"url": "https://acme.com"}}
    assert summarize_render(payload) == "⧉ web_preview → canvas (url=https://acme.com)"
    many = {"target_zone": "side", "component": "table", "props": {k: "x" * 100 for k in "abcd"}}
    summary = summarize_render(many)
    assert summary.startswith("⧉ table → side (a=xxx") and summary.endswith("+1 more)") and len(summary) < 250
    assert render(event(task_pb2.EVENT_TYPE_NEXUS_RENDER, render_payload=payload), View()) == [
        "⧉ web_preview → canvas (url=https://acme.com)"
    ]


def test_status_events_track_the_state_and_only_notable_ones_are_printed() -> None:
    view = View()
    assert render(status("queued", "created"), view) == [] and view.status == "queued"
    assert render(status("running", "claimed"), view) == []
    assert render(status("waiting_input", "input_requested", "waiting for the owner's input"), view) == [
        "· waiting for the owner's input"
    ]
    assert view.waiting_for_input and not view.ended
    assert render(status("cancelled", "cancelled", "the task was cancelled", note="stop"), view) == [
        "· the task was cancelled (stop)"
    ]
    assert view.ended


def test_tool_calls_and_results_get_one_line_each() -> None:
    view = View()
    use = event(
        task_pb2.EVENT_TYPE_TOOL_USE, task_pb2.EVENT_ROLE_TOOL, "GET https://acme.com", metadata={"tool": "http"}
    )
    assert render(use, view) == ["tool ▸ http GET https://acme.com"]
    result = event(task_pb2.EVENT_TYPE_TOOL_RESULT, task_pb2.EVENT_ROLE_TOOL, "200 OK " + "x" * 200)
    (line,) = render(result, view)
    assert line.startswith("tool ◂ 200 OK") and len(line) < 80


def test_commands_are_listed_one_a_line_with_their_triggers_aligned() -> None:
    commands = [
        onto.Command(trigger="/ask", description="Ask a question: /ask <question>"),
        onto.Command(trigger="/summarize", description="Summarize a text"),
        onto.Command(trigger="/x"),
    ]
    assert command_list(commands) == [
        "  /ask        Ask a question: /ask <question>",
        "  /summarize  Summarize a text",
        "  /x",
    ]


def test_a_commands_usage_shows_required_inputs_positional_and_the_others_with_their_defaults() -> None:
    depth = onto.InputField(
        name="depth", type=onto.INPUT_TYPE_ENUM, allowed_values=["quick", "deep"], description="How thorough."
    )
    depth.default_value.string_value = "quick"
    pages = onto.InputField(name="pages", type=onto.INPUT_TYPE_INTEGER)
    pages.default_value.number_value = 3
    inputs = [
        onto.InputField(name="url", type=onto.INPUT_TYPE_URL, required=True, description="The page to scan."),
        depth,
        pages,
        onto.InputField(name="note", type=onto.INPUT_TYPE_STRING),
    ]
    command = onto.Command(trigger="/scan", description="Scan a website")
    assert command_usage(command, inputs) == [
        "usage: /scan <url> [depth=quick|deep] [pages=integer] [note=string]",
        "  Scan a website",
        "  url    url, required: The page to scan.",
        "  depth  quick|deep, default quick: How thorough.",
        "  pages  integer, default 3",
        "  note   string",
    ]
    # A private skill's inputs are not in the agent's capabilities: the description has to do.
    assert command_usage(command, None) == ["usage: /scan …", "  Scan a website"]
