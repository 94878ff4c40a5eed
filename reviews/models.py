"""Review Desk domain (DESIGN §3).

State fields are protected django-fsm-2 fields: only transition methods change them,
and only services (reviews/services) call transition methods.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

REFERENCE_PREFIX = "RC-"
REFERENCE_RE = re.compile(r"^\s*RC-?0*(\d{1,18})\s*$", re.IGNORECASE)


def case_reference(pk: int) -> str:
    return f"{REFERENCE_PREFIX}{pk:06d}"


def case_pk_from_reference(text: str) -> int | None:
    """``"RC-000123"`` (any case, with or without dash and zeros) -> 123, else None."""
    match = REFERENCE_RE.match(text or "")
    pk = int(match.group(1)) if match else 0
    return pk or None  # "RC-000000" names no case: ids start at 1


class ApiKey(FSMModelMixin, models.Model):
    """A production key, known by its platform id. The secret never reaches us."""

    class Status(models.TextChoices):
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        ACTIVE = "active", "Active"
        DENIED = "denied", "Denied"
        WITHDRAWN = "withdrawn", "Withdrawn"
        REVOKED = "revoked", "Revoked"

    platform_key_id = models.CharField(max_length=64, unique=True)
    account = models.ForeignKey(
        "accounts.DeveloperAccount", on_delete=models.PROTECT, related_name="keys"
    )
    name = models.CharField(max_length=200, blank=True)
    last4 = models.CharField("display hint", max_length=8, blank=True)
    platform_created_at = models.DateTimeField(null=True, blank=True)
    status = FSMField(
        max_length=20,
        choices=Status.choices,
        default=Status.PENDING_APPROVAL,
        protected=True,
    )
    status_changed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return self.platform_key_id

    @property
    def hint(self) -> str:
        return f"…{self.last4}" if self.last4 else ""

    @transition(field=status, source=Status.PENDING_APPROVAL, target=Status.ACTIVE)
    def activate(self) -> None:
        """Approved: the key works."""
        self.status_changed_at = timezone.now()

    @transition(field=status, source=Status.PENDING_APPROVAL, target=Status.DENIED)
    def deny(self) -> None:
        """Denied: the key stays unusable until resubmitted."""
        self.status_changed_at = timezone.now()

    @transition(field=status, source=Status.DENIED, target=Status.PENDING_APPROVAL)
    def resubmit(self) -> None:
        """The partner asked for review again after a denial."""
        self.status_changed_at = timezone.now()

    @transition(field=status, source=Status.PENDING_APPROVAL, target=Status.WITHDRAWN)
    def withdraw(self) -> None:
        """The partner deleted the key while it was under review."""
        self.status_changed_at = timezone.now()

    @transition(field=status, source=Status.ACTIVE, target=Status.REVOKED)
    def revoke(self) -> None:
        """An active key was deleted or revoked."""
        self.status_changed_at = timezone.now()


class ReviewCase(FSMModelMixin, models.Model):
    """One review of one production-key request."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        IN_REVIEW = "in_review", "In review"
        ESCALATED = "escalated", "Escalated"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        WITHDRAWN = "withdrawn", "Withdrawn"

    OPEN_STATES = (State.QUEUED, State.IN_REVIEW, State.ESCALATED)
    DECIDED_STATES = (State.APPROVED, State.DENIED)

    key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="cases")
    # Denormalised from the key: the partner's history is one indexed lookup.
    account = models.ForeignKey(
        "accounts.DeveloperAccount", on_delete=models.PROTECT, related_name="cases"
    )
    state = FSMField(
        max_length=20, choices=State.choices, default=State.QUEUED, protected=True
    )
    attempt = models.PositiveIntegerField(
        default=1, help_text="1 for a first request; +1 for each resubmission."
    )
    previous_case = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="next_cases",
        help_text="The partner's earlier decided case this one follows.",
    )
    wants_affiliate = models.BooleanField(
        "affiliate", default=False, help_text="Affiliate criteria apply."
    )
    integration = models.JSONField(default=dict, blank=True)
    submitted_at = models.DateTimeField(default=timezone.now)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_cases",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Any action by the assignee renews the claim's lease.
    last_activity_at = models.DateTimeField(null=True, blank=True)
    escalation_note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="decided_cases",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "review case"
        permissions = [
            ("work_reviewcase", "Can claim, check, decide and escalate cases"),
            ("supervise_reviewcase", "Can take escalated cases and reassign any case"),
            ("lookup_reviewcase", "Can look up partners' cases for support"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=Q(state__in=["queued", "in_review", "escalated"]),
                name="one_open_case_per_key",
            ),
            models.CheckConstraint(
                condition=Q(state="queued", assignee__isnull=True) | ~Q(state="queued"),
                name="queued_case_has_no_assignee",
            ),
        ]
        indexes = [
            # The queue: open cases oldest first; claim-next reads the head of it.
            models.Index(
                fields=["submitted_at", "id"],
                condition=Q(state="queued"),
                name="case_queue_idx",
            ),
            models.Index(
                fields=["state", "submitted_at", "id"], name="case_state_submitted_idx"
            ),
            models.Index(
                fields=["assignee", "state", "submitted_at"], name="case_assignee_idx"
            ),
            models.Index(fields=["account", "submitted_at"], name="case_account_idx"),
            models.Index(
                fields=["last_activity_at"],
                condition=Q(state="in_review"),
                name="case_claim_lease_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def reference(self) -> str:
        return case_reference(self.pk) if self.pk else "RC-(new)"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    @property
    def is_resubmission(self) -> bool:
        return self.previous_case_id is not None

    # --- transitions: pure, they set this model's own fields only -----------------

    @transition(field=state, source=State.QUEUED, target=State.IN_REVIEW)
    def claim(self, *, reviewer) -> None:
        """A reviewer takes a queued case."""
        now = timezone.now()
        self.assignee = reviewer
        self.claimed_at = now
        self.last_activity_at = now
        self.state_changed_at = now

    @transition(field=state, source=State.IN_REVIEW, target=State.QUEUED)
    def release(self) -> None:
        """The case goes back to the queue, unassigned."""
        self.assignee = None
        self.claimed_at = None
        self.last_activity_at = None
        self.state_changed_at = timezone.now()

    @transition(field=state, source=State.IN_REVIEW, target=State.ESCALATED)
    def escalate(self, *, note: str) -> None:
        """The assignee asks a senior reviewer to decide."""
        self.escalation_note = note
        self.assignee = None
        self.claimed_at = None
        self.last_activity_at = None
        self.state_changed_at = timezone.now()

    @transition(field=state, source=State.ESCALATED, target=State.IN_REVIEW)
    def take(self, *, reviewer) -> None:
        """A senior reviewer takes an escalated case."""
        now = timezone.now()
        self.assignee = reviewer
        self.claimed_at = now
        self.last_activity_at = now
        self.state_changed_at = now

    @transition(field=state, source=State.IN_REVIEW, target=State.IN_REVIEW)
    def hand_over(self, *, reviewer) -> None:
        """A senior gives a case in review to another reviewer."""
        now = timezone.now()
        self.assignee = reviewer
        self.claimed_at = now
        self.last_activity_at = now

    @transition(field=state, source=State.IN_REVIEW, target=State.APPROVED)
    def approve(self, *, reviewer) -> None:
        """Every applicable criterion passed."""
        now = timezone.now()
        self.decided_by = reviewer
        self.decided_at = now
        self.state_changed_at = now

    @transition(field=state, source=State.IN_REVIEW, target=State.DENIED)
    def deny(self, *, reviewer) -> None:
        """At least one criterion failed; reasons recorded."""
        now = timezone.now()
        self.decided_by = reviewer
        self.decided_at = now
        self.state_changed_at = now

    @transition(
        field=state,
        source=[State.QUEUED, State.IN_REVIEW, State.ESCALATED],
        target=State.WITHDRAWN,
    )
    def withdraw(self) -> None:
        """The partner deleted the key while it was under review."""
        self.assignee = None
        self.claimed_at = None
        self.last_activity_at = None
        self.state_changed_at = timezone.now()


class Criterion(models.Model):
    """The checklist catalogue."""

    class AppliesTo(models.TextChoices):
        ALL = "all", "Every request"
        AFFILIATE = "affiliate", "Affiliate partners only"

    code = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    guidance = models.TextField(
        "reviewer guidance", help_text="What to look at and what counts as a pass."
    )
    applies_to = models.CharField(
        max_length=16, choices=AppliesTo.choices, default=AppliesTo.ALL
    )
    order = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(
        "active",
        default=True,
        help_text="Inactive criteria are not added to new cases.",
    )

    class Meta:
        ordering = ["order", "id"]
        verbose_name_plural = "criteria"

    def __str__(self) -> str:
        return self.title


class CheckResult(models.Model):
    """One row per (case, applicable criterion), created when the case opens."""

    class Result(models.TextChoices):
        UNCHECKED = "unchecked", "Unchecked"
        PASS = "pass", "Pass"
        FAIL = "fail", "Fail"
        NOT_APPLICABLE = "not_applicable", "Not applicable"

    case = models.ForeignKey(
        ReviewCase, on_delete=models.CASCADE, related_name="checks"
    )
    criterion = models.ForeignKey(Criterion, on_delete=models.PROTECT, related_name="+")
    result = models.CharField(
        max_length=16, choices=Result.choices, default=Result.UNCHECKED
    )
    note = models.TextField(blank=True)
    checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    checked_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every change: an edit made against an older version is refused.
    version = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case", "criterion"], name="one_check_per_case_criterion"
            )
        ]

    def __str__(self) -> str:
        return f"{self.case_id}/{self.criterion_id}: {self.result}"


