"""Load the tracker's data through the ORM and write users.json.

    python manage.py seed_crm --users-json PATH --admin USER:PASSWORD

The admin is made beforehand by `manage.py createsuperuser --noinput`.
"""
import datetime
import decimal
import json
import random
import uuid

from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, Permission, User
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from crm.models import Account, AccountMembership, Label, Project, Task

ACCOUNTS = [("Northwind", "northwind", "pro"), ("Contoso", "contoso", "free"),
            ("Fabrikam", "fabrikam", "pro"), ("Tailspin Toys", "tailspin", "free"),
            ("Wide World Importers", "wideworld", "pro")]
# username, password (None: unusable), groups, memberships (slug, role), flags
USERS = [
    ("nina", "nina-Pa55-northwind", ["Managers"], [("northwind", "owner")], {}),
    ("omar", "omar-Pa55-contoso", ["Members"], [("contoso", "owner")], {}),
    ("pia", "pia-Pa55-two-accounts", ["Managers", "Members"], [("contoso", "admin"), ("fabrikam", "owner")], {}),
    ("quinn", "quinn-Pa55-tailspin", ["Members"], [("tailspin", "owner"), ("wideworld", "member")], {"is_staff": True}),
    ("rosa", "rosa-Pa55-inactive", ["Members"], [("wideworld", "owner")], {"is_active": False}),
    ("sam", "sam-Pa55-no-account", [], [], {}),
    ("ted", None, ["Members"], [("northwind", "member")], {}),
]
LABELS = [("bug", "#d73a4a"), ("feature", "#a2eeef"), ("chore", "#cccccc"),
          ("urgent", "#b60205"), ("design", "#5319e7"), ("ops", "#0e8a16")]
WORDS = ["migrate", "invoice", "onboard", "audit", "refactor", "ship", "review",
         "design", "test", "deploy", "document", "price", "résumé", "naïve", "日本"]


class Command(BaseCommand):
    help = "Load deterministic demo data for tenantd's migration tests."

    def add_arguments(self, parser):
        parser.add_argument("--users-json", required=True)
        parser.add_argument("--admin", required=True, help="USER:PASSWORD of the superuser")

    def handle(self, *args, users_json, admin, **opts):
        rng = random.Random(19)
        t0 = datetime.datetime(2024, 3, 1, 8, 0, tzinfo=datetime.timezone.utc)
        admin_name, admin_password = admin.split(":", 1)
        with transaction.atomic():
            managers, _ = Group.objects.get_or_create(name="Managers")
            members, _ = Group.objects.get_or_create(name="Members")
            managers.permissions.set(Permission.objects.filter(content_type__app_label="crm"))
            members.permissions.set(Permission.objects.filter(
                content_type__app_label="crm", codename__in=["view_task", "change_task", "add_task", "view_project"]))
            groups = {"Managers": managers, "Members": members}

            labels = Label.objects.bulk_create([Label(name=n, color=c) for n, c in LABELS])
            accounts = {}
            for i, (name, slug, plan) in enumerate(ACCOUNTS):
                accounts[slug] = Account.objects.create(
                    name=name, slug=slug, plan=plan,
                    public_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                    created_at=t0 + datetime.timedelta(days=11 * i, minutes=7 * i))

            users = [(User.objects.get(username=admin_name), admin_password, [],
                      "manage.py createsuperuser --noinput")]
            for username, password, group_names, memberships, flags in USERS:
                user = User.objects.create_user(
                    username, email=f"{username}@users.example", password=password,
                    first_name=username.capitalize(), last_name="Example", **flags)
                user.groups.set([groups[g] for g in group_names])
                for slug, role in memberships:
                    AccountMembership.objects.create(
                        account=accounts[slug], user=user, role=role,
                        joined_at=accounts[slug].created_at + datetime.timedelta(hours=rng.randint(1, 500)))
                users.append((user, password, memberships, "User.objects.create_user"))
            people = {slug: [u for u, _, m, _ in users[1:] if any(s == slug for s, _ in m)]
                      for slug in accounts}

            through = Task.labels.through
            for slug, account in accounts.items():
                roots = []
                for p in range(rng.randint(2, 4)):
                    parent = rng.choice(roots) if roots and rng.random() < 0.4 else None
                    project = Project.objects.create(
                        account=account, parent=parent,
                        name=f"{account.name} {rng.choice(WORDS)} {p + 1}",
                        budget=None if rng.random() < 0.2 else decimal.Decimal(rng.randint(1000, 50_000_000)) / 100,
                        archived=rng.random() < 0.15,
                        settings={"color": rng.choice(LABELS)[1], "notify": rng.random() < 0.5,
                                  "limits": {"tasks": rng.randint(10, 500)}, "tags": rng.sample(WORDS, 2)})
                    roots.append(project)
                    tasks = [
                        Task(project=project,
                             title=f"{rng.choice(WORDS)} {rng.choice(WORDS)} #{n + 1}",
                             done=rng.random() < 0.4,
                             priority=rng.randint(1, 5),
                             estimate_hours=None if rng.random() < 0.3 else decimal.Decimal(rng.randint(25, 4000)) / 100,
                             due=None if rng.random() < 0.5 else datetime.date(2025, 1, 1) + datetime.timedelta(days=rng.randint(0, 500)),
                             created_at=t0 + datetime.timedelta(minutes=rng.randint(0, 600_000), microseconds=rng.randint(0, 999_999)),
                             assignee=rng.choice(people[slug] + [None]))
                        for n in range(rng.randint(15, 40))
                    ]
                    tasks = Task.objects.bulk_create(tasks)
                    through.objects.bulk_create([
                        through(task_id=t.id, label_id=l.id)
                        for t in tasks for l in rng.sample(labels, rng.randint(0, 3))])

        out = []
        for user, password, memberships, how in users:
            user.refresh_from_db()
            if password is not None:
                assert user.check_password(password), user.username
                if user.is_active:
                    assert authenticate(username=user.username, password=password) == user, user.username
            else:
                assert not user.has_usable_password()
            out.append({
                "id": user.id,
                "username": user.username,
                "password": password,
                "hash": user.password,
                "is_active": user.is_active,
                "is_superuser": user.is_superuser,
                "groups": sorted(g.name for g in user.groups.all()),
                "tenants": [{"crm_account.slug": s, "crm_account.id": accounts[s].id, "role": r}
                            for s, r in memberships],
                "created_by": how,
            })
        with open(users_json, "w") as f:
            json.dump(out, f, indent=2)
        self.stdout.write(
            f"django ({connection.vendor}): {len(out)} users, {Account.objects.count()} accounts, "
            f"{Project.objects.count()} projects, {Task.objects.count()} tasks, "
            f"{through.objects.count()} task labels")
