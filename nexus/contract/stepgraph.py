"""Step graphs: the structure a skill's steps and a task's plan share (DESIGN §3: a plan is
validated as a skill is). Unique ids, a named action, dependencies that exist, and no cycle,
with a cycle reported by the ids along it. Pure functions, one violation per problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from nexus.kit.errors import FieldViolation
from nexus.kit.validation import text_problem

MAX_STEPS = 256
MAX_DEPENDS_ON = 64
MAX_STEP_ID = 64
MAX_ACTION = 64
# A plan step's title (a skill step has none: it is derived from the id).
MAX_STEP_TITLE = 500
MAX_CYCLES_REPORTED = 5


class GraphStep(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def depends_on(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Rules:
    """How one kind of graph names things: the id field in its API, the id pattern, and what the
    whole is called in messages ("names no step of this plan")."""

    id_field: str
    id_pattern: re.Pattern[str]
    id_hint: str
    whole: str


def check_text(problems: list[FieldViolation], path: str, value: str, max_len: int) -> bool:
    """Appends a violation if `value` cannot be stored or is too long; True when it is fine."""
    problem = text_problem(value)
    if problem:
        problems.append(FieldViolation(path, problem))
        return False
    if len(value) > max_len:
        problems.append(FieldViolation(path, f"must be at most {max_len} characters, got {len(value)}"))
        return False
    return True


def structure_problems(steps: Sequence[GraphStep], prefix: str, rules: Rules) -> list[FieldViolation]:
    """Every structural problem of the graph; cycles are looked for only in a graph whose ids and
    dependencies are sound, so a cycle message never names a step that does not exist."""
    if len(steps) > MAX_STEPS:
        return [FieldViolation(prefix, f"must have at most {MAX_STEPS} steps, got {len(steps)}")]
    problems: list[FieldViolation] = []
    ids: dict[str, int] = {}
    for index, step in enumerate(steps):
        path = f"{prefix}[{index}]"
        id_path = f"{path}.{rules.id_field}"
        if not check_text(problems, id_path, step.id, MAX_STEP_ID):
            pass
        elif not rules.id_pattern.fullmatch(step.id):
            problems.append(FieldViolation(id_path, rules.id_hint))
        elif step.id in ids:
            problems.append(
                FieldViolation(id_path, f"duplicates the id of {prefix.rsplit('.', 1)[-1]}[{ids[step.id]}]")
            )
        else:
            ids[step.id] = index
        if check_text(problems, f"{path}.action", step.action, MAX_ACTION) and not step.action.strip():
            problems.append(FieldViolation(f"{path}.action", "is required"))
    for index, step in enumerate(steps):
        path = f"{prefix}[{index}].depends_on"
        if len(step.depends_on) > MAX_DEPENDS_ON:
            problems.append(FieldViolation(path, f"must name at most {MAX_DEPENDS_ON} steps"))
            continue
        named: set[str] = set()
        for position, dependency in enumerate(step.depends_on):
            if text_problem(dependency) or len(dependency) > MAX_STEP_ID:
                problems.append(FieldViolation(f"{path}[{position}]", "is not a valid step id"))
            elif dependency not in ids:
                problems.append(FieldViolation(f"{path}[{position}]", f"names no step of this {rules.whole}"))
            elif dependency in named:
                problems.append(FieldViolation(f"{path}[{position}]", "names the same step twice"))
            named.add(dependency)
    if problems:
        return problems
    return [
        FieldViolation(f"{prefix}[{ids[cycle[0]]}].depends_on", "forms a cycle: " + " → ".join([*cycle, cycle[0]]))
        for cycle in find_cycles(steps)[:MAX_CYCLES_REPORTED]
    ]


def find_cycles(steps: Iterable[GraphStep]) -> list[list[str]]:
    """The cycles of the dependency graph, each as the step ids along it, starting at its first
    step in declared order; each cycle once. Iterative: a hostile graph cannot exhaust the stack."""
    graph = {step.id: list(step.depends_on) for step in steps}
    order = {step_id: index for index, step_id in enumerate(graph)}
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for root in graph:
        if color[root] != white:
            continue
        path = [root]
        iterators = [iter(graph[root])]
        color[root] = grey
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                color[path.pop()] = black
                iterators.pop()
            elif nxt not in color:
                continue
            elif color[nxt] == grey:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                    cycles.append(cycle[start:] + cycle[:start])
            elif color[nxt] == white:
                color[nxt] = grey
                path.append(nxt)
                iterators.append(iter(graph[nxt]))
    return cycles
