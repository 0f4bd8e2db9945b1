"""The built-in actions of catalog/ACTIONS.md. Each executes one step's effect through the
calls on the leased task and returns the step's output (stored in the plan), or WAITING when it asked the
user a question. Every effect is idempotent, so a step re-run after a crash changes nothing that
already happened:

- events carry the client key `worker:<step>:<effect>`: a re-append returns the first event;
- an artifact is uploaded with request_id uuid5(task, step), so a retried upload returns the
  first; a step found running (an earlier run started it) first looks for the artifact that run
  wrote, by type, name and bytes, since the runtime forgets a request_id after its lifetime;
- a context patch and a memory put set the same values again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from nexus.contract.steps import PlanStep, StepStatus
from nexus.kit.validation import JSON, dict_to_struct, struct_to_dict
from nexus.runtime.v1 import task_pb2
from worker import memory, steps, templates
from worker.errors import StepFailure
from worker.leased import LeasedTask


class _Waiting:
    def __repr__(self) -> str:
        return "WAITING"


WAITING: Final = _Waiting()
Output = dict[str, JSON]
Outcome = Output | _Waiting


@dataclass
class Run:
    """What a step sees: the leased task's calls, its typed inputs, and the plan as it stands."""

    leased: LeasedTask
    inputs: dict[str, JSON]
    plan: list[PlanStep] = field(default_factory=list)

    async def args(self, step: PlanStep) -> tuple[dict[str, JSON], dict[str, JSON]]:
        """The step's args checked and rendered, and the context variables they were rendered
        with (read only when a template reads them, or the step sets one)."""
        steps.check_args(step.id, step.action, step.args)
        variables: dict[str, JSON] = {}
        if templates.reads_variables(step.args) or step.action == "set_variable":
            variables = struct_to_dict((await self.leased.get_context()).variables)
        rendered = templates.render(step.args, self.inputs, variables)
        assert isinstance(rendered, dict)
        return rendered, variables

    def artifact_names(self) -> list[str]:
        return [
            str(s.output["display_name"])
            for s in self.plan
            if s.action == "write_artifact" and isinstance(s.output.get("display_name"), str)
        ]

    async def derived_memory(self, title: str) -> tuple[str, list[str]]:
        events = await self.leased.events()
        said = [said_of(e) for e in events]
        return memory.derive(title, said, self.artifact_names())


ROLE_NAMES = {
    task_pb2.EVENT_ROLE_USER: "user",
    task_pb2.EVENT_ROLE_ASSISTANT: "assistant",
    task_pb2.EVENT_ROLE_SYSTEM: "system",
    task_pb2.EVENT_ROLE_TOOL: "tool",
}


def said_of(event: task_pb2.TaskEvent) -> memory.Said:
    text = event.content_text if event.type == task_pb2.EVENT_TYPE_MESSAGE else ""
    kind = event.metadata.fields["kind"].string_value if "kind" in event.metadata.fields else ""
    return memory.Said(ROLE_NAMES.get(event.role, ""), text, kind)


def assistant_event(
    step: PlanStep, effect: str, kind: task_pb2.EventType.ValueType, text: str = ""
) -> task_pb2.TaskEvent:
    """An event of the step, keyed by (step, effect): appended again, it returns the first."""
    event = task_pb2.TaskEvent(
        role=task_pb2.EVENT_ROLE_ASSISTANT, type=kind, content_text=text, client_key=steps.client_key(step.id, effect)
    )
    event.metadata.update({"step_id": step.id})
    return event


async def message(run: Run, step: PlanStep) -> Outcome:
    args, _ = await run.args(step)
    event = assistant_event(step, "message", task_pb2.EVENT_TYPE_MESSAGE, str(args["text"]))
    event.metadata.update({"message_type": "text"})
    [stored] = await run.leased.append(event)
    return {"seq": stored.seq}


async def render(run: Run, step: PlanStep) -> Outcome:
    args, _ = await run.args(step)
    payload: dict[str, JSON] = {
        "target_zone": args["target_zone"],
        "component": args["component"],
        "props": args.get("props") or {},
    }
    event = assistant_event(step, "render", task_pb2.EVENT_TYPE_NEXUS_RENDER)
    event.render_payload.CopyFrom(dict_to_struct(payload))
    [stored] = await run.leased.append(event)
    return {"seq": stored.seq}


async def set_variable(run: Run, step: PlanStep) -> Outcome:
    args, variables = await run.args(step)
    name = str(args["name"])
    await run.leased.patch_context(steps.set_variable_patch(variables, name, args["value"]))
    return {"variable": name}


async def ask_user(run: Run, step: PlanStep) -> Outcome:
    """First run: the question, and the task waits for input (the lease is released). Resumed
    (the owner answered, the task was claimed again): the answer is the first user event after
    the question, found by the question's client key; it becomes the variable."""
    args, _ = await run.args(step)
    variable = str(args["variable"])
    key = steps.client_key(step.id, "question")
    events = await run.leased.events()
    asked = next((e for e in events if e.client_key == key), None)
    if asked is None:
        question = assistant_event(step, "question", task_pb2.EVENT_TYPE_MESSAGE, str(args["question"]))
        question.metadata.update({"message_type": "text", "kind": memory.QUESTION_KIND, "variable": variable})
        await run.leased.request_input(question)
        return WAITING
    answer = next((e for e in events if e.seq > asked.seq and e.role == task_pb2.EVENT_ROLE_USER), None)
    if answer is None:
        raise StepFailure("NO_ANSWER", f"the question (event {asked.seq}) has no answer after it", {"seq": asked.seq})
    await run.leased.patch_context({variable: answer.content_text})
    return {"variable": variable, "answer_seq": answer.seq}


async def write_artifact(run: Run, step: PlanStep) -> Outcome:
    args, _ = await run.args(step)
    kind, name = str(args["type"]), str(args["display_name"])
    data = str(args["content"]).encode("utf-8")
    artifact = await run.leased.find_artifact(kind, name, data) if step.status == StepStatus.RUNNING else None
    if artifact is None:
        artifact = await run.leased.upload(
            request_id=steps.artifact_request_id(run.leased.task_id, step.id),
            artifact_type=kind,
            display_name=name,
            content_type=steps.content_type(kind),
            data=data,
        )
    # The task is using what it just wrote (a set: adding it again changes nothing).
    await run.leased.patch_context(add_files=[artifact.artifact_id])
    return {"artifact_id": artifact.artifact_id, "display_name": name}


async def write_memory(run: Run, step: PlanStep) -> Outcome:
    """The step's summary and takeaways; either one it leaves out is derived from the events."""
    args, _ = await run.args(step)
    given_summary, given_takeaways = args.get("summary"), args.get("takeaways")
    summary = given_summary if isinstance(given_summary, str) else None
    takeaways = [str(t) for t in given_takeaways] if isinstance(given_takeaways, list) else None
    if summary is None or takeaways is None:
        derived_summary, derived_takeaways = await run.derived_memory(run.leased.task.title)
        summary = derived_summary if summary is None else summary
        takeaways = derived_takeaways if takeaways is None else takeaways
    await run.leased.put_memory(summary, takeaways)
    return {"takeaways": len(takeaways)}


ACTIONS: dict[str, Callable[[Run, PlanStep], Awaitable[Outcome]]] = {
    "message": message,
    "render": render,
    "set_variable": set_variable,
    "ask_user": ask_user,
    "write_artifact": write_artifact,
    "write_memory": write_memory,
}


async def execute(run: Run, step: PlanStep) -> Outcome:
    steps.check_args(step.id, step.action, step.args)
    return await ACTIONS[step.action](run, step)
