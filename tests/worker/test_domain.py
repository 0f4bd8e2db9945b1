"""The worker's pure rules, without a server: templates, the order steps run in, step args, the
keys that make effects idempotent, variable patches, derived memories, the heartbeat, options."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nexus.contract.actions import ACTIONS as CONTRACT
from nexus.contract.plans import step_title
from nexus.contract.steps import PlanStep
from nexus.kit.config import ConfigError
from nexus.kit.validation import JSON
from worker import actions, health, memory, options, steps, templates
from worker.errors import StepFailure
from worker.plan import failed_step, finished, next_step

INPUTS: dict[str, JSON] = {"url": "https://acme.com", "depth": 3, "tags": ["a", "b"]}
VARS: dict[str, JSON] = {"focus": "pricing", "seen": {"b": 2, "a": 1}}


def test_templates_fill_inputs_and_variables_in_every_nested_string_and_render_json_for_non_strings() -> None:
    args: JSON = {
        "text": "Scan {{inputs.url}} at depth {{ inputs.depth }} for {{  vars.focus }}",
        "props": {"tags": "{{ inputs.tags }}", "list": ["{{ vars.seen }}", 60], "flag": True},
        "plain": "no {{ templates }} here",
    }
    assert templates.render(args, INPUTS, VARS) == {
        "text": "Scan https://acme.com at depth 3 for pricing",
        "props": {"tags": '["a","b"]', "list": ['{"a":1,"b":2}', 60], "flag": True},
        "plain": "no {{ templates }} here",
    }


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ inputs.nope }}", "args.text: template names unknown input 'nope'"),
        ("{{ vars.later }}", "args.text: template names unknown variable 'later'"),
        ("{{ secrets.key }}", "args.text: template namespace 'secrets' is neither inputs nor vars"),
    ],
)
def test_a_template_naming_something_unknown_is_a_step_failure_that_names_it(template: str, message: str) -> None:
    with pytest.raises(StepFailure) as failure:
        templates.render({"text": template}, INPUTS, VARS)
    assert (failure.value.reason, failure.value.message) == ("UNKNOWN_TEMPLATE_NAME", message)


def test_only_args_that_read_variables_need_the_context() -> None:
    assert templates.reads_variables({"a": ["x", {"b": "{{ vars.y }}"}]})
    assert not templates.reads_variables({"a": "{{ inputs.y }}", "n": 1})


def test_steps_run_in_dependency_order_an_interrupted_step_first() -> None:
    plan = [
        PlanStep("c", "message", depends_on=("a", "b")),
        PlanStep("a", "message", status="done"),
        PlanStep("b", "message", depends_on=("a",)),
    ]
    assert next_step(plan) == plan[2]  # c waits for b; display order breaks ties among runnable steps
    resumed = [
        PlanStep("a", "message", status="done"),
        PlanStep("b", "message", status="running"),
        PlanStep("c", "message"),
    ]
    assert next_step(resumed) == resumed[1]
    skipped = [PlanStep("a", "message", status="skipped"), PlanStep("b", "message", depends_on=("a",))]
    assert next_step(skipped) == skipped[1]
    assert next_step([PlanStep("a", "message", status="done")]) is None
    assert finished([PlanStep("a", "x", status="done"), PlanStep("b", "x", status="skipped")])
    assert not finished([PlanStep("a", "x", status="failed")])
    assert failed_step([PlanStep("a", "x", status="done"), PlanStep("b", "x", status="failed")]) == PlanStep(
        "b", "x", status="failed"
    )
    assert step_title("open_preview") == "Open preview"


def test_the_worker_runs_exactly_the_actions_of_the_contract() -> None:
    assert set(actions.ACTIONS) == set(CONTRACT)


@pytest.mark.parametrize(
    ("action", "args", "reason", "message"),
    [
        ("teleport", {}, "UNKNOWN_ACTION", "unknown action 'teleport'; the reference worker runs message, render, "),
        ("message", {}, "BAD_STEP_ARGS", "message: missing arg 'text'"),
        ("message", {"text": "  "}, "BAD_STEP_ARGS", "message: arg 'text' must be a non-empty string"),
        ("render", {"target_zone": "canvas", "component": "x", "props": []}, "BAD_STEP_ARGS", "render: arg 'props'"),
        ("write_memory", {"takeaways": "one"}, "BAD_STEP_ARGS", "write_memory: arg 'takeaways' must be a list"),
        ("ask_user", {"question": "Why?"}, "BAD_STEP_ARGS", "ask_user: missing arg 'variable'"),
    ],
)
def test_bad_step_args_are_step_failures(action: str, args: dict[str, object], reason: str, message: str) -> None:
    with pytest.raises(StepFailure) as failure:
        steps.check_args("s", action, args)  # type: ignore[arg-type]
    assert failure.value.reason == reason
    assert failure.value.message.startswith(message)


def test_args_beyond_the_contract_are_ignored() -> None:
    steps.check_args("s", "message", {"text": "hi", "tone": "warm"})


def test_effect_keys_are_a_function_of_task_and_step() -> None:
    assert steps.client_key("ask_focus", "question") == "worker:ask_focus:question"
    assert len(steps.client_key("s" * 64, "question")) <= 128
    first = steps.artifact_request_id("8a3f0d4e-2b1c-4d5e-9f60-718293a4b5c6", "report")
    assert first == steps.artifact_request_id("8a3f0d4e-2b1c-4d5e-9f60-718293a4b5c6", "report")
    assert first != steps.artifact_request_id("8a3f0d4e-2b1c-4d5e-9f60-718293a4b5c6", "other")
    assert first != steps.artifact_request_id("00000000-2b1c-4d5e-9f60-718293a4b5c6", "report")
    assert steps.content_type("markdown") == "text/markdown; charset=utf-8"


def merge(target: object, patch: object) -> object:
    """RFC 7386, as the runtime applies it."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}, "e": [1]}),
        ({"a": 1}, "text"),
        ("text", {"a": {"b": 1}}),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"d": 2}}}),
    ],
)
def test_setting_a_variable_replaces_its_value_even_when_both_are_objects(old: object, new: object) -> None:
    variables = {"keep": True, "v": old}
    patch = steps.set_variable_patch(variables, "v", new)  # type: ignore[arg-type]
    assert merge(variables, patch) == {"keep": True, "v": new}
    assert merge({"keep": True}, steps.set_variable_patch({"keep": True}, "v", new)) == {"keep": True, "v": new}  # type: ignore[arg-type]


