"""Replay a JSONL file of platform events against a running instance (or in-process).

Each line is either the samples' ``{"note", "expect", "event"}`` shape or a bare
event. Webhook ids are derived from the line's content, so replaying a file twice
changes nothing: the second delivery of each line gets its first answer back.

    manage.py replay_platform_events ../shared/samples/platform-events.jsonl
    manage.py replay_platform_events events.jsonl --url http://127.0.0.1:8000
    manage.py replay_platform_events events.jsonl --direct
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from standardwebhooks import Webhook

from reviews.services import platform_event_ingest

EVENTS_PATH = "/api/v1/platform-events"


@dataclass(frozen=True)
class EventLine:
    """One line of a JSONL events file, ready to deliver."""

    number: int
    webhook_id: str
    body: bytes
    note: str = ""


def webhook_id_for(content: str, salt: str = "") -> str:
    """A stable webhook id for this content: same line, same id, same answer."""
    digest = hashlib.sha256(f"{salt}\n{content}".encode()).hexdigest()[:32]
    return f"msg_{digest}"


def event_body(event: Any) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def read_event_lines(path: Path, *, salt: str = "") -> list[EventLine]:
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        note = ""
        try:
            parsed = json.loads(text)
        except ValueError:
            body = text.encode()  # not JSON: sent as is, to see it refused
        else:
            if isinstance(parsed, dict) and "event" in parsed:
                note = str(parsed.get("note") or "")
                body = event_body(parsed["event"])
            else:
                body = event_body(parsed)
        lines.append(EventLine(number, webhook_id_for(text, salt), body, note))
    return lines


def signed_headers(
    secret: str, webhook_id: str, body: bytes, *, at: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed now (or ``at``)."""
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(webhook_id, at, body.decode())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def post_event(
    url: str, secret: str, line: EventLine, *, timeout: float = 10
) -> tuple[int, dict[str, Any]]:
    headers = {
        "Content-Type": "application/json",
        **signed_headers(secret, line.webhook_id, line.body),
    }
    # The URL's scheme was checked to be http(s) by the command.
    request = urllib.request.Request(url, data=line.body, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, _json_or_text(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _json_or_text(error.read())


def _json_or_text(raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"text": raw.decode("utf-8", "replace")[:500]}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


class Command(BaseCommand):
    help = (
        "Sign and POST each event of a JSONL file to /api/v1/platform-events, or "
        "ingest them in-process with --direct. Prints one line per event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="JSONL file, one event a line")
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000",
            help="base URL of the running instance (default http://127.0.0.1:8000)",
        )
        parser.add_argument(
            "--secret",
            default=None,
            help="whsec_… signing secret (default: PLATFORM_WEBHOOK_SECRET)",
        )
        parser.add_argument(
            "--direct",
            action="store_true",
            help="call the ingest service in this process instead of POSTing",
        )
        parser.add_argument(
            "--id-salt",
            default="",
            help="mix this into the webhook ids to deliver the lines as new events",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        lines = read_event_lines(path, salt=options["id_salt"])
        secret = options["secret"] or settings.PLATFORM_WEBHOOK_SECRET
        url = options["url"].rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise CommandError(f"--url must be an http:// or https:// URL, not {url}")
        if not url.endswith(EVENTS_PATH):
            url += EVENTS_PATH
        for line in lines:
            if options["direct"]:
                answer = platform_event_ingest(
                    webhook_id=line.webhook_id, body=line.body
                )
                status, body = answer.status, answer.body
            else:
                try:
                    status, body = post_event(url, secret, line)
                except (urllib.error.URLError, OSError) as error:
                    raise CommandError(
                        f"Could not reach {url} ({error}). Is the server running? "
                        "Start it with `make run`, or use --direct."
                    ) from error
            note = f"  # {line.note}" if line.note else ""
            self.stdout.write(
                f"{line.number:>3} {status} "
                f"{json.dumps(body, ensure_ascii=False, sort_keys=True)}{note}"
            )
