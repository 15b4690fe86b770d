//! A test kit for people who embed or extend tenantd (cargo feature `testkit`): a real server on
//! an ephemeral port with a temporary data dir, tenants, users and API keys in one call, an
//! isolation assertion over any set of routes (the walker `tenantd check` uses), load tests
//! with their report, and a controllable clock. tenantd's own integration tests are built on it.
//!
//! ```
//! use tenantd::testkit::TestServer;
//!
//! let s = TestServer::start();
//! let world = s.seed(&[("acme", &["owner", "viewer"]), ("globex", &["owner"])]);
//! let owner = world.token("acme", "owner");
//! let r = s.post_json("/api/v1/t/acme/customers", Some(owner), &serde_json::json!({"name": "Ada"}));
//! assert_eq!(r.status, 201);
//! // Viewers read but do not write; API keys work like sessions.
//! let r = s.post_json("/api/v1/t/acme/customers", Some(world.token("acme", "viewer")), &serde_json::json!({"name": "x"}));
//! assert_eq!(r.status, 403);
//! assert_eq!(s.get_as("/api/v1/t/acme/customers", world.key("acme")).json()["total"], 1);
//! ```
//!
//! Helpers panic with a message naming what failed, as test code should: a test kit that
//! returned errors would only move the `unwrap` into every test.

mod clock;
mod load;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use clock::Clock;
pub use load::{LoadReport, OpReport, StageReport};

use crate::app::{App, OpenMode};
use crate::check::creds::{Credentials, Signed};
use crate::check::walk::Route;
use crate::check::{builtin, Outcome, Run, Target};
use crate::config::Config;
use crate::http::client::{Client, Response};
use crate::http::server::{self, RunningServer};
use crate::ids::Slug;
use crate::tenancy::{self, Actor};

/// The password of every user the kit creates.
pub const PASSWORD: &str = "tangerine-orbit-42";

/// The configuration the kit's servers start with: data in `dir/data`, an ephemeral port, cheap
/// password hashes (a suite hashes thousands) and plan limits no functional test reaches.
pub fn config(dir: &Path) -> Config {
    let auth = crate::config::AuthConfig { argon2_memory_kib: 1024, argon2_iterations: 1, ..Default::default() };
    let mut plans = Config::default().plans;
    for p in plans.values_mut() {
        p.requests_per_second = 1e6;
        p.burst = 1_000_000;
        p.max_concurrent_requests = 1000;
    }
    let limits =
        crate::config::LimitsConfig { auth_requests_per_second: 1e5, auth_burst: 100_000, ..Default::default() };
    Config {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".into(),
        workers_min: 4,
        auth,
        plans,
        limits,
        ..Config::default()
    }
}

/// A real server on 127.0.0.1 with a data dir of its own, stopped (drained, checkpointed) and
/// deleted on drop.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub app: Arc<App>,
    server: Option<RunningServer>,
}

fn must<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("testkit: {what}: {e}"),
    }
}

