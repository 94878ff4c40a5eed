"""Production-shaped Review Desk data, written as PostgreSQL ``COPY`` text.

One pass over the cases in submission order writes every table (partners, their
contact addresses, keys, cases, check rows, audit events, outbox rows, denial
reasons) to *sinks*: a live ``COPY`` stream per table (``bench/load.py``) or an
in-memory buffer copied afterwards (tests). Everything random comes from one
seeded ``random.Random``, so the same ``n``/``seed``/``now`` give the same rows.

Shape (DESIGN §3, issue 4): about ``n/5`` partners, one key per case; decided
cases span three years and are the oldest; open cases are the newest (the last
three days): ``n/100`` queued, ``n/500`` in review, ``n/2000`` escalated; a denied
partner often resubmits (``previous_case``/``attempt``); 4 check rows per case,
6 for affiliate partners; 1–5 audit events per case; one sent email per decision;
1–2 frozen denial reasons per denied case.

Two partners exist for the case page: ``acct_bench_short`` holds one case in
review (two events) and ``acct_bench_long`` a case in review after 29 denied
attempts, with 300 events of its own. Both cases are held by the main reviewer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import NOT_PROVIDED

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
HISTORY_DAYS = 3 * 365
OPEN_WINDOW = 3 * DAY
NULL = "\\N"

LONG_ACCOUNT = "acct_bench_long"
SHORT_ACCOUNT = "acct_bench_short"
LONG_ATTEMPTS = 30
LONG_EVENTS = 300

# Audit codes (reviews/audit.py), repeated here so generating stays import-light.
OPENED = "reviews.case.opened"
RESUBMITTED = "reviews.case.resubmitted"
CLAIMED = "reviews.case.claimed"
RELEASED = "reviews.case.released"
ESCALATED = "reviews.case.escalated"
CHECK_RECORDED = "reviews.case.check_recorded"
APPROVED = "reviews.case.approved"
DENIED = "reviews.case.denied"
WITHDRAWN = "reviews.case.withdrawn"
ACCOUNT_CREATED = "accounts.account.created"
EMAIL_SENT = "reviews.email.sent"


def ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def copy_escape(text: str) -> str:
    """Text for COPY's text format."""
    return (
        text.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def reference(case_id: int) -> str:
    return f"RC-{case_id:06d}"


# --- tables -------------------------------------------------------------------


def _default_text(field) -> str | None:
    """COPY text of a model field's default, or None to leave it to the database."""
    if getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED:
        return None
    value = field.get_default()
    if value is None:
        if not field.null:
            raise RuntimeError(
                f"bench/datagen.py does not know how to fill {field.model.__name__}."
                f"{field.name} (no default, not null): add it to the generator."
            )
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict | list):
        return copy_escape(json.dumps(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return copy_escape(str(value))


class Table:
    """A model's table: the columns the generator writes, then the model's others.

    Columns the generator does not know (added to the model later) get the model
    field's default, so the loader keeps working as the schema grows.
    """

    def __init__(self, model, columns: list[str]):
        self.model = model
        self.name = model._meta.db_table
        fields = {field.column: field for field in model._meta.concrete_fields}
        unknown = [column for column in columns if column not in fields]
        if unknown:
            raise RuntimeError(f"{self.name} has no column(s) {unknown}")
        extra_columns, extra_values = [], []
        for column, field in fields.items():
            if column in columns:
                continue
            text = _default_text(field)
            if text is not None:
                extra_columns.append(column)
                extra_values.append(text)
        self.columns = [*columns, *extra_columns]
        self.suffix = "".join("\t" + value for value in extra_values)

    def copy_sql(self, *, freeze: bool = False) -> str:
        columns = ", ".join(f'"{column}"' for column in self.columns)
        options = " WITH (FREEZE)" if freeze else ""
        return f'COPY "{self.name}" ({columns}) FROM STDIN{options}'


def tables() -> dict[str, Table]:
    from accounts.models import DeveloperAccount, DeveloperAccountEmail
    from reviews.models import (
        ApiKey,
        CaseDenialReason,
        CaseEvent,
        CheckResult,
        Notification,
        ReviewCase,
    )

    return {
        "account": Table(
            DeveloperAccount,
            [
                "id",
                "platform_account_id",
                "name",
                "contact_email",
                "contact_name",
                "help_desk_account_id",
                "wants_affiliate",
                "tastemakers_account_id",
                "affiliate_partner_id",
                "created_at",
                "updated_at",
            ],
        ),
        "email": Table(
            DeveloperAccountEmail, ["id", "account_id", "email", "first_seen_at"]
        ),
        "key": Table(
            ApiKey,
            [
                "id",
                "platform_key_id",
                "account_id",
                "name",
                "last4",
                "platform_created_at",
                "status",
                "status_changed_at",
                "created_at",
            ],
        ),
        "case": Table(
            ReviewCase,
            [
                "id",
                "key_id",
                "account_id",
                "state",
                "attempt",
                "previous_case_id",
                "wants_affiliate",
                "integration",
                "submitted_at",
                "assignee_id",
                "claimed_at",
                "last_activity_at",
                "escalation_note",
                "decided_by_id",
                "decided_at",
                "state_changed_at",
            ],
        ),
        "check": Table(
            CheckResult,
            [
                "id",
                "case_id",
                "criterion_id",
                "result",
                "note",
                "checked_by_id",
                "checked_at",
                "version",
            ],
        ),
        "event": Table(
            CaseEvent,
            [
                "id",
                "case_id",
                "account_id",
                "code",
                "actor_id",
                "actor_kind",
                "from_state",
                "to_state",
                "payload",
                "created_at",
            ],
        ),
        "notification": Table(
            Notification,
            [
                "id",
                "case_id",
                "kind",
                "to_email",
                "to_name",
                "status",
                "delivery_status",
                "delivery_status_at",
                "attempts",
                "last_error",
                "provider_message_id",
                "subject",
                "body_text",
                "body_html",
                "times_sent",
                "created_at",
                "sent_at",
                "updated_at",
            ],
        ),
        "denial": Table(
            CaseDenialReason,
            ["id", "case_id", "reason_id", "title", "support_text", "detail"],
        ),
    }


TABLE_ORDER = [
    "account",
    "email",
    "key",
    "case",
    "check",
    "event",
    "notification",
    "denial",
]


# --- sinks --------------------------------------------------------------------


class BufferSink:
    """Keeps the rows; ``copy_into`` sends them in one COPY (small loads, tests)."""

    def __init__(self, table: Table):
        self.table = table
        self.parts: list[str] = []
        self.rows = 0

    def write(self, line: str) -> None:
        self.parts.append(line)
        self.rows += 1

    def copy_into(self, cursor) -> None:
        with cursor.copy(self.table.copy_sql()) as copy:
            for start in range(0, len(self.parts), 20000):
                copy.write("".join(self.parts[start : start + 20000]))
        self.parts = []


class CopySink:
    """A live COPY on its own connection, fed in chunks while the rows are made."""

    def __init__(self, conninfo: str, table: Table, *, truncate: bool):
        import psycopg

        self.table = table
        self.rows = 0
        self._parts: list[str] = []
        self._conn = psycopg.connect(conninfo)
        cursor = self._conn.cursor()
        cursor.execute("SET synchronous_commit = off")
        if truncate:
            # Same transaction as the COPY: FREEZE writes frozen, all-visible rows.
            cursor.execute(f'TRUNCATE "{table.name}"')
        self._context = cursor.copy(table.copy_sql(freeze=truncate))
        self._copy = self._context.__enter__()

    def write(self, line: str) -> None:
        self._parts.append(line)
        if len(self._parts) >= 4000:
            self._flush()

    def _flush(self) -> None:
        self._copy.write("".join(self._parts))
        self.rows += len(self._parts)
        self._parts = []

    def close(self) -> None:
        self._flush()
        self._context.__exit__(None, None, None)
        self._conn.commit()
        self._conn.close()

    def abort(self) -> None:
        try:
            self._conn.cancel()
        finally:
            self._conn.close()


# --- inputs -------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    core: tuple[int, ...]
    affiliate: tuple[int, ...]
    codes: dict[int, str]
    # criterion id -> ((reason id, title, support text), ...), texts COPY-escaped
    reasons: dict[int, tuple[tuple[int, str, str], ...]]

    @classmethod
    def from_db(cls) -> Catalogue:
        from reviews.models import Criterion, DenialReason

        criteria = list(
            Criterion.objects.filter(is_active=True).order_by("order", "id")
        )
        reasons: dict[int, list[tuple[int, str, str]]] = {}
        for reason in DenialReason.objects.filter(is_active=True).order_by("order"):
            reasons.setdefault(reason.criterion_id, []).append(
                (reason.pk, copy_escape(reason.title), copy_escape(reason.support_text))
            )
        return cls(
            core=tuple(c.pk for c in criteria if c.applies_to == "all"),
            affiliate=tuple(c.pk for c in criteria if c.applies_to == "affiliate"),
            codes={c.pk: c.code for c in criteria},
            reasons={k: tuple(v) for k, v in reasons.items()},
        )


@dataclass(frozen=True)
class Staff:
    reviewers: tuple[int, ...]
    seniors: tuple[int, ...]
    main_reviewer: int


FIRST = [
    ("Sam", "sam"),
    ("Alex", "alex"),
    ("Priya", "priya"),
    ("Chen", "chen"),
    ("Zoë", "zoe"),
    ("José", "jose"),
    ("Fatima", "fatima"),
    ("Noah", "noah"),
    ("Ingrid", "ingrid"),
    ("Kofi", "kofi"),
    ("Mia", "mia"),
    ("Lars", "lars"),
    ("Aiko", "aiko"),
    ("Omar", "omar"),
    ("Léa", "lea"),
    ("Ravi", "ravi"),
]
LAST = [
    ("Rivera", "rivera"),
    ("Okafor", "okafor"),
    ("Müller", "muller"),
    ("Nguyen", "nguyen"),
    ("Smith", "smith"),
    ("García", "garcia"),
    ("Kowalski", "kowalski"),
    ("Tanaka", "tanaka"),
    ("Haddad", "haddad"),
    ("Johansson", "johansson"),
    ("Patel", "patel"),
    ("Dubois", "dubois"),
]
ADJECTIVES = [
    "Pantry",
    "Weeknight",
    "Fresh",
    "Green",
    "Urban",
    "Smart",
    "Happy",
    "Quick",
    "Golden",
    "Little",
    "Crème",
    "Northern",
]
NOUNS = [
    "Planner",
    "Recipes",
    "Basket",
    "Kitchen",
    "Grocer",
    "Meals",
    "Table",
    "Harvest",
    "Cart",
    "Spoon",
]
SUFFIXES = ["Inc.", "Ltd", "GmbH", "LLC", "Labs", "Co.", "SAS", "Apps"]
KEY_NAMES = ["Production", "Prod web", "iOS app", "Android app", "Backend", "Prod"]
ENDPOINT_SETS = [
    '["products_link"]',
    '["recipe"]',
    '["products_link", "recipe"]',
    '["recipe", "retailers"]',
    '["products_link", "recipe", "retailers"]',
]
ESCALATION_NOTES = [
    "Affiliate id on requests does not match the partner record; needs a senior.",
    "Terms question: is showing prices in a newsletter allowed?",
    "Help desk id belongs to another organisation.",
]


@dataclass
class Bases:
    """First id to use per table (1 after a truncate)."""

    account: int = 1
    email: int = 1
    key: int = 1
    case: int = 1
    check: int = 1
    event: int = 1
    notification: int = 1
    denial: int = 1


# --- the generator ------------------------------------------------------------


class Generator:
    def __init__(
        self,
        *,
        n: int,
        seed: int,
        now: float,
        catalogue: Catalogue,
        staff: Staff,
        bases: Bases,
        progress: Callable[[int, int], None] | None = None,
    ):
        if n < 100:
            raise ValueError("n must be at least 100")
        self.n = n
        self.now = now
        self.cat = catalogue
        self.staff = staff
        self.rng = random.Random(seed)
        self.ids = bases
        self.progress = progress
        self.counts: dict[str, int] = dict.fromkeys(TABLE_ORDER, 0)

    # ids
    def _next(self, table: str) -> int:
        value = getattr(self.ids, table)
        setattr(self.ids, table, value + 1)
        self.counts[table] += 1
        return value

    def run(self, out: dict) -> dict[str, int]:
        self.out = out
        rng = self.rng
        now = self.now
        specials = LONG_ATTEMPTS + 1
        n_regular = self.n - specials
        queued = max(5, n_regular // 100)
        in_review = max(2, n_regular // 500)
        escalated = max(1, n_regular // 2000)
        n_open = queued + in_review + escalated
        n_decided = n_regular - n_open
        n_accounts = max(1, n_regular // 5)

        # Submission times: decided history first (oldest), then the open window.
        start = now - HISTORY_DAYS * DAY
        history_end = now - OPEN_WINDOW
        times = sorted(rng.uniform(start, history_end) for _ in range(n_decided))
        times += sorted(rng.uniform(history_end, now - MINUTE) for _ in range(n_open))
        # Every partner has at least one case; the rest are spread at random.
        owner = list(range(n_accounts)) + [
            rng.randrange(n_accounts) for _ in range(n_regular - n_accounts)
        ]
        rng.shuffle(owner)
        first_time = [0.0] * n_accounts
        seen = bytearray(n_accounts)
        for index, account in enumerate(owner):
            if not seen[account]:
                seen[account] = 1
                first_time[account] = times[index]

        self.account_ids: list[int] = []
        self.contact: list[tuple[str, str]] = []
        self.affiliate = bytearray(n_accounts + 2)
        for index in range(n_accounts):
            self._account(index, first_time[index] - rng.uniform(1, 30) * DAY)

        # The open cases: in review / escalated are the oldest open ones.
        escalated_slots = set(rng.sample(range(in_review + escalated), escalated))
        last_case = [0] * n_accounts
        last_state = [""] * n_accounts
        last_decided = [0.0] * n_accounts
        last_attempt = [0] * n_accounts
        reviewers = self.staff.reviewers
        deciders = self.staff.reviewers + self.staff.seniors
        for index in range(n_regular):
            account = owner[index]
            submitted = times[index]
            previous, attempt = None, 1
            if (
                last_state[account] == "denied"
                and last_decided[account] < submitted
                and rng.random() < 0.7
            ):
                previous = last_case[account]
                attempt = last_attempt[account] + 1
            if index < n_decided:
                roll = rng.random()
                if roll < 0.03:
                    state = "withdrawn"
                elif roll < (0.8 if previous else 0.66):
                    state = "approved"
                else:
                    state = "denied"
            else:
                slot = index - n_decided
                if slot < in_review + escalated:
                    state = "escalated" if slot in escalated_slots else "in_review"
                else:
                    state = "queued"
            person = (
                rng.choice(reviewers) if state == "in_review" else rng.choice(deciders)
            )
            case_id, decided_at = self._case(
                key_number=index + 1,
                account=account,
                submitted=submitted,
                state=state,
                attempt=attempt,
                previous=previous,
                person=person,
            )
            last_case[account] = case_id
            last_state[account] = state
            last_decided[account] = decided_at or now
            last_attempt[account] = attempt
            if self.progress and index % 50000 == 0:
                self.progress(index, self.n)

        self._specials(n_regular)
        if self.progress:
            self.progress(self.n, self.n)
        return self.counts

    # --- rows ---------------------------------------------------------------------

    def _account(
        self,
        index: int,
        created: float,
        *,
        platform_id: str | None = None,
        name: str | None = None,
        person: tuple[str, str] | None = None,
        email: str | None = None,
        affiliate: bool | None = None,
    ) -> int:
        rng = self.rng
        account_id = self._next("account")
        first = rng.choice(FIRST)
        last = rng.choice(LAST)
        adjective = rng.choice(ADJECTIVES)
        noun = rng.choice(NOUNS)
        if name is None:
            name = f"{adjective} {noun} {rng.choice(SUFFIXES)}"
        contact_name = person[0] if person else f"{first[0]} {last[0]}"
        if email is None:
            email = (
                f"{first[1]}.{last[1]}{account_id}@"
                f"{adjective.lower().replace('è', 'e')}-{noun.lower()}.example"
            )
        wants = (rng.random() < 0.25) if affiliate is None else affiliate
        self.affiliate[index] = wants
        self.account_ids.append(account_id)
        platform_id = platform_id or f"acct_{account_id:07d}"
        self.contact.append((email, contact_name))
        created_text = ts(created)
        self.out["account"].write(
            f"{account_id}\t{platform_id}\t{name}\t{email}"
            f"\t{contact_name}\tHD-{50000 + account_id}\t{'t' if wants else 'f'}"
            f"\t{f'TM-{account_id}' if wants else ''}"
            f"\t{5000000 + account_id if wants else ''}\t{created_text}"
            f"\t{created_text}{self.out['account'].table.suffix}\n"
        )
        email_sink = self.out["email"]
        if rng.random() < 0.1:
            # A former contact address support may still be given.
            old = f"{first[1]}{account_id}@old-{noun.lower()}.example"
            email_sink.write(
                f"{self._next('email')}\t{account_id}\t{old}"
                f"\t{ts(created - 200 * DAY)}{email_sink.table.suffix}\n"
            )
        email_sink.write(
            f"{self._next('email')}\t{account_id}\t{email.lower()}"
            f"\t{created_text}{email_sink.table.suffix}\n"
        )
        self._event(
            None,
            account_id,
            ACCOUNT_CREATED,
            None,
            "platform",
            "",
            "",
            f'{{"platform_account_id": "{platform_id}"}}',
            created,
        )
        return account_id

    def _event(
        self,
        case_id,
        account_id,
        code,
        actor,
        actor_kind,
        from_state,
        to_state,
        payload,
        at,
    ) -> None:
        sink = self.out["event"]
        sink.write(
            f"{self._next('event')}\t{NULL if case_id is None else case_id}"
            f"\t{account_id}\t{code}\t{NULL if actor is None else actor}\t{actor_kind}"
            f"\t{from_state}\t{to_state}\t{payload}\t{ts(at)}{sink.table.suffix}\n"
        )

    def _case(
        self,
        *,
        key_number: int,
        account: int,
        submitted: float,
        state: str,
        attempt: int,
        previous: int | None,
        person: int,
        claimed: float | None = None,
    ) -> tuple[int, float | None]:
        """Write one case with its key, checks, events, email and reasons."""
        rng = self.rng
        now = self.now
        out = self.out
        case_id = self._next("case")
        key_id = self._next("key")
        account_id = self.account_ids[account]
        wants = self.affiliate[account]
        platform_key = f"pk_{key_number:07d}"
        criteria = self.cat.core + self.cat.affiliate if wants else self.cat.core

        assignee = claimed_at = activity = decided_by = decided_at = None
        note = ""
        if state in ("approved", "denied"):
            claimed_at = claimed or submitted + rng.uniform(0.5 * HOUR, 30 * HOUR)
            decided_at = claimed_at + rng.uniform(5 * MINUTE, 3 * HOUR)
            activity = decided_at
            assignee = decided_by = person
            changed = decided_at
        elif state == "withdrawn":
            changed = submitted + rng.uniform(HOUR, 48 * HOUR)
        elif state == "in_review":
            claimed_at = claimed or max(
                submitted + MINUTE, now - rng.uniform(MINUTE, 25 * MINUTE)
            )
            activity = claimed_at + (now - claimed_at) * rng.random()
            assignee = person
            changed = claimed_at
        elif state == "escalated":
            claimed_at = submitted + (now - submitted) * rng.uniform(0.1, 0.5)
            changed = claimed_at + (now - claimed_at) * rng.uniform(0.05, 0.5)
            note = rng.choice(ESCALATION_NOTES)
        else:  # queued
            changed = submitted
        # Escalating hands the case back: no assignee, no claim on the row, but
        # the claim stays in the history.
        claim_time = claimed_at
        if state == "escalated":
            claimed_at = None

        key_status = {
            "approved": "active",
            "denied": "denied",
            "withdrawn": "withdrawn",
        }.get(state, "pending_approval")
        key_changed = changed
        if key_status == "active" and rng.random() < 0.03:
            key_status = "revoked"
            key_changed = min(now, changed + rng.uniform(DAY, 200 * DAY))
        key_sink = out["key"]
        key_sink.write(
            f"{key_id}\t{platform_key}\t{account_id}\t{rng.choice(KEY_NAMES)}"
            f"\t{rng.getrandbits(16):04x}\t{ts(submitted - rng.uniform(60, 3600))}"
            f"\t{key_status}\t{ts(key_changed)}\t{ts(submitted)}{key_sink.table.suffix}\n"
        )
        app = f"App {account_id}"
        integration = (
            f'{{"app_name": "{app}", "app_url": "https://app{account_id}.example",'
            f' "endpoints": {rng.choice(ENDPOINT_SETS)}}}'
        )
        case_sink = out["case"]
        case_sink.write(
            f"{case_id}\t{key_id}\t{account_id}\t{state}\t{attempt}"
            f"\t{NULL if previous is None else previous}\t{'t' if wants else 'f'}"
            f"\t{integration}\t{ts(submitted)}"
            f"\t{NULL if assignee is None else assignee}"
            f"\t{NULL if claimed_at is None else ts(claimed_at)}"
            f"\t{NULL if activity is None else ts(activity)}\t{note}"
            f"\t{NULL if decided_by is None else decided_by}"
            f"\t{NULL if decided_at is None else ts(decided_at)}\t{ts(changed)}"
            f"{case_sink.table.suffix}\n"
        )

        # Checklist.
        failed: list[int] = []
        if state == "denied":
            candidates = [c for c in criteria if c in self.cat.reasons]
            failed = rng.sample(candidates, 1 if rng.random() < 0.7 else 2)
        checked_upto = len(criteria)
        if state in ("queued", "withdrawn"):
            checked_upto = 0
        elif state in ("in_review", "escalated"):
            checked_upto = rng.randrange(len(criteria) + 1)
        check_sink = out["check"]
        suffix = check_sink.table.suffix
        check_end = decided_at or activity or changed
        for position, criterion in enumerate(criteria):
            check_id = self._next("check")
            if position < checked_upto:
                result = "fail" if criterion in failed else "pass"
                check_note = "Seen in development traffic." if result == "fail" else ""
                checked_at = ts(
                    claim_time + (check_end - claim_time) * rng.uniform(0.1, 0.9)
                )
                check_sink.write(
                    f"{check_id}\t{case_id}\t{criterion}\t{result}\t{check_note}"
                    f"\t{assignee or person}\t{checked_at}\t1{suffix}\n"
                )
            else:
                check_sink.write(
                    f"{check_id}\t{case_id}\t{criterion}\tunchecked\t\t{NULL}"
                    f"\t{NULL}\t0{suffix}\n"
                )

        # Audit trail.
        previous_ref = f'"{reference(previous)}"' if previous else "null"
        self._event(
            case_id,
            account_id,
            RESUBMITTED if previous else OPENED,
            None,
            "platform",
            "",
            "queued",
            f'{{"key": "{platform_key}", "attempt": {attempt}, '
            f'"previous_case": {previous_ref}}}',
            submitted,
        )
        if state == "withdrawn":
            self._event(
                case_id,
                account_id,
                WITHDRAWN,
                None,
                "platform",
                "queued",
                "withdrawn",
                f'{{"key": "{platform_key}", "note": ""}}',
                changed,
            )
        if claim_time is not None:
            self._event(
                case_id,
                account_id,
                CLAIMED,
                person,
                "user",
                "queued",
                "in_review",
                "{}",
                claim_time,
            )
        if checked_upto and (state != "approved" or rng.random() < 0.5):
            criterion = failed[0] if failed else criteria[0]
            self._event(
                case_id,
                account_id,
                CHECK_RECORDED,
                person,
                "user",
                "",
                "",
                f'{{"criterion": "{self.cat.codes[criterion]}", "from": "unchecked",'
                f' "to": "{"fail" if failed else "pass"}", "note": ""}}',
                claim_time + (check_end - claim_time) * 0.5,
            )
        if state == "escalated":
            self._event(
                case_id,
                account_id,
                ESCALATED,
                person,
                "user",
                "in_review",
                "escalated",
                f'{{"note": "{note}"}}',
                changed,
            )
        if decided_at is not None:
            self._decision(
                case_id, account, platform_key, state, person, decided_at, failed
            )
        return case_id, decided_at

    def _decision(
        self, case_id, account, platform_key, state, person, decided_at, failed
    ) -> None:
        rng = self.rng
        account_id = self.account_ids[account]
        reasons = []
        if state == "denied":
            sink = self.out["denial"]
            for criterion in failed:
                reason_id, title, support_text = rng.choice(self.cat.reasons[criterion])
                reasons.append(f'"{self.cat.codes[criterion]}"')
                sink.write(
                    f"{self._next('denial')}\t{case_id}\t{reason_id}\t{title}"
                    f"\t{support_text}\tFound on {ts(decided_at)[:10]} in the "
                    f"partner's development traffic.{sink.table.suffix}\n"
                )
        key_status = "active" if state == "approved" else "denied"
        extra = f', "reasons": [{", ".join(reasons)}]' if reasons else ""
        self._event(
            case_id,
            account_id,
            APPROVED if state == "approved" else DENIED,
            person,
            "user",
            "in_review",
            state,
            f'{{"key": "{platform_key}", "key_status": "{key_status}"{extra}}}',
            decided_at,
        )
        notification_id = self._next("notification")
        sent = decided_at + rng.uniform(0.5, 20)
        roll = rng.random()
        delivery = "delivered" if roll < 0.96 else ("bounced" if roll < 0.97 else "")
        delivery_at = ts(sent + rng.uniform(1, 120)) if delivery else NULL
        email, contact_name = self.contact[account]
        ref = reference(case_id)
        if state == "approved":
            kind = "approval"
            subject = f"Your production key is active ({ref})"
            text = f"Your production key {platform_key} is now active."
        else:
            kind = "denial"
            subject = f"Your production key request {ref} needs changes"
            text = (
                f"We could not approve {ref}. Contact Technical Support and quote "
                f"{ref}: they hold the detailed reasons."
            )
        sink = self.out["notification"]
        sent_text = ts(sent)
        sink.write(
            f"{notification_id}\t{case_id}\t{kind}\t{email}\t{contact_name}\tsent"
            f"\t{delivery}\t{delivery_at}\t1\t\tbench-{notification_id}\t{subject}"
            f"\tDear {contact_name},\\n\\n{text}\\n"
            f"\t<p>Dear {contact_name},</p><p>{text}</p>\t1\t{ts(decided_at)}"
            f"\t{sent_text}\t{sent_text}{sink.table.suffix}\n"
        )
        self._event(
            case_id,
            account_id,
            EMAIL_SENT,
            None,
            "system",
            "",
            "",
            f'{{"kind": "{kind}", "notification": {notification_id}}}',
            sent,
        )

    # --- the two partners the case page is measured on ---------------------------

    def _specials(self, n_regular: int) -> None:
        rng = self.rng
        now = self.now
        main = self.staff.main_reviewer
        index = len(self.account_ids)
        self._account(
            index,
            now - 2 * DAY,
            platform_id=SHORT_ACCOUNT,
            name="Short History Foods Ltd",
            person=("Sam Short", "sam"),
            email="dev@short-history.example",
            affiliate=False,
        )
        self._case(
            key_number=n_regular + 1,
            account=index,
            submitted=now - 6 * HOUR,
            state="in_review",
            attempt=1,
            previous=None,
            person=main,
            claimed=now - 5 * MINUTE,
        )

        index += 1
        self._account(
            index,
            now - 2 * HISTORY_DAYS / 3 * DAY,
            platform_id=LONG_ACCOUNT,
            name="Long History Recipes GmbH",
            person=("Lea Long", "lea"),
            email="api@long-history.example",
            affiliate=True,
        )
        previous = None
        deciders = self.staff.reviewers + self.staff.seniors
        for attempt in range(1, LONG_ATTEMPTS):
            submitted = now - (LONG_ATTEMPTS - attempt) * 20 * DAY
            previous, _ = self._case(
                key_number=n_regular + 1 + attempt,
                account=index,
                submitted=submitted,
                state="denied",
                attempt=attempt,
                previous=previous,
                person=rng.choice(deciders),
            )
        claimed = now - 4 * HOUR
        case_id, _ = self._case(
            key_number=n_regular + 1 + LONG_ATTEMPTS,
            account=index,
            submitted=now - 5 * HOUR,
            state="in_review",
            attempt=LONG_ATTEMPTS,
            previous=previous,
            person=main,
            claimed=claimed,
        )
        # A long working history on the case itself: checks changed back and
        # forth, released and claimed again.
        account_id = self.account_ids[index]
        codes = [self.cat.codes[c] for c in self.cat.core + self.cat.affiliate]
        step = (4 * HOUR - 10 * MINUTE) / LONG_EVENTS
        for number in range(LONG_EVENTS):
            at = claimed + number * step
            if number % 50 == 49:
                self._event(
                    case_id,
                    account_id,
                    RELEASED,
                    main,
                    "user",
                    "in_review",
                    "queued",
                    f'{{"former_assignee": {main}, "note": ""}}',
                    at,
                )
                self._event(
                    case_id,
                    account_id,
                    CLAIMED,
                    main,
                    "user",
                    "queued",
                    "in_review",
                    "{}",
                    at + 1,
                )
            else:
                flip = ("pass", "fail") if number % 2 else ("fail", "pass")
                self._event(
                    case_id,
                    account_id,
                    CHECK_RECORDED,
                    main,
                    "user",
                    "",
                    "",
                    f'{{"criterion": "{codes[number % len(codes)]}", '
                    f'"from": "{flip[0]}", "to": "{flip[1]}", "note": ""}}',
                    at,
                )


def queued_batch(
    out: dict,
    *,
    count: int,
    first_submitted: float,
    tag: str,
    catalogue: Catalogue,
    bases: Bases,
) -> dict[str, int]:
    """``count`` extra queued cases, one new partner each, for the benchmark's writes.

    Keys are ``pk_<tag>_<i>``, partners ``acct_<tag>_<i>`` with contact
    ``<tag>-<i>@bench.example``; cases are submitted 1 ms apart from
    ``first_submitted``. ``bench/run.py`` deletes them afterwards by that tag.
    """
    counts = dict.fromkeys(TABLE_ORDER, 0)

    def next_id(table: str) -> int:
        value = getattr(bases, table)
        setattr(bases, table, value + 1)
        counts[table] += 1
        return value

    for number in range(count):
        submitted = ts(first_submitted + number / 1000)
        account_id = next_id("account")
        email = f"{tag}-{number}@bench.example"
        sink = out["account"]
        sink.write(
            f"{account_id}\tacct_{tag}_{number}\tBench {tag} {number} Ltd\t{email}"
            f"\tBench Partner\tHD-{number}\tf\t\t\t{submitted}\t{submitted}"
            f"{sink.table.suffix}\n"
        )
        sink = out["email"]
        sink.write(
            f"{next_id('email')}\t{account_id}\t{email}\t{submitted}{sink.table.suffix}\n"
        )
        key_id = next_id("key")
        sink = out["key"]
        sink.write(
            f"{key_id}\tpk_{tag}_{number}\t{account_id}\tProduction\tb3nc\t{submitted}"
            f"\tpending_approval\t{submitted}\t{submitted}{sink.table.suffix}\n"
        )
        case_id = next_id("case")
        sink = out["case"]
        sink.write(
            f"{case_id}\t{key_id}\t{account_id}\tqueued\t1\t{NULL}\tf"
            f'\t{{"app_name": "Bench {number}"}}\t{submitted}\t{NULL}\t{NULL}'
            f"\t{NULL}\t\t{NULL}\t{NULL}\t{submitted}{sink.table.suffix}\n"
        )
        sink = out["check"]
        for criterion in catalogue.core:
            sink.write(
                f"{next_id('check')}\t{case_id}\t{criterion}\tunchecked\t\t{NULL}"
                f"\t{NULL}\t0{sink.table.suffix}\n"
            )
        sink = out["event"]
        sink.write(
            f"{next_id('event')}\t{case_id}\t{account_id}\t{OPENED}\t{NULL}\tplatform"
            f'\t\tqueued\t{{"key": "pk_{tag}_{number}", "attempt": 1, '
            f'"previous_case": null}}\t{submitted}{sink.table.suffix}\n'
        )
    return counts
