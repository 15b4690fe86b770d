//! `tenantd check`: a conformance suite an operator runs against their own deployment and
//! schema. It signs in with credentials for two tenants (`creds`), walks the route table
//! (`walk`, the same walker the project's isolation tests use) with the other tenant's
//! credentials, none and lower roles (`builtin`), checks audit, limits and security headers,
//! runs the operator's own declarative checks (`custom`) and, on a copy of a data dir
//! (`local`), dry-runs pending migrations and restores a backup. Results read like a test
//! runner's (`N passed, M failed`), with JUnit XML for CI systems (`report`).

pub mod builtin;
pub mod creds;
pub mod custom;
pub mod local;
pub mod report;
pub mod walk;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::client::{Client, Response};

/// A check's own errors are messages: they end up as a failed check's explanation.
pub type Result<T, E = String> = std::result::Result<T, E>;

/// The server under check.
pub struct Target {
    pub addr: SocketAddr,
    /// `http://host:port`, for messages.
    pub base: String,
    client: RefCell<Client>,
}

impl Target {
    pub fn new(addr: SocketAddr, base: &str) -> Target {
        Target { addr, base: base.trim_end_matches('/').to_string(), client: RefCell::new(Client::new(addr)) }
    }

    /// A request with a bearer token (if any) and a JSON body (if any).
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Result<Response> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let bytes = match body {
            Some(b) => {
                headers.push(("Content-Type", "application/json"));
                serde_json::to_vec(b).map_err(|e| e.to_string())?
            }
            None => Vec::new(),
        };
        self.request(method, path, &headers, &bytes)
    }

    /// One request; a 429 is waited out (its `Retry-After`, up to 5 s, three times), since a
    /// deployment's own limits must not fail its isolation checks.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response> {
        let mut tries = 0;
        loop {
            let r = self
                .client
                .borrow_mut()
                .request(method, path, headers, body)
                .map_err(|e| format!("cannot reach {}: {e} (is the server running?)", self.base))?;
            let wait = r.header("retry-after").and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(1);
            if r.status != 429 || tries >= 3 || wait > 5 {
                return Ok(r);
            }
            tries += 1;
            std::thread::sleep(Duration::from_secs(wait.max(1)));
        }
    }
}

/// The error message of a JSON error answer, or the start of the body.
pub fn error_message(r: &Response) -> String {
    match r.json()["error"]["message"].as_str() {
        Some(m) => m.to_string(),
        None => r.text().chars().take(200).collect(),
    }
}

/// What to run (besides the walk, which always runs).
pub struct Options {
    /// The data API table `{table}` stands for (default: each tenant's first, by name).
    pub table: Option<String>,
    /// On a data dir: tenants whose copies pending migrations are dry-run on.
    pub migrate_tenants: usize,
    /// Print only failures and the summary.
    pub quiet: bool,
}

/// Every check against `target`: the walk in both directions between the first two tenants of
/// `creds`, roles, controls, audit and headers, the operator's `custom` checks, and, with a
/// data-dir `copy`, the checks that need its files (skipped otherwise, with the reason).
pub fn run_all(
    target: &Target,
    creds: &creds::Credentials,
    custom: &[custom::Check],
    copy: Option<&local::Copy>,
    o: &Options,
) -> Result<Run> {
    let tenants = creds.tenants();
    let (a, b) = match tenants.as_slice() {
        [a, b, ..] => (*a, *b),
        _ => return Err("the credentials name fewer than two tenants".into()),
    };
    // The clock covers discovery too: "finished in" is the whole run.
    let mut run = Run::new(o.quiet);
    let mut found = std::collections::BTreeMap::new();
    for (slug, other) in [(a, b), (b, a)] {
        let member_email = creds.owner(other)?.email.clone().unwrap_or_else(|| "nobody@check.example".into());
        found.insert(
            slug.to_string(),
            builtin::discover(target, creds.owner(slug)?, &member_email, o.table.as_deref())?,
        );
    }
    for (prober, probed) in [(a, b), (b, a)] {
        builtin::isolation(&mut run, target, creds, prober, &found[probed], &|_| true)?;
        builtin::pages(&mut run, target, creds, prober, &found[probed])?;
    }
    builtin::global(&mut run, target, creds, &found[b])?;
    builtin::roles(&mut run, target, creds, &found)?;
    for t in found.values() {
        builtin::control(&mut run, target, creds, t)?;
    }
    builtin::audit(&mut run, target, creds, b)?;
    builtin::headers(&mut run, target, creds, &found[b])?;
    custom::run(&mut run, target, creds, custom);
    match copy {
        Some(c) => local::checks(&mut run, c, o.migrate_tenants),
        None => {
            let why = "needs the files: run with --data-dir";
            run.record_skip("audit", "every audit chain verifies against its anchor", why);
            run.record_skip("migrations", "pending tenant-schema migrations apply to copies of tenants (dry run)", why);
            run.record_skip("backup", "a snapshot restores into a new tenant with the same rows", why);
        }
    }
    Ok(run)
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    Failed(String),
    /// Not applicable here (e.g. a data-dir check against a URL), with the reason.
    Skipped(String),
}

/// One check's result: `group::name`, e.g. `isolation::GET /api/v1/t/{slug}/members as the other tenant's owner`.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub group: String,
    pub name: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Collects results as checks run, printing each line as it ends (like `cargo test`).
pub struct Run {
    pub results: Vec<CheckResult>,
    started: Instant,
    quiet: bool,
}

impl Run {
    pub fn new(quiet: bool) -> Run {
        Run { results: Vec::new(), started: Instant::now(), quiet }
    }

    /// Runs `f` as check `group::name`; an error from it is a failure with its message.
    pub fn check(&mut self, group: &str, name: &str, f: impl FnOnce() -> Result<Outcome>) {
        let t = Instant::now();
        let outcome = match f() {
            Ok(o) => o,
            Err(e) => Outcome::Failed(e),
        };
        self.record(CheckResult { group: group.into(), name: name.into(), outcome, elapsed: t.elapsed() });
    }

    pub fn record(&mut self, r: CheckResult) {
        if !self.quiet {
            let verdict = match &r.outcome {
                Outcome::Passed => "ok".to_string(),
                Outcome::Failed(_) => "FAILED".to_string(),
                Outcome::Skipped(why) => format!("skipped ({why})"),
            };
            println!("check {}::{} ... {verdict}", r.group, r.name);
        }
        self.results.push(r);
    }

    pub fn record_skip(&mut self, group: &str, name: &str, why: &str) {
        let outcome = Outcome::Skipped(why.to_string());
        self.record(CheckResult { group: group.into(), name: name.into(), outcome, elapsed: Duration::ZERO });
    }

    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }

    pub fn passed(&self) -> usize {
        self.count(|o| *o == Outcome::Passed)
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped(_)))
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// `Passed` when `ok`, else `Failed(why())`.
pub fn expect(ok: bool, why: impl FnOnce() -> String) -> Outcome {
    if ok {
        Outcome::Passed
    } else {
        Outcome::Failed(why())
    }
}

/// The line (1-based) of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A TOML error as one line naming the line of the file: `line 5: unknown field `emial`, …`.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim_end().replace('\n', " ");
    match e.span() {
        Some(span) => format!("line {}: {msg}", line_of(text, span.start)),
        None => msg,
    }
}
