"""Fill the FAB app's database through FAB and SQLAlchemy; write users.json.

Run from the app's folder after `flask fab create-db` and `flask fab create-admin`:
    python seed.py ADMIN_USERNAME ADMIN_PASSWORD
"""
import datetime
import decimal
import json
import random
import sys

from werkzeug.security import check_password_hash

from app import app, appbuilder, db
from app.models import Company, CompanyUser, Contact, Country, Deal, Tag

ADMIN_USER, ADMIN_PASSWORD = sys.argv[1], sys.argv[2]

# username, password, roles, companies (slug, is_owner), hash method
USERS = [
    ("alice", "alice-Pa55-acme", ["Sales"], [("acme", True)], "scrypt"),
    ("bob", "bob-Pa55-globex", ["Public"], [("globex", True)], "pbkdf2:sha256"),
    ("carol", "carol-Pa55-two-companies", ["Sales", "Public"], [("globex", False), ("initech", True)], "scrypt"),
    ("erin", "erin-Pa55-umbrella", ["Sales"], [("umbrella", True)], "pbkdf2:sha256"),
    ("dave", "dave-Pa55-no-company", ["Public"], [], "scrypt"),
]
COMPANIES = [
    ("Acme Corp", "acme"),
    ("Globex Corporation", "globex"),
    ("Initech", "initech"),
    ("Umbrella plc", "umbrella"),
]
COUNTRIES = [("US", "United States"), ("DE", "Germany"), ("FR", "France"),
             ("JP", "Japan"), ("BR", "Brazil")]
FIRST = ["Ann", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivo", "Jun"]
LAST = ["Smith", "Müller", "Dubois", "Tanaka", "Silva", "O'Brien", "Nguyen"]
STAGES = ["lead", "proposal", "won", "lost"]


def main():
    rng = random.Random(19)
    sm = appbuilder.sm
    with app.app_context():
        session = db.session
        # A custom role holding some of the permissions FAB made for the views.
        wanted = {("can_list", "DealView"), ("can_show", "DealView"),
                  ("can_add", "DealView"), ("can_list", "ContactView")}
        perms = session.query(sm.permissionview_model).all()
        sales_perms = [pv for pv in perms
                       if (pv.permission.name, pv.view_menu.name) in wanted]
        sm.add_role("Sales", sales_perms)

        countries = [Country(code=c, name=n) for c, n in COUNTRIES]
        session.add_all(countries)
        companies = {}
        base = datetime.datetime(2024, 1, 15, 9, 30, 0)
        for i, (name, slug) in enumerate(COMPANIES):
            companies[slug] = Company(name=name, slug=slug,
                                      created_on=base + datetime.timedelta(days=37 * i))
        session.add_all(companies.values())
        session.flush()

        for slug, company in companies.items():
            tags = [Tag(company=company, name=n) for n in ("hot", "renewal", slug + "-vip")]
            session.add_all(tags)
            for _ in range(rng.randint(3, 6)):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                contact = Contact(
                    company=company,
                    country=rng.choice(countries + [None]),
                    name=f"{first} {last}",
                    email=f"{first.lower()}.{last.lower().replace(chr(39), '')}@{slug}.example",
                    notes=rng.choice([None, "", "met at the fair", "prefers e-mail; ünïcode ✓"]),
                )
                session.add(contact)
                for k in range(rng.randint(0, 3)):
                    stage = rng.choice(STAGES)
                    deal = Deal(
                        contact=contact,
                        title=f"{slug} deal {contact.name} #{k + 1}",
                        amount=decimal.Decimal(rng.randint(100, 9_999_999)) / 100,
                        stage=stage,
                        won=stage == "won",
                        close_date=(datetime.date(2025, 1, 1) + datetime.timedelta(days=rng.randint(0, 400)))
                        if stage in ("won", "lost") else None,
                        tags=rng.sample(tags, rng.randint(0, 2)),
                    )
                    session.add(deal)
        # The deal that belongs to no tenant: no contact, hence no company.
        session.add(Deal(contact=None, title="orphan deal (no contact)",
                         amount=decimal.Decimal("42.00"), stage="lead", won=False))
        session.commit()

        users = []
        admin = sm.find_user(username=ADMIN_USER)
        users.append((admin, ADMIN_PASSWORD, [], app.config["FAB_PASSWORD_HASH_METHOD"],
                      "flask fab create-admin"))
        for username, password, roles, memberships, method in USERS:
            app.config["FAB_PASSWORD_HASH_METHOD"] = method
            user = sm.add_user(
                username, username.capitalize(), "Example", f"{username}@users.example",
                [sm.find_role(r) for r in roles], password,
            )
            assert user, f"FAB refused to add {username}"
            for slug, owner in memberships:
                session.add(CompanyUser(company_id=companies[slug].id, user_id=user.id,
                                        is_owner=owner))
            users.append((user, password, memberships, method, "appbuilder.sm.add_user"))
        app.config["FAB_PASSWORD_HASH_METHOD"] = "scrypt"
        session.commit()

        out = []
        for user, password, memberships, method, how in users:
            session.refresh(user)
            assert check_password_hash(user.password, password), user.username
            assert sm.auth_user_db(user.username, password) is not None, user.username
            out.append({
                "id": user.id,
                "username": user.username,
                "password": password,
                "fab_hash_method": method,
                "hash": user.password,
                "roles": sorted(r.name for r in user.roles),
                "tenants": [{"company.slug": s, "company.id": companies[s].id, "is_owner": o}
                            for s, o in memberships],
                "created_by": how,
            })
        json.dump(out, open("users.json", "w"), indent=2)
        print(f"fab: {len(out)} users, {len(companies)} companies, "
              f"{session.query(Contact).count()} contacts, {session.query(Deal).count()} deals")


if __name__ == "__main__":
    main()
