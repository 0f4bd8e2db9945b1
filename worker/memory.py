"""What a task leaves behind when no `write_memory` step says it: a summary and takeaways drawn
from the task's events. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_SUMMARY = 2000
MAX_TAKEAWAYS = 20
MAX_TAKEAWAY = 300
QUESTION_KIND = "question"


@dataclass(frozen=True)
class Said:
    """One event, reduced to what a memory needs."""

    role: str  # user | assistant | system | tool
    text: str
    kind: str = ""  # the worker's metadata.kind: "question" for an ask_user question


def clip(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def derive(title: str, events: Sequence[Said], artifacts: Sequence[str] = ()) -> tuple[str, list[str]]:
    """(summary, takeaways): the summary is the title and what the agent said first and last;
    the takeaways are each question with its answer, each artifact written, and the user's other
    messages (a chat's request)."""
    said = [e.text for e in events if e.role == "assistant" and e.kind != QUESTION_KIND and e.text.strip()]
    parts = [title.strip()] if title.strip() else []
    if said:
        parts.append(said[0] if len(said) == 1 else f"{said[0]} … {said[-1]}")
    summary = clip(". ".join(parts), MAX_SUMMARY)

    takeaways: list[str] = []
    pending_question: str | None = None
    for event in events:
        if event.role == "assistant" and event.kind == QUESTION_KIND:
            pending_question = event.text
        elif event.role == "user" and event.text.strip():
            if pending_question is not None:
                takeaways.append(f"{pending_question} → {event.text}")
                pending_question = None
            else:
                takeaways.append(f"Asked: {event.text}")
    takeaways += [f"Wrote {name}" for name in artifacts]
    return summary, [clip(t, MAX_TAKEAWAY) for t in takeaways[:MAX_TAKEAWAYS]]
