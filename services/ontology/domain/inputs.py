"""Skill input types: checking JSON values against a type, and coercing command-line text."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from enum import StrEnum
from urllib.parse import urlsplit

from nexus.kit.validation import JSON, json_problem, text_problem

MAX_URL_LEN = 2048
MAX_STRING_INPUT = 8192
# A JSON number is a double: integers are exact up to 2**53.
MAX_SAFE_INTEGER = 2**53

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class InputType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    URL = "url"
    ENUM = "enum"
    JSON = "json"


class InputError(ValueError):
    """A value that does not fit its input; the message describes the problem, never the value."""


def url_problem(value: str) -> str | None:
    """Why `value` is not an absolute http(s) URL, or None."""
    problem = text_problem(value)
    if problem:
        return problem
    if len(value) > MAX_URL_LEN:
        return f"must be at most {MAX_URL_LEN} characters"
    if any(c.isspace() for c in value):
        return "must be an http or https URL without spaces"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        return "must be an http or https URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http or https URL"
    return None


def value_problem(kind: InputType, value: JSON, allowed_values: Sequence[str] = ()) -> str | None:
    """Why a JSON value (a default, say) does not have type `kind`, or None."""
    if kind is InputType.STRING:
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > MAX_STRING_INPUT:
            return f"must be at most {MAX_STRING_INPUT} characters"
        return text_problem(value)
    if kind is InputType.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if abs(value) > MAX_SAFE_INTEGER:
            return "must be between -2^53 and 2^53"
        return None
    if kind is InputType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        return None
    if kind is InputType.BOOLEAN:
        return None if isinstance(value, bool) else "must be true or false"
    if kind is InputType.URL:
        return url_problem(value) if isinstance(value, str) else "must be a URL string"
    if kind is InputType.ENUM:
        if not isinstance(value, str) or value not in allowed_values:
            return "must be one of the allowed values"
        return None
    return json_problem(value)


def coerce(kind: InputType, raw: str, allowed_values: Sequence[str] = ()) -> JSON:
    """The typed value of command-line text `raw`; raises InputError when it does not fit."""
    problem = text_problem(raw)
    if problem:
        raise InputError(problem)
    value: JSON
    if kind is InputType.INTEGER:
        if not _INTEGER.fullmatch(raw):
            raise InputError("must be an integer")
        value = int(raw)
    elif kind is InputType.NUMBER:
        if not _NUMBER.fullmatch(raw):
            raise InputError("must be a number")
        value = float(raw)
        if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            value = int(value)
    elif kind is InputType.BOOLEAN:
        lowered = raw.lower()
        if lowered not in _TRUE | _FALSE:
            raise InputError("must be true or false (yes/no, on/off and 1/0 also work)")
        value = lowered in _TRUE
    elif kind is InputType.JSON:
        value = _parse_json(raw)
    elif kind is InputType.ENUM:
        value = raw
        if raw not in allowed_values:
            raise InputError("must be one of: " + ", ".join(allowed_values))
    else:
        value = raw
    problem = value_problem(kind, value, allowed_values)
    if problem:
        raise InputError(problem)
    return value


def _reject_constant(name: str) -> JSON:
    raise InputError("must be JSON without NaN or Infinity")


def _parse_json(raw: str) -> JSON:
    try:
        value: JSON = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError("must be valid JSON") from None
    return value
