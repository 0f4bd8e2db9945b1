"""`nexus run "/scan https://example.com"`: sign in as the local demo account, run the command
through the gateway, and show the task's events live until it ends.

When the task waits for input, the answer comes from the next `--answer`, else from standard
input: a line read from it when it is not a terminal, a prompt when it is. Exit status: 0 when
the task finished; 1 when it failed, was cancelled, or waits for an answer nobody gave; 2 when the
command line does not resolve (the ontology's reasons are printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import grpc

from nexus.client import demo
from nexus.client.client import NexusClient
from nexus.client.render import View, clip, render
from nexus.kit.config import Settings
from nexus.kit.errors import details_of
from nexus.kit.validation import struct_to_dict
from nexus.runtime.v1 import task_pb2

EXIT_FINISHED = 0
EXIT_FAILED = 1
EXIT_BAD_COMMAND = 2
CANCEL_ON_INTERRUPT_S = 3.0


class Answers:
    """Answers to the task's questions, in order: the given ones, then standard input."""

    def __init__(self, given: Sequence[str], stdin: TextIO, *, interactive: bool | None = None) -> None:
        self._given = list(given)
        self._stdin = stdin
        self._interactive = stdin.isatty() if interactive is None else interactive

    async def next(self) -> str | None:
        """The next answer; None when there is none (standard input ended)."""
        if self._given:
            return self._given.pop(0)
        if self._interactive:
            try:
                return await asyncio.to_thread(input, "answer> ")
            except EOFError:
                return None
        line = await asyncio.to_thread(self._stdin.readline)
        return line.rstrip("\r\n") if line else None


@dataclass
class Console:
    out: TextIO
    err: TextIO

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def complain(self, line: str) -> None:
        print(line, file=self.err, flush=True)


def describe_error(err: grpc.aio.AioRpcError) -> list[str]:
    """A failed call as lines for people: the message, each bad field, a did-you-mean."""
    info, violations = details_of(err)
    lines = [f"{err.details() or err.code().name}"]
    lines += [f"  {v.field}: {v.description}" if v.field else f"  {v.description}" for v in violations]
    suggestion = info.metadata.get("did_you_mean") if info is not None else None
    if suggestion and suggestion not in lines[0]:
        lines.append(f"  did you mean {suggestion}?")
    return lines


def outcome(task: task_pb2.Task, console: Console) -> int:
    """The exit status of an ended task; its error or result is shown."""
    if task.status == task_pb2.TASK_STATUS_FINISHED:
        result = struct_to_dict(task.result)
        if result:
            console.say(f"result: {clip(json.dumps(result, ensure_ascii=False), 200)}")
        return EXIT_FINISHED
    if task.status == task_pb2.TASK_STATUS_FAILED:
        console.complain(f"nexus run: the task failed: {task.error.reason}: {task.error.message}".rstrip(": "))
        return EXIT_FAILED
    console.complain(
        f"nexus run: the task ended {task_pb2.TaskStatus.Name(task.status).removeprefix('TASK_STATUS_').lower()}"
    )
    return EXIT_FAILED


async def follow(client: NexusClient, task: task_pb2.Task, answers: Answers, console: Console) -> int:
    """Shows the task's events until it ends, answering its questions."""
    view = View()
    async for event in client.stream_task(task.task_id):
        for line in render(event, view):
            console.say(line)
        if event.type == task_pb2.EVENT_TYPE_STATUS and view.waiting_for_input:
            answer = await answers.next()
            if answer is None:
                console.complain(
                    f"nexus run: the task waits for input and no answer is left (give --answer); task {task.task_id}"
                )
                return EXIT_FAILED
            await client.submit_input(task.task_id, answer)
    return outcome(await client.get_task(task.task_id), console)


async def run(
    text: str,
    *,
    address: str,
    settings: Settings,
    answers: Answers,
    console: Console,
    session_id: str = "",
) -> int:
    async with NexusClient(address, settings=settings) as client:
        try:
            await demo.sign_in(client, settings.data_dir)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                console.complain(f"nexus run: cannot reach the gateway at {address}; is `nexus up` running?")
            else:
                console.complain("nexus run: cannot sign in: " + "\n".join(describe_error(err)))
            return EXIT_FAILED
        except demo.DemoAccountError as err:
            console.complain(f"nexus run: {err}")
            return EXIT_FAILED
        try:
            task = await client.run_command(text, session_id=session_id)
        except grpc.aio.AioRpcError as err:
            bad = err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
            console.complain("nexus run: " + "\n".join(describe_error(err)))
            return EXIT_BAD_COMMAND if bad else EXIT_FAILED
        console.say(f"task {task.task_id} · {task.title}")
        try:
            return await follow(client, task, answers, console)
        except asyncio.CancelledError:
            # Ctrl-C: the run is abandoned, so the task is too.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.cancel_task(task.task_id, "nexus run interrupted"), CANCEL_ON_INTERRUPT_S)
            raise
        except grpc.aio.AioRpcError as err:
            console.complain("nexus run: " + "\n".join(describe_error(err)))
            return EXIT_FAILED
