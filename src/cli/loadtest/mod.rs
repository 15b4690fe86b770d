//! `tenantd loadtest`: a multi-tenant load generator built into the binary, so the numbers in
//! docs/benchmarks.md come from a tool anyone has. `setup` provides per-tenant credentials,
//! `seed` picks the table and fills it (and its foreign keys' parents), `rows` makes rows for
//! any schema, `driver` runs the client threads, `stats` measures, `report` prints.

mod driver;
mod report;
mod rows;
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
use driver::{Distribution, Load, Mix, Target};
use rows::TableGen;

#[derive(Args, Debug)]
pub struct LoadtestArgs {
    /// Server to load, e.g. http://127.0.0.1:8080 (plain HTTP). Default: the config's `listen`.
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
    /// Tenants to spread the load over (with --data-dir: load-00001… are created or reused;
    /// default 10. With --credentials: the first N of the file; default all of them).
    #[arg(long, value_name = "N")]
    tenants: Option<usize>,
    /// Client threads, each with its own keep-alive connection.
    #[arg(long, value_name = "C", default_value_t = 16)]
    concurrency: usize,
    /// How long to send: 500ms, 30s, 2m, 1h.
    #[arg(long, value_name = "TIME", default_value = "10s")]
    duration: String,
    /// Relative weights of read (GET one row by id), list (page of 20 with the total) and
    /// write (POST one generated row), all on the --table.
    #[arg(long, value_name = "OP=W,...", default_value = "read=80,list=10,write=10")]
    mix: String,
    /// How requests pick a tenant: uniform, or zipf (s = 1.0: a few hot tenants, a long tail).
    #[arg(long, value_name = "uniform|zipf", default_value = "uniform")]
    distribution: String,
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
    /// of each table its foreign keys point at); reads pick among them.
    #[arg(long, value_name = "R", default_value_t = 1000)]
    rows: u64,
    /// Plan of the tenants loadtest creates (or moves its reused tenants to). Pick one whose
    /// limits the load does not reach, or the report will show 429s.
    #[arg(long, value_name = "NAME", default_value = "enterprise")]
    plan: String,
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
  tenantd loadtest --url http://10.0.0.5:8080 --credentials creds.json --concurrency 32 --json";

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

pub fn run(config: Config, data_dir_given: bool, a: LoadtestArgs) -> CliResult {
    // Every option is checked before anything touches the data dir or the network.
    let duration = parse_duration(&a.duration)?;
    let mix = Mix::parse(&a.mix).map_err(|e| CliError::usage(format!("invalid --mix {:?}: {e}", a.mix)))?;
    let distribution = Distribution::parse(&a.distribution).map_err(CliError::usage)?;
    if !(1..=4096).contains(&a.concurrency) {
        return Err(CliError::usage(format!("--concurrency {} is out of range (1..=4096)", a.concurrency)));
    }
    if a.tenants == Some(0) || a.tenants.is_some_and(|n| n > 1_000_000) {
        return Err(CliError::usage("--tenants must be between 1 and 1,000,000"));
    }
    if a.rate.is_some_and(|r| !(r.is_finite() && r > 0.0 && r <= 10_000_000.0)) {
        return Err(CliError::usage("--rate must be a number of requests per second in (0, 10,000,000]"));
    }
    if a.rows > 10_000_000 {
        return Err(CliError::usage(format!("--rows {} is out of range (0..=10,000,000)", a.rows)));
    }
    if a.rows == 0 && (mix.weight(driver::Op::Read) > 0 || mix.weight(driver::Op::List) > 0) {
        return Err(CliError::usage("--rows 0 leaves nothing to read: give --rows or a mix of writes only"));
    }
    let url = a.url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
    let addr = parse_url(&url)?;
    let progress = super::interactive();
    // The table comes from the tenant's OpenAPI document or from the seeding plan: whichever
    // branch runs owns it here, and the load borrows it.
    let (remote, seeding);
    let (creds, table): (_, &TableGen) = match (&a.credentials, data_dir_given) {
        (Some(_), true) => return Err(CliError::usage("give either --data-dir or --credentials, not both")),
        (Some(path), false) => {
            let creds = setup::read_credentials(path, a.tenants)?;
            remote = discover(addr, &url, &creds, a.table.as_deref())?;
            (creds, &remote)
        }
        (None, true) => {
            let app = App::open(config, OpenMode::MustExist)?;
            seeding = seed::plan(app.store.schema(), a.table.as_deref(), a.rows)?;
            (setup::provision(&app, a.tenants.unwrap_or(10), &seeding, &a.plan, progress)?, &seeding.target.gen)
        }
        (None, false) => {
            return Err(CliError::usage(
                "loadtest needs credentials: --data-dir DIR (the server's; tenants are created there) or --credentials FILE",
            ))
        }
    };
    let targets: Vec<Target> = creds.iter().map(|c| Target::new(&c.slug, &c.token, &table.name)).collect();
    preflight(addr, &url, &targets)?;
    let load = Load {
        addr,
        targets: &targets,
        concurrency: a.concurrency,
        duration,
        mix,
        distribution,
        rows: a.rows,
        table,
        token_base: rows::write_token_base(),
        rate: a.rate,
    };
    // The clock starts now. Scripts that watch the server during a run (bench-tenants.sh reads
    // the server core's idle share) start their window at this line, not at launch: preparing
    // thousands of tenants takes seconds in which the server has nothing to do.
    eprintln!("loadtest: running {} over {} connections against {url}", a.duration, a.concurrency);
    let out = driver::run(&load, progress);
    let header = report::Header { url: &url, load: &load };
    if a.json {
        print_json(&report::to_json(&header, &out))?;
    } else {
        report::print_text(&header, &out);
    }
    let failed = out.ops.iter().any(|s| s.error_count() > 0);
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The table of a remote run, from the first tenant's OpenAPI document.
fn discover(addr: SocketAddr, url: &str, creds: &[setup::Credential], want: Option<&str>) -> CliResult<TableGen> {
    let c = creds.first().ok_or_else(|| CliError::usage("--credentials holds no tenants"))?;
    let path = format!("/api/v1/t/{}/openapi.json", c.slug);
    let r = get(&mut Client::new(addr), url, &path, &format!("Bearer {}", c.token))?;
    if r.status != 200 {
        return Err(refused(url, &path, &r));
    }
    TableGen::from_openapi(&r.json(), want)
}

/// One list request on the first and the last tenant before the clock starts: a wrong URL or
/// token fails here with the server's answer instead of as a report full of errors. A server
/// on the same data dir picks up freshly minted keys within its catalog poll (200 ms), so a
/// 401/404 is retried for up to 5 s.
fn preflight(addr: SocketAddr, url: &str, targets: &[Target]) -> CliResult<()> {
    let mut client = Client::new(addr);
    let ends = if targets.len() > 1 { [targets.first(), targets.last()] } else { [targets.first(), None] };
    for t in ends.into_iter().flatten() {
        let path = format!("{}?per_page=1", t.prefix);
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
