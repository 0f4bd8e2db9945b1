"""Slash commands through a real channel: system and private user commands, autocomplete, and
ResolveCommand turning a typed line into a skill's typed inputs."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
from google.protobuf import field_mask_pb2, struct_pb2
from google.rpc import error_details_pb2

from nexus.kit.errors import details_of
from nexus.kit.validation import struct_to_dict
from nexus.ontology.v1 import ontology_pb2 as pb
from tests.ontology.conftest import Ontology, User, unique, url_input
from tests.support import rpc_error

SCAN_INPUTS = [
    url_input(required=True),
    pb.InputField(
        name="depth",
        type=pb.INPUT_TYPE_ENUM,
        allowed_values=["quick", "standard", "deep"],
        default_value=struct_pb2.Value(string_value="standard"),
    ),
    pb.InputField(name="pages", type=pb.INPUT_TYPE_INTEGER, default_value=struct_pb2.Value(number_value=5)),
    pb.InputField(name="follow", type=pb.INPUT_TYPE_BOOLEAN),
    pb.InputField(name="ratio", type=pb.INPUT_TYPE_NUMBER),
    pb.InputField(name="extra", type=pb.INPUT_TYPE_JSON),
]


async def scanner(ontology: Ontology) -> tuple[pb.Agent, pb.Skill, pb.Command]:
    agent = await ontology.agent()
    skill = await ontology.skill(agent.id, inputs=SCAN_INPUTS)
    command = await ontology.command(agent.id, skill.id, trigger="/" + unique("scan"), description="Scan a site")
    return agent, skill, command


async def resolve(ontology: Ontology, text: str, md: tuple[tuple[str, str], ...]) -> pb.ResolveCommandResponse:
    return await ontology.stub.ResolveCommand(pb.ResolveCommandRequest(text=text), metadata=md)


async def test_resolve_parses_positionals_named_and_quoted_values_into_typed_inputs(ontology: Ontology) -> None:
    _, skill, command = await scanner(ontology)
    md = ontology.user().md
    reply = await resolve(
        ontology, f"{command.trigger} https://acme.com deep follow=yes ratio=0.5 extra='{{\"a\": [1]}}'", md
    )
    assert reply.command == command
    assert reply.skill == skill
    assert struct_to_dict(reply.inputs) == {
        "url": "https://acme.com",
        "depth": "deep",
        "pages": 5,
        "follow": True,
        "ratio": 0.5,
        "extra": {"a": [1]},
    }
    reply = await resolve(ontology, f'{command.trigger.upper()} url="https://acme.com/?q=a=b" pages=12', md)
    assert struct_to_dict(reply.inputs) == {"url": "https://acme.com/?q=a=b", "depth": "standard", "pages": 12}


async def test_resolve_gives_one_violation_per_bad_input(ontology: Ontology) -> None:
    _, _, command = await scanner(ontology)
    failure = await rpc_error(
        resolve(ontology, f"{command.trigger} depth=huge pages=many follow=perhaps nope=1", ontology.user().md)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_INPUTS")
    assert {v.field: v.description for v in failure.violations} == {
        "inputs.url": "is required",
        "inputs.depth": "must be one of: quick, standard, deep",
        "inputs.pages": "must be an integer",
        "inputs.follow": "must be true or false (yes/no, on/off and 1/0 also work)",
        "inputs.nope": "is not an input of this command",
    }


async def test_an_unknown_trigger_is_not_found_with_a_did_you_mean(ontology: Ontology) -> None:
    _, _, command = await scanner(ontology)
    md = ontology.user().md
    failure = await rpc_error(resolve(ontology, f"{command.trigger[:-1]} https://acme.com", md))
    assert (failure.code, failure.reason, failure.domain) == (
        grpc.StatusCode.NOT_FOUND,
        "COMMAND_NOT_FOUND",
        "nexus.ontology.v1",
    )
    assert f"did you mean {command.trigger}?" in failure.message
    info = await _error_info(resolve(ontology, f"{command.trigger[:-1]} x", md))
    assert dict(info.metadata) == {"did_you_mean": command.trigger}
    info = await _error_info(resolve(ontology, "/qqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", md))
    assert dict(info.metadata) == {}


async def _error_info(call: Awaitable[Any]) -> error_details_pb2.ErrorInfo:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        info, _ = details_of(err)
        assert info is not None
        return info
    raise AssertionError("the call succeeded")


async def test_a_line_that_is_not_a_command_is_invalid(ontology: Ontology) -> None:
    md = ontology.user().md
    for text in ("scan https://x", '/scan "open', "", "/ok\x00"):
        failure = await rpc_error(resolve(ontology, text, md))
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"text"})


async def test_a_users_commands_are_private_and_resolve_only_for_them(ontology: Ontology) -> None:
    agent = await ontology.agent()
    owner, other = ontology.user(), ontology.user()
    skill = await ontology.skill(agent.id, md=owner.md, inputs=[pb.InputField(name="q", type=pb.INPUT_TYPE_STRING)])
    command = await ontology.command(agent.id, skill.id, md=owner.md)
    assert command.owner_user_id == owner.id
    reply = await resolve(ontology, f"{command.trigger} what is up", owner.md)
    assert struct_to_dict(reply.inputs) == {"q": "what is up"}
    for call in (
        resolve(ontology, command.trigger, other.md),
        ontology.stub.GetCommand(pb.GetCommandRequest(trigger=command.trigger), metadata=other.md),
        ontology.stub.DeleteCommand(pb.DeleteCommandRequest(trigger=command.trigger), metadata=other.md),
        ontology.stub.UpdateCommand(
            pb.UpdateCommandRequest(command=pb.Command(trigger=command.trigger, description="x")), metadata=other.md
        ),
        resolve(ontology, command.trigger, ontology.reader),
    ):
        failure = await rpc_error(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "COMMAND_NOT_FOUND")
    listed = await ontology.stub.ListCommands(pb.ListCommandsRequest(prefix=command.trigger), metadata=other.md)
    assert list(listed.commands) == []
    # Another user may use the same trigger for a command of their own.
    theirs = await ontology.skill(agent.id, md=other.md)
    await ontology.command(agent.id, theirs.id, md=other.md, trigger=command.trigger)


async def test_a_user_command_cannot_shadow_a_system_command(ontology: Ontology) -> None:
    _, skill, command = await scanner(ontology)
    user = ontology.user()
    failure = await rpc_error(ontology.command(skill.agent_id, skill.id, md=user.md, trigger=command.trigger))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "TRIGGER_RESERVED")


async def test_a_later_system_command_wins_over_a_user_command_with_its_trigger(ontology: Ontology) -> None:
    agent = await ontology.agent()
    user = ontology.user()
    own = await ontology.skill(agent.id, md=user.md)
    trigger = "/" + unique("later")
    await ontology.command(agent.id, own.id, md=user.md, trigger=trigger)
    system_skill = await ontology.skill(agent.id)
    system = await ontology.command(agent.id, system_skill.id, trigger=trigger)
    assert (await resolve(ontology, trigger, user.md)).skill.id == system_skill.id
    assert await ontology.stub.GetCommand(pb.GetCommandRequest(trigger=trigger), metadata=user.md) == system
    # The user's shadowed command is still theirs to delete.
    await ontology.stub.DeleteCommand(pb.DeleteCommandRequest(trigger=trigger), metadata=user.md)
    failure = await rpc_error(ontology.stub.DeleteCommand(pb.DeleteCommandRequest(trigger=trigger), metadata=user.md))
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "COMMAND_READ_ONLY")


async def test_the_target_skill_must_be_visible_and_belong_to_the_agent(ontology: Ontology) -> None:
    agent, other_agent = await ontology.agent(), await ontology.agent()
    owner, stranger = ontology.user(), ontology.user()
    private = await ontology.skill(agent.id, md=stranger.md)
    public = await ontology.skill(agent.id, md=stranger.md, is_public=True)
    foreign = await ontology.skill(other_agent.id)

    failure = await rpc_error(ontology.command(agent.id, private.id, md=owner.md))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "SKILL_NOT_FOUND")
    failure = await rpc_error(ontology.command(agent.id, foreign.id, md=owner.md))
    assert (failure.code, failure.reason, failure.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "SKILL_OF_ANOTHER_AGENT",
        {"command.target_skill_id"},
    )
    failure = await rpc_error(ontology.command(agent.id, public.id))  # a system command, a user skill
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"command.target_skill_id"})
    failure = await rpc_error(ontology.command(unique("ghost"), public.id, md=owner.md))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "AGENT_NOT_FOUND")

    # Someone else's public skill is fine, until its creator makes it private again.
    command = await ontology.command(agent.id, public.id, md=owner.md)
    await ontology.stub.UpdateSkill(
        pb.UpdateSkillRequest(skill=pb.Skill(id=public.id), update_mask=field_mask_pb2.FieldMask(paths=["is_public"])),
        metadata=stranger.md,
    )
    failure = await rpc_error(resolve(ontology, command.trigger, owner.md))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SKILL_UNAVAILABLE")


async def test_trigger_format_is_validated(ontology: Ontology) -> None:
    agent = await ontology.agent()
    skill = await ontology.skill(agent.id)
    for trigger in ("scan", "/Scan", "/", "/9x", "/" + "x" * 33, "/with space"):
        failure = await rpc_error(ontology.command(agent.id, skill.id, trigger=trigger))
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"command.trigger"}), trigger


async def test_listing_with_a_prefix_serves_autocomplete(ontology: Ontology) -> None:
    agent = await ontology.agent()
    me: User = ontology.user()
    skill = await ontology.skill(agent.id)
    mine = await ontology.skill(agent.id, md=me.md)
    stem = unique("ac")
    system = [await ontology.command(agent.id, skill.id, trigger=f"/{stem}{s}") for s in ("_a", "_b", "_c")]
    own = await ontology.command(agent.id, mine.id, md=me.md, trigger=f"/{stem}_d")
    stranger = ontology.user()
    theirs = await ontology.skill(agent.id, md=stranger.md)
    await ontology.command(agent.id, theirs.id, md=stranger.md, trigger=f"/{stem}_e")

    async def triggers(prefix: str, md: tuple[tuple[str, str], ...], **kw: object) -> list[str]:
        reply = await ontology.stub.ListCommands(pb.ListCommandsRequest(prefix=prefix, **kw), metadata=md)  # type: ignore[arg-type]
        return [c.trigger for c in reply.commands]

    everything = [c.trigger for c in [*system, own]]
    assert await triggers(f"/{stem}", me.md) == everything
    assert await triggers(stem.upper(), me.md) == everything  # no slash, any case
    assert await triggers(f"/{stem}_b", me.md) == [system[1].trigger]
    assert await triggers(f"/{stem}", me.md, ownership=pb.OWNERSHIP_MINE) == [own.trigger]
    assert await triggers(f"/{stem}", me.md, ownership=pb.OWNERSHIP_SYSTEM) == everything[:3]
    assert await triggers(f"/{stem}", ontology.reader) == everything[:3]
    assert await triggers("/" + stem.replace("_", "%"), me.md) == []  # LIKE wildcards are literal
    # Paging walks the same list.
    page = await ontology.stub.ListCommands(pb.ListCommandsRequest(prefix=f"/{stem}", page_size=3), metadata=me.md)
    assert [c.trigger for c in page.commands] == everything[:3] and page.next_page_token
    rest = await ontology.stub.ListCommands(
        pb.ListCommandsRequest(prefix=f"/{stem}", page_size=3, page_token=page.next_page_token), metadata=me.md
    )
    assert [c.trigger for c in rest.commands] == everything[3:] and not rest.next_page_token
    failure = await rpc_error(triggers("", me.md, ownership=pb.OWNERSHIP_PUBLIC))
    assert failure.fields == {"ownership"}


async def test_commands_are_updated_and_deleted_by_their_owners(ontology: Ontology) -> None:
    agent, other_agent = await ontology.agent(), await ontology.agent()
    first, second = await ontology.skill(agent.id), await ontology.skill(agent.id)
    elsewhere = await ontology.skill(other_agent.id)
    command = await ontology.command(agent.id, first.id)
    user = ontology.user()
    failure = await rpc_error(
        ontology.stub.UpdateCommand(
            pb.UpdateCommandRequest(command=pb.Command(trigger=command.trigger, description="x")), metadata=user.md
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "COMMAND_READ_ONLY")
    updated = await ontology.stub.UpdateCommand(
        pb.UpdateCommandRequest(
            command=pb.Command(trigger=command.trigger, target_skill_id=second.id, etag=command.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["target_skill_id"]),
        ),
        metadata=ontology.admin,
    )
    assert (updated.target_skill_id, updated.agent_id) == (second.id, agent.id)
    moved = await ontology.stub.UpdateCommand(
        pb.UpdateCommandRequest(
            command=pb.Command(trigger=command.trigger, agent_id=other_agent.id, target_skill_id=elsewhere.id),
            update_mask=field_mask_pb2.FieldMask(paths=["agent_id", "target_skill_id"]),
        ),
        metadata=ontology.admin,
    )
    assert moved.agent_id == other_agent.id
    failure = await rpc_error(
        ontology.stub.DeleteCommand(
            pb.DeleteCommandRequest(trigger=command.trigger, etag=command.etag), metadata=ontology.admin
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    await ontology.stub.DeleteCommand(pb.DeleteCommandRequest(trigger=command.trigger), metadata=ontology.admin)
    failure = await rpc_error(ontology.stub.GetCommand(pb.GetCommandRequest(trigger=command.trigger), metadata=user.md))
    assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_deleting_a_skill_deletes_the_commands_that_start_it(ontology: Ontology) -> None:
    agent = await ontology.agent()
    skill = await ontology.skill(agent.id)
    command = await ontology.command(agent.id, skill.id)
    await ontology.stub.DeleteSkill(pb.DeleteSkillRequest(skill_id=skill.id), metadata=ontology.admin)
    failure = await rpc_error(
        ontology.stub.GetCommand(pb.GetCommandRequest(trigger=command.trigger), metadata=ontology.admin)
    )
    assert failure.code == grpc.StatusCode.NOT_FOUND
