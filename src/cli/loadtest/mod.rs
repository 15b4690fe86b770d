//! `tenantd loadtest`: a multi-tenant load generator built into the binary, so the numbers in
//! docs/benchmarks.md come from a tool anyone has. `setup` provides per-tenant credentials,
//! `seed` picks the table and fills it (and its foreign keys' parents), `rows` makes rows for
//! any schema, `driver` runs the client threads, `stats` measures, `report` prints.

mod driver;
mod report;
mod report_html;
mod rows;
mod scenario;
mod seed;
mod setup;
mod stats;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use super::{print_json, CliError, CliResult};
use crate::app::{App, OpenMode};
use crate::config::Config;
use crate::http::client::{Client, Response};
use driver::{Distribution, Load, Mix, OpMix, Target, Tenants};
use rows::TableGen;
use stats::Sampler;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct LoadtestArgs {
    /// Server to load, e.g. http://127.0.0.1:8080 (plain HTTP). Default: the config's `listen`.
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
    /// Tenants to spread the load over (with --data-dir: load-00001… are created or reused;
    /// default 10. With --credentials: the first N of the file; default all of them).
    #[arg(long, value_name = "N")]
    tenants: Option<usize>,
    /// Client threads, each with its own keep-alive connection (default 16).
    #[arg(long, value_name = "C")]
    concurrency: Option<usize>,
    /// How long to send: 500ms, 30s, 2m, 1h (default 10s).
    #[arg(long, value_name = "TIME")]
    duration: Option<String>,
    /// Relative weights of read (GET one row by id), list (page of 20 with the total) and
    /// write (POST one generated row), all on the --table (default read=80,list=10,write=10).
    #[arg(long, value_name = "OP=W,...")]
    mix: Option<String>,
    /// How requests pick a tenant: uniform (default), or zipf (s = 1.0: a few hot tenants, a
    /// long tail).
    #[arg(long, value_name = "uniform|zipf")]
    distribution: Option<String>,
    /// Open loop: send this many requests per second in all, on a fixed schedule, and count
    /// latency from when each request was due. Default: closed loop (back to back).
    #[arg(long, value_name = "REQ_PER_S")]
    rate: Option<f64>,
    /// The table to load. Default: the first table, by name, that the data API serves (one
    /// INTEGER PRIMARY KEY): with --data-dir from the tenant schema, with --credentials from
    /// the first tenant's /openapi.json.
    #[arg(long, value_name = "NAME")]
    table: Option<String>,
    /// Rows per tenant: with --data-dir, ids 1..=R of the table are seeded (and up to 1000 rows
    /// of each table its foreign keys point at); reads pick among them (default 1000).
    #[arg(long, value_name = "R")]
    rows: Option<u64>,
    /// Plan of the tenants loadtest creates (or moves its reused tenants to). Pick one whose
    /// limits the load does not reach, or the report will show 429s (default enterprise).
    #[arg(long, value_name = "NAME")]
    plan: Option<String>,
    /// A load in stages (TOML: durations, fixed or ramped connections and rates, mixes per
    /// table, tenant weights); see below. --tenants, --rows, --distribution and --plan given
    /// here override the file's.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["concurrency", "duration", "mix", "rate"])]
    scenario: Option<PathBuf>,
    /// Also write an HTML report with latency percentiles and throughput over time as SVG
    /// charts, and a table per stage.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// JSON file `[{"slug": "acme", "token": "tdk_…"}, …]` instead of --data-dir (tokens: API
    /// keys or session tokens that may read and write the table).
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

pub const AFTER_HELP: &str = "\
Credentials: with --data-dir DIR (the server's data dir), loadtest creates or reuses tenants
load-00001, load-00002, … on --plan, seeds --rows rows of the table in each, and mints a fresh
write-scope API key per tenant (revoking the previous run's). A server running on DIR sees them
within a second. Against a remote server, pass --credentials FILE instead.

Any tenant schema: rows are generated from the table's columns (types, NOT NULL, UNIQUE, CHECK,
foreign keys), tried first on the schema in memory, so a table loadtest cannot fill fails before
any tenant is touched. Foreign keys point at seeded rows of their parent tables; `col IN (…)`
checks are read, other CHECKs are met by trying other values. Writes never repeat a UNIQUE value.
With --credentials the table and the write bodies come from the first tenant's
/api/v1/t/SLUG/openapi.json, which does not describe CHECK, UNIQUE or foreign keys: writes fill
the required columns only (text unique, numbers 1..5) and the remote tenants must hold ids
1..=--rows; if the server refuses the writes (400/409 in the report), seed with --data-dir or
leave writes out of the mix.

Every client thread sends its next request as soon as the last one is answered (closed loop,
like wrk), or with --rate on a fixed schedule (open loop; latency then counts from when each
request was due, so queueing behind a stalled server shows). The report gives requests/s and p50/p95/p99/max latency per operation, with errors by
HTTP status (`connection` = no response). Exit status: 0 when every request got a 2xx answer,
1 when any did not (the report is printed either way), 2 for bad options.

Examples:
  tenantd --data-dir /var/lib/tenantd loadtest --url http://127.0.0.1:8080 --tenants 100 --duration 30s
  tenantd --data-dir ./data loadtest --tenants 10000 --distribution zipf --rows 100 --mix read=90,write=10
  tenantd --data-dir ./data loadtest --table books --rows 500 --mix read=50,list=10,write=40
  tenantd loadtest --url http://10.0.0.5:8080 --credentials creds.json --concurrency 32 --json
  tenantd --data-dir ./data loadtest --scenario peak.toml --html peak.html

A scenario (--scenario FILE) runs stages one after the other against the same tenants, and
reports each (text, --json: {\"scenario\", \"stages\": [...]}, --html: charts over time):

";

/// The help's tail: `AFTER_HELP` and an example scenario.
pub fn after_help() -> String {
    format!("{AFTER_HELP}{}", scenario::EXAMPLE)
}

/// `30s`, `2m`, `500ms`, `1h`, `1.5s`: a positive number and a unit.
fn parse_duration(s: &str) -> Result<Duration, CliError> {
    let bad = || {
        CliError::usage(format!(
            "invalid --duration {s:?}: use a positive number with ms, s, m or h, e.g. 30s, 2m, 500ms"
        ))
    };
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !(secs > 0.0 && secs <= 7.0 * 86_400.0) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `http://host[:port][/]` to an address; anything else is a usage error.
pub(super) fn parse_url(s: &str) -> Result<SocketAddr, CliError> {
    let bad = |why: &str| CliError::usage(format!("invalid --url {s:?}: {why}"));
    let rest = s.strip_prefix("http://").ok_or_else(|| {
        bad(if s.starts_with("https://") {
            "https is not supported; point it at the plain HTTP listener, e.g. http://127.0.0.1:8080"
        } else {
            "expected http://HOST:PORT"
        })
    })?;
    let hostport = rest.trim_end_matches('/');
    if hostport.is_empty() || hostport.contains('/') {
        return Err(bad("give the server's base address only, without a path"));
    }
    let with_port = if hostport.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    with_port.to_socket_addrs().map_err(|e| bad(&e.to_string()))?.next().ok_or_else(|| bad("the host has no address"))
}

/// The stages to run: the scenario's, or one from the flags.
fn stages(a: &LoadtestArgs, sc: Option<&scenario::Scenario>) -> CliResult<Vec<scenario::Stage>> {
    if let Some(sc) = sc {
        return Ok(sc.stages.clone());
    }
    let duration = parse_duration(a.duration.as_deref().unwrap_or("10s"))?;
    let text = a.mix.as_deref().unwrap_or("read=80,list=10,write=10");
    let mix = OpMix::parse(text).map_err(|e| CliError::usage(format!("invalid --mix {text:?}: {e}")))?;
    let c = a.concurrency.unwrap_or(16);
    if !(1..=4096).contains(&c) {
        return Err(CliError::usage(format!("--concurrency {c} is out of range (1..=4096)")));
    }
    if a.rate.is_some_and(|r| !(r.is_finite() && r > 0.0 && r <= 10_000_000.0)) {
        return Err(CliError::usage("--rate must be a number of requests per second in (0, 10,000,000]"));
    }
    let name = String::new();
    Ok(vec![scenario::Stage {
        name,
        duration,
        concurrency: (c, c),
        rate: a.rate.map(|r| (r, r)),
        mix: vec![(None, mix)],
    }])
}

pub fn run(config: Config, data_dir_given: bool, a: LoadtestArgs) -> CliResult {
    // Every option is checked before anything touches the data dir or the network.
    let sc = match &a.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("cannot read --scenario {}: {e}", path.display())))?;
            Some(scenario::parse(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?)
        }
        None => None,
    };
    let stages = stages(&a, sc.as_ref())?;
    let dist_text =
        a.distribution.clone().or_else(|| sc.as_ref().and_then(|s| s.distribution.map(|d| d.name().to_string())));
    let distribution = Distribution::parse(dist_text.as_deref().unwrap_or("uniform")).map_err(CliError::usage)?;
    let tenants = a.tenants.or(sc.as_ref().and_then(|s| s.tenants));
    let rows = a.rows.or(sc.as_ref().and_then(|s| s.rows)).unwrap_or(1000);
    let plan = a.plan.clone().or(sc.as_ref().and_then(|s| s.plan.clone())).unwrap_or_else(|| "enterprise".into());
    if tenants == Some(0) || tenants.is_some_and(|n| n > 1_000_000) {
        return Err(CliError::usage("--tenants must be between 1 and 1,000,000"));
    }
    if rows > 10_000_000 {
        return Err(CliError::usage(format!("--rows {rows} is out of range (0..=10,000,000)")));
    }
    let reads = stages
        .iter()
        .any(|s| s.mix.iter().any(|(_, m)| m.weight(driver::Op::Read) > 0 || m.weight(driver::Op::List) > 0));
    if rows == 0 && reads {
        return Err(CliError::usage("--rows 0 leaves nothing to read: give --rows or a mix of writes only"));
    }
    // Tenant weights name the tenants to load: checked before any is created.
    let weights = match sc.as_ref().filter(|s| !s.tenant_weights.is_empty()) {
        Some(s) => {
            let slugs: Vec<String> = match (&a.credentials, data_dir_given) {
                (Some(path), false) => setup::read_credentials(path, tenants)?.into_iter().map(|c| c.slug).collect(),
                _ => (1..=tenants.unwrap_or(10)).map(setup::slug_for).collect(),
            };
            let refs: Vec<&str> = slugs.iter().map(String::as_str).collect();
            Some(scenario::weights(&s.tenant_weights, &refs).map_err(CliError::usage)?)
        }
        None => None,
    };
    let url = a.url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
    let addr = parse_url(&url)?;
    let progress = super::interactive();
    // The loaded tables: the stages' (the default one first, when a stage loads it).
    let named: Vec<String> = sc.as_ref().map(scenario::Scenario::tables).unwrap_or_default();
    let uses_default = sc.as_ref().is_none_or(scenario::Scenario::uses_default_table);
    let (creds, gens): (Vec<setup::Credential>, Vec<Arc<TableGen>>) = match (&a.credentials, data_dir_given) {
        (Some(_), true) => return Err(CliError::usage("give either --data-dir or --credentials, not both")),
        (Some(path), false) => {
            let creds = setup::read_credentials(path, tenants)?;
            let gens = discover(addr, &url, &creds, a.table.as_deref(), uses_default, &named)?;
            (creds, gens)
        }
        (None, true) => {
            let app = App::open(config, OpenMode::MustExist)?;
            local(&app, a.table.as_deref(), sc.as_ref(), tenants.unwrap_or(10), rows, &plan, progress)?
        }
        (None, false) => {
            return Err(CliError::usage(
                "loadtest needs credentials: --data-dir DIR (the server's; tenants are created there) or --credentials FILE",
            ))
        }
    };
    let scenario_name = sc.as_ref().map(|s| s.name.clone());
    let how = How { stages, rows, weights, distribution, progress, html: a.html.is_some() };
    let ran = execute(addr, &url, &creds, &gens, &how, scenario_name.as_deref())?;
    if a.json {
        match (&scenario_name, ran.stages.as_slice()) {
            (None, [one]) => print_json(one)?,
            _ => print_json(&serde_json::json!({"scenario": scenario_name, "stages": ran.stages}))?,
        }
    } else {
        print!("{}", ran.text);
    }
    if let Some(path) = &a.html {
        std::fs::write(path, &ran.html)
            .map_err(|e| CliError::failed(format!("cannot write --html {}: {e}", path.display())))?;
    }
    Ok(if ran.failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Tenants `load-00001…` provisioned in `app` with the loaded tables seeded: the default table
/// (`table`, else the schema's first) when a stage loads it, then the tables the stages name.
fn local(
    app: &App,
    table: Option<&str>,
    sc: Option<&scenario::Scenario>,
    tenants: usize,
    rows: u64,
    plan: &str,
    progress: bool,
) -> CliResult<(Vec<setup::Credential>, Vec<Arc<TableGen>>)> {
    let mut want: Vec<String> = sc.map(scenario::Scenario::tables).unwrap_or_default();
    if sc.is_none_or(scenario::Scenario::uses_default_table) {
        let default = match table {
            Some(t) => t.to_string(),
            None => seed::plan(app.store.schema(), None, rows)?.tables()[0].name.clone(),
        };
        want.retain(|t| *t != default);
        want.insert(0, default);
    }
    let seeding = seed::plan_tables(app.store.schema(), &want, rows)?;
    let creds = setup::provision(app, tenants, &seeding, plan, progress)?;
    Ok((creds, seeding.targets.iter().map(|t| t.gen.clone()).collect()))
}

/// The testkit's load test (`TestServer::loadtest`): `scenario` (the `--scenario` format)
/// against the server at `addr`, its tenants provisioned through the server's own `app`.
/// Returns `{"scenario", "stages": [...], "failed"}` with each stage as `--json` reports it.
#[cfg(feature = "testkit")]
pub fn in_process(app: &App, addr: SocketAddr, scenario: &str) -> Result<serde_json::Value, String> {
    let sc = scenario::parse(scenario)?;
    let (tenants, rows) = (sc.tenants.unwrap_or(10), sc.rows.unwrap_or(1000));
    let weights = if sc.tenant_weights.is_empty() {
        None
    } else {
        let slugs: Vec<String> = (1..=tenants).map(setup::slug_for).collect();
        Some(scenario::weights(&sc.tenant_weights, &slugs.iter().map(String::as_str).collect::<Vec<_>>())?)
    };
    let plan = sc.plan.clone().unwrap_or_else(|| "enterprise".into());
    let (creds, gens) = local(app, None, Some(&sc), tenants, rows, &plan, false).map_err(|e| e.to_string())?;
    let distribution = sc.distribution.unwrap_or(Distribution::Uniform);
    let how = How { stages: sc.stages.clone(), rows, weights, distribution, progress: false, html: false };
    let ran =
        execute(addr, &format!("http://{addr}"), &creds, &gens, &how, Some(&sc.name)).map_err(|e| e.to_string())?;
    Ok(serde_json::json!({"scenario": sc.name, "stages": ran.stages, "failed": ran.failed}))
}

/// How to run the stages, once tenants and tables are known.
struct How {
    stages: Vec<scenario::Stage>,
    rows: u64,
    weights: Option<Vec<f64>>,
    distribution: Distribution,
    progress: bool,
    html: bool,
}

/// What the stages did: each stage's JSON report, the text report, the HTML page (when asked
/// for) and whether any request failed.
struct Ran {
    stages: Vec<serde_json::Value>,
    text: String,
    html: String,
    failed: bool,
}

/// Runs the stages one after the other against `creds`' tenants and the loaded tables `gens`
/// (the default table first).
fn execute(
    addr: SocketAddr,
    url: &str,
    creds: &[setup::Credential],
    gens: &[Arc<TableGen>],
    how: &How,
    scenario_name: Option<&str>,
) -> CliResult<Ran> {
    let (stages, rows, progress) = (&how.stages, how.rows, how.progress);
    let tables: Vec<&TableGen> = gens.iter().map(|g| g.as_ref()).collect();
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let targets: Vec<Target> = creds.iter().map(|c| Target::new(&c.slug, &c.token, &names)).collect();
    let (picker, dist_name) = match &how.weights {
        Some(w) => (Tenants::Sampled(Sampler::weighted(w)), "weighted"),
        None if how.distribution == Distribution::Zipf => (Tenants::Sampled(Sampler::zipf(targets.len(), 1.0)), "zipf"),
        None => (Tenants::Uniform(targets.len()), "uniform"),
    };
    preflight(addr, url, &targets)?;
    let token_base = 0;
    let mut outcomes = Vec::new();
    let mut loads = Vec::new();
    for st in stages {
        let mut mix = Mix { parts: Vec::new() };
        for (table, ops) in &st.mix {
            let i = match table {
                Some(t) => names.iter().position(|n| n == t),
                None => Some(0),
            }
            .ok_or_else(|| {
                CliError::usage(format!("stage {:?} loads table {table:?}, which is not loaded", st.name))
            })?;
            mix.add(i, ops);
        }
        loads.push(Load {
            addr,
            targets: &targets,
            tables: &tables,
            tenants: &picker,
            concurrency: st.concurrency.1,
            ramp_from: (st.concurrency.0 != st.concurrency.1).then_some(st.concurrency.0),
            duration: st.duration,
            mix,
            rows,
            token_base,
            rate: st.rate,
            window: window_for(st.duration),
        });
    }
    for (st, load) in stages.iter().zip(loads.iter_mut()) {
        // The clock starts now. Scripts that watch the server during a run (bench-tenants.sh
        // reads the server core's idle share) start their window at this line, not at launch:
        // preparing thousands of tenants takes seconds in which the server has nothing to do.
        let what = if st.name.is_empty() { String::new() } else { format!("stage {}: ", st.name) };
        eprintln!("loadtest: {what}running {} over {} connections against {url}", short(st.duration), load.concurrency);
        // Each stage numbers its writes from the clock again: the same numbers as an earlier
        // stage's would repeat UNIQUE values.
        load.token_base = rows::write_token_base();
        outcomes.push(driver::run(load, progress));
    }
    let headers: Vec<report::Header<'_>> = stages
        .iter()
        .zip(&loads)
        .map(|(st, load)| report::Header {
            url,
            load,
            distribution: dist_name,
            stage: (!st.name.is_empty()).then_some(st.name.as_str()),
        })
        .collect();
    Ok(Ran {
        stages: headers.iter().zip(&outcomes).map(|(h, o)| report::to_json(h, o)).collect(),
        text: headers.iter().zip(&outcomes).map(|(h, o)| report::text(h, o)).collect(),
        html: if how.html {
            report_html::render(scenario_name.unwrap_or("loadtest"), &headers, &outcomes)
        } else {
            String::new()
        },
        failed: outcomes.iter().any(|o| o.ops.iter().any(|s| s.error_count() > 0)),
    })
}

/// `1s`, `500ms`, `1.5s`, as a duration is written on the command line.
fn short(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Windows of the time series: about 60 per stage, between 100 ms and a minute.
fn window_for(d: Duration) -> Duration {
    (d / 60).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// The loaded tables of a remote run, from the first tenant's OpenAPI document: the default
/// (`--table`, else the first) when a stage loads it, then the tables the stages name.
fn discover(
    addr: SocketAddr,
    url: &str,
    creds: &[setup::Credential],
    want: Option<&str>,
    uses_default: bool,
    named: &[String],
) -> CliResult<Vec<Arc<TableGen>>> {
    let c = creds.first().ok_or_else(|| CliError::usage("--credentials holds no tenants"))?;
    let path = format!("/api/v1/t/{}/openapi.json", c.slug);
    let r = get(&mut Client::new(addr), url, &path, &format!("Bearer {}", c.token))?;
    if r.status != 200 {
        return Err(refused(url, &path, &r));
    }
    let doc = r.json();
    let mut out: Vec<Arc<TableGen>> = Vec::new();
    if uses_default {
        out.push(Arc::new(TableGen::from_openapi(&doc, want)?));
    }
    for n in named {
        if !out.iter().any(|g| g.name == *n) {
            out.push(Arc::new(TableGen::from_openapi(&doc, Some(n))?));
        }
    }
    Ok(out)
}

/// One list request per loaded table on the first and the last tenant before the clock starts:
/// a wrong URL or token fails here with the server's answer instead of as a report full of errors. A server
/// on the same data dir picks up freshly minted keys within its catalog poll (200 ms), so a
/// 401/404 is retried for up to 5 s.
fn preflight(addr: SocketAddr, url: &str, targets: &[Target]) -> CliResult<()> {
    let mut client = Client::new(addr);
    let ends = if targets.len() > 1 { [targets.first(), targets.last()] } else { [targets.first(), None] };
    for (t, prefix) in ends.into_iter().flatten().flat_map(|t| t.prefixes.iter().map(move |p| (t, p))) {
        let path = format!("{prefix}?per_page=1");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = get(&mut client, url, &path, &t.auth)?;
            // 429 comes after authentication: the credentials work, and the run will report
            // how often the limits answer.
            if matches!(r.status, 200 | 429) {
                break;
            }
            if !matches!(r.status, 401 | 404) || Instant::now() >= deadline {
                return Err(refused(url, &path, &r));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// `GET path` with `Authorization: auth`; a server that cannot be reached is an error.
fn get(client: &mut Client, url: &str, path: &str, auth: &str) -> CliResult<Response> {
    client
        .request("GET", path, &[("Authorization", auth)], b"")
        .map_err(|e| CliError::failed(format!("cannot reach {url}: {e} (is the server running?)")))
}

/// The server's answer to `GET path` when it is not the one loadtest needs.
fn refused(url: &str, path: &str, r: &Response) -> CliError {
    let msg = r.json()["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| r.text());
    CliError::failed(format!("GET {url}{path} answered {}: {msg}", r.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms").ok(), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s").ok(), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h").ok(), Some(Duration::from_secs(3600)));
        for bad in ["", "30", "s", "0s", "-1s", "1x", "1.2.3s", "10 s", "NaNs", "99999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(parse_url("http://127.0.0.1:8080").ok(), "127.0.0.1:8080".parse().ok());
        assert_eq!(parse_url("http://127.0.0.1:9000/").ok(), "127.0.0.1:9000".parse().ok());
        assert_eq!(parse_url("http://127.0.0.1").ok(), "127.0.0.1:80".parse().ok());
        assert_eq!(parse_url("http://[::1]:8080").ok(), "[::1]:8080".parse().ok());
        for bad in ["https://127.0.0.1:8080", "127.0.0.1:8080", "http://", "http://127.0.0.1:8080/api"] {
            assert!(parse_url(bad).is_err(), "{bad:?} accepted");
        }
    }
}
