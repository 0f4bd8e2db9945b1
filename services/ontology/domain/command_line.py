"""Slash-command lines: `/trigger positional… key=value key="quoted value"`.

`parse` splits a line into its trigger and arguments; `bind` turns the arguments into a skill's
typed inputs. Both are pure, so every rule of ResolveCommand is unit-tested without a server.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nexus.kit.errors import FieldViolation, InvalidArgument
from nexus.kit.validation import JSON
from services.ontology.domain.definition import InputField
from services.ontology.domain.inputs import InputError, InputType, coerce

MAX_LINE_LEN = 8192
TRIGGER = re.compile(r"/[a-z][a-z0-9_-]{0,31}")
TRIGGER_HINT = "must be '/' and 1-32 characters of a-z, 0-9, '_' or '-', starting with a letter"
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Argument:
    value: str
    # Set for `key=value`; the key is lowercased.
    name: str | None = None


@dataclass(frozen=True)
class CommandLine:
    trigger: str
    arguments: tuple[Argument, ...]


class LineError(ValueError):
    """A line that cannot be split; the message never repeats the line."""


def _tokens(text: str) -> list[tuple[str, int | None]]:
    """Whitespace-separated words with quotes removed, each with the index (in the word) where
    its first quote was, so `k="a=b"` is named and `"k=v"` is positional. Inside double quotes a
    backslash escapes `"` and `\\`; single quotes take everything literally."""
    words: list[tuple[str, int | None]] = []
    current: list[str] = []
    first_quote: int | None = None
    in_word = False
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote is not None:
            if char == quote:
                quote = None
            elif quote == '"' and char == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                i += 1
                current.append(text[i])
            else:
                current.append(char)
        elif char in "\"'":
            quote = char
            in_word = True
            if first_quote is None:
                first_quote = len(current)
        elif char.isspace():
            if in_word:
                words.append(("".join(current), first_quote))
            current, first_quote, in_word = [], None, False
        else:
            current.append(char)
            in_word = True
        i += 1
    if quote is not None:
        raise LineError("has an unterminated quote")
    if in_word:
        words.append(("".join(current), first_quote))
    return words


def parse(text: str) -> CommandLine:
    """Splits a command line; raises LineError when it is not one."""
    if len(text) > MAX_LINE_LEN:
        raise LineError(f"must be at most {MAX_LINE_LEN} characters")
    stripped = text.strip()
    if not stripped.startswith("/"):
        raise LineError("must start with a /trigger")
    words = _tokens(stripped)
    head, head_quote = words[0]
    trigger = head.lower()
    if head_quote is not None or not TRIGGER.fullmatch(trigger):
        raise LineError("does not start with a valid /trigger")
    arguments = []
    for word, quote_at in words[1:]:
        equals = word.find("=")
        unquoted_key = equals > 0 and (quote_at is None or equals < quote_at)
        if unquoted_key and _KEY.fullmatch(word[:equals]):
            arguments.append(Argument(word[equals + 1 :], word[:equals].lower()))
        else:
            arguments.append(Argument(word))
    return CommandLine(trigger, tuple(arguments))


def bind(inputs: Sequence[InputField], arguments: Sequence[Argument], *, field: str = "inputs") -> dict[str, JSON]:
    """The typed inputs of a skill from command-line arguments.

    Named arguments set their input. Positional values fill the remaining inputs in declared
    order, one word each, except that a string input after which every remaining input is
    optional takes the rest of the line (so `/ask what is a monad` and `/summarize some long
    text` need no quotes; the inputs after it keep their defaults). Values are coerced to their
    types, defaults fill the gaps, and required inputs must end up with a value. Raises
    InvalidArgument with one violation per bad input.
    """
    by_name = {item.name: item for item in inputs}
    problems: list[FieldViolation] = []
    given: dict[str, str] = {}
    positional: list[str] = []
    repeated: set[str] = set()
    for argument in arguments:
        if argument.name is None:
            positional.append(argument.value)
        elif argument.name not in by_name:
            problems.append(FieldViolation(f"{field}.{argument.name}", "is not an input of this command"))
        elif argument.name in given:
            if argument.name not in repeated:
                problems.append(FieldViolation(f"{field}.{argument.name}", "is given more than once"))
            repeated.add(argument.name)
        else:
            given[argument.name] = argument.value
    open_inputs = [item for item in inputs if item.name not in given]
    rest = rest_input(open_inputs)
    if rest is not None:
        at = open_inputs.index(rest)
        open_inputs = open_inputs[: at + 1]
        if len(positional) > at + 1:
            positional = [*positional[:at], " ".join(positional[at:])]
    if len(positional) > len(open_inputs):
        problems.append(
            FieldViolation("text", f"takes at most {len(open_inputs)} positional values, got {len(positional)}")
        )
        positional = positional[: len(open_inputs)]
    given.update({item.name: value for item, value in zip(open_inputs, positional, strict=False)})

    values: dict[str, JSON] = {}
    for item in inputs:
        path = f"{field}.{item.name}"
        if item.name in repeated:
            continue
        if item.name in given:
            if item.type is None:
                problems.append(FieldViolation(path, "has no valid type in the skill"))
                continue
            try:
                values[item.name] = coerce(item.type, given[item.name], item.allowed_values)
            except InputError as err:
                problems.append(FieldViolation(path, str(err)))
        elif item.has_default:
            values[item.name] = item.default
        elif item.required:
            problems.append(FieldViolation(path, "is required"))
    if problems:
        names = ", ".join(p.field for p in problems[:3])
        raise InvalidArgument(
            f"the command's inputs are not valid: {names}", reason="INVALID_INPUTS", violations=problems
        )
    return values


def rest_input(open_inputs: Sequence[InputField]) -> InputField | None:
    """The string input that takes the rest of a line: the first one after which every input
    is optional (has a default or is not required)."""
    for index, item in enumerate(open_inputs):
        if item.type is InputType.STRING and all(
            later.has_default or not later.required for later in open_inputs[index + 1 :]
        ):
            return item
    return None


def suggest(trigger: str, candidates: Iterable[str]) -> str | None:
    """The closest known trigger, for a did-you-mean hint: a trigger that extends what was
    typed, else the most similar one."""
    pool = sorted(set(candidates))
    extending = [c for c in pool if c.startswith(trigger)]
    if extending:
        return min(extending, key=len)
    close = difflib.get_close_matches(trigger, pool, n=1, cutoff=0.6)
    return close[0] if close else None
