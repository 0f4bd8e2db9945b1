"""SearchMemories through the gateway: the caller's memories only, in English and in Chinese."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from nexus.gateway.v1 import gateway_pb2 as pb
from tests.gateway.conftest import Scan, SignUp, Worker
from tests.support import rpc_error

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub


async def test_memories_are_searched_for_the_caller_only_in_any_language(
    gw: Stub, sign_up: SignUp, scan: Scan, worker: Worker
) -> None:
    ada, eve = await sign_up(), await sign_up()
    mine = ("Acme's pricing page lists three plans", "价格页面列出了三个套餐")
    theirs = ("Acme's pricing page lists three plans (eve)", "价格页面 eve")
    for account, (english, chinese) in ((ada, mine), (eve, theirs)):
        await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=account.md)
        claimed = await worker.claim(scan.agent_id)
        await worker.remember(claimed, english, chinese)
        await worker.finish(claimed)

    found = await gw.SearchMemories(pb.SearchMemoriesRequest(query="pricing plans"), metadata=ada.md)
    assert [r.memory.summary_text for r in found.results] == [mine[0]]
    assert found.results[0].task_title.startswith("Scan a site")
    in_chinese = await gw.SearchMemories(pb.SearchMemoriesRequest(query="价格页面"), metadata=ada.md)
    assert [list(r.memory.key_takeaways) for r in in_chinese.results] == [[mine[1]]]
    nothing = await gw.SearchMemories(pb.SearchMemoriesRequest(query="quantum chromodynamics"), metadata=ada.md)
    assert list(nothing.results) == []


async def test_a_bad_search_is_refused(gw: Stub, sign_up: SignUp) -> None:
    account = await sign_up()
    empty = await rpc_error(gw.SearchMemories(pb.SearchMemoriesRequest(query=""), metadata=account.md))
    assert (empty.code, empty.domain, empty.fields) == (grpc.StatusCode.INVALID_ARGUMENT, "nexus.gateway.v1", {"query"})
    token = await rpc_error(
        gw.SearchMemories(pb.SearchMemoriesRequest(query="x", page_token="garbage"), metadata=account.md)
    )
    assert (token.code, token.domain) == (grpc.StatusCode.INVALID_ARGUMENT, "nexus.runtime.v1")
