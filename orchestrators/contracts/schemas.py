"""The JSON Schemas (draft 2020-12) of the contract, generated from the models and committed in `schemas/`.

    python -m orchestrators.contracts.schemas           # write schemas/*.schema.json
    python -m orchestrators.contracts.schemas --check   # exit 1 when a committed schema is stale

Integrators (Logic Apps, Sentinel playbooks) validate their messages against them before sending, and the
events they receive. The service's own rules that JSON Schema cannot say are listed in the README ("Schemas").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from orchestrators.contracts.event_models import DATA_MODELS, CloudEventEnvelope
from orchestrators.contracts.requests import ActivationRequestModel, BrowseRequestModel, RestoreRequestModel

DRAFT = "https://json-schema.org/draft/2020-12/schema"
CONTRACT_VERSION = "1.1"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
_GENERATED = "Generated from orchestrators/contracts by `python -m orchestrators.contracts.schemas`; do not edit."


class _Generator(GenerateJsonSchema):
    """pydantic's generator, without the titles it derives from field names and without `default: null` (an
    optional field's absence is said by `required`)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        result = super().default_schema(schema)
        if result.get("default", ...) is None:
            result.pop("default")
        return result


def _tidy(value: Any) -> Any:
    """Descriptions written as docstrings, on one line."""
    if isinstance(value, dict):
        return {k: " ".join(v.split()) if k == "description" and isinstance(v, str) else _tidy(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    return value


def _document(name: str, title: str, description: str, body: dict[str, Any]) -> dict[str, Any]:
    body = _tidy(body)
    body.pop("title", None)
    body.pop("description", None)
    return {"$schema": DRAFT, "$id": f"urn:restore-orchestrator:schemas:{name}", "$comment": _GENERATED,
            "title": title, "description": description, "x-contract-version": CONTRACT_VERSION, **body}


def _request(model: type[BaseModel], name: str, title: str, queue: str) -> dict[str, Any]:
    body = model.model_json_schema(schema_generator=_Generator)
    description = (f"{(model.__doc__ or '').strip()} Sent to the queue {queue} as UTF-8 JSON. The service also "
                   "applies rules no JSON Schema can say (see the README, \"Schemas\"), so a body this schema "
                   "accepts may still be rejected, with a rejection event that names the field.")
    return _document(name, title, " ".join(description.split()), body)


def event_schema() -> dict[str, Any]:
    """The envelope, and for each `type` the schema of its `data` (`if` type is X `then` data is X's)."""
    envelope = CloudEventEnvelope.model_json_schema(schema_generator=_Generator)
    models = list(dict.fromkeys(DATA_MODELS.values()))
    refs, shared = models_json_schema([(m, "validation") for m in models], schema_generator=_Generator)
    definitions = {**envelope.pop("$defs", {}), **shared.get("$defs", {})}
    envelope["allOf"] = [
        {"if": {"required": ["type"], "properties": {"type": {"const": event_type}}},
         "then": {"properties": {"data": refs[(model, "validation")]}}}
        for event_type, model in DATA_MODELS.items()
    ]
    envelope["$defs"] = dict(sorted(definitions.items()))
    description = " ".join(f"{(CloudEventEnvelope.__doc__ or '').strip()} The `data` of each type holds at least "
                           "the fields its schema requires, and may hold more.".split())
    return _document("event", "Restore orchestrator event (CloudEvents 1.0)", description, envelope)


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "restore-request.schema.json": lambda: _request(RestoreRequestModel, "restore-request",
                                                    "Restore request", "restore-requests"),
    "browse-request.schema.json": lambda: _request(BrowseRequestModel, "browse-request",
                                                   "Browse request", "browse-requests"),
    "activation-request.schema.json": lambda: _request(ActivationRequestModel, "activation-request",
                                                       "Activation request", "activation-requests"),
    "event.schema.json": event_schema,
}


def render(name: str) -> str:
    return json.dumps(SCHEMAS[name](), indent=2, ensure_ascii=False) + "\n"


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """The schema files in `directory` that are missing or differ from what the models generate."""
    return [name for name in SCHEMAS
            if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != render(name)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or check) the contract's JSON Schemas.")
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed schema is stale")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="where the schemas are (default: schemas/)")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.dir)
        for name in outdated:
            print(f"{args.dir / name} is stale: run python -m orchestrators.contracts.schemas", file=sys.stderr)
        return 1 if outdated else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for name in SCHEMAS:
        (args.dir / name).write_text(render(name), encoding="utf-8")
        print(args.dir / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
