"""Platform event payloads (DESIGN §6) and the problem documents that refuse them.

Validation is pydantic v2 in strict mode: a number is not a string, ``null`` is not a
name. Every bad field is named with its dotted path (``data.account.id``) and a
sentence saying what is wrong, in an RFC 9457 problem document.

Optional fields follow patch semantics: a field left out keeps what we know,
``null`` clears it. Unknown fields are ignored so the platform can add fields
without breaking delivery.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator, URLValidator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://reviewdesk.example/problems/"

# C0 and C1 control characters (CR, LF, TAB, NUL, DEL, NEL…) and the Unicode line
# and paragraph separators: none belongs in a name or an id, and CR/LF in a name
# that reaches an email header is a header injection.
_NOT_SINGLE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_WHITESPACE = re.compile(r"\s")

_email_validator = EmailValidator()
_url_validator = URLValidator(schemes=["http", "https"])


# --- field types ----------------------------------------------------------------------


def _single_line(value: str) -> str:
    found = _NOT_SINGLE_LINE.search(value)
    if found:
        raise PydanticCustomError(
            "single_line",
            "Must be a single line of text: line breaks and control characters are "
            "not allowed (found U+{code} at position {position}).",
            {"code": f"{ord(found.group()):04X}", "position": found.start() + 1},
        )
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "Must not be empty.")
    return value


def _platform_id(value: str) -> str:
    if _WHITESPACE.search(value):
        raise PydanticCustomError(
            "platform_id", "Must be the platform's id: no spaces or line breaks."
        )
    return value


def _email(value: str) -> str:
    try:
        _email_validator(value)
    except DjangoValidationError:
        raise PydanticCustomError(
            "email", "Must be a valid email address, like dev@example.com."
        ) from None
    return value


def _http_url(value: str) -> str:
    try:
        _url_validator(value)
    except DjangoValidationError:
        raise PydanticCustomError(
            "url", "Must be an http:// or https:// URL, like https://example.com."
        ) from None
    return value


def _iso_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "datetime_type",
            "Must be an ISO-8601 date and time string, like 2026-11-30T09:00:00Z.",
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError(
            "datetime_format",
            "Must be an ISO-8601 date and time, like 2026-11-30T09:00:00Z.",
        ) from None
    if parsed.tzinfo is None:
        raise PydanticCustomError(
            "datetime_timezone",
            "Must include a time zone (Z or an offset such as +01:00).",
        )
    return parsed


def _line(max_length: int) -> Any:
    return Annotated[
        str, StringConstraints(max_length=max_length), AfterValidator(_single_line)
    ]


def _required_line(max_length: int) -> Any:
    return Annotated[
        str,
        StringConstraints(max_length=max_length),
        AfterValidator(_single_line),
        AfterValidator(_not_blank),
    ]


PlatformId = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_single_line),
    AfterValidator(_not_blank),
    AfterValidator(_platform_id),
]
Email = Annotated[
    str,
    StringConstraints(max_length=254),
    AfterValidator(_single_line),
    AfterValidator(_email),
]
HttpUrl = Annotated[
    str,
    StringConstraints(max_length=2000),
    AfterValidator(_single_line),
    AfterValidator(_http_url),
]
IsoDateTime = Annotated[datetime, PlainValidator(_iso_datetime)]
Line8 = _line(8)
Line64 = _line(64)
Line100 = _line(100)
Line200 = _line(200)
RequiredLine200 = _required_line(200)


# --- payloads -------------------------------------------------------------------------


class Payload(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    def given(self, name: str) -> bool:
        """True when the platform sent this field (even as null)."""
        return name in self.model_fields_set


class AffiliatePayload(Payload):
    tastemakers_account_id: Line64 | None = None
    partner_id: Line64 | None = None


class AccountPayload(Payload):
    id: PlatformId
    name: RequiredLine200
    contact_email: Email
    contact_name: Line200 | None = None
    help_desk_account_id: Line64 | None = None
    affiliate: AffiliatePayload | None = None


class KeyReference(Payload):
    id: PlatformId


class KeyPayload(KeyReference):
    name: Line200 | None = None
    last4: Line8 | None = None
    created_at: IsoDateTime | None = None


class IntegrationPayload(Payload):
    app_name: RequiredLine200
    app_url: HttpUrl | None = None
    endpoints: list[Line100] | None = Field(default=None, max_length=50)


class KeyRequestedData(Payload):
    account: AccountPayload
    key: KeyPayload
    integration: IntegrationPayload | None = None


class KeyDeletedData(Payload):
    key: KeyReference


class AccountUpdatedData(Payload):
    account: AccountPayload


class Event(Payload):
    timestamp: IsoDateTime


class KeyRequested(Event):
    type: Literal["production_key.requested"]
    data: KeyRequestedData


class KeyDeleted(Event):
    type: Literal["production_key.deleted"]
    data: KeyDeletedData


class AccountUpdated(Event):
    type: Literal["account.updated"]
    data: AccountUpdatedData


PlatformEvent = KeyRequested | KeyDeleted | AccountUpdated

EVENT_TYPES: dict[str, type[Event]] = {
    "production_key.requested": KeyRequested,
    "production_key.deleted": KeyDeleted,
    "account.updated": AccountUpdated,
}


# --- problems -------------------------------------------------------------------------


@dataclass(eq=False)
class Problem(Exception):
    """An RFC 9457 problem: raised to refuse a request, rendered as its document."""

    status: int
    slug: str
    title: str
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # The event type, when the body said one (for the receipt, not the document).
    event_type: str = ""

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    def document(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def field_error(path: str, detail: str) -> dict[str, str]:
    return {"field": path, "detail": detail}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _sentence(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    given = _json_kind(error.get("input"))
    if kind == "missing":
        return "This field is required."
    if kind == "string_type":
        return f"Must be a string, not {given}."
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"Must be an object, not {given}."
    if kind == "list_type":
        return f"Must be an array, not {given}."
    if kind == "string_too_long":
        return f"Must be at most {ctx.get('max_length')} characters long."
    if kind == "too_long":
        return f"Must have at most {ctx.get('max_length')} items."
    if kind == "literal_error":
        return f"Must be {ctx.get('expected')}."
    return error["msg"]


def validation_problem(exc: ValidationError) -> Problem:
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        path = _path(error["loc"])
        if path in seen:
            continue
        seen.add(path)
        errors.append(field_error(path, _sentence(error)))
    named = ", ".join(item["field"] for item in errors)
    return Problem(
        status=400,
        slug="invalid-event",
        title="The event has invalid fields",
        detail=f"Fix these fields and send the event again: {named}.",
        errors=errors,
    )


def parse_event(body: bytes) -> PlatformEvent:
    """The validated event, or ``Problem`` (400 bad payload, 422 unknown type)."""
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise Problem(
            status=400,
            slug="invalid-json",
            title="The body is not JSON",
            detail=f"Send a UTF-8 JSON object ({exc}).",
        ) from None
    if not isinstance(raw, dict):
        raise Problem(
            status=400,
            slug="invalid-event",
            title="The body is not a JSON object",
            detail=f"The body is {_json_kind(raw)}; send a JSON object: "
            '{"type": …, "timestamp": …, "data": {…}}.',
        )
    event_type = raw.get("type")
    known = ", ".join(EVENT_TYPES)
    if not isinstance(event_type, str):
        detail = (
            "This field is required."
            if "type" not in raw
            else f"Must be a string, not {_json_kind(event_type)}."
        )
        raise Problem(
            status=400,
            slug="invalid-event",
            title="The event has invalid fields",
            detail=f"Say which event this is in 'type' (one of {known}).",
            errors=[field_error("type", detail)],
        )
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise Problem(
            status=422,
            slug="unknown-event-type",
            title="Unknown event type",
            detail=f"Review Desk does not handle '{event_type[:64]}' events. "
            f"Known types: {known}.",
            errors=[field_error("type", f"Must be one of {known}.")],
            event_type=event_type,
        )
    try:
        return model.model_validate(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        problem = validation_problem(exc)
        problem.event_type = event_type
        raise problem from None
