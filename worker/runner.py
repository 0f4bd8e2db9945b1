"""Runs one claimed task to its next stop: finished, failed, waiting for input, or let go.

The plan is the program. A task arrives with the plan RunCommand created it with; when it has
none (cron tasks, tasks created through the runtime API) the worker seeds it from the task's
origin skill. A task with neither (a `chat_manual` task) gets an acknowledgement (see `chat`). Where a
resumed task stopped is read from the plan's step statuses, never from the worker's memory, so
any worker resumes any task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from nexus.contract.plans import first_plan
from nexus.contract.steps import PlanStep, StepStatus
from nexus.kit.validation import JSON, struct_to_dict
from nexus.runtime.v1 import task_pb2
from worker import actions, memory, plan
from worker.errors import LeaseLost, StepFailure, Transient
from worker.leased import LeasedTask

log = logging.getLogger("nexus.worker")

CHAT_REPLY_KEY = "worker:chat:reply"
MAX_ECHO = 200


class Outcome(StrEnum):
    FINISHED = "finished"
    FAILED = "failed"
    WAITING = "waiting_input"
    # Let go: shutdown between steps, or the runtime was unreachable. The lease expires and the
    # task is queued again.
    RELEASED = "released"
    # The lease was gone (expired, taken over, the task cancelled): nothing more was written.
    LOST = "lost"


@dataclass
class Runner:
    leased: LeasedTask
    # Seconds to wait after each step's effect, before it is marked done (demos and tests).
    step_delay_s: float = 0.0
    # True once the worker shuts down: no new step starts.
    stopping: Callable[[], bool] = lambda: False

    async def run(self) -> Outcome:
        task = self.leased.task
        try:
            try:
                return await self._run()
            except StepFailure as failure:
                # Failures outside a step (the task's skill is gone, …).
                await self.leased.fail(failure.reason, failure.message, failure.details)
                return Outcome.FAILED
        except LeaseLost as lost:
            log.info("lease lost", extra={"fields": {"task_id": task.task_id, "why": str(lost)}})
            return Outcome.LOST
        except Transient as err:
            log.warning("letting the task go", extra={"fields": {"task_id": task.task_id, "why": str(err)}})
            return Outcome.RELEASED

    async def _run(self) -> Outcome:
        run = actions.Run(self.leased, struct_to_dict(self.leased.task.inputs))
        steps = await self._plan()
        if steps is None:
            return await self.chat(run)
        run.plan = steps
        while True:
            failed = plan.failed_step(steps)
            if failed is not None:
                return await self._fail_again(failed)
            step = plan.next_step(steps)
            if step is None:
                if plan.finished(steps):
                    return await self._finish(run)
                raise StepFailure("PLAN_STUCK", "no step can run: every pending step waits on a step that cannot end")
            if self.stopping():
                return Outcome.RELEASED
            try:
                outcome = await self._step(run, step)
            except StepFailure as failure:
                await self._fail_step(step, failure)
                return Outcome.FAILED
            if outcome is None:
                return Outcome.WAITING
            steps = run.plan = outcome

    async def _plan(self) -> list[PlanStep] | None:
        """The task's plan, seeded from its origin skill when it has none; None for a task with
        neither (chat)."""
        current = await self.leased.get_plan()
        if current.steps:
            return plan.from_proto(current)
        skill_id = self.leased.task.origin_skill_id
        if not skill_id:
            return None
        skill = await self.leased.get_skill(skill_id)
        if not skill.definition.steps:
            return []
        try:
            seeded = await self.leased.set_plan(first_plan(skill.definition.steps), current.etag)
        except StepFailure as failure:
            if failure.details.get("code") != "ABORTED":
                raise
            seeded = await self.leased.get_plan()  # someone else seeded it meanwhile
        await self._seed_variables()
        return plan.from_proto(seeded)

    async def _seed_variables(self) -> None:
        """As RunCommand does: one variable per input, only while the context has none."""
        inputs = struct_to_dict(self.leased.task.inputs)
        if not inputs:
            return
        context = await self.leased.get_context()
        if context.variables.fields:
            return
        try:
            await self.leased.patch_context(inputs, etag=context.etag)
        except StepFailure as failure:
            if failure.details.get("code") != "ABORTED":
                raise

    async def _step(self, run: actions.Run, step: PlanStep) -> list[PlanStep] | None:
        """Runs one step; the plan after it, or None when the task now waits for input."""
        if step.status != StepStatus.RUNNING:
            run.plan = await self.leased.update_step(step.id, StepStatus.RUNNING)
        log.info("step", extra={"fields": {"task_id": self.leased.task_id, "step": step.id, "action": step.action}})
        output = await actions.execute(run, step)
        if output is actions.WAITING:
            return None
        assert isinstance(output, dict)
        if self.step_delay_s:
            await asyncio.sleep(self.step_delay_s)
        return await self.leased.update_step(step.id, StepStatus.DONE, output)

    async def _fail_step(self, step: PlanStep, failure: StepFailure) -> None:
        error: dict[str, JSON] = {"reason": failure.reason, "message": failure.message}
        with contextlib.suppress(StepFailure):  # the task fails with the error all the same
            await self.leased.update_step(step.id, StepStatus.FAILED, {"error": error})
        message = f"step {step.id!r} ({step.action}): {failure.message}"
        await self.leased.fail(failure.reason, message, {**failure.details, "step_id": step.id, "action": step.action})

    async def _fail_again(self, step: PlanStep) -> Outcome:
        """A failed step whose task did not fail yet (the worker stopped in between)."""
        error = step.output.get("error")
        reason, message = "STEP_FAILED", f"step {step.id!r} ({step.action}) failed"
        if isinstance(error, dict):
            reason = str(error.get("reason") or reason)
            message = f"step {step.id!r} ({step.action}): {error.get('message', 'failed')}"
        await self.leased.fail(reason, message, {"step_id": step.id, "action": step.action})
        return Outcome.FAILED

    async def _finish(self, run: actions.Run) -> Outcome:
        """The task memory (derived from the events unless a write_memory step wrote it), then
        the result."""
        if any(s.action == "write_memory" and s.status == StepStatus.DONE for s in run.plan):
            summary = (await self.leased.get_memory()).summary_text
        else:
            summary, takeaways = await run.derived_memory(self.leased.task.title)
            await self.leased.put_memory(summary, takeaways)
        artifact_ids: list[JSON] = [
            s.output["artifact_id"] for s in run.plan if isinstance(s.output.get("artifact_id"), str)
        ]
        done = sum(1 for s in run.plan if s.status == StepStatus.DONE)
        await self.leased.finish({"summary": summary, "steps": done, "artifact_ids": artifact_ids})
        return Outcome.FINISHED

    async def chat(self, run: actions.Run) -> Outcome:
        """A task without a plan or skill (a chat message). The reference worker runs no language
        model: the agent acknowledges the request, names the commands that run its skills, writes
        the memory and finishes. The request is the first user event, else the input `text`."""
        task = self.leased.task
        events = await self.leased.events()
        first = next((e for e in events if e.role == task_pb2.EVENT_ROLE_USER and e.content_text.strip()), None)
        text = first.content_text if first is not None else str(run.inputs.get("text") or "")
        agent = await self.leased.get_agent(task.agent_id)
        name = agent.name if agent is not None and agent.name else task.agent_id
        triggers = [c.trigger for c in agent.capabilities_snapshot.commands] if agent is not None else []
        reply = chat_reply(name, text, triggers)
        said = task_pb2.TaskEvent(
            role=task_pb2.EVENT_ROLE_ASSISTANT,
            type=task_pb2.EVENT_TYPE_MESSAGE,
            content_text=reply,
            client_key=CHAT_REPLY_KEY,
        )
        said.metadata.update({"message_type": "text"})
        await self.leased.append(said)
        summary = memory.clip(f"Chat with {name}: {text}" if text else f"Chat with {name}", memory.MAX_SUMMARY)
        takeaways = [memory.clip(f"Asked: {text}", memory.MAX_TAKEAWAY)] if text else []
        await self.leased.put_memory(summary, takeaways)
        await self.leased.finish({"reply": reply})
        return Outcome.FINISHED


def chat_reply(agent_name: str, text: str, triggers: list[str]) -> str:
    heard = f"You wrote: “{memory.clip(text, MAX_ECHO)}”. " if text.strip() else ""
    skills = (
        f" To have me do real work, run one of my commands: {', '.join(triggers)}."
        if triggers
        else " Run a slash command to have an agent do real work."
    )
    return f"{agent_name} here. {heard}I have noted your request.{skills}"
