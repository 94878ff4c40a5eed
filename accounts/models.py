from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> "User":
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A member of staff: reviewer, senior reviewer, support or admin (by group)."""

    email = models.EmailField("email address", unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(
        default=True, help_text="Staff may log into the back office."
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"

    def __str__(self) -> str:
        return self.full_name or self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return (self.full_name.split(" ")[0] if self.full_name else "") or self.email


class DeveloperAccount(models.Model):
    """A partner: a developer account on the platform."""

    platform_account_id = models.CharField(max_length=64, unique=True)
    name = models.CharField("organisation name", max_length=200)
    contact_email = models.EmailField(max_length=254)
    contact_name = models.CharField(max_length=200, blank=True)
    help_desk_account_id = models.CharField(
        "Enterprise Help Desk account id", max_length=64, blank=True
    )
    wants_affiliate = models.BooleanField("wants affiliate payments", default=False)
    tastemakers_account_id = models.CharField(max_length=64, blank=True)
    affiliate_partner_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "developer account"

    def __str__(self) -> str:
        return f"{self.name} ({self.platform_account_id})"


class DeveloperAccountEmail(models.Model):
    """Every contact address a partner has used, so support finds them by an old one."""

    account = models.ForeignKey(
        DeveloperAccount, on_delete=models.CASCADE, related_name="emails"
    )
    # Stored lower-cased: lookups are exact and indexed.
    email = models.CharField(max_length=254)
    first_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["email", "account"], name="account_email_unique"
            )
        ]

    def __str__(self) -> str:
        return self.email
