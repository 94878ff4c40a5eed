"""Forms of the case page. They only validate input; services do the work."""

from __future__ import annotations

from collections.abc import Sequence

from django import forms

from accounts.models import User
from reviews.models import CheckResult, Criterion, DenialReason
from reviews.services import CheckChange, DenialChoice

NOTE_MAX_LENGTH = 2000


class ChecklistForm(forms.Form):
    """Every row of a case's checklist, posted at once.

    Each row carries the version of the check the reviewer saw, so a save made
    against an older version is refused instead of overwriting someone's edit.
    """

    def __init__(self, checks: Sequence[CheckResult], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.checks = list(checks)
        for check in self.checks:
            criterion = check.criterion
            choices = [
                (CheckResult.Result.PASS, "Pass"),
                (CheckResult.Result.FAIL, "Fail"),
            ]
            if criterion.applies_to == Criterion.AppliesTo.AFFILIATE:
                choices.append((CheckResult.Result.NOT_APPLICABLE, "Not applicable"))
            prefix = f"check-{criterion.pk}"
            self.fields[f"{prefix}-result"] = forms.ChoiceField(
                label=criterion.title,
                choices=choices,
                required=False,
                widget=forms.RadioSelect,
                initial=check.result,
            )
            self.fields[f"{prefix}-note"] = forms.CharField(
                label=f"Note on “{criterion.title}”",
                required=False,
                max_length=NOTE_MAX_LENGTH,
                widget=forms.Textarea(
                    attrs={
                        "rows": 2,
                        "placeholder": "Note (optional): what you looked at, "
                        "what is wrong",
                    }
                ),
                initial=check.note,
            )
            self.fields[f"{prefix}-version"] = forms.IntegerField(
                widget=forms.HiddenInput, initial=check.version, min_value=0
            )

    def rows(self) -> list[dict]:
        """The checklist rows for the template: check, bound fields."""
        rows = []
        for check in self.checks:
            prefix = f"check-{check.criterion_id}"
            rows.append(
                {
                    "check": check,
                    "result": self[f"{prefix}-result"],
                    "note": self[f"{prefix}-note"],
                    "version": self[f"{prefix}-version"],
                }
            )
        return rows

    def changes(self) -> list[CheckChange]:
        """One change per row that was posted, with the version its editor saw."""
        changes = []
        for check in self.checks:
            prefix = f"check-{check.criterion_id}"
            version = self.cleaned_data.get(f"{prefix}-version")
            if version is None:
                # Row not on the submitted page (criterion added since): leave it.
                continue
            changes.append(
                CheckChange(
                    criterion_id=check.criterion_id,
                    result=self.cleaned_data.get(f"{prefix}-result")
                    or CheckResult.Result.UNCHECKED,
                    note=self.cleaned_data.get(f"{prefix}-note") or "",
                    expected_version=version,
                )
            )
        return changes


class EscalateForm(forms.Form):
    note = forms.CharField(
        label="Why should a senior reviewer decide?",
        max_length=NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={
            "required": "Say in the note why a senior reviewer should decide this case."
        },
    )


class ReassignForm(forms.Form):
    assignee = forms.ModelChoiceField(
        label="Reassign to",
        queryset=User.objects.none(),
        empty_label="Choose a reviewer…",
        error_messages={"required": "Choose the reviewer to give the case to."},
    )

    def __init__(self, reviewers: Sequence[User], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assignee"]
        field.queryset = User.objects.filter(pk__in=[user.pk for user in reviewers])
        field.choices = [("", field.empty_label)] + [
            (user.pk, f"{user} <{user.email}>") for user in reviewers
        ]


class ReasonsField(forms.TypedMultipleChoiceField):
    """Reason ids; whether each may be chosen is said by ``DenyForm.clean_reasons``,
    which can tell a retired reason from one whose criterion is not failed."""

    def valid_value(self, value) -> bool:
        return True


class DenyForm(forms.Form):
    """At least one reason, each with an optional case-specific detail."""

    reasons = ReasonsField(
        coerce=int,
        choices=(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Choose at least one denial reason: support reads them to "
            "the partner.",
            "invalid_choice": "A chosen reason is no longer available; reload the "
            "page and choose again.",
        },
    )

    def __init__(
        self,
        reason_groups: Sequence[tuple[Criterion, Sequence[DenialReason]]],
        *args,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.reason_groups = reason_groups
        self.fields["reasons"].choices = [
            (reason.pk, reason.title)
            for _criterion, reasons in reason_groups
            for reason in reasons
        ]
        for _criterion, reasons in reason_groups:
            for reason in reasons:
                self.fields[f"detail-{reason.pk}"] = forms.CharField(
                    label=f"Detail for “{reason.title}”",
                    required=False,
                    max_length=NOTE_MAX_LENGTH,
                    widget=forms.Textarea(
                        attrs={
                            "rows": 2,
                            "placeholder": "What exactly is wrong in this case "
                            "(optional, read to the partner by support)",
                        }
                    ),
                )

    def clean_reasons(self) -> list[int]:
        """Only the reasons offered: active, of a criterion failed on this case.

        A reason that is not offered is either gone from the catalogue (retired or
        deleted) or belongs to a criterion that is not failed on this checklist,
        e.g. after the checklist changed in another tab; each says so.
        """
        chosen = self.cleaned_data["reasons"]
        offered = {
            reason.pk
            for _criterion, reasons in self.reason_groups
            for reason in reasons
        }
        unknown = [reason_id for reason_id in chosen if reason_id not in offered]
        if not unknown:
            return chosen
        found = {
            reason.pk: reason
            for reason in DenialReason.objects.filter(pk__in=unknown).select_related(
                "criterion"
            )
        }
        problems = []
        for reason_id in unknown:
            reason = found.get(reason_id)
            if reason is None:
                problems.append(
                    "A chosen denial reason no longer exists; reload the page and "
                    "choose again."
                )
            elif not reason.is_active:
                problems.append(
                    f"The denial reason “{reason.title}” was retired; reload the "
                    "page and choose another."
                )
            else:
                problems.append(
                    f"The reason “{reason.title}” belongs to "
                    f"“{reason.criterion.title}”, which is not marked failed on this "
                    "case's checklist (it may have been changed in another tab). "
                    "Mark that criterion failed and save the checklist, or choose "
                    "another reason."
                )
        raise forms.ValidationError(problems)

    def groups(self) -> list[dict]:
        """Reasons grouped by failed criterion, for the template."""
        chosen = {str(value) for value in (self["reasons"].value() or [])}
        return [
            {
                "criterion": criterion,
                "reasons": [
                    {
                        "reason": reason,
                        "checked": str(reason.pk) in chosen,
                        "detail": self[f"detail-{reason.pk}"],
                    }
                    for reason in reasons
                ],
            }
            for criterion, reasons in self.reason_groups
        ]

    def choices(self) -> list[DenialChoice]:
        return [
            DenialChoice(
                reason_id=reason_id,
                detail=self.cleaned_data.get(f"detail-{reason_id}") or "",
            )
            for reason_id in self.cleaned_data["reasons"]
        ]
