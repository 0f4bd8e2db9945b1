"""The task commands of `nexus`, as a client app runs them through the gateway, each signed in as
the local demo account (`demo`):

- `nexus run "/scan https://example.com"` runs a command and shows the task's events live until it
  ends. When the task asks a question, the answer is the next `--answer`, else a line of standard
  input (a prompt when it is a terminal).
- `nexus tail TASK [--after SEQ]` shows a task's events from the start, or those after SEQ, the
  same way, live until the task ends.
- `nexus answer TASK TEXT` answers a waiting task; `nexus cancel TASK` cancels one.

Exit status (each command's --help lists the ones it uses):
  0    the task finished (run, tail); the answer or the cancel was taken (answer, cancel)
  1    the task failed or was cancelled, or the gateway refused the call
  2    bad arguments: a command line that does not resolve (run), a malformed task id
  3    the task waits for an answer this run cannot give (run): `nexus answer` or `nexus cancel` it
  4    the gateway cannot be reached or stopped answering; the task goes on (`nexus tail` resumes)
  130  interrupted (Ctrl-C): `run` cancels its task; `tail` only stops watching
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import grpc

from nexus.client import demo
from nexus.client.client import NexusClient
from nexus.client.render import View, clip, command_list, command_usage, render
from nexus.kit.config import Settings
from nexus.kit.errors import details_of
from nexus.kit.validation import struct_to_dict
from nexus.ontology.v1 import ontology_pb2
from nexus.runtime.v1 import task_pb2

EXIT_FINISHED = 0
EXIT_FAILED = 1
EXIT_BAD_COMMAND = 2
EXIT_WAITING = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130
CANCEL_ON_INTERRUPT_S = 3.0
# How long a stream keeps reconnecting to a gateway that went away before the command gives up.
RECONNECT_TIMEOUT_S = 30.0
# Codes that mean the gateway is not there (down, restarting, unreachable), not that it said no.
UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
MAX_LISTED_COMMANDS = 100
ANSWER_PLACEHOLDER = "your answer"


class Stop(Exception):
    """The command ends here with this exit status; what went wrong has been said."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


