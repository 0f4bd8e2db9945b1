"""Skill definitions: the validation rules, as pure functions (one violation per problem)."""

from __future__ import annotations

from nexus.contract import stepgraph
from nexus.contract.steps import SkillStep
from nexus.kit.validation import JSON
from services.ontology.domain import definition
from services.ontology.domain.definition import InputField, SkillDefinition
from services.ontology.domain.inputs import InputType


def problems(defn: SkillDefinition) -> dict[str, str]:
    return {p.field: p.description for p in definition.validate(defn)}


def steps(*edges: tuple[str, list[str]]) -> tuple[SkillStep, ...]:
    return tuple(SkillStep(id=i, action="message", args={"text": "hi"}, depends_on=tuple(d)) for i, d in edges)


def field(name: str, kind: InputType | None, **kw: object) -> InputField:
    return InputField(name=name, type=kind, **kw)  # type: ignore[arg-type]


def test_a_realistic_definition_is_valid() -> None:
    defn = SkillDefinition(
        inputs=(
            field("url", InputType.URL, required=True),
            field("depth", InputType.ENUM, allowed_values=("quick", "deep"), has_default=True, default="quick"),
        ),
        steps=steps(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])),
    )
    assert problems(defn) == {}


def test_input_names_must_be_unique_identifiers() -> None:
    defn = SkillDefinition(
        inputs=(field("url", InputType.URL), field("url", InputType.STRING), field("Bad Name", InputType.STRING))
    )
    assert problems(defn) == {
        "definition.inputs[1].name": "duplicates the name of inputs[0]",
        "definition.inputs[2].name": definition.INPUT_NAME_HINT,
    }


DEFAULTS: list[tuple[InputType, JSON, bool]] = [
    (InputType.STRING, "text", True),
    (InputType.STRING, 3, False),
    (InputType.INTEGER, 3, True),
    (InputType.INTEGER, 3.5, False),
    (InputType.INTEGER, True, False),
    (InputType.INTEGER, 2**60, False),
    (InputType.NUMBER, 3.5, True),
    (InputType.NUMBER, "3.5", False),
    (InputType.BOOLEAN, False, True),
    (InputType.BOOLEAN, "false", False),
    (InputType.URL, "https://acme.com/x?y=1", True),
    (InputType.URL, "ftp://acme.com", False),
    (InputType.URL, "not a url", False),
    (InputType.JSON, {"any": ["json", 1, None]}, True),
    (InputType.JSON, None, True),
]


def test_defaults_must_match_their_type() -> None:
    for kind, default, ok in DEFAULTS:
        defn = SkillDefinition(inputs=(field("x", kind, has_default=True, default=default),))
        found = problems(defn)
        assert (found == {}) is ok, (kind, default, found)
        if not ok:
            assert set(found) == {"definition.inputs[0].default_value"}


def test_enum_inputs_need_distinct_allowed_values_and_a_default_among_them() -> None:
    defn = SkillDefinition(
        inputs=(
            field("a", InputType.ENUM),
            field("b", InputType.ENUM, allowed_values=("x", "x")),
            field("c", InputType.ENUM, allowed_values=("x", "y"), has_default=True, default="z"),
            field("d", InputType.STRING, allowed_values=("x",)),
        )
    )
    assert problems(defn) == {
        "definition.inputs[0].allowed_values": "must list at least one value for an enum input",
        "definition.inputs[1].allowed_values[1]": "is listed twice",
        "definition.inputs[2].default_value": "must be one of the allowed values",
        "definition.inputs[3].allowed_values": "is only for enum inputs",
    }


def test_step_ids_are_unique_and_depends_on_names_existing_steps() -> None:
    defn = SkillDefinition(steps=steps(("a", []), ("a", []), ("b", ["a", "ghost", "a"])))
    assert problems(defn) == {
        "definition.steps[1].id": "duplicates the id of steps[0]",
        "definition.steps[2].depends_on[1]": "names no step of this skill",
        "definition.steps[2].depends_on[2]": "names the same step twice",
    }


def test_a_cycle_is_rejected_and_the_error_names_it() -> None:
    defn = SkillDefinition(steps=steps(("start", []), ("a", ["start", "c"]), ("b", ["a"]), ("c", ["b"])))
    assert problems(defn) == {"definition.steps[1].depends_on": "forms a cycle: a → c → b → a"}


def test_a_step_that_depends_on_itself_is_a_cycle() -> None:
    assert problems(SkillDefinition(steps=steps(("loop", ["loop"])))) == {
        "definition.steps[0].depends_on": "forms a cycle: loop → loop"
    }


def test_every_separate_cycle_is_reported() -> None:
    found = stepgraph.find_cycles(steps(("a", ["b"]), ("b", ["a"]), ("x", ["y"]), ("y", ["x"]), ("z", ["a"])))
    assert found == [["a", "b"], ["x", "y"]]


def test_a_long_chain_is_checked_without_recursion() -> None:
    chain = steps(*[(f"s{i}", [f"s{i - 1}"] if i else []) for i in range(stepgraph.MAX_STEPS)])
    assert problems(SkillDefinition(steps=chain)) == {}
    looped = (SkillStep(id="s0", action="message", depends_on=(f"s{stepgraph.MAX_STEPS - 1}",)), *chain[1:])
    assert "forms a cycle" in problems(SkillDefinition(steps=looped))["definition.steps[0].depends_on"]


def test_sizes_are_bounded() -> None:
    too_many_steps = steps(*[(f"s{i}", []) for i in range(stepgraph.MAX_STEPS + 1)])
    assert set(problems(SkillDefinition(steps=too_many_steps))) == {"definition.steps"}
    too_many_inputs = tuple(field(f"i{i}", InputType.STRING) for i in range(definition.MAX_INPUTS + 1))
    assert set(problems(SkillDefinition(inputs=too_many_inputs))) == {"definition.inputs"}
    big = tuple(SkillStep(id=f"s{i}", action="message", args={"text": "x" * 5000}) for i in range(60))
    assert problems(SkillDefinition(steps=big)) == {"definition": "is larger than 262144 bytes as JSON"}


def test_actions_are_not_restricted_to_the_worker_vocabulary() -> None:
    defn = SkillDefinition(steps=(SkillStep(id="a", action="summon_unicorn"), SkillStep(id="b", action="")))
    assert problems(defn) == {"definition.steps[1].action": "is required"}


def test_the_stored_json_round_trips() -> None:
    defn = SkillDefinition(
        inputs=(field("n", InputType.INTEGER, required=True, has_default=True, default=0, description="count"),),
        steps=steps(("a", []), ("b", ["a"])),
    )
    assert SkillDefinition.from_json(defn.to_json()) == defn