class DenialReason(models.Model):
    """Catalogue of reasons, with the text support reads to the partner."""

    code = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    criterion = models.ForeignKey(
        Criterion, on_delete=models.PROTECT, related_name="denial_reasons"
    )
    support_text = models.TextField(
        "text for the partner", help_text="What is wrong and how to fix it."
    )
    order = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(
        "active", default=True, help_text="Retired reasons cannot be chosen any more."
    )

    class Meta:
        ordering = ["criterion__order", "order", "id"]

    def __str__(self) -> str:
        return self.title


class CaseDenialReason(models.Model):
    """A reason a case was denied, frozen as it read when the case was decided."""

    case = models.ForeignKey(
        ReviewCase, on_delete=models.CASCADE, related_name="denial_reasons"
    )
    reason = models.ForeignKey(DenialReason, on_delete=models.PROTECT, related_name="+")
    # Copies: editing or retiring the catalogue never changes a past decision.
    title = models.CharField(max_length=200)
    support_text = models.TextField()
    detail = models.TextField("case-specific detail", blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case", "reason"], name="one_denial_reason_per_case"
            )
        ]

    def __str__(self) -> str:
        return self.title


class CaseEvent(models.Model):
    """Append-only audit trail."""

    class ActorKind(models.TextChoices):
        USER = "user", "User"
        SYSTEM = "system", "System"
        PLATFORM = "platform", "Platform"

    case = models.ForeignKey(
        ReviewCase,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
    )
    account = models.ForeignKey(
        "accounts.DeveloperAccount",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
    )
    code = models.CharField(max_length=64)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_kind = models.CharField(
        max_length=16, choices=ActorKind.choices, default=ActorKind.USER
    )
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["case", "created_at"], name="event_case_idx"),
            models.Index(fields=["account", "created_at"], name="event_account_idx"),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def actor_label(self) -> str:
        if self.actor_kind != self.ActorKind.USER:
            return self.get_actor_kind_display()
        return str(self.actor) if self.actor_id else "(deleted user)"


class Notification(models.Model):
    """The email outbox: written in the decision's transaction, sent after commit."""

    class Kind(models.TextChoices):
        APPROVAL = "approval", "Approval"
        DENIAL = "denial", "Denial"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    case = models.ForeignKey(
        ReviewCase, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    to_email = models.CharField(max_length=254)
    to_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING
    )
    # Latest status reported by the provider's tracking webhook (delivered, bounced…).
    delivery_status = models.CharField(max_length=32, blank=True)
    delivery_status_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    times_sent = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        permissions = [("resend_notification", "Can resend a decision email")]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "kind"], name="one_notification_per_case_kind"
            )
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=Q(status="pending"),
                name="notification_pending_idx",
            ),
            models.Index(
                fields=["provider_message_id"],
                condition=~Q(provider_message_id=""),
                name="notification_message_id_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} email for {case_reference(self.case_id)}"


class PlatformEventReceipt(models.Model):
    """One row per accepted webhook-id: a redelivery gets the first answer back."""

    webhook_id = models.CharField(max_length=255, unique=True)
    event_type = models.CharField(max_length=64, blank=True)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.webhook_id