async def _on_daemon_thread(read: Callable[[], str]) -> str:
    """A blocking read on a daemon thread, so that Ctrl-C ends the process at once: asyncio.run
    would wait for an executor thread, so a pending read would keep the process alive until Enter."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():
            outcome()

    def work() -> None:
        try:
            line = read()
        except BaseException as err:  # the stream closed under it
            failure = err
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(settle, lambda: done.set_exception(failure))
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, lambda: done.set_result(line))

    threading.Thread(target=work, name="nexus-stdin", daemon=True).start()
    return await done


class _FdLines:
    """Lines of a file descriptor, read with os.read: a thread blocked there holds no lock of the
    interpreter's (one blocked in sys.stdin.readline would abort the interpreter's shutdown)."""

    def __init__(self, fd: int, encoding: str) -> None:
        self._fd = fd
        self._encoding = encoding
        self._pending = b""

    def readline(self) -> str:
        while b"\n" not in self._pending:
            chunk = os.read(self._fd, 4096)
            if not chunk:
                rest, self._pending = self._pending, b""
                return rest.decode(self._encoding, errors="replace")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode(self._encoding, errors="replace") + "\n"


class Answers:
    """Answers to the task's questions, in order: the given ones, then lines of standard input
    (with a prompt when it is a terminal)."""

    def __init__(
        self,
        given: Sequence[str],
        stdin: TextIO,
        *,
        interactive: bool | None = None,
        prompt_to: TextIO | None = None,
    ) -> None:
        self._given = list(given)
        self._interactive = stdin.isatty() if interactive is None else interactive
        self._prompt_to = prompt_to or sys.stdout
        try:
            self._lines: Callable[[], str] = _FdLines(stdin.fileno(), stdin.encoding or "utf-8").readline
        except (OSError, ValueError):  # not a real file (a test's StringIO)
            self._lines = stdin.readline

    async def next(self) -> str | None:
        """The next answer; None when there is none (standard input ended)."""
        if self._given:
            return self._given.pop(0)
        if self._interactive:
            self._prompt_to.write("answer> ")
            self._prompt_to.flush()
        line = await _on_daemon_thread(self._lines)
        return line.rstrip("\r\n") if line else None


@dataclass
class Console:
    out: TextIO
    err: TextIO
    # The command's name, the prefix of what it complains about.
    name: str = "nexus run"

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def complain(self, line: str) -> None:
        print(line, file=self.err, flush=True)

    def fail(self, message: str) -> None:
        self.complain(f"{self.name}: {message}")


@dataclass(frozen=True)
class Invocation:
    """How this command was started, to spell the follow-up commands so they can be pasted as is."""

    program: str = "nexus"
    data_dir: Path | None = None
    gateway: str | None = None

    def command(self, name: str, *args: str) -> str:
        words = [self.program]
        if self.data_dir is not None:
            words += ["--data-dir", str(self.data_dir)]
        words.append(name)
        if self.gateway:
            words += ["--gateway", self.gateway]
        return shlex.join([*words, *args])


def describe_error(err: grpc.aio.AioRpcError) -> list[str]:
    """A failed call as lines for people: the message, each bad field the message does not already
    say, a did-you-mean."""
    info, violations = details_of(err)
    message = err.details() or err.code().name
    lines = [message]
    for v in violations:
        said = f"{v.field}: {v.description}" if v.field else v.description
        if said not in message:
            lines.append(f"  {said}")
    suggestion = info.metadata.get("did_you_mean") if info is not None else None
    if suggestion and suggestion not in message:
        lines.append(f"  did you mean {suggestion}?")
    return lines


def _status_name(status: task_pb2.TaskStatus.ValueType) -> str:
    return task_pb2.TaskStatus.Name(status).removeprefix("TASK_STATUS_").lower()


def outcome(task: task_pb2.Task, console: Console) -> int:
    """The exit status of an ended task; its error or result is shown."""
    if task.status == task_pb2.TASK_STATUS_FINISHED:
        result = struct_to_dict(task.result)
        if result:
            console.say(f"result: {clip(json.dumps(result, ensure_ascii=False), 200)}")
        return EXIT_FINISHED
    if task.status == task_pb2.TASK_STATUS_FAILED:
        console.fail(f"the task failed: {task.error.reason}: {task.error.message}".rstrip(": "))
        return EXIT_FAILED
    console.fail(f"the task ended {_status_name(task.status)}")
    return EXIT_FAILED


def call_failed(err: grpc.aio.AioRpcError, console: Console, address: str) -> int:
    """Says why a call failed; the exit status for it."""
    if err.code() in UNREACHABLE:
        console.fail(f"cannot reach the gateway at {address}; is `nexus up` running?")
        return EXIT_UNREACHABLE
    console.fail("\n".join(describe_error(err)))
    return EXIT_BAD_COMMAND if err.code() == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILED


def _stopped_answering(console: Console, address: str, task_id: str, view: View, invocation: Invocation) -> int:
    console.fail(f"the gateway at {address} stopped answering, so this stops watching task {task_id}")
    console.complain(
        f"  the task goes on; watch it again with: {invocation.command('tail', task_id, '--after', str(view.last_seq))}"
    )
    return EXIT_UNREACHABLE


@contextlib.asynccontextmanager
async def signed_in(
    address: str, settings: Settings, console: Console, *, reconnect_timeout_s: float = RECONNECT_TIMEOUT_S
) -> AsyncIterator[NexusClient]:
    """A client of the gateway signed in as the local demo account (Stop when it cannot be)."""
    async with NexusClient(address, settings=settings, reconnect_timeout_s=reconnect_timeout_s) as client:
        try:
            await demo.sign_in(client, settings.data_dir)
        except grpc.aio.AioRpcError as err:
            if err.code() in UNREACHABLE:
                raise Stop(call_failed(err, console, address)) from None
            console.fail("cannot sign in: " + "\n".join(describe_error(err)))
            raise Stop(EXIT_FAILED) from None
        except demo.DemoAccountError as err:
            console.fail(str(err))
            raise Stop(EXIT_FAILED) from None
        yield client


# -- nexus run ------------------------------------------------------------------------------------


def _trigger(text: str) -> str | None:
    words = text.split()
    return words[0].lower() if words and words[0].startswith("/") else None


async def _commands(client: NexusClient, prefix: str = "") -> list[ontology_pb2.Command]:
    """The commands the caller can run (those starting with `prefix`); none when they cannot be read."""
    try:
        return await client.complete_command(prefix, page_size=MAX_LISTED_COMMANDS)
    except grpc.aio.AioRpcError:
        return []


async def _inputs(client: NexusClient, command: ontology_pb2.Command) -> list[ontology_pb2.InputField] | None:
    """The inputs of the command's skill, from its agent's capabilities (None when not listed there)."""
    token = ""
    with contextlib.suppress(grpc.aio.AioRpcError):
        while True:
            page = await client.list_agents(page_size=1000, page_token=token)
            for agent in page.agents:
                if agent.id == command.agent_id:
                    skills = agent.capabilities_snapshot.skills
                    return next((list(s.inputs) for s in skills if s.id == command.target_skill_id), None)
            token = page.next_page_token
            if not token:
                break
    return None


async def _list_commands(client: NexusClient, console: Console) -> None:
    commands = await _commands(client)
    if commands:
        console.complain("the commands you can run:")
        for line in command_list(commands):
            console.complain(line)
    if len(commands) == MAX_LISTED_COMMANDS:
        console.complain(f"  (the first {MAX_LISTED_COMMANDS}; CompleteCommand with a prefix finds the others)")


async def _refused(client: NexusClient, text: str, err: grpc.aio.AioRpcError, console: Console, address: str) -> int:
    """RunCommand said no: say why, and what the user can run instead (the commands there are, or
    the usage of the one they meant)."""
    if err.code() in UNREACHABLE:
        return call_failed(err, console, address)
    info, _ = details_of(err)
    trigger = _trigger(text)
    if info is not None and info.reason == "COMMAND_NOT_FOUND" and trigger:
        hint = info.metadata.get("did_you_mean")
        console.fail(f"{trigger} is not a command" + (f"; did you mean {hint}?" if hint else ""))
        await _list_commands(client, console)
        return EXIT_BAD_COMMAND
    console.fail("\n".join(describe_error(err)))
    if err.code() != grpc.StatusCode.INVALID_ARGUMENT:
        return EXIT_FAILED
    command = next((c for c in await _commands(client, trigger) if c.trigger == trigger), None) if trigger else None
    if command is not None:
        for line in command_usage(command, await _inputs(client, command)):
            console.complain(line)
    else:
        await _list_commands(client, console)
    return EXIT_BAD_COMMAND


async def follow(
    client: NexusClient,
    task: task_pb2.Task,
    answers: Answers,
    console: Console,
    *,
    address: str = "",
    invocation: Invocation | None = None,
) -> int:
    """Shows the task's events until it ends, answering its questions."""
    invocation = invocation or Invocation()
    view = View()
    try:
        async for event in client.stream_task(task.task_id):
            for line in render(event, view):
                console.say(line)
            if event.type == task_pb2.EVENT_TYPE_STATUS and view.waiting_for_input:
                answer = await answers.next()
                if answer is None:
                    return _cannot_ask(console, task.task_id, invocation)
                try:
                    await client.submit_input(task.task_id, answer)
                except grpc.aio.AioRpcError as err:
                    if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                        raise
                    console.fail("the task no longer waits for this answer: " + "\n".join(describe_error(err)))
        return outcome(await client.get_task(task.task_id), console)
    except grpc.aio.AioRpcError as err:
        if err.code() in UNREACHABLE:
            return _stopped_answering(console, address, task.task_id, view, invocation)
        console.fail("\n".join(describe_error(err)))
        return EXIT_FAILED


