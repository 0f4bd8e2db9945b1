"""The gateway's pure rules: titles, and how a finished task becomes a skill definition."""

from __future__ import annotations

from gateway.domain import crystallize, titles
from nexus.contract.steps import SkillStep
from nexus.kit.validation import JSON, value_to_json
from nexus.ontology.v1 import ontology_pb2 as onto


def test_command_titles_name_the_skill_and_the_arguments() -> None:
    assert titles.command_title("Scan a website", "/scan", "/scan  https://acme.com depth=deep") == (
        "Scan a website · https://acme.com depth=deep"
    )
    assert titles.command_title("", "/ask", "/ask") == "/ask"
    long = titles.command_title("Ask", "/ask", "/ask " + "word " * 100)
    assert len(long) <= titles.MAX_TITLE and long.endswith("…")


def test_chat_titles_are_the_start_of_the_first_message_on_one_line() -> None:
    assert titles.chat_title("Hello!\n\nWhat can   you do?") == "Hello! What can you do?"
    assert titles.chat_title("   ") == "Chat"
    assert titles.shorten("x" * 500) == "x" * (titles.MAX_TITLE - 1) + "…"


def test_plan_step_ids_become_unique_skill_step_ids_and_dependencies_follow() -> None:
    plan = [
        SkillStep("Fetch.Page:1", "message", {"text": "{{ inputs.url }}"}),
        SkillStep("fetch_page_1", "message", depends_on=("Fetch.Page:1",)),
        SkillStep("9lives", "render", depends_on=("fetch_page_1", "Fetch.Page:1")),
    ]
    steps = crystallize.skill_steps(plan)
    assert [s.id for s in steps] == ["fetch_page_1", "fetch_page_1_2", "s_9lives"]
    assert [list(s.depends_on) for s in steps] == [[], ["fetch_page_1"], ["fetch_page_1_2", "fetch_page_1"]]
    assert value_to_json(steps[0].args.fields["text"]) == "{{ inputs.url }}"
    long_ids = crystallize.skill_step_ids(["x" * 80 + "a", "x" * 80 + "b"])
    assert list(long_ids.values()) == ["x" * 64, "x" * 62 + "_2"]


def test_the_origin_skills_inputs_are_kept_with_the_tasks_values_as_defaults() -> None:
    url = onto.InputField(name="url", type=onto.INPUT_TYPE_URL, required=True)
    depth = onto.InputField(name="depth", type=onto.INPUT_TYPE_ENUM, allowed_values=["quick", "deep"])
    note = onto.InputField(name="note", type=onto.INPUT_TYPE_STRING)
    inputs = crystallize.skill_inputs([url, depth, note], {"url": "https://acme.com", "depth": "deep"})
    assert [(f.name, f.type, f.required) for f in inputs] == [
        ("url", onto.INPUT_TYPE_URL, False),
        ("depth", onto.INPUT_TYPE_ENUM, False),
        ("note", onto.INPUT_TYPE_STRING, False),
    ]
    assert [value_to_json(f.default_value) if f.HasField("default_value") else None for f in inputs] == [
        "https://acme.com",
        "deep",
        None,
    ]
    assert list(inputs[1].allowed_values) == ["quick", "deep"]


def test_without_an_origin_skill_inputs_are_inferred_from_the_values() -> None:
    values: dict[str, JSON] = {
        "url": "https://acme.com/x",
        "text": "hi there",
        "n": 3,
        "ratio": 0.5,
        "on": True,
        "tags": ["a"],
    }
    inputs = crystallize.skill_inputs(None, {**values, "Bad-Name": 1, "nothing": None})
    assert [(f.name, f.type) for f in inputs] == [
        ("url", onto.INPUT_TYPE_URL),
        ("text", onto.INPUT_TYPE_STRING),
        ("n", onto.INPUT_TYPE_INTEGER),
        ("ratio", onto.INPUT_TYPE_NUMBER),
        ("on", onto.INPUT_TYPE_BOOLEAN),
        ("tags", onto.INPUT_TYPE_JSON),
        ("nothing", onto.INPUT_TYPE_JSON),
    ]
    assert all(not f.required for f in inputs)
    assert [value_to_json(f.default_value) for f in inputs[:6]] == list(values.values())
    assert not inputs[6].HasField("default_value")


def test_the_description_defaults_to_one_naming_the_task() -> None:
    assert crystallize.description("", "Scan a site · https://acme.com") == (
        "Crystallized from the task “Scan a site · https://acme.com”."
    )
    assert crystallize.description("  Mine  ", "t") == "Mine"
