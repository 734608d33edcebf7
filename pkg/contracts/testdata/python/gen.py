"""Writes the Python-side fixtures of pkg/contracts' golden tests.

The model below restates the fields of the Python messagekit's BaseEvent
(core/contracts/base_event.py: pydantic, camelCase alias generator,
populate_by_name) and a business event derived from it; to_message() there is
model_dump(mode="json", by_alias=True). Run with pydantic 2:

    python3 gen.py

Files:
  *.flat.json         model_dump_json(by_alias=True): the compact flat shape,
                      what a Go producer in flat mode writes byte for byte.
  *.flat-dumps.json   json.dumps(to_message()): the same event as a JSON
                      column written by SQLAlchemy holds it (", " and ": ").
  *.flat-offset.json  occurredAt written with "+00:00" (datetime.isoformat()).
  *.nested.json       the same event in messagekit-go's nested shape
                      (DESIGN.md §3): business fields under "data", occurredAt
                      with six fractional digits, unset ids omitted.
"""

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Base(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    event_id: UUID
    event_type: str
    aggregate_id: str
    occurred_at: datetime
    source: str
    data_version: str = "1.0"
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class UserCreated(Base):
    user_id: int
    email: str
    display_name: str
    roles: list[str]


EVENTS = {
    "user_created": UserCreated(
        event_id=UUID("0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8a"),
        event_type="identity.user.created",
        aggregate_id="user-42",
        occurred_at=datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC),
        source="identity-service",
        user_id=42,
        email="ada@example.com",
        display_name="Ada Lovelace é",
        roles=["admin", "author"],
    ),
    "user_created_correlated": UserCreated(
        event_id=UUID("0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8b"),
        event_type="identity.user.created",
        aggregate_id="user-43",
        occurred_at=datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC),
        source="identity-service",
        data_version="2.1",
        correlation_id=UUID("0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8c"),
        causation_id=UUID("0192f0c1-5a3e-7c2d-9b1a-3f4e5d6c7b8d"),
        metadata={"tenant": "t1"},
        user_id=43,
        email="grace@example.com",
        display_name="Grace",
        roles=[],
    ),
}

for name, event in EVENTS.items():
    with open(f"{name}.flat.json", "w", encoding="utf-8") as f:
        f.write(event.model_dump_json(by_alias=True))
    with open(f"{name}.flat-dumps.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(event.to_message()))
    msg = event.to_message()
    msg["occurredAt"] = event.occurred_at.isoformat()
    with open(f"{name}.flat-offset.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(msg))

ENVELOPE_FIELDS = set(Base.model_fields)

for name, event in EVENTS.items():
    flat = event.to_message()
    nested = {}
    for field in Base.model_fields:
        key = to_camel(field)
        if flat[key] is not None:
            nested[key] = flat[key]
    nested["occurredAt"] = event.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    nested["data"] = {to_camel(f): flat[to_camel(f)] for f in type(event).model_fields if f not in ENVELOPE_FIELDS}
    with open(f"{name}.nested.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(nested, separators=(",", ":"), ensure_ascii=False))
