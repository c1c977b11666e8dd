"""From pydantic's validation errors to the contract's `errors` [{`field`, `message`}].

Rule errors carry our own wording already (the models raise `PydanticCustomError` of type `contract`); the errors
pydantic reports itself about the shape of a document (an unknown field, a missing one, an array item that is no
object) are worded here. Paths follow the contract: `artifacts[3].restorePointId`, `selection.users[0]`, and
`(body)` for the document as a whole. The order is the one a person fixes a request in, and the one the service
has always used: at each level the unknown fields first (by name), then the fields in the contract's order, array
items by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestrators.contracts.rules import MAX_REPORTED_ERRORS, json_type
from orchestrators.kernel.errors import FieldError

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails, InitErrorDetails

#: The pydantic error type of every rule error the models raise (its message is the contract's).
CONTRACT_ERROR = "contract"

_REQUESTS = {"restore": "a restore request", "browse": "a browse request", "activation": "an activation request"}
#: Unknown fields, by the path of the object they were found in ("*" is any array position).
_UNKNOWN_FIELD: dict[tuple[str, ...], str] = {
    (): "is not a field of {kind} (check the spelling)",
    ("artifacts", "*"): "is not a field of an artifact (check the spelling)",
    ("selection",): "is not a field of a selection (check the spelling)",
}
_MISSING: dict[tuple[str, ...], str] = {
    ("artifacts", "*", "restorePointId"): "is required and must be a non-empty string",
    ("selection", "pointInTime"): "is required: the instant to restore to, ISO 8601 with a zone",
    ("restorePointIds",): "is required: a list of 1 to 100 restore point ids",
}
_NOT_AN_OBJECT: dict[tuple[str, ...], str] = {
    ("artifacts", "*"): "must be an object with a restorePointId, got {type}",
}


def field_path(loc: Sequence[str | int]) -> str:
    """`("artifacts", 3, "restorePointId")` -> `artifacts[3].restorePointId`; the empty location is `(body)`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "(body)"


def _pattern(loc: Sequence[str | int]) -> tuple[str, ...]:
    return tuple("*" if isinstance(part, int) else part for part in loc)


def _message(error: ErrorDetails, kind: str) -> str:
    loc, kind_of_error = error["loc"], error["type"]
    if kind_of_error == CONTRACT_ERROR:
        return error["msg"]
    if kind_of_error == "extra_forbidden" and (template := _UNKNOWN_FIELD.get(_pattern(loc[:-1]))):
        return template.format(kind=_REQUESTS[kind])
    if kind_of_error == "missing" and (text := _MISSING.get(_pattern(loc))):
        return text
    if kind_of_error in ("dict_type", "model_type") and (template := _NOT_AN_OBJECT.get(_pattern(loc))):
        return template.format(type=json_type(error["input"]))
    return error["msg"]  # a shape the contract has no wording for: pydantic's own (never seen in the tests)


def _in_contract_order(errors: list[ErrorDetails], depth: int = 0) -> list[ErrorDetails]:
    """Unknown fields of this level first (by name), then the rest grouped by field in the order first reported,
    array items by position; the same one level down within each group."""
    unknown: list[ErrorDetails] = []
    groups: dict[Any, list[ErrorDetails]] = {}
    for error in errors:
        loc = error["loc"]
        if len(loc) == depth + 1 and error["type"] == "extra_forbidden":
            unknown.append(error)
        else:
            groups.setdefault(loc[depth] if len(loc) > depth else None, []).append(error)
    ordered = sorted(unknown, key=lambda e: str(e["loc"][depth]))
    keys = list(groups)
    if any(isinstance(k, int) for k in keys):
        keys.sort(key=lambda k: -1 if k is None else k)
    for key in keys:
        members = groups[key]
        ordered.extend(members if key is None or len(members) == 1 else _in_contract_order(members, depth + 1))
    return ordered


def field_errors(exc: ValidationError, kind: str, limit: int | None = MAX_REPORTED_ERRORS) -> list[FieldError]:
    """The contract's errors for a rejected request of `kind` (`restore`, `browse` or `activation`), at most
    `limit` of them and then one `(more)` entry that counts the rest."""
    errors = _in_contract_order(exc.errors(include_url=False, include_context=False))
    found = [FieldError(field_path(e["loc"]), _message(e, kind)) for e in errors]
    if limit is not None and len(found) > limit:
        dropped = len(found) - limit
        found = [*found[:limit], FieldError("(more)", f"{dropped} further problems were not listed")]
    return found


# -- for the models' cross-field rules ------------------------------------------------------------------------

def rule_error(loc: tuple[str | int, ...], message: str, value: Any = None) -> InitErrorDetails:
    """One rule error to report together with what pydantic found (see `combined`)."""
    from pydantic_core import PydanticCustomError

    return {"type": PydanticCustomError(CONTRACT_ERROR, message), "loc": loc, "input": value}


def reported(exc: ValidationError | None) -> list[InitErrorDetails]:
    """The errors of a failed validation, in a form `combined` can raise again with more."""
    if exc is None:
        return []
    from pydantic_core import PydanticCustomError

    return [{"type": PydanticCustomError(e["type"], e["msg"]), "loc": e["loc"], "input": e["input"]}
            for e in exc.errors(include_url=False, include_context=False)]


def combined(title: str, errors: list[InitErrorDetails]) -> ValidationError:
    """One ValidationError holding every problem: what the fields reported and what the object's rules add, so a
    sender learns of all of them in one round trip."""
    from pydantic import ValidationError

    return ValidationError.from_exception_data(title, errors)