def _cannot_ask(console: Console, task_id: str, invocation: Invocation) -> int:
    console.fail(f"task {task_id} waits for an answer, and this run has none left (no --answer, no more input)")
    console.complain(f"  answer it:    {invocation.command('answer', task_id, ANSWER_PLACEHOLDER)}")
    console.complain(f"  or cancel it: {invocation.command('cancel', task_id)}")
    console.complain(f"  and watch it: {invocation.command('tail', task_id)}")
    return EXIT_WAITING


async def _cancel_on_interrupt(client: NexusClient, task_id: str, console: Console, invocation: Invocation) -> None:
    """Ctrl-C: the run is abandoned, so is its task. Says what became of it."""
    try:
        ended = await asyncio.wait_for(client.cancel_task(task_id, "nexus run interrupted"), CANCEL_ON_INTERRUPT_S)
    except (grpc.aio.AioRpcError, TimeoutError) as err:
        info, _ = details_of(err) if isinstance(err, grpc.aio.AioRpcError) else (None, [])
        if info is not None and info.reason == "TASK_ENDED":
            console.fail(f"interrupted; task {task_id} had already ended")
            return
        why = err.code().name if isinstance(err, grpc.aio.AioRpcError) else "no answer in time"
        console.fail(f"interrupted; task {task_id} could not be cancelled ({why}) and may go on")
        console.complain(f"  cancel it: {invocation.command('cancel', task_id)}")
        return
    console.fail(f"interrupted; task {task_id} is {_status_name(ended.status)}")