impl TestServer {
    /// With `config(dir)`.
    pub fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    /// With `config(dir)` changed by `tweak` first (tight limits, replicas, a schema dir, …).
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_on("127.0.0.1:0", tweak)
    }

    /// `start_with` on a given address (a cluster's nodes name each other's addresses).
    pub fn start_on(listen: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::boot(listen, crate::api::router(), tweak)
    }

    /// With another route table (a handler of your own, or a rule changed to test a check).
    pub fn with_router(router: crate::http::router::Router) -> TestServer {
        Self::with_router_and(router, |_| {})
    }

    pub fn with_router_and(router: crate::http::router::Router, tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::boot("127.0.0.1:0", router, tweak)
    }

    fn boot(listen: &str, router: crate::http::router::Router, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = must("creating a temporary directory", tempfile::tempdir());
        let mut c = config(dir.path());
        tweak(&mut c);
        let app = must("opening the data dir", App::open(c, OpenMode::CreateIfMissing));
        let server = must("starting the server", server::start_with_router(app.clone(), listen, router));
        TestServer { dir, app, server: Some(server) }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        match &self.server {
            Some(s) => s.addr(),
            None => panic!("testkit: the server was shut down"),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr())
    }

    pub fn get(&self, path: &str) -> Response {
        must(&format!("GET {path}"), self.client().get(path))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.app.config.data_dir.clone()
    }

    pub fn create_tenant(&self, slug: &str) -> crate::catalog::tenants::TenantRecord {
        let s = must("a slug", Slug::parse(slug));
        must(
            &format!("creating tenant {slug}"),
            tenancy::create(&self.app, &s, &format!("Tenant {slug}"), None, &Actor::cli()),
        )
    }

    /// A user with `role` in `slug` (tenant and user created if missing); returns the user id.
    pub fn member(&self, email: &str, slug: &str, role: &str) -> i64 {
        let sl = must("a slug", Slug::parse(slug));
        let t = match self.app.tenant(&sl) {
            Ok(t) => t,
            Err(_) => self.create_tenant(slug),
        };
        let conn = must("the catalog", self.app.catalog.conn());
        let existing = must("looking up a user", crate::catalog::identity::user_by_email(&conn, email));
        drop(conn);
        let id = match existing {
            Some(u) => u.id,
            None => must(&format!("creating {email}"), crate::auth::create_user(&self.app, email, PASSWORD, false)),
        };
        let added = self.app.change(|tx| crate::catalog::identity::add_membership(tx, &t.id, id, role, 0));
        must(&format!("adding {email} to {slug} as {role}"), added);
        id
    }

    /// Signs in and returns the bearer token.
    pub fn login(&self, email: &str) -> String {
        let r = self.post_json("/api/v1/auth/login", None, &serde_json::json!({"email": email, "password": PASSWORD}));
        assert_eq!(r.status, 200, "testkit: signing in as {email}: {}", r.text());
        match r.json()["token"].as_str() {
            Some(t) => t.to_string(),
            None => panic!("testkit: signing in as {email} returned no token"),
        }
    }

    /// A member's token in one step.
    pub fn token(&self, email: &str, slug: &str, role: &str) -> String {
        self.member(email, slug, role);
        self.login(email)
    }

    /// Tenants with one signed-in user per role (`<role>@<slug>.test`) and an admin-scope API
    /// key each, in one call.
    pub fn seed(&self, spec: &[(&str, &[&str])]) -> Seeded {
        let mut out = Seeded::default();
        for (slug, roles) in spec {
            for role in *roles {
                let email = format!("{role}@{slug}.test");
                let token = self.token(&email, slug, role);
                out.logins.push(Signed {
                    tenant: slug.to_string(),
                    role: role.to_string(),
                    token,
                    email: Some(email),
                    session: true,
                });
            }
            let maker = match out.logins.iter().find(|l| l.tenant == *slug && l.role == "owner") {
                Some(l) => l.token.clone(),
                None => self.token(&format!("key-maker@{slug}.test"), slug, "owner"),
            };
            let body = serde_json::json!({"name": "testkit", "scope": "admin"});
            let r = self.post_json(&format!("/api/v1/t/{slug}/api-keys"), Some(&maker), &body);
            assert_eq!(r.status, 201, "testkit: an API key for {slug}: {}", r.text());
            out.keys.insert(slug.to_string(), r.json()["key"].as_str().unwrap_or_default().to_string());
        }
        out
    }

    /// Asserts that every tenant route `only` selects hides the second tenant of `world` from
    /// the first (and the first from the second): each login of one tenant gets 404 without
    /// the other's data, by path and by `X-Tenant`, and no credentials get 401. Both tenants
    /// need an owner in `world`. Returns how many checks ran; panics listing every failure.
    ///
    /// ```
    /// use tenantd::testkit::TestServer;
    ///
    /// let s = TestServer::start();
    /// let world = s.seed(&[("acme", &["owner", "member"]), ("globex", &["owner"])]);
    /// let checked = s.assert_isolated(&world, |r| r.pattern.starts_with("/members") || r.pattern.starts_with("/{table}"));
    /// assert!(checked >= 20);
    /// ```
    pub fn assert_isolated(&self, world: &Seeded, only: impl Fn(&Route) -> bool) -> usize {
        let creds = world.credentials();
        let tenants = creds.tenants();
        let [a, b, ..] = tenants.as_slice() else { panic!("testkit: assert_isolated needs two seeded tenants") };
        let target = Target::new(self.addr(), &self.url());
        let mut run = Run::new(true);
        for (prober, probed) in [(*a, *b), (*b, *a)] {
            let other = must("the other tenant's owner", creds.owner(prober)).email.clone().unwrap_or_default();
            let found = must(
                &format!("finding {probed}'s data"),
                builtin::discover(&target, must("an owner", creds.owner(probed)), &other, None),
            );
            must("the walk", builtin::isolation(&mut run, &target, &creds, prober, &found, &only));
        }
        let failures: Vec<String> = run
            .results
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Failed(why) => Some(format!("{}::{}: {why}", r.group, r.name)),
                _ => None,
            })
            .collect();
        assert!(failures.is_empty(), "testkit: isolation does not hold:\n{}", failures.join("\n"));
        run.results.len()
    }

    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&serde_json::Value>) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default();
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        must(&format!("{method} {path}"), self.client().request(method, path, &headers, &bytes))
    }

    pub fn get_as(&self, path: &str, token: &str) -> Response {
        self.call("GET", path, Some(token), None)
    }

    pub fn post_json(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> Response {
        self.call("POST", path, token, Some(body))
    }

    pub fn state(&self) -> &crate::http::server::ServerState {
        match &self.server {
            Some(s) => &s.state,
            None => panic!("testkit: the server was shut down"),
        }
    }

    /// Stops the server (drain, flush, anchor, checkpoint) but keeps the data dir.
    pub fn shutdown(&mut self) {
        if let Some(s) = self.server.take() {
            must("stopping the server", s.shutdown());
        }
    }

    pub fn stop(mut self) {
        self.shutdown();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = s.shutdown();
        }
    }
}

/// What `TestServer::seed` made: a session per (tenant, role) and an API key per tenant.
#[derive(Debug, Default, Clone)]
pub struct Seeded {
    pub logins: Vec<Signed>,
    pub keys: BTreeMap<String, String>,
}

impl Seeded {
    /// The session token of `role` in `tenant`.
    pub fn token(&self, tenant: &str, role: &str) -> &str {
        match self.logins.iter().find(|l| l.tenant == tenant && l.role == role) {
            Some(l) => &l.token,
            None => panic!("testkit: no {role} of {tenant} was seeded"),
        }
    }

    /// The admin-scope API key of `tenant`.
    pub fn key(&self, tenant: &str) -> &str {
        match self.keys.get(tenant) {
            Some(k) => k,
            None => panic!("testkit: no tenant {tenant} was seeded"),
        }
    }

    /// The logins as `tenantd check` credentials (tenants in seeding order).
    pub fn credentials(&self) -> Credentials {
        Credentials { logins: self.logins.clone(), platform_admin: None }
    }
}
