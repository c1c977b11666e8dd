"""The published contract of an event: a document read off the topic must match the committed JSON Schema
(what integrators validate against) and the pydantic models it is generated from."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from orchestrators.contracts.event_models import validate_event
from orchestrators.contracts.schemas import SCHEMA_DIR


@cache
def _schema() -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMA_DIR / "event.schema.json").read_text(encoding="utf-8")))


def check_event(event: dict[str, Any]) -> None:
    """Raises AssertionError (schema) or pydantic's ValidationError (models) naming what does not match."""
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(event)'}: {e.message[:300]}"
                for e in _schema().iter_errors(event)]
    assert not problems, f"{event.get('type')} {event.get('id')} does not match schemas/event.schema.json: {problems}"
    validate_event(event)