async def run(
    text: str,
    *,
    address: str,
    settings: Settings,
    answers: Answers,
    console: Console,
    session_id: str = "",
    invocation: Invocation | None = None,
    reconnect_timeout_s: float = RECONNECT_TIMEOUT_S,
) -> int:
    invocation = invocation or Invocation()
    task: task_pb2.Task | None = None
    try:
        async with signed_in(address, settings, console, reconnect_timeout_s=reconnect_timeout_s) as client:
            try:
                task = await client.run_command(text, session_id=session_id)
            except grpc.aio.AioRpcError as err:
                return await _refused(client, text, err, console, address)
            console.say(f"task {task.task_id} · {task.title}")
            try:
                return await follow(client, task, answers, console, address=address, invocation=invocation)
            except asyncio.CancelledError:
                await _cancel_on_interrupt(client, task.task_id, console, invocation)
                raise
    except Stop as stop:
        return stop.code
    except asyncio.CancelledError:
        if task is None:
            console.fail("interrupted before the task started")
        raise


# -- nexus tail, answer, cancel --------------------------------------------------------------------


async def tail(
    task_id: str,
    *,
    address: str,
    settings: Settings,
    console: Console,
    after_seq: int = 0,
    invocation: Invocation | None = None,
    reconnect_timeout_s: float = RECONNECT_TIMEOUT_S,
) -> int:
    """Shows the task's events after `after_seq` as `nexus run` does, live, until the task ends.
    The stream is read from the start all the same: the progress line needs the plan the task
    started with, which an event after SEQ may only update."""
    invocation = invocation or Invocation()
    try:
        async with signed_in(address, settings, console, reconnect_timeout_s=reconnect_timeout_s) as client:
            try:
                task = await client.get_task(task_id)
            except grpc.aio.AioRpcError as err:
                return call_failed(err, console, address)
            console.say(f"task {task.task_id} · {task.title}")
            view = View()
            try:
                async for event in client.stream_task(task_id):
                    lines = render(event, view)
                    if event.seq > after_seq:
                        for line in lines:
                            console.say(line)
                    # A question still open (not one answered long ago, replayed): say how to answer.
                    if (
                        event.type == task_pb2.EVENT_TYPE_STATUS
                        and view.waiting_for_input
                        and event.seq >= task.last_seq
                    ):
                        console.say(f"  answer it: {invocation.command('answer', task_id, ANSWER_PLACEHOLDER)}")
                return outcome(await client.get_task(task_id), console)
            except grpc.aio.AioRpcError as err:
                if err.code() in UNREACHABLE:
                    return _stopped_answering(console, address, task_id, view, invocation)
                return call_failed(err, console, address)
    except Stop as stop:
        return stop.code
    except asyncio.CancelledError:
        console.fail(f"stopped watching task {task_id}; it goes on")
        raise


async def answer(
    task_id: str,
    text: str,
    *,
    address: str,
    settings: Settings,
    console: Console,
    invocation: Invocation | None = None,
) -> int:
    invocation = invocation or Invocation()
    try:
        async with signed_in(address, settings, console) as client:
            try:
                task = await client.submit_input(task_id, text)
            except grpc.aio.AioRpcError as err:
                return call_failed(err, console, address)
    except Stop as stop:
        return stop.code
    console.say(f"answered task {task_id}; it is {_status_name(task.status)} again")
    console.say(f"  watch it go on: {invocation.command('tail', task_id, '--after', str(task.last_seq))}")
    return EXIT_FINISHED


async def cancel(
    task_id: str,
    *,
    address: str,
    settings: Settings,
    console: Console,
    reason: str = "",
) -> int:
    try:
        async with signed_in(address, settings, console) as client:
            try:
                task = await client.cancel_task(task_id, reason)
            except grpc.aio.AioRpcError as err:
                return call_failed(err, console, address)
    except Stop as stop:
        return stop.code
    console.say(f"task {task_id} is {_status_name(task.status)}")
    return EXIT_FINISHED
