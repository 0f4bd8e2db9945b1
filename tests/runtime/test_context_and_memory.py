# ruff: noqa: RUF001  (Chinese text has full-width punctuation)
"""A task's context (merge patch, active files, etag) and memory (put, get, trigram search in
English and Chinese)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from nexus.runtime.v1 import artifact_pb2, runtime_pb2, task_pb2, workspace_pb2
from tests.runtime.conftest import Metadata, claim_one, create_task, upload
from tests.support import Tokens, rpc_error


def patch(task_id: str, variables: dict[str, Any] | None = None, **kw: Any) -> workspace_pb2.PatchTaskContextRequest:
    request = workspace_pb2.PatchTaskContextRequest(task_id=task_id, **kw)
    if variables is not None:
        request.variables_patch.update(variables)
    return request


async def test_context_is_merge_patched_with_an_etag_and_holds_the_tasks_artifacts(
    stub: Any, workspace: Any, artifacts: Any, owner: tuple[str, Metadata], worker: Metadata, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    other_task = await create_task(stub, user, agent)
    empty = await workspace.GetTaskContext(workspace_pb2.GetTaskContextRequest(task_id=task.task_id), metadata=user)
    assert (dict(empty.variables), list(empty.active_files)) == ({}, [])
    first = await workspace.PatchTaskContext(
        patch(task.task_id, {"company": "Tesla", "figures": {"revenue": "25B", "margin": "18%"}}, etag=empty.etag),
        metadata=user,
    )
    assert first.variables["figures"]["revenue"] == "25B" and first.etag != empty.etag
    # null removes, objects merge, anything else replaces.
    second = await workspace.PatchTaskContext(
        patch(task.task_id, {"figures": {"margin": None, "eps": 1.5}, "company": "Tesla Inc"}), metadata=user
    )
    assert dict(second.variables.fields["figures"].struct_value) == {"revenue": "25B", "eps": 1.5}
    assert second.variables["company"] == "Tesla Inc"
    stale = await rpc_error(workspace.PatchTaskContext(patch(task.task_id, {"x": 1}, etag=first.etag), metadata=user))
    assert (stale.code, stale.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")

    # Active files are artifacts of the same task; the lease holder may patch too.
    claimed = await claim_one(stub, worker, agent)
    assert claimed.task.task_id == task.task_id
    lease = claimed.lease.lease_id
    mine = await upload(artifacts, worker, task.task_id, b"%PDF-1.7 report", lease)
    elsewhere = await upload(artifacts, user, other_task.task_id, b"another task's file")
    with_file = await workspace.PatchTaskContext(
        patch(task.task_id, add_active_files=[mine.artifact_id], lease_id=lease), metadata=worker
    )
    assert list(with_file.active_files) == [mine.artifact_id]
    failure = await rpc_error(
        workspace.PatchTaskContext(patch(task.task_id, add_active_files=[elsewhere.artifact_id]), metadata=user)
    )
    assert (failure.code, failure.reason, failure.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "ARTIFACT_NOT_FOUND",
        {"add_active_files[0]"},
    )
    # Deleting the artifact takes it out of the context.
    await artifacts.DeleteArtifact(artifact_pb2.DeleteArtifactRequest(artifact_id=mine.artifact_id), metadata=user)
    after = await workspace.GetTaskContext(workspace_pb2.GetTaskContextRequest(task_id=task.task_id), metadata=user)
    assert list(after.active_files) == [] and after.etag != with_file.etag


async def test_context_size_and_depth_are_limited_after_the_patch_too(
    stub: Any, workspace: Any, owner: tuple[str, Metadata], agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    half = "x" * (600 * 1024)
    await workspace.PatchTaskContext(patch(task.task_id, {"a": half}), metadata=user)
    failure = await rpc_error(workspace.PatchTaskContext(patch(task.task_id, {"b": half}), metadata=user))
    assert (failure.code, failure.reason, failure.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "CONTEXT_TOO_LARGE",
        {"variables_patch"},
    )
    deep: dict[str, Any] = {}
    for _ in range(30):
        deep = {"d": deep}
    await workspace.PatchTaskContext(patch(task.task_id, {"deep": deep}), metadata=user)  # 32 levels: fine
    deeper = await rpc_error(workspace.PatchTaskContext(patch(task.task_id, {"deep": {"d": deep}}), metadata=user))
    assert deeper.code == grpc.StatusCode.INVALID_ARGUMENT and deeper.fields == {"variables_patch"}


async def put_memory(workspace: Any, metadata: Metadata, task_id: str, summary: str, *takeaways: str) -> Any:
    memory = workspace_pb2.TaskMemory(task_id=task_id, summary_text=summary, key_takeaways=list(takeaways))
    return await workspace.PutTaskMemory(workspace_pb2.PutTaskMemoryRequest(memory=memory), metadata=metadata)


async def search(workspace: Any, metadata: Metadata, query: str, page_size: int = 0, token: str = "") -> Any:
    return await workspace.SearchTaskMemories(
        workspace_pb2.SearchTaskMemoriesRequest(query=query, page_size=page_size, page_token=token), metadata=metadata
    )


async def titles(workspace: Any, metadata: Metadata, query: str) -> list[str]:
    return [r.task_title for r in (await search(workspace, metadata, query)).results]


MEMORIES = {
    "scan-zh": (
        "本次任务扫描了 acme.com 网站，共发现三个安全漏洞，其中登录表单存在跨站脚本攻击风险，建议尽快修复。",
        ["登录表单需要转义用户输入", "管理后台未启用双因素认证"],
    ),
    "earnings-zh": (
        "分析了特斯拉第三季度财报：营收同比增长百分之二十五，毛利率下降，现金流保持稳健。",
        ["营收增长主要来自储能业务"],
    ),
    "vector-zh": (
        "我们为客服知识库搭建了向量数据库，把产品文档切分后存储嵌入，并通过相似度检索回答用户问题。",
        ["切分粒度影响检索质量"],
    ),
    "migration-zh": ("数据库迁移失败，原因是外键约束冲突，回滚后重新执行成功。", []),
    "scan-en": (
        "Scanned acme.com and found three security vulnerabilities; the login form is open to cross-site scripting.",
        ["Escape user input in the login form", "Enable two-factor authentication for the admin panel"],
    ),
    "earnings-en": (
        "Quarterly earnings analysis for Tesla: revenue grew 25 percent year over year while margins shrank.",
        ["Energy storage drove most of the revenue growth"],
    ),
    "migration-en": (
        "The database migration failed because of a foreign key constraint violation; a rollback and rerun fixed it.",
        [],
    ),
}


async def test_memories_are_searched_by_trigram_similarity_in_english_and_chinese(
    stub: Any, workspace: Any, tokens: Tokens, agent: str
) -> None:
    _, user = tokens.user()
    for title, (summary, takeaways) in MEMORIES.items():
        task = await create_task(stub, user, agent, title=title)
        await put_memory(workspace, user, task.task_id, summary, *takeaways)
    # Chinese: short queries inside long sentences without spaces, ranked by how well they match.
    assert (await titles(workspace, user, "安全漏洞"))[0] == "scan-zh"
    assert (await titles(workspace, user, "特斯拉财报"))[0] == "earnings-zh"
    assert (await titles(workspace, user, "向量数据库"))[:2] == ["vector-zh", "migration-zh"]
    assert set(await titles(workspace, user, "数据库")) == {"vector-zh", "migration-zh"}
    assert (await titles(workspace, user, "双因素认证"))[0] == "scan-zh"  # found in a takeaway
    assert await titles(workspace, user, "区块链") == []
    # English, with a typo too.
    assert (await titles(workspace, user, "security vulnerabilities"))[0] == "scan-en"
    assert (await titles(workspace, user, "tesla revenue"))[0] == "earnings-en"
    assert (await titles(workspace, user, "databse migration"))[0] == "migration-en"
    assert (await titles(workspace, user, "two-factor"))[0] == "scan-en"
    results = (await search(workspace, user, "acme.com")).results
    assert {r.task_title for r in results[:2]} == {"scan-zh", "scan-en"}
    assert all(0 < r.score <= 1 for r in results)
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


async def test_search_pages_include_archived_tasks_and_only_the_callers(
    stub: Any, workspace: Any, tokens: Tokens, agent: str
) -> None:
    _, user = tokens.user()
    _, stranger = tokens.user()
    ids = []
    for i in range(5):
        task = await create_task(stub, user, agent, title=f"report {i}")
        await put_memory(workspace, user, task.task_id, f"季度报告第{i}版：营收与利润分析" + "。" * i)
        ids.append(task.task_id)
    archive = runtime_pb2.UpdateTaskRequest(
        task=task_pb2.Task(task_id=ids[0], is_archived=True),
        update_mask=field_mask_pb2.FieldMask(paths=["is_archived"]),
    )
    await stub.UpdateTask(archive, metadata=user)
    theirs = await create_task(stub, stranger, agent, title="theirs")
    await put_memory(workspace, stranger, theirs.task_id, "季度报告：营收与利润分析")

    seen: list[str] = []
    token = ""
    while True:
        page = await search(workspace, user, "营收", page_size=2, token=token)
        seen += [r.memory.task_id for r in page.results]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    first = (await search(workspace, user, "营收", page_size=5)).results
    assert any(r.task_is_archived for r in first)
    failure = await rpc_error(
        search(workspace, user, "利润", page_size=2, token=(await search(workspace, user, "营收", 2)).next_page_token)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


async def test_memory_is_put_by_the_owner_or_the_lease_holder_with_an_etag(
    stub: Any, workspace: Any, owner: tuple[str, Metadata], worker: Metadata, tokens: Tokens, agent: str
) -> None:
    _, user = owner
    task = await create_task(stub, user, agent)
    empty = await workspace.GetTaskMemory(workspace_pb2.GetTaskMemoryRequest(task_id=task.task_id), metadata=user)
    assert (empty.summary_text, list(empty.key_takeaways)) == ("", [])
    claimed = await claim_one(stub, worker, agent)
    memory = workspace_pb2.TaskMemory(
        task_id=task.task_id, summary_text="done", key_takeaways=["a", "b"], vector_doc_id="vec-1"
    )
    put = await workspace.PutTaskMemory(
        workspace_pb2.PutTaskMemoryRequest(memory=memory, lease_id=claimed.lease.lease_id), metadata=worker
    )
    assert (put.summary_text, list(put.key_takeaways), put.vector_doc_id) == ("done", ["a", "b"], "vec-1")
    other = tokens.service("runtime.worker", name="not-the-holder")
    failure = await rpc_error(
        workspace.PutTaskMemory(
            workspace_pb2.PutTaskMemoryRequest(memory=memory, lease_id=claimed.lease.lease_id), metadata=other
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_NOT_HELD")
    memory.etag = empty.etag
    failure = await rpc_error(workspace.PutTaskMemory(workspace_pb2.PutTaskMemoryRequest(memory=memory), metadata=user))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    memory.etag = put.etag
    memory.summary_text = "rewritten by the owner"
    again = await workspace.PutTaskMemory(workspace_pb2.PutTaskMemoryRequest(memory=memory), metadata=user)
    assert again.summary_text == "rewritten by the owner"
    got = await workspace.GetTaskMemory(workspace_pb2.GetTaskMemoryRequest(task_id=task.task_id), metadata=worker)
    assert got == again
