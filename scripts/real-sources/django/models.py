"""A project tracker whose tenant is `Account` (table crm_account).

Project belongs to an account and may have a parent project (self FK); Task
belongs to a project; Label is a shared lookup joined to Task through the M2M
table Django makes (crm_task_labels); AccountMembership maps auth_user rows to
accounts with a role (one user in two accounts, one user in none).
"""
import uuid

from django.conf import settings
from django.db import models


class Account(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    plan = models.CharField(max_length=20, choices=[("free", "Free"), ("pro", "Pro")], default="free")
    created_at = models.DateTimeField()

    def __str__(self):
        return self.name


class AccountMembership(models.Model):
    ROLES = [("owner", "Owner"), ("admin", "Admin"), ("member", "Member")]
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=ROLES, default="member")
    joined_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "user"], name="one_membership_per_user")]


class Label(models.Model):
    name = models.CharField(max_length=40, unique=True)
    color = models.CharField(max_length=7)

    def __str__(self):
        return self.name


class Project(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="projects")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    name = models.CharField(max_length=120)
    budget = models.DecimalField(max_digits=12, decimal_places=2, null=True)
    archived = models.BooleanField(default=False)
    settings = models.JSONField(default=dict)

    def __str__(self):
        return self.name


class Task(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    title = models.CharField(max_length=200)
    done = models.BooleanField(default=False)
    priority = models.PositiveSmallIntegerField(default=3)
    estimate_hours = models.DecimalField(max_digits=6, decimal_places=2, null=True)
    due = models.DateField(null=True)
    created_at = models.DateTimeField()
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="tasks")
    labels = models.ManyToManyField(Label, blank=True)

    def __str__(self):
        return self.title
