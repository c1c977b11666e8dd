"""From message bytes to a JSON document, refusing what no later step could handle.

These checks act on the raw body, before any model sees it: the JSON Schemas describe the decoded document, so
none of this can be said in them (the README lists it among the rules the schemas cannot express).
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrators.contracts.rules import MAX_REPORTED_ERRORS, preview
from orchestrators.kernel.errors import FieldError, Rejected

#: Larger bodies are refused before parsing (a 10,000-artifact request is under 1 MB).
MAX_BODY_BYTES = 4_000_000
#: No field of the contract needs a number this long; longer ones are refused before Python converts them.
MAX_NUMBER_DIGITS = 30

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")


class _BadNumber(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _BadNumber(f"a number with {len(text.lstrip('-'))} digits (at most {MAX_NUMBER_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS + 10:
        raise _BadNumber(f"a number written with {len(text)} characters (at most {MAX_NUMBER_DIGITS + 10})")
    return float(text)


def _refuse_constant(name: str) -> Any:
    raise _BadNumber(f"{name}, which is not a JSON number")


def decode_body(body: bytes) -> Any:
    """Bytes to JSON, or `Rejected` saying why not, whatever the bytes: nothing here raises anything else.

    Python's parser would also take NaN and Infinity, numbers of any length (converted at great cost, or
    refused past 4,300 digits with a ValueError), nesting up to its recursion limit, and lone UTF-16
    surrogates that no later step can encode; each is refused here with the field it is in. A key given twice
    keeps its last value (as JSON Schema validators read such a document too)."""
    if not body or not body.strip():
        raise Rejected([FieldError("(body)", "the message body is empty; send a JSON object")])
    if len(body) > MAX_BODY_BYTES:
        raise Rejected([FieldError("(body)", f"the message body is {len(body)} bytes; at most {MAX_BODY_BYTES} "
                                             "are accepted (split the request)")])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            [FieldError("(body)", f"the message body is not UTF-8 text (invalid byte at offset {exc.start})")]
        ) from None
    try:
        document = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                              parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise Rejected(
            [FieldError("(body)", f"the message body is not valid JSON: {exc.msg} at line {exc.lineno} "
                                  f"column {exc.colno}")]
        ) from None
    except _BadNumber as exc:
        raise Rejected([FieldError("(body)", f"the message body holds {exc}")]) from None
    except RecursionError:
        raise Rejected([FieldError("(body)", "the message body is nested too deeply (no field of a request "
                                             "needs more than a few levels)")]) from None
    if _SURROGATE_ESCAPE.search(text):
        problems = [FieldError(path or "(body)", "must be valid Unicode text: it holds a lone UTF-16 surrogate "
                                                 f"({preview(value)})")
                    for path, value in _lone_surrogates(document)]
        if problems:
            raise Rejected(problems[:MAX_REPORTED_ERRORS])
    return document


def _lone_surrogates(document: Any) -> list[tuple[str, str]]:
    """(field path, text) of every key or string value holding a lone surrogate; iterative, any depth."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [("", document)]
    while stack and len(found) < MAX_REPORTED_ERRORS:
        path, value = stack.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                found.append((path, value))
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if _LONE_SURROGATE.search(key):
                    found.append((path or "(body)", key))
                    continue
                stack.append((where, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return sorted(found)
