"""A2A v1.0 through the official `a2a-sdk` clients, over gRPC and over JSON-RPC: a client that
knows nothing of Nexus discovers an agent from its card, runs a command, answers the agent's
question and gets the artifact; blocking sends, cancel, get and list, another user's task, and
the exact resume of the event-seq extension. The test plays the worker through the runtime."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from a2a.types import a2a_pb2 as a2a
from a2a.utils.errors import (
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from tests.gateway.a2a_support import BINDINGS, a2a_client, agent_of, seq_of, states, task_of, texts
from tests.gateway.conftest import Account, Platform, Scan, Worker
from tests.support import eventually

REPORT = b"# Scan of https://acme.com\n\nPricing looks fine.\n"


def base_url(platform: Platform) -> str:
    assert platform.gateway.http is not None
    return f"http://{platform.gateway.http.address}"


def agent_url(platform: Platform, agent_id: str) -> str:
    return f"{base_url(platform)}/a2a/agents/{agent_id}"


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_client_discovers_an_agent_runs_its_command_answers_and_gets_the_artifact(
    platform: Platform, alice: Account, scan: Scan, worker: Worker, binding: str
) -> None:
    async with a2a_client(agent_url(platform, scan.agent_id), alice.tokens.access_token, binding) as agent:
        # The card: built from the agent's capabilities snapshot, its command an example.
        assert agent.card.supported_interfaces[0].tenant == scan.agent_id
        skill = next(s for s in agent.card.skills if s.id == scan.skill.id)
        assert any(example.startswith(scan.trigger + " <url>") for example in skill.examples), skill
        assert "bearer" in agent.card.security_schemes

        async def work_until_asked() -> None:
            claimed = await worker.next_claim(scan.agent_id)
            await worker.say(claimed, "Scanning https://acme.com")
            await worker.ask(claimed, "What should the scan focus on?")

        asking = asyncio.create_task(work_until_asked())
        first_turn = await agent.send(f"{scan.trigger} https://acme.com")
        await asking
        task = task_of(first_turn)
        assert task.context_id, "a message without a context gets one (a session)"
        assert states(first_turn)[-1] == a2a.TASK_STATE_INPUT_REQUIRED, first_turn
        assert "Scanning https://acme.com" in texts(first_turn)
        question = first_turn[-1].status_update.status.message
        assert question.parts[0].text == "What should the scan focus on?"

        async def work_to_the_end() -> None:
            claimed = await worker.next_claim(scan.agent_id)
            await worker.write_artifact(claimed, "Scan of acme.com", REPORT, content_type="text/markdown")
            await worker.finish(claimed, summary="done")

        finishing = asyncio.create_task(work_to_the_end())
        second_turn = await agent.send("pricing", task_id=task.id, context_id=task.context_id)
        await finishing
        assert task_of(second_turn).id == task.id
        assert states(second_turn)[-1] == a2a.TASK_STATE_COMPLETED, second_turn
        updates = [item.artifact_update for item in second_turn if item.HasField("artifact_update")]
        assert len(updates) == 1, second_turn
        assert updates[0].artifact.parts[0].text == REPORT.decode()
        # Every artifact comes before the status that ends the task.
        assert second_turn[-1].HasField("status_update")

        done = await agent.client.get_task(a2a.GetTaskRequest(id=task.id))
        assert done.status.state == a2a.TASK_STATE_COMPLETED
        assert [a.parts[0].text for a in done.artifacts] == [REPORT.decode()]
        assert [m.parts[0].text for m in done.history if m.role == a2a.ROLE_USER][-1] == "pricing"


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_blocking_send_returns_the_task_once_its_turn_has_ended(
    platform: Platform, alice: Account, scan: Scan, worker: Worker, binding: str
) -> None:
    url = agent_url(platform, scan.agent_id)
    async with a2a_client(url, alice.tokens.access_token, binding, streaming=False) as agent:

        async def work() -> None:
            claimed = await worker.next_claim(scan.agent_id)
            await worker.say(claimed, "on it")
            await worker.finish(claimed, summary="done")

        working = asyncio.create_task(work())
        [answer] = await agent.send(f"{scan.trigger} https://acme.com")
        await working
        assert answer.task.status.state == a2a.TASK_STATE_COMPLETED
        # A command's line is the task's title and inputs; the history is what was said after.
        assert [m.parts[0].text for m in answer.task.history] == ["on it"]


@pytest.mark.parametrize("binding", BINDINGS)
async def test_cancel_ends_a_task_once_and_a_finished_task_is_not_cancelable(
    platform: Platform, alice: Account, scan: Scan, worker: Worker, binding: str
) -> None:
    url = agent_url(platform, scan.agent_id)
    async with a2a_client(url, alice.tokens.access_token, binding, streaming=False, polling=True) as agent:
        [sent] = await agent.send(f"{scan.trigger} https://acme.com")
        assert sent.task.status.state == a2a.TASK_STATE_SUBMITTED  # return_immediately
        cancelled = await agent.client.cancel_task(a2a.CancelTaskRequest(id=sent.task.id))
        assert cancelled.status.state == a2a.TASK_STATE_CANCELED
        again = await agent.client.cancel_task(a2a.CancelTaskRequest(id=sent.task.id))
        assert again.status.state == a2a.TASK_STATE_CANCELED

        [other] = await agent.send(f"{scan.trigger} https://acme.com")
        claimed = await worker.next_claim(scan.agent_id)
        await worker.finish(claimed, summary="done")
        with pytest.raises(TaskNotCancelableError):
            await agent.client.cancel_task(a2a.CancelTaskRequest(id=other.task.id))
        with pytest.raises(UnsupportedOperationError):
            await agent.send("more", task_id=other.task.id)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_get_and_list_show_the_callers_tasks_by_context_and_state(
    platform: Platform, alice: Account, bob: Account, scan: Scan, binding: str
) -> None:
    url = agent_url(platform, scan.agent_id)
    async with a2a_client(url, alice.tokens.access_token, binding, streaming=False, polling=True) as agent:
        [first] = await agent.send(f"{scan.trigger} https://acme.com")
        [second] = await agent.send("and a chat beside it", context_id=first.task.context_id)
        got = await agent.client.get_task(a2a.GetTaskRequest(id=second.task.id, history_length=1))
        assert got.context_id == first.task.context_id
        assert [m.parts[0].text for m in got.history] == ["and a chat beside it"]
        assert [m.role for m in got.history] == [a2a.ROLE_USER]
        none = await agent.client.get_task(a2a.GetTaskRequest(id=second.task.id, history_length=0))
        assert not none.history

        listed = await agent.client.list_tasks(a2a.ListTasksRequest(context_id=first.task.context_id))
        assert sorted(t.id for t in listed.tasks) == sorted([first.task.id, second.task.id])
        assert listed.next_page_token == "" and listed.total_size == 2 and listed.page_size == 2
        submitted = await agent.client.list_tasks(a2a.ListTasksRequest(status=a2a.TASK_STATE_SUBMITTED))
        assert {first.task.id, second.task.id} <= {t.id for t in submitted.tasks}
        working = await agent.client.list_tasks(a2a.ListTasksRequest(status=a2a.TASK_STATE_WORKING))
        assert not {first.task.id, second.task.id} & {t.id for t in working.tasks}

        seen: list[str] = []
        request = a2a.ListTasksRequest(page_size=1)
        while True:
            page = await agent.client.list_tasks(request)
            assert len(page.tasks) <= 1
            seen += [t.id for t in page.tasks]
            if not page.next_page_token:
                break
            request = a2a.ListTasksRequest(page_size=1, page_token=page.next_page_token)
        assert len(seen) == len(set(seen)) and {first.task.id, second.task.id} <= set(seen)
        assert page.total_size == len(seen)

    async with a2a_client(url, bob.tokens.access_token, binding, streaming=False, polling=True) as other:
        theirs = await other.client.list_tasks(a2a.ListTasksRequest())
        assert not {first.task.id, second.task.id} & {t.id for t in theirs.tasks}


@pytest.mark.parametrize("binding", BINDINGS)
async def test_another_users_task_is_not_found_exactly_as_an_unknown_id(
    platform: Platform, alice: Account, bob: Account, scan: Scan, binding: str
) -> None:
    url = agent_url(platform, scan.agent_id)
    async with a2a_client(url, alice.tokens.access_token, binding, streaming=False, polling=True) as agent:
        [sent] = await agent.send(f"{scan.trigger} https://acme.com")
    theirs, unknown = sent.task.id, str(uuid.uuid4())
    async with a2a_client(url, bob.tokens.access_token, binding, polling=True) as other:
        messages = []
        for task_id in (theirs, unknown):
            with pytest.raises(TaskNotFoundError) as got:
                await other.client.get_task(a2a.GetTaskRequest(id=task_id))
            messages.append(got.value.message)
            with pytest.raises(TaskNotFoundError):
                await other.client.cancel_task(a2a.CancelTaskRequest(id=task_id))
            with pytest.raises(TaskNotFoundError):
                await other.subscribe(task_id)
            with pytest.raises(TaskNotFoundError):
                await other.send("an answer", task_id=task_id)
        assert messages[0] == messages[1]
    async with a2a_client(url, alice.tokens.access_token, binding) as agent:
        still = await agent.client.get_task(a2a.GetTaskRequest(id=theirs))
        assert still.status.state == a2a.TASK_STATE_SUBMITTED, "bob's cancel changed nothing"


@pytest.mark.parametrize("binding", BINDINGS)
async def test_subscribe_resumes_after_any_seq_with_each_event_once(
    platform: Platform, alice: Account, scan: Scan, worker: Worker, binding: str
) -> None:
    url = agent_url(platform, scan.agent_id)
    async with a2a_client(url, alice.tokens.access_token, binding, streaming=False, polling=True) as sender:
        [sent] = await sender.send(f"{scan.trigger} https://acme.com")
    task_id = sent.task.id
    async with a2a_client(url, alice.tokens.access_token, binding) as agent:
        claimed = await worker.next_claim(scan.agent_id)
        await worker.say(claimed, "one", "two")
        await worker.write_artifact(claimed, "report.md", REPORT, content_type="text/markdown")
        await worker.say(claimed, "three")
        await worker.finish(claimed, summary="done")

        everything = await agent.subscribe(task_id, after_seq=0)
        events = [item for item in everything[1:] if not item.HasField("artifact_update")]
        seqs = [seq_of(item) for item in events]
        assert seqs == sorted(set(seqs)), "in seq order, each once"
        assert texts(everything) == ["one", "two", "three"]
        assert states(everything)[-1] == a2a.TASK_STATE_COMPLETED
        last = seq_of(everything[0])
        assert seqs[-1] == last
        for after in range(0, last + 1):
            resumed = await agent.subscribe(task_id, after_seq=after)
            assert resumed[0].HasField("task") and seq_of(resumed[0]) == last
            tail = [item for item in resumed[1:] if not item.HasField("artifact_update")]
            assert tail == [item for item in events if seq_of(item) > after], after
        with pytest.raises(UnsupportedOperationError):
            await agent.subscribe(task_id)  # an ended task, without the extension


@pytest.mark.parametrize("binding", BINDINGS)
async def test_plain_text_chats_with_the_cards_agent_and_the_platform_runs_commands(
    platform: Platform, alice: Account, scan: Scan, worker: Worker, binding: str
) -> None:
    token = alice.tokens.access_token
    url = agent_url(platform, scan.agent_id)
    async with a2a_client(url, token, binding, streaming=False, polling=True) as agent:
        [chat] = await agent.send("hello there")
        assert agent_of(chat.task) == scan.agent_id
        claimed = await worker.next_claim(scan.agent_id)
        assert claimed.task.task_id == chat.task.id
    async with a2a_client(base_url(platform), token, binding, streaming=False, polling=True) as nexus:
        assert any(s.id == scan.skill.id for s in nexus.card.skills), "the extended card lists the command"
        [ran] = await nexus.send(f"{scan.trigger} https://acme.com")
        assert agent_of(ran.task) == scan.agent_id
        with pytest.raises(InvalidParamsError) as refused:
            await nexus.send("hello there")
        assert "tenant" in str(refused.value.message) or refused.value.data


@pytest.mark.parametrize("binding", BINDINGS)
async def test_push_notifications_are_not_supported(platform: Platform, alice: Account, binding: str) -> None:
    async with a2a_client(base_url(platform), alice.tokens.access_token, binding) as nexus:
        assert not nexus.card.capabilities.push_notifications
        config = a2a.TaskPushNotificationConfig(task_id=str(uuid.uuid4()), url="http://127.0.0.1:1/hook")
        with pytest.raises(PushNotificationNotSupportedError):
            await nexus.client.create_task_push_notification_config(config)
        with pytest.raises(PushNotificationNotSupportedError):
            await nexus.client.list_task_push_notification_configs(
                a2a.ListTaskPushNotificationConfigsRequest(task_id=str(uuid.uuid4()))
            )


async def test_the_workers_events_reach_a_subscriber_live(
    platform: Platform, alice: Account, scan: Scan, worker: Worker
) -> None:
    url, token = agent_url(platform, scan.agent_id), alice.tokens.access_token
    async with a2a_client(url, token, "GRPC", streaming=False, polling=True) as sender:
        [sent] = await sender.send(f"{scan.trigger} https://acme.com")
    async with a2a_client(url, token, "GRPC") as agent:
        seen: list[a2a.StreamResponse] = []

        async def watch() -> None:
            async for item in agent.client.subscribe(a2a.SubscribeToTaskRequest(id=sent.task.id)):
                seen.append(item)

        watching = asyncio.create_task(watch())
        await eventually(lambda: seen, "the subscription's first Task")
        claimed = await worker.next_claim(scan.agent_id)
        await worker.say(claimed, "live")
        await eventually(lambda: "live" in texts(seen), "the worker's message on the stream")
        await worker.finish(claimed, summary="done")
        await asyncio.wait_for(watching, 30)
        assert states(seen)[-1] == a2a.TASK_STATE_COMPLETED
