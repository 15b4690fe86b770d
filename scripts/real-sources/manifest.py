"""Count what real-sources.sh made and write OUT_DIR/manifest.json.

    python manifest.py OUT_DIR PG_URL
"""
import datetime
import importlib.metadata
import json
import os
import platform
import sqlite3
import sys

import psycopg

OUT, PG_URL = os.path.abspath(sys.argv[1]), sys.argv[2]


def hash_format(h):
    """Name the scheme of a stored password hash and the parameters it carries."""
    if h.startswith("scrypt:"):
        return "werkzeug-scrypt", h.split("$", 1)[0]
    if h.startswith("pbkdf2:sha256:"):
        return "werkzeug-pbkdf2-sha256", h.split("$", 1)[0]
    if h.startswith("pbkdf2_sha256$"):
        return "django-pbkdf2-sha256", "$".join(h.split("$", 2)[:2])
    if h.startswith("!"):
        return "django-unusable", "!"
    raise SystemExit(f"unknown password hash format: {h[:20]}...")


def users(path):
    out = []
    for u in json.load(open(path)):
        fmt, params = hash_format(u["hash"])
        out.append({**u, "hash_format": fmt, "hash_params": params})
    return out


def sqlite_counts(path, checks):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    names = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    tables = {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    no_tenant = {k: {"where": w, "rows": con.execute(f"SELECT count(*) FROM {k} WHERE {w}").fetchone()[0]}
                 for k, w in checks.items()}
    con.close()
    return tables, no_tenant


def pg_counts(url, checks):
    with psycopg.connect(url) as con:
        names = [r[0] for r in con.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        tables = {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
        no_tenant = {k: {"where": w, "rows": con.execute(f"SELECT count(*) FROM {k} WHERE {w}").fetchone()[0]}
                     for k, w in checks.items()}
        version = con.execute("SHOW server_version").fetchone()[0]
        columns = [{"name": n, "type": t, "nullable": nl == "YES"} for n, t, nl in con.execute(
            "SELECT column_name, format_type(a.atttypid, a.atttypmod), is_nullable "
            "FROM information_schema.columns c JOIN pg_attribute a "
            "ON a.attrelid = 'public.ledger_entry'::regclass AND a.attname = c.column_name "
            "WHERE c.table_schema = 'public' AND c.table_name = 'ledger_entry' ORDER BY c.ordinal_position")]
    return tables, no_tenant, version, columns


def versions(*names):
    return {n: importlib.metadata.version(n) for n in names}


FAB_TENANT = {
    "table": "company",
    "key": "company.id",
    "label": "company.slug",
    "direct": {"contact": "contact.company_id", "tag": "tag.company_id",
               "company_user": "company_user.company_id"},
    "indirect": {"deal": "deal.contact_id -> contact.id, contact.company_id",
                 "deal_tag": "deal_tag.deal_id -> deal.id (or deal_tag.tag_id -> tag.company_id)"},
    "shared": ["country", "ab_*"],
    "users": {"table": "ab_user", "password_column": "ab_user.password",
              "membership": "company_user (company_id, user_id -> ab_user.id, is_owner)",
              "roles": "ab_user_role (user_id, role_id -> ab_role.id)"},
}
DJANGO_TENANT = {
    "table": "crm_account",
    "key": "crm_account.id",
    "label": "crm_account.slug",
    "direct": {"crm_project": "crm_project.account_id",
               "crm_accountmembership": "crm_accountmembership.account_id"},
    "indirect": {"crm_task": "crm_task.project_id -> crm_project.id, crm_project.account_id",
                 "crm_task_labels": "crm_task_labels.task_id -> crm_task.id"},
    "self_reference": "crm_project.parent_id -> crm_project.id (nullable; same account)",
    "shared": ["crm_label", "auth_*", "django_*"],
    "users": {"table": "auth_user", "password_column": "auth_user.password",
              "membership": "crm_accountmembership (account_id, user_id -> auth_user.id, role)",
              "roles": "auth_user_groups (user_id, group_id -> auth_group.id)",
              "also_references_users": ["crm_task.assignee_id"]},
}

fab_tables, fab_orphans = sqlite_counts(
    f"{OUT}/fab/app.db", {"deal": "contact_id IS NULL",
                          "ab_user": "id NOT IN (SELECT user_id FROM company_user)"})
dj_tables, dj_orphans = sqlite_counts(
    f"{OUT}/django/db.sqlite3", {"auth_user": "id NOT IN (SELECT user_id FROM crm_accountmembership)"})
pg_tables, pg_orphans, pg_version, ledger_columns = pg_counts(
    PG_URL, {"ledger_entry": "account_id IS NULL",
             "auth_user": "id NOT IN (SELECT user_id FROM crm_accountmembership)"})
pg_tenant = json.loads(json.dumps(DJANGO_TENANT))
pg_tenant["direct"]["ledger_entry"] = "ledger_entry.account_id"

manifest = {
    "generated_by": "scripts/real-sources.sh",
    "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "out_dir": OUT,
    "software": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                 "postgresql": pg_version,
                 **versions("Flask-AppBuilder", "Flask", "Flask-SQLAlchemy", "SQLAlchemy",
                            "Werkzeug", "Django", "psycopg", "psycopg-binary")},
    "databases": [
        {
            "name": "fab",
            "engine": "sqlite",
            "path": "fab/app.db",
            "written_by": "Flask-AppBuilder (flask fab create-db, flask fab create-admin, "
                          "appbuilder.sm.add_user) and SQLAlchemy ORM (fab/seed.py)",
            "tenant": FAB_TENANT,
            "no_tenant_rows": fab_orphans,
            "tables": fab_tables,
            "users": users(f"{OUT}/fab/users.json"),
        },
        {
            "name": "django-sqlite",
            "engine": "sqlite",
            "path": "django/db.sqlite3",
            "written_by": "Django (manage.py makemigrations/migrate, createsuperuser --noinput, "
                          "User.objects.create_user, ORM in crm/management/commands/seed_crm.py)",
            "tenant": DJANGO_TENANT,
            "no_tenant_rows": dj_orphans,
            "tables": dj_tables,
            "users": users(f"{OUT}/django/users.json"),
        },
        {
            "name": "django-postgres",
            "engine": "postgresql",
            "url": PG_URL,
            "url_file": "pg/url",
            "stop": "pg/stop.sh",
            "written_by": "Django with psycopg (same project, CRM_DATABASE_URL) plus plain SQL "
                          "(pg/ledger.sql: table ledger_entry, enum ledger_kind) through psql",
            "tenant": pg_tenant,
            "no_tenant_rows": pg_orphans,
            "tables": pg_tables,
            "plain_sql_table": {"name": "ledger_entry", "columns": ledger_columns},
            "users": users(f"{OUT}/pg/users.json"),
        },
    ],
}
with open(f"{OUT}/manifest.json", "w") as f:
    json.dump(manifest, f, indent=2, ensure_ascii=False)
    f.write("\n")
for db in manifest["databases"]:
    formats = sorted({u["hash_format"] for u in db["users"]})
    print(f"manifest: {db['name']}: {len(db['tables'])} tables, {sum(db['tables'].values())} rows, "
          f"{len(db['users'])} users ({', '.join(formats)})")
