"""What a client app needs beyond running tasks: the artifacts' bytes (DownloadArtifact, and
`GET /v1/artifacts/{id}` with its content type), no internal storage URIs in any answer, and the
sidebar's writes and lists (UpdateTask, ListTasks, UpdateArtifact, sessions), the profile and
connection checks; each as the caller, another user's objects NOT_FOUND."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING

import grpc
from google.protobuf import field_mask_pb2

from nexus.gateway.v1 import gateway_pb2 as pb
from nexus.runtime.v1 import artifact_pb2, runtime_pb2, task_pb2
from nexus.user.v1 import user_pb2
from tests.gateway.conftest import Account, Scan, Worker
from tests.gateway.http_support import Http, bearer, json_of
from tests.support import rpc_error

if TYPE_CHECKING:
    from nexus.gateway.v1.gateway_pb2_grpc import GatewayServiceAsyncStub as Stub

REPORT = "# Scan of https://acme.com\n\n- Focus: pricing 💶\n".encode()


async def task_with_report(gw: Stub, account: Account, scan: Scan, worker: Worker) -> artifact_pb2.Artifact:
    task = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=account.md)
    claimed = await worker.claim(scan.agent_id)
    artifact = await worker.write_artifact(claimed, "Scan of https://acme.com", REPORT, content_type="text/markdown")
    await worker.finish(claimed)
    assert artifact.task_id == task.task_id
    return artifact


async def test_download_artifact_streams_the_metadata_then_the_bytes(
    gw: Stub, alice: Account, scan: Scan, worker: Worker
) -> None:
    artifact = await task_with_report(gw, alice, scan, worker)
    parts = [
        p
        async for p in gw.DownloadArtifact(
            pb.DownloadArtifactRequest(artifact_id=artifact.artifact_id), metadata=alice.md
        )
    ]
    assert parts[0].artifact.artifact_id == artifact.artifact_id
    assert parts[0].artifact.storage_uri == ""  # the runtime's business
    assert b"".join(p.chunk for p in parts) == REPORT
    resumed = [
        p
        async for p in gw.DownloadArtifact(
            pb.DownloadArtifactRequest(artifact_id=artifact.artifact_id, read_offset=2), metadata=alice.md
        )
    ]
    assert b"".join(p.chunk for p in resumed) == REPORT[2:]


async def test_get_artifact_over_http_has_its_content_type_and_runs_sandboxed(
    http: Http, gw: Stub, alice: Account, bob: Account, scan: Scan, worker: Worker
) -> None:
    artifact = await task_with_report(gw, alice, scan, worker)
    reply = await http.get(f"/v1/artifacts/{artifact.artifact_id}", bearer(alice.tokens.access_token))
    assert reply.status == 200 and reply.content == REPORT
    assert reply.headers["content-type"] == "text/markdown"
    assert reply.headers["content-length"] == str(len(REPORT))
    assert reply.headers["content-security-policy"].startswith("sandbox")
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["content-disposition"].startswith("inline; ")
    assert "filename*=UTF-8''Scan%20of%20https%3A%2F%2Facme.com" in reply.headers["content-disposition"]
    saved = await http.get(f"/v1/artifacts/{artifact.artifact_id}?download=1", bearer(alice.tokens.access_token))
    assert saved.headers["content-disposition"].startswith("attachment; ")
    assert hashlib.sha256(saved.content).hexdigest() == artifact.sha256

    theirs = await http.get(f"/v1/artifacts/{artifact.artifact_id}", bearer(bob.tokens.access_token))
    nobodys = await http.get(f"/v1/artifacts/{uuid.uuid4()}", bearer(bob.tokens.access_token))
    assert theirs.status == nobodys.status == 404
    assert json_of(theirs) == json_of(nobodys)
    assert json_of(theirs)["code"] == "not_found"
    anonymous = await http.get(f"/v1/artifacts/{artifact.artifact_id}")
    assert anonymous.status == 401
    malformed = await http.get("/v1/artifacts/nope", bearer(alice.tokens.access_token))
    assert malformed.status == 400 and json_of(malformed)["code"] == "invalid_argument"


async def test_no_answer_shows_where_the_runtime_keeps_the_bytes(
    gw: Stub, alice: Account, scan: Scan, worker: Worker
) -> None:
    artifact = await task_with_report(gw, alice, scan, worker)
    pinned = await gw.UpdateArtifact(
        pb.UpdateArtifactRequest(
            artifact=artifact_pb2.Artifact(artifact_id=artifact.artifact_id, is_pinned=True),
            update_mask=field_mask_pb2.FieldMask(paths=["is_pinned"]),
        ),
        metadata=alice.md,
    )
    assert pinned.is_pinned and pinned.storage_uri == ""
    listed = await gw.ListArtifacts(pb.ListArtifactsRequest(task_id=artifact.task_id), metadata=alice.md)
    sidebar = await gw.GetSidebar(pb.GetSidebarRequest(), metadata=alice.md)
    everywhere = [*listed.artifacts, *sidebar.pinned_artifacts]
    assert artifact.artifact_id in {a.artifact_id for a in sidebar.pinned_artifacts}
    assert everywhere and all(a.storage_uri == "" for a in everywhere)
    assert all("sha256/" not in str(a) for a in everywhere)


async def test_pin_archive_and_restore_a_task_and_list_the_archive(
    gw: Stub, alice: Account, bob: Account, scan: Scan
) -> None:
    task = await gw.RunCommand(pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com"), metadata=alice.md)

    async def update(account: Account, mask: str, **values: object) -> task_pb2.Task:
        return await gw.UpdateTask(
            pb.UpdateTaskRequest(
                task=task_pb2.Task(task_id=task.task_id, **values),  # type: ignore[arg-type]
                update_mask=field_mask_pb2.FieldMask(paths=[mask]),
            ),
            metadata=account.md,
        )

    assert (await update(alice, "is_pinned", is_pinned=True)).is_pinned
    sidebar = await gw.GetSidebar(pb.GetSidebarRequest(), metadata=alice.md)
    assert task.task_id in {t.task_id for t in sidebar.pinned_tasks}
    await update(alice, "is_archived", is_archived=True)
    archived = await gw.ListTasks(
        pb.ListTasksRequest(archive_filter=runtime_pb2.ARCHIVE_FILTER_ARCHIVED), metadata=alice.md
    )
    active = await gw.ListTasks(pb.ListTasksRequest(), metadata=alice.md)
    assert task.task_id in {t.task_id for t in archived.tasks}
    assert task.task_id not in {t.task_id for t in active.tasks}
    restored = await update(alice, "is_archived", is_archived=False)
    assert not restored.is_archived

    stolen = await rpc_error(update(bob, "is_pinned", is_pinned=False))
    assert (stolen.code, stolen.reason) == (grpc.StatusCode.NOT_FOUND, "TASK_NOT_FOUND")
    bad = await rpc_error(update(alice, "owner"))
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT and bad.fields == {"update_mask"}
    blank = await rpc_error(update(alice, "title", title="  "))
    assert blank.code == grpc.StatusCode.INVALID_ARGUMENT and blank.fields == {"task.title"}


async def test_sessions_group_the_tasks_run_in_them(gw: Stub, alice: Account, bob: Account, scan: Scan) -> None:
    session = await gw.CreateSession(
        pb.CreateSessionRequest(title="Competitor research", request_id=str(uuid.uuid4())), metadata=alice.md
    )
    task = await gw.RunCommand(
        pb.RunCommandRequest(text=f"{scan.trigger} https://acme.com", session_id=session.session_id), metadata=alice.md
    )
    mine = await gw.ListSessions(pb.ListSessionsRequest(), metadata=alice.md)
    assert session.session_id in {s.session_id for s in mine.sessions}
    grouped = await gw.ListTasks(pb.ListTasksRequest(session_id=session.session_id), metadata=alice.md)
    assert [t.task_id for t in grouped.tasks] == [task.task_id]
    assert session.session_id not in {
        s.session_id for s in (await gw.ListSessions(pb.ListSessionsRequest(), metadata=bob.md)).sessions
    }
    blank = await rpc_error(gw.CreateSession(pb.CreateSessionRequest(title=" "), metadata=alice.md))
    assert blank.code == grpc.StatusCode.INVALID_ARGUMENT and blank.fields == {"title"}


async def test_update_profile_changes_the_callers_own_profile(gw: Stub, sign_up: object) -> None:
    account: Account = await sign_up()  # type: ignore[operator]
    me = await gw.GetMe(pb.GetMeRequest(), metadata=account.md)
    profile = user_pb2.Profile(
        nickname="Grace", principles=["Cite sources", "Ask before spending"], etag=me.profile.etag
    )
    profile.preferences.update({"theme": "dark", "output_style": "concise"})
    updated = await gw.UpdateProfile(
        pb.UpdateProfileRequest(
            profile=profile, update_mask=field_mask_pb2.FieldMask(paths=["nickname", "preferences", "principles"])
        ),
        metadata=account.md,
    )
    assert (updated.nickname, list(updated.principles)) == ("Grace", ["Cite sources", "Ask before spending"])
    assert updated.preferences["theme"] == "dark" and updated.user_id == account.user_id
    stale = await rpc_error(
        gw.UpdateProfile(
            pb.UpdateProfileRequest(profile=user_pb2.Profile(nickname="Late", etag=me.profile.etag)),
            metadata=account.md,
        )
    )
    assert stale.code == grpc.StatusCode.ABORTED
    bad = await rpc_error(
        gw.UpdateProfile(
            pb.UpdateProfileRequest(
                profile=user_pb2.Profile(nickname="a\x00b"), update_mask=field_mask_pb2.FieldMask(paths=["nickname"])
            ),
            metadata=account.md,
        )
    )
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT and bad.fields == {"profile.nickname"}


async def test_verify_connection_records_the_check_for_the_owner_only(
    gw: Stub, alice: Account, bob: Account, scan: Scan
) -> None:
    request = pb.ConnectAgentRequest(agent_id=scan.agent_id, provider="notion_oauth", display_name="Notion")
    request.credentials.update({"token": "secret-notion-token"})
    connection = await gw.ConnectAgent(request, metadata=alice.md)
    assert "secret-notion-token" not in str(connection)
    assert not connection.HasField("last_verify_time")
    verified = await gw.VerifyConnection(pb.VerifyConnectionRequest(connection_id=connection.id), metadata=alice.md)
    assert verified.HasField("last_verify_time")
    theirs = await rpc_error(
        gw.VerifyConnection(pb.VerifyConnectionRequest(connection_id=connection.id), metadata=bob.md)
    )
    assert theirs.code == grpc.StatusCode.NOT_FOUND
    malformed = await rpc_error(gw.VerifyConnection(pb.VerifyConnectionRequest(connection_id="x"), metadata=alice.md))
    assert malformed.code == grpc.StatusCode.INVALID_ARGUMENT and malformed.fields == {"connection_id"}