def test_a_derived_memory_has_the_title_what_the_agent_said_each_answer_and_each_artifact() -> None:
    events = [
        memory.Said("system", ""),
        memory.Said("assistant", "Scanning acme.com"),
        memory.Said("assistant", "Focus?", memory.QUESTION_KIND),
        memory.Said("user", "pricing"),
        memory.Said("assistant", "Report written"),
    ]
    summary, takeaways = memory.derive("Scan · acme.com", events, ["report.md"])
    assert summary == "Scan · acme.com. Scanning acme.com … Report written"
    assert takeaways == ["Focus? → pricing", "Wrote report.md"]
    assert memory.derive("", [memory.Said("user", "hello?")]) == ("", ["Asked: hello?"])
    long_summary, _ = memory.derive("x" * 5000, [])
    assert len(long_summary) == memory.MAX_SUMMARY


def test_the_probe_is_healthy_only_while_the_loop_turns_and_the_runtime_answers(tmp_path: Path) -> None:
    path = tmp_path / "worker.heartbeat"
    assert health.check(path)[0] is False
    now = time.time()
    health.write(path, health.Beat(pid=1, time=now, runtime_ok=now, max_age_s=30, in_flight=2))
    assert health.check(path, now=now + 1) == (True, "healthy: pid 1, tasks in flight: 2")
    assert health.check(path, now=now + 31)[0] is False
    assert health.check(path, now=now + 5, max_age_s=2)[0] is False
    health.write(path, health.Beat(pid=1, time=now, runtime_ok=now - 60, max_age_s=30))
    healthy, why = health.check(path, now=now)
    assert not healthy and "runtime last answered" in why
    path.write_text("{not json")
    assert health.check(path)[0] is False


def test_options_come_from_the_environment_and_are_checked() -> None:
    env = {
        "NEXUS_WORKER_AGENTS": "a1, a2,",
        "NEXUS_WORKER_CONCURRENCY": "2",
        "NEXUS_WORKER_LEASE_S": "10",
        "NEXUS_WORKER_HEARTBEAT_FILE": "/tmp/hb",
    }
    opts = options.from_env(env)
    assert (opts.agents, opts.concurrency, opts.lease_s, opts.heartbeat_file) == (
        ("a1", "a2"),
        2,
        10.0,
        Path("/tmp/hb"),
    )
    assert opts.with_overrides(concurrency=None, lease_s=5.0).lease_s == 5.0
    for bad in ({"NEXUS_WORKER_CONCURRENCY": "1.5"}, {"NEXUS_WORKER_POLL_S": "soon"}):
        with pytest.raises(ConfigError):
            options.from_env(bad)
    for invalid in (options.Options(concurrency=0), options.Options(lease_s=0.01), options.Options(poll_s=0)):
        with pytest.raises(ConfigError):
            invalid.validate()
