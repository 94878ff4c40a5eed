"""Demo data for `make run`: partners, cases in every state, one login per role.

Everything goes through the real paths: partners arrive as platform events through
``platform_event_ingest`` (with fixed webhook ids, so a second run is answered from
the receipts and adds nothing), and decisions are made through the case services
by the demo reviewers (each decision only if that case is still queued). Emails
queued by the decisions are sent by the embedded mode's in-process task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.models import DeveloperAccount, User
from reviews import services
from reviews.errors import ActionRefused
from reviews.management.commands.replay_platform_events import (
    event_body,
    read_event_lines,
)
from reviews.models import (
    CheckResult,
    DenialReason,
    PlatformEventReceipt,
    ReviewCase,
)

# A copy of ../shared/samples/platform-events.jsonl: the same demo on every machine.
SAMPLES = settings.BASE_DIR / "reviews" / "fixtures" / "platform-events.jsonl"
URL = "http://127.0.0.1:8000/"

# email, role, full name, password (demo only: the server listens on 127.0.0.1).
LOGINS = [
    ("reviewer@reviewdesk.example", "Reviewer", "Rita Reviewer", "demo-reviewer"),
    ("reviewer2@reviewdesk.example", "Reviewer", "Rob Reviewer", "demo-reviewer2"),
    ("senior@reviewdesk.example", "Senior reviewer", "Sue Senior", "demo-senior"),
    ("support@reviewdesk.example", "Support", "Stan Support", "demo-support"),
    ("admin@reviewdesk.example", "Admin", "Ada Admin", "demo-admin"),
]


@dataclass(frozen=True)
class Partner:
    number: int
    name: str
    contact_name: str
    contact_email: str
    app_name: str
    endpoints: tuple[str, ...]
    help_desk: bool = True
    affiliate: bool = False
    hours_ago: int = 0

    @property
    def account_id(self) -> str:
        return f"acct_demo_{self.number:02d}"

    def key_id(self, letter: str = "a") -> str:
        return f"pk_demo_{self.number:02d}_{letter}"


_P = Partner
PARTNERS = [
    _P(1, "Basil & Thyme Kitchen", "Priya Natarajan", "priya@basilthyme.example",
       "Basil & Thyme", ("recipe",), hours_ago=150),
    _P(2, "CartSmart Labs", "Marcus Lee", "marcus@cartsmart.example",
       "CartSmart", ("products_link", "retailers"), affiliate=True, hours_ago=148),
    _P(3, "Épicerie Lumière SARL", "Amélie Dubois",
       "amelie@epicerie-lumiere.example", "Lumière Courses", ("products_link",),
       hours_ago=146),
    _P(4, "Meal Prep Mentor", "Dana Whitfield", "dana@mealprepmentor.example",
       "Mentor", ("recipe", "retailers"), affiliate=True, hours_ago=140),
    _P(5, "Grocery Graph Inc.", "Tomás Alvarez", "tomas@grocerygraph.example",
       "GraphList", ("products_link",), hours_ago=138),
    _P(6, "Küchenwunder GmbH", "Jürgen Weiß", "juergen@küchenwunder.example",
       "Küchenwunder", ("recipe",), hours_ago=130),
    _P(7, "Snack Stack Apps", "Kelly O'Connor", "kelly@snackstack.example",
       "Snack Stack", ("products_link",), help_desk=False, hours_ago=126),
    _P(8, "Recipe Roulette", "Ben Okafor", "ben@reciperoulette.example",
       "Roulette", ("recipe",), hours_ago=122),
    _P(9, "Smørrebrød & Co ApS", "Søren Østergaard", "soren@smorrebrod.example",
       "Smørrebrød", ("recipe", "products_link"), affiliate=True, hours_ago=118),
    _P(10, "Budget Bites LLC", "Alicia Gomez", "alicia@budgetbites.example",
       "Budget Bites", ("products_link", "retailers"), hours_ago=110),
    _P(11, "FreshTrack Analytics", "Noah Brooks", "noah@freshtrack.example",
       "FreshTrack", ("retailers",), hours_ago=104),
    _P(12, "Żabka Przepisy sp. z o.o.", "Łukasz Żółkiewski",
       "lukasz@zabka-przepisy.example", "Przepisy", ("recipe",), affiliate=True,
       hours_ago=98),
    _P(13, "Pantry Pal", "Grace Kim", "grace@pantrypal.example", "Pantry Pal",
       ("products_link",), hours_ago=92),
    _P(14, "Weekend Baker", "Oliver Grant", "oliver@weekendbaker.example",
       "Weekend Baker", ("recipe",), hours_ago=88),
    _P(15, "Family Table Co", "Hannah Moore", "hannah@familytable.example",
       "Family Table", ("recipe", "products_link"), affiliate=True, hours_ago=80),
    _P(16, "和食レシピ株式会社", "佐藤 花子", "hanako@washoku-recipes.example",
       "和食レシピ", ("recipe",), hours_ago=72),
    _P(17, "<em>Fresh</em> Picks <script>alert('demo')</script> LLC",
       "\"Fresh\" O'Neil", "ops@freshpicks.example", "<b>Fresh Picks</b>",
       ("products_link",), hours_ago=68),
    _P(18, "Ñam Ñam Cocina S.L.", "Begoña Muñoz", "begona@namnam.example",
       "Ñam Ñam", ("recipe", "retailers"), affiliate=True, hours_ago=64),
    _P(19, "SousChef Robotics", "Ian McAllister", "ian@souschef.example",
       "SousChef", ("recipe",), hours_ago=60),
    _P(20, "Green Basket Co-op", "Fatima Rahman", "fatima@greenbasket.example",
       "Green Basket", ("products_link", "retailers"), affiliate=True, hours_ago=52),
    _P(21, "Lunchbox Logic", "Chris Tanaka", "chris@lunchboxlogic.example",
       "Lunchbox", ("recipe",), help_desk=False, hours_ago=48),
    _P(22, "Spice Route Media", "Ravi Shah", "ravi@spiceroute.example",
       "Spice Route", ("recipe", "products_link"), affiliate=True, hours_ago=44),
    _P(23, "Nutri Nudge", "Emma Larsson", "emma@nutrinudge.example", "Nudge",
       ("products_link",), hours_ago=40),
    _P(24, "Dinner Dash Studio", "Luis Fernández", "luis@dinnerdash.example",
       "Dinner Dash", ("recipe",), affiliate=True, hours_ago=36),
    _P(25, "Halal Home Cooking", "Aisha Karim", "aisha@halalhome.example",
       "Halal Home", ("recipe", "retailers"), hours_ago=30),
    _P(26, "Vegan Vault", "Zoe Adams", "zoe@veganvault.example", "Vegan Vault",
       ("recipe",), affiliate=True, hours_ago=26),
    _P(27, "Café Ñandú Digital", "José Müller-Ørsted", "jose@cafenandu.example",
       "Ñandú", ("products_link",), hours_ago=22),
    _P(28, "Student Eats", "Tyler Brooks", "tyler@studenteats.example",
       "Student Eats", ("recipe", "products_link"), hours_ago=18),
    _P(29, "Gluten-Free Guide", "Maya Cohen", "maya@gfguide.example", "GF Guide",
       ("recipe",), affiliate=True, hours_ago=14),
    _P(30, "ShopList Pro", "Daniel Novak", "daniel@shoplistpro.example",
       "ShopList", ("products_link", "retailers"), hours_ago=10),
    _P(31, "Keto Kitchen Club", "Laura Rossi", "laura@ketokitchen.example",
       "Keto Club", ("recipe",), affiliate=True, hours_ago=8),
    _P(32, "Ψηφιακή Κουζίνα ΙΚΕ", "Νίκος Παπαδόπουλος", "nikos@kouzina.example",
       "Κουζίνα", ("recipe",), hours_ago=6),
    _P(33, "Party Planner Plus", "Sophie Martin", "sophie@partyplanner.example",
       "Party Planner", ("products_link",), hours_ago=4),
    _P(34, "Batch Cook Bros", "Sam Patel", "sam@batchcook.example", "Batch Cook",
       ("recipe", "retailers"), affiliate=True, hours_ago=3),
    _P(35, "TinyTaste Baby Food", "Olga Ivanova", "olga@tinytaste.example",
       "TinyTaste", ("products_link",), hours_ago=2),
    _P(36, "Fika Time AB", "Åsa Lindqvist", "asa@fikatime.example", "Fika",
       ("recipe",), hours_ago=1),
]  # fmt: skip
BY_NUMBER = {partner.number: partner for partner in PARTNERS}


def _account(partner: Partner, *, contact_email: str | None = None) -> dict:
    account: dict[str, Any] = {
        "id": partner.account_id,
        "name": partner.name,
        "contact_email": contact_email or partner.contact_email,
        "contact_name": partner.contact_name,
    }
    if partner.help_desk:
        account["help_desk_account_id"] = f"HD-{70000 + partner.number}"
    if partner.affiliate:
        account["affiliate"] = {
            "tastemakers_account_id": f"TM-{9000 + partner.number}",
            "partner_id": str(6100000 + partner.number),
        }
    return account


def _timestamp(hours_ago: float) -> str:
    moment = timezone.now() - timedelta(hours=hours_ago)
    return moment.isoformat().replace("+00:00", "Z")


def _decision(step):
    """Run a demo decision; a refusal (e.g. an existing login without the role)
    is reported and the demo goes on."""

    def run(self, *args, **kwargs):
        try:
            step(self, *args, **kwargs)
        except ActionRefused as refusal:
            self.stderr.write(f"demo {step.__name__.strip('_')} skipped: {refusal}")

    return run


class Command(BaseCommand):
    help = (
        "Load demo partners and cases through the real ingest path and services, "
        "create one login per role and print them. Running it again adds nothing."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        receipts_before = PlatformEventReceipt.objects.count()
        self.users = self._logins()
        reviewer, reviewer2, senior = (self.users[email] for email, *_ in LOGINS[:3])

        for partner in PARTNERS:
            self._request(partner)

        # Decisions through the services, each only if that case is still queued.
        for number in (1, 2, 3, 4, 5, 6):
            self._approve(BY_NUMBER[number].key_id(), 1, reviewer2)
        self._deny(7, 1, reviewer2, {"help_desk_account": ["helpdesk_missing"]})
        self._deny(8, 1, senior, {"api_spec_format": ["spec_invalid_parameters"]})
        self._deny(
            9,
            1,
            reviewer2,
            {
                "affiliate_partner_id": ["affiliate_id_wrong"],
                "tastemakers_account": ["tastemakers_inactive"],
            },
        )
        self._deny(
            10,
            1,
            senior,
            {"error_handling": ["errors_unhandled", "errors_no_backoff"]},
        )
        self._deny(11, 1, reviewer2, {"terms_compliance": ["terms_branding"]})

        # Resubmissions after a denial (the same key requested again), sent after
        # the denials above so the timeline reads right.
        self._request(BY_NUMBER[7], attempt=2, hours_ago=0)
        self._request(BY_NUMBER[8], attempt=2, hours_ago=0)
        self._approve(BY_NUMBER[8].key_id(), 2, senior)
        self._request(BY_NUMBER[9], attempt=2, hours_ago=0)
        self._deny(9, 2, senior, {"affiliate_partner_id": ["affiliate_id_missing"]})
        self._request(BY_NUMBER[9], attempt=3, hours_ago=0)
        # A new key from a partner whose earlier key was denied.
        self._request(BY_NUMBER[10], letter="b", hours_ago=0)

        self._escalate(12, reviewer2)
        self._start_review(13, reviewer)
        self._delete(BY_NUMBER[14].key_id())  # withdrawn while queued
        self._delete(BY_NUMBER[5].key_id())  # approved, then revoked
        self._account_update(BY_NUMBER[15], "platform-team@familytable.example")

        if SAMPLES.is_file():
            for line in read_event_lines(SAMPLES):
                services.platform_event_ingest(
                    webhook_id=line.webhook_id, body=line.body
                )

        self._report(PlatformEventReceipt.objects.count() - receipts_before)

    # --- logins ----------------------------------------------------------------------

    def _logins(self) -> dict[str, User]:
        users = {}
        self.login_rows = []
        for email, role, full_name, password in LOGINS:
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(
                    email=email, password=password, full_name=full_name, is_staff=True
                )
                user.groups.add(Group.objects.get(name=role))
                shown = password
            elif user.check_password(password):
                shown = password
            else:
                shown = "(existing user: password unchanged)"
            users[email] = user
            self.login_rows.append((role, email, shown))
        return users

    # --- platform events -------------------------------------------------------------

    def _ingest(self, webhook_id: str, event: dict) -> None:
        answer = services.platform_event_ingest(
            webhook_id=webhook_id, body=event_body(event)
        )
        if answer.status >= 400 and not answer.replayed:
            self.stderr.write(
                f"demo event {webhook_id} refused: {answer.status} "
                f"{answer.body.get('detail')}"
            )

    def _request(
        self,
        partner: Partner,
        *,
        attempt: int = 1,
        letter: str = "a",
        hours_ago: float | None = None,
    ) -> None:
        key_id = partner.key_id(letter)
        integration = {
            "app_name": partner.app_name,
            "app_url": f"https://{partner.contact_email.split('@')[1]}/app",
            "endpoints": list(partner.endpoints),
        }
        self._ingest(
            f"demo-{key_id}-requested-{attempt}",
            {
                "type": "production_key.requested",
                "timestamp": _timestamp(
                    partner.hours_ago if hours_ago is None else hours_ago
                ),
                "data": {
                    "account": _account(partner),
                    "key": {
                        "id": key_id,
                        "name": "Production" if letter == "a" else "Production v2",
                        "last4": f"{partner.number:02d}{letter}9"[-4:],
                    },
                    "integration": integration,
                },
            },
        )

    def _delete(self, key_id: str) -> None:
        self._ingest(
            f"demo-{key_id}-deleted",
            {
                "type": "production_key.deleted",
                "timestamp": _timestamp(0),
                "data": {"key": {"id": key_id}},
            },
        )

    def _account_update(self, partner: Partner, new_email: str) -> None:
        self._ingest(
            f"demo-{partner.account_id}-updated",
            {
                "type": "account.updated",
                "timestamp": _timestamp(0),
                "data": {"account": _account(partner, contact_email=new_email)},
            },
        )

    # --- decisions ----------------------------------------------------------------

    def _queued_case(self, key_id: str, attempt: int) -> ReviewCase | None:
        return ReviewCase.objects.filter(
            key__platform_key_id=key_id,
            attempt=attempt,
            state=ReviewCase.State.QUEUED,
        ).first()

    def _claim_and_check(
        self, case: ReviewCase, actor: User, failing: set[str] = frozenset()
    ) -> None:
        services.review_case_claim(actor=actor, case_id=case.pk)
        checks = CheckResult.objects.filter(case=case).select_related("criterion")
        services.review_case_record_checks(
            actor=actor,
            case_id=case.pk,
            changes=[
                services.CheckChange(
                    check.criterion_id,
                    "fail" if check.criterion.code in failing else "pass",
                    "See the denial reasons."
                    if check.criterion.code in failing
                    else "",
                )
                for check in checks
            ],
        )

    @_decision
    def _approve(self, key_id: str, attempt: int, actor: User) -> None:
        case = self._queued_case(key_id, attempt)
        if case is None:
            return
        self._claim_and_check(case, actor)
        services.review_case_approve(actor=actor, case_id=case.pk)

    @_decision
    def _deny(
        self, number: int, attempt: int, actor: User, reasons: dict[str, list[str]]
    ) -> None:
        case = self._queued_case(BY_NUMBER[number].key_id(), attempt)
        if case is None:
            return
        self._claim_and_check(case, actor, failing=set(reasons))
        codes = [code for codes in reasons.values() for code in codes]
        catalogue = {r.code: r for r in DenialReason.objects.filter(code__in=codes)}
        services.review_case_deny(
            actor=actor,
            case_id=case.pk,
            reasons=[
                services.DenialChoice(
                    catalogue[code].pk,
                    f"Seen in the development traffic of {BY_NUMBER[number].app_name} "
                    f"(attempt {attempt}).",
                )
                for code in codes
            ],
        )

    @_decision
    def _escalate(self, number: int, actor: User) -> None:
        case = self._queued_case(BY_NUMBER[number].key_id(), 1)
        if case is None:
            return
        services.review_case_claim(actor=actor, case_id=case.pk)
        services.review_case_escalate(
            actor=actor,
            case_id=case.pk,
            note="The affiliate id on their links belongs to a different Tastemakers "
            "account. Is that a reseller set-up we allow? Please decide.",
        )

    @_decision
    def _start_review(self, number: int, actor: User) -> None:
        case = self._queued_case(BY_NUMBER[number].key_id(), 1)
        if case is None:
            return
        services.review_case_claim(actor=actor, case_id=case.pk)
        first = (
            CheckResult.objects.filter(case=case, criterion__applies_to="all")
            .order_by("criterion__order")
            .first()
        )
        if first is not None:
            services.review_case_record_check(
                actor=actor,
                case_id=case.pk,
                criterion_id=first.criterion_id,
                result="pass",
                note="Branding and data use look fine.",
            )

    # --- report -------------------------------------------------------------------

    def _report(self, new_events: int) -> None:
        states = dict.fromkeys(ReviewCase.State.values, 0)
        for state in ReviewCase.objects.values_list("state", flat=True):
            states[state] += 1
        partners = DeveloperAccount.objects.count()
        self.stdout.write(
            f"Demo data: {partners} partners, {sum(states.values())} cases ("
            + ", ".join(f"{count} {state}" for state, count in states.items())
            + f"); {new_events} new platform events ingested"
            + (" (nothing new: already loaded)." if new_events == 0 else ".")
        )
        if SAMPLES.is_file():
            self.stdout.write(f"Sample events from {SAMPLES} included.")
        self.stdout.write("")
        self.stdout.write(f"Review Desk: {URL}")
        self.stdout.write("")
        width = max(len(email) for _, email, _ in self.login_rows)
        self.stdout.write(f"{'role':<16} {'login':<{width}} password")
        for role, email, password in self.login_rows:
            self.stdout.write(f"{role:<16} {email:<{width}} {password}")
