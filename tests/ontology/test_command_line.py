"""Command lines: splitting, binding to typed inputs, and did-you-mean, as pure functions."""

from __future__ import annotations

import pytest

from nexus.kit.errors import InvalidArgument
from nexus.kit.validation import JSON
from services.ontology.domain import command_line
from services.ontology.domain.command_line import Argument, LineError, bind, parse, suggest
from services.ontology.domain.definition import InputField
from services.ontology.domain.inputs import MAX_SAFE_INTEGER, InputError, InputType, coerce

SCAN = (
    InputField("url", InputType.URL, required=True),
    InputField(
        "depth", InputType.ENUM, allowed_values=("quick", "standard", "deep"), has_default=True, default="standard"
    ),
)


def resolve(inputs: tuple[InputField, ...], text: str) -> dict[str, JSON]:
    return bind(inputs, parse(text).arguments)


def violations(inputs: tuple[InputField, ...], text: str) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as raised:
        resolve(inputs, text)
    assert raised.value.reason == "INVALID_INPUTS"
    return {v.field: v.description for v in raised.value.violations}


def test_parse_splits_trigger_positionals_named_and_quoted_values() -> None:
    line = parse('  /Scan https://acme.com depth=deep note="two words" \'single "quoted"\' k="a=b" "x=y"  ')
    assert line.trigger == "/scan"
    assert line.arguments == (
        Argument("https://acme.com"),
        Argument("deep", "depth"),
        Argument("two words", "note"),
        Argument('single "quoted"'),
        Argument("a=b", "k"),
        Argument("x=y"),  # a quoted `=` is not a key
    )


def test_parse_keeps_urls_with_query_strings_positional_and_handles_escapes() -> None:
    assert parse("/scan https://x.io/?a=b&c=d").arguments == (Argument("https://x.io/?a=b&c=d"),)
    assert parse(r'/say text="she said \"hi\" \\o/"').arguments == (Argument('she said "hi" \\o/', "text"),)
    assert parse('/say ""').arguments == (Argument(""),)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("scan https://x", "must start with a /trigger"),
        ("/", "does not start with a valid /trigger"),
        ("/9lives", "does not start with a valid /trigger"),
        ('/scan "unterminated', "has an unterminated quote"),
        ("/" + "x" * 40, "does not start with a valid /trigger"),
        ("/scan " + "x" * command_line.MAX_LINE_LEN, f"must be at most {command_line.MAX_LINE_LEN} characters"),
    ],
)
def test_parse_rejects_lines_that_are_not_commands(text: str, problem: str) -> None:
    with pytest.raises(LineError, match=problem):
        parse(text)


def test_positionals_fill_inputs_in_declared_order_and_defaults_apply() -> None:
    assert resolve(SCAN, "/scan https://acme.com") == {"url": "https://acme.com", "depth": "standard"}
    assert resolve(SCAN, "/scan https://acme.com deep") == {"url": "https://acme.com", "depth": "deep"}
    assert resolve(SCAN, "/scan depth=quick https://acme.com") == {"url": "https://acme.com", "depth": "quick"}


def test_a_trailing_string_input_takes_the_rest_of_the_line() -> None:
    summarize = (
        InputField("text", InputType.STRING, required=True),
        InputField("style", InputType.ENUM, allowed_values=("bullets", "tldr"), has_default=True, default="bullets"),
    )
    assert resolve(summarize, "/summarize the quick  brown fox style=tldr") == {
        "text": "the quick brown fox",
        "style": "tldr",
    }
    assert resolve(summarize, '/summarize "keep  spacing"') == {"text": "keep  spacing", "style": "bullets"}


def test_values_are_coerced_to_their_types() -> None:
    inputs = (
        InputField("n", InputType.INTEGER),
        InputField("x", InputType.NUMBER),
        InputField("b", InputType.BOOLEAN),
        InputField("j", InputType.JSON),
        InputField("s", InputType.STRING),
    )
    assert resolve(inputs, "/t n=-42 x=2.5e3 b=yes j='{\"a\": [1, true]}' s=007") == {
        "n": -42,
        "x": 2500,
        "b": True,
        "j": {"a": [1, True]},
        "s": "007",
    }


def test_each_bad_input_gets_its_own_violation() -> None:
    inputs = (
        InputField("url", InputType.URL, required=True),
        InputField("n", InputType.INTEGER),
        InputField("b", InputType.BOOLEAN),
        InputField("mode", InputType.ENUM, allowed_values=("a", "b")),
        InputField("needed", InputType.STRING, required=True),
    )
    assert violations(inputs, "/t url=ftp://x n=1.5 b=maybe mode=c n2=1 b=no") == {
        "inputs.url": "must be an absolute http or https URL",
        "inputs.n": "must be an integer",
        "inputs.b": "is given more than once",
        "inputs.mode": "must be one of: a, b",
        "inputs.n2": "is not an input of this command",
        "inputs.needed": "is required",
    }


def test_too_many_positional_values_is_a_violation_of_the_text() -> None:
    assert violations(SCAN, "/scan https://a.com deep extra") == {"text": "takes at most 2 positional values, got 3"}


def test_coercion_rejects_values_outside_the_type() -> None:
    for kind, raw in [
        (InputType.INTEGER, str(MAX_SAFE_INTEGER + 1)),
        (InputType.NUMBER, "nan"),
        (InputType.NUMBER, "1e999"),
        (InputType.JSON, "[" * 5000),
        (InputType.JSON, "NaN"),
        (InputType.JSON, "{"),
        (InputType.STRING, "nul\x00"),
        (InputType.URL, "https://exa mple.com"),
        (InputType.URL, "https://host:99999/"),
    ]:
        with pytest.raises(InputError):
            coerce(kind, raw)


def test_suggest_prefers_completions_then_close_spellings() -> None:
    known = ["/scan", "/summarize", "/ask", "/scanner"]
    assert suggest("/sca", known) == "/scan"
    assert suggest("/scna", known) == "/scan"
    assert suggest("/summarise", known) == "/summarize"
    assert suggest("/zzz", known) is None
