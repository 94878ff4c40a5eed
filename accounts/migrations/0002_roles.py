"""Role groups with explicit permissions (DESIGN §2)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW_CASES = [
    "reviews.view_reviewcase",
    "reviews.view_apikey",
    "reviews.view_checkresult",
    "reviews.view_caseevent",
    "reviews.view_notification",
    "reviews.view_casedenialreason",
    "reviews.view_criterion",
    "reviews.view_denialreason",
    "accounts.view_developeraccount",
]
ROLES = {
    "Reviewer": VIEW_CASES + ["reviews.work_reviewcase"],
    "Senior reviewer": VIEW_CASES
    + ["reviews.work_reviewcase", "reviews.supervise_reviewcase"],
    "Support": VIEW_CASES
    + ["reviews.lookup_reviewcase", "reviews.resend_notification"],
    "Admin": [
        "reviews.view_reviewcase",
        "reviews.add_criterion",
        "reviews.change_criterion",
        "reviews.delete_criterion",
        "reviews.view_criterion",
        "reviews.add_denialreason",
        "reviews.change_denialreason",
        "reviews.delete_denialreason",
        "reviews.view_denialreason",
        "accounts.add_user",
        "accounts.change_user",
        "accounts.view_user",
        "auth.view_group",
        "auth.change_group",
    ],
}


def create_roles(apps, schema_editor):
    # Permissions are normally made after migrate; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        permissions = []
        for name in names:
            app_label, codename = name.split(".")
            permissions.append(
                Permission.objects.get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        group.permissions.set(permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("reviews", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
