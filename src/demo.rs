//! Demo tenants with believable sample data in the demo schema. Idempotent: tenants that
//! exist are left as they are, so running `tenantd demo` twice reuses the data.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::params;

use crate::app::App;
use crate::error::Result;
use crate::ids::Slug;
use crate::tenancy::{self, Actor};

pub struct DemoTenant {
    pub slug: &'static str,
    pub name: &'static str,
    pub plan: &'static str,
    pub customers: usize,
}

pub const TENANTS: &[DemoTenant] = &[
    DemoTenant { slug: "acme", name: "Acme Corporation", plan: "pro", customers: 120 },
    DemoTenant { slug: "globex", name: "Globex Inc.", plan: "free", customers: 40 },
    DemoTenant { slug: "initech", name: "Initech", plan: "enterprise", customers: 250 },
];

const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus", "Margaret", "Tim",
    "Sophie", "Niklaus", "Hedy", "John",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "Torvalds",
    "Hamilton",
    "Berners-Lee",
    "Wilson",
    "Wirth",
    "Lamarr",
    "Backus",
];
const COMPANIES: &[&str] = &[
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Wingtip",
    "Litware",
    "Adventure Works",
    "Proseware",
    "Lucerne",
    "Coho Winery",
];
const PROJECTS: &[&str] = &[
    "Website relaunch",
    "Data migration",
    "Mobile app",
    "Support contract",
    "Security audit",
    "Onboarding",
    "Analytics dashboard",
    "API integration",
];
const TASKS: &[&str] = &[
    "Kick-off call",
    "Write proposal",
    "Review contract",
    "Set up staging",
    "Import legacy data",
    "User training",
    "Load test",
    "Go-live checklist",
    "Send invoice",
    "Retrospective",
];
const NOTES: &[&str] = &[
    "Prefers email over phone.",
    "Asked about the enterprise plan.",
    "Renewal due next quarter.",
    "Happy with the last release.",
    "Needs SSO before rollout.",
];

/// Password of every demo user (printed by `tenantd demo`). Demo data only.
pub const DEMO_PASSWORD: &str = "tenantd-demo-2026";
/// The demo's platform administrator.
pub const PLATFORM_ADMIN: &str = "root@tenantd.example";
/// One user per built-in role in every demo tenant: `<name>@<slug>.example`.
pub const ROLE_USERS: [(&str, &str); 4] =
    [("olivia", "owner"), ("adam", "admin"), ("maria", "member"), ("victor", "viewer")];

fn ensure_users(app: &App, slug: &Slug) -> Result<()> {
    use crate::catalog::identity;
    let t = app.tenant(slug)?;
    for (name, role) in ROLE_USERS {
        let email = format!("{name}@{slug}.example");
        if identity::user_by_email(&*app.catalog.conn()?, &email)?.is_some() {
            continue;
        }
        let id = crate::auth::create_user(app, &email, DEMO_PASSWORD, false)?;
        app.change(|tx| identity::add_membership(tx, &t.id, id, role, crate::util::now_unix()))?;
    }
    Ok(())
}

/// Creates any missing demo tenant and fills it. Returns the slugs created now.
pub fn ensure(app: &App) -> Result<Vec<&'static str>> {
    let mut created = Vec::new();
    if crate::catalog::identity::user_by_email(&*app.catalog.conn()?, PLATFORM_ADMIN)?.is_none() {
        crate::auth::create_user(app, PLATFORM_ADMIN, DEMO_PASSWORD, true)?;
    }
    for d in TENANTS {
        let slug = Slug::parse(d.slug)?;
        if crate::catalog::tenants::find_by_slug(&*app.catalog.conn()?, &slug)?.is_some() {
            ensure_users(app, &slug)?;
            continue;
        }
        let plan = app.config.plans.contains_key(d.plan).then_some(d.plan);
        let t = tenancy::create(app, &slug, d.name, plan, &Actor("demo".into()))?;
        let opened = app.open_tenant(&t)?;
        let mut conn = opened.handle.conn()?;
        match (&app.config.demo_seed_sql, &app.config.tenant_schema_dir) {
            (Some(file), _) => seed_from(&mut conn, file)?,
            (None, None) => seed(&mut conn, d)?,
            // The operator's schema without sample rows: tenants and users only.
            (None, Some(_)) => {}
        }
        ensure_users(app, &slug)?;
        created.push(d.slug);
    }
    Ok(created)
}

/// The operator's sample rows (`demo_seed_sql`), in one transaction.
fn seed_from(conn: &mut rusqlite::Connection, file: &std::path::Path) -> Result<()> {
    let sql = std::fs::read_to_string(file).map_err(|e| {
        crate::error::Error::invalid("demo_seed_sql", format!("cannot read demo_seed_sql {}: {e}", file.display()))
    })?;
    let tx = conn.transaction()?;
    tx.execute_batch(&sql).map_err(|e| {
        crate::error::Error::invalid("demo_seed_sql", format!("demo_seed_sql {} failed: {e}", file.display()))
    })?;
    tx.commit()?;
    Ok(())
}

fn seed(conn: &mut rusqlite::Connection, d: &DemoTenant) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(d.slug.bytes().map(u64::from).sum());
    let tx = conn.transaction()?;
    let domain = d.slug.to_string() + ".example";
    for i in 0..d.customers {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let company = COMPANIES[rng.random_range(0..COMPANIES.len())];
        let status = ["lead", "active", "active", "churned"][rng.random_range(0..4)];
        tx.execute(
            "INSERT INTO customers(name, email, company, status, phone) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                format!("{first} {last}"),
                format!("{}.{}{i}@{domain}", first.to_lowercase(), last.to_lowercase().replace('-', "")),
                company,
                status,
                format!("+1-555-{:04}", rng.random_range(0..10_000))
            ],
        )?;
        let customer = tx.last_insert_rowid();
        if rng.random_bool(0.4) {
            tx.execute(
                "INSERT INTO notes(customer_id, body) VALUES (?1, ?2)",
                params![customer, NOTES[rng.random_range(0..NOTES.len())]],
            )?;
        }
        if status == "lead" {
            continue;
        }
        for _ in 0..rng.random_range(1..=2) {
            let state = ["planned", "active", "done"][rng.random_range(0..3)];
            tx.execute(
                "INSERT INTO projects(customer_id, name, budget, status) VALUES (?1, ?2, ?3, ?4)",
                params![
                    customer,
                    format!("{} for {company}", PROJECTS[rng.random_range(0..PROJECTS.len())]),
                    (rng.random_range(5..200) * 500) as f64,
                    state
                ],
            )?;
            let project = tx.last_insert_rowid();
            for _ in 0..rng.random_range(2..=6) {
                tx.execute(
                    "INSERT INTO tasks(project_id, title, done, priority, due_date) VALUES (?1, ?2, ?3, ?4, date('now', ?5))",
                    params![
                        project,
                        TASKS[rng.random_range(0..TASKS.len())],
                        i64::from(state == "done" || rng.random_bool(0.3)),
                        rng.random_range(1..=4),
                        format!("+{} days", rng.random_range(-20..60))
                    ],
                )?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}
