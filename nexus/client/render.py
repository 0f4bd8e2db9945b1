"""How `nexus run` shows a task's events: pure functions from events to lines of text.

- plan events keep a progress line up to date: `plan [✓✓▶··] 2/5 · Ask what to focus on`;
- messages are printed as they arrive (`agent: …`, `you: …`);
- render instructions are summarised (`⧉ web_preview → canvas (url=https://…)`);
- tool calls and results get one line each; status changes one short line;
- commands are listed one a line, and a command's usage shows its inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nexus.kit.validation import struct_to_dict, value_to_json
from nexus.ontology.v1 import ontology_pb2
from nexus.runtime.v1 import task_pb2

_STEP_MARKS = {"done": "✓", "running": "▶", "failed": "✗", "skipped": "-", "pending": "·"}
_ROLE_NAMES = {
    task_pb2.EVENT_ROLE_USER: "you",
    task_pb2.EVENT_ROLE_ASSISTANT: "agent",
    task_pb2.EVENT_ROLE_SYSTEM: "system",
    task_pb2.EVENT_ROLE_TOOL: "tool",
}
MAX_VALUE_CHARS = 60
MAX_PROPS = 3
TERMINAL = ("finished", "failed", "cancelled")


@dataclass
class PlanStep:
    id: str
    title: str
    status: str


@dataclass
class View:
    """What the renderer remembers between events."""

    steps: list[PlanStep] = field(default_factory=list)
    last_progress: str = ""
    # The newest status ("queued", "waiting_input", "finished", …).
    status: str = ""
    # The seq of the newest event seen: where a stream resumes.
    last_seq: int = 0

    @property
    def waiting_for_input(self) -> bool:
        return self.status == "waiting_input"

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


def clip(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _value(value: Any) -> str:
    return clip(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def progress_line(steps: list[PlanStep]) -> str:
    """`plan [✓✓▶··] 2/5 · <the current step>`; the current step is the running one, else the
    first pending one."""
    if not steps:
        return ""
    marks = "".join(_STEP_MARKS.get(s.status, "?") for s in steps)
    done = sum(1 for s in steps if s.status in ("done", "skipped"))
    current = next((s for s in steps if s.status == "running"), None) or next(
        (s for s in steps if s.status == "pending"), None
    )
    failed = next((s for s in steps if s.status == "failed"), None)
    line = f"plan [{marks}] {done}/{len(steps)}"
    if failed is not None:
        return f"{line} · failed: {failed.title or failed.id}"
    if current is not None:
        return f"{line} · {current.title or current.id}"
    return f"{line} · done"


def summarize_render(payload: dict[str, Any]) -> str:
    """`⧉ web_preview → canvas (url=https://acme.com)`: the component, the zone, a few props."""
    component = str(payload.get("component", "?"))
    zone = str(payload.get("target_zone", "?"))
    props = payload.get("props")
    shown = ""
    if isinstance(props, dict) and props:
        items = [f"{k}={_value(v)}" for k, v in list(props.items())[:MAX_PROPS]]
        if len(props) > MAX_PROPS:
            items.append(f"+{len(props) - MAX_PROPS} more")
        shown = f" ({', '.join(items)})"
    return f"⧉ {component} → {zone}{shown}"


def _plan(event: task_pb2.TaskEvent, view: View) -> list[str]:
    meta = struct_to_dict(event.metadata)
    if meta.get("change") == "set" and isinstance(meta.get("steps"), list):
        view.steps = [
            PlanStep(str(s.get("id", "")), str(s.get("title", "")), str(s.get("status", "pending")))
            for s in meta["steps"]  # type: ignore[union-attr]
            if isinstance(s, dict)
        ]
    elif meta.get("change") == "step":
        for step in view.steps:
            if step.id == meta.get("step_id"):
                step.status = str(meta.get("status", step.status))
    line = progress_line(view.steps)
    if not line or line == view.last_progress:
        return []
    view.last_progress = line
    return [line]


def _status(event: task_pb2.TaskEvent, view: View) -> list[str]:
    meta = struct_to_dict(event.metadata)
    view.status = str(meta.get("status", ""))
    reason = meta.get("reason")
    if reason in ("created", "claimed", "input_provided"):
        return []  # routine; the messages tell the story
    note = meta.get("note")
    text = event.content_text or view.status
    return [f"· {text}" + (f" ({clip(str(note))})" if note else "")]


def render(event: task_pb2.TaskEvent, view: View) -> list[str]:
    """The lines to print for one event (possibly none), updating `view`."""
    view.last_seq = max(view.last_seq, event.seq)
    if event.type == task_pb2.EVENT_TYPE_PLAN:
        return _plan(event, view)
    if event.type == task_pb2.EVENT_TYPE_STATUS:
        return _status(event, view)
    who = _ROLE_NAMES.get(event.role, "?")
    if event.type == task_pb2.EVENT_TYPE_NEXUS_RENDER:
        return [summarize_render(struct_to_dict(event.render_payload))]
    meta = struct_to_dict(event.metadata)
    if event.type == task_pb2.EVENT_TYPE_TOOL_USE:
        name = meta.get("tool") or meta.get("name") or "tool"
        return [f"tool ▸ {name} {clip(event.content_text)}".rstrip()]
    if event.type == task_pb2.EVENT_TYPE_TOOL_RESULT:
        return [f"tool ◂ {clip(event.content_text)}".rstrip()]
    kind = meta.get("message_type")
    if kind in ("image", "file"):
        where = meta.get("name") or meta.get("url") or event.content_text
        return [f"{who}: [{kind}] {clip(str(where))}"]
    lines = event.content_text.splitlines() or [""]
    return [f"{who}: {lines[0]}", *(f"  {line}" for line in lines[1:])]


def command_list(commands: list[ontology_pb2.Command]) -> list[str]:
    """`  /scan  Scan a website: …`, one command a line, triggers aligned."""
    width = max((len(c.trigger) for c in commands), default=0)
    return [f"  {c.trigger:<{width}}  {c.description}".rstrip() for c in commands]


def _input_type(item: ontology_pb2.InputField) -> str:
    if item.allowed_values:
        return "|".join(item.allowed_values)
    return ontology_pb2.InputType.Name(item.type).removeprefix("INPUT_TYPE_").lower()


def _default(item: ontology_pb2.InputField) -> str | None:
    if not item.HasField("default_value"):
        return None
    return _value(value_to_json(item.default_value))


def command_usage(command: ontology_pb2.Command, inputs: list[ontology_pb2.InputField] | None) -> list[str]:
    """`usage: /scan <url> [depth=quick|standard|deep]`, what the command does, and one line per
    input (its type or choices, required or its default, what it means). Inputs that must be given
    are shown positional, the others as key=value, as the command line takes them."""
    if inputs is None:  # a skill this caller's agent list does not show: the description must do
        return [f"usage: {command.trigger} …", *([f"  {command.description}"] if command.description else [])]
    words = [command.trigger]
    for item in inputs:
        needed = item.required and _default(item) is None
        words.append(f"<{item.name}>" if needed else f"[{item.name}={_input_type(item)}]")
    lines = [f"usage: {' '.join(words)}"]
    if command.description:
        lines.append(f"  {command.description}")
    width = max((len(f.name) for f in inputs), default=0)
    for item in inputs:
        default = _default(item)
        facts = [_input_type(item)]
        if default is not None:
            facts.append(f"default {default}")
        elif item.required:
            facts.append("required")
        meaning = f": {clip(item.description, 100)}" if item.description else ""
        lines.append(f"  {item.name:<{width}}  {', '.join(facts)}{meaning}")
    return lines
