//! `tenantd check`: the conformance suite (src/check) from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{CliError, CliResult};
use crate::check::{self, creds, custom, local, Target};
use crate::config::Config;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// A running server to check, e.g. http://127.0.0.1:8080 (with --credentials). Without
    /// it, the data dir (--data-dir or the config's) is checked on a throwaway copy.
    #[arg(long, value_name = "BASE")]
    url: Option<String>,
    /// With --url: a TOML file of logins for two tenants and several roles.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Your own checks: a TOML file of [[check]] requests and the answers expected
    /// (`tenantd new` writes a commented example).
    #[arg(long, value_name = "FILE")]
    checks: Option<PathBuf>,
    /// Also write the results as JUnit XML, for CI systems.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// The data API table `{table}` stands for in the walk (default: each tenant's first, by name).
    #[arg(long, value_name = "NAME")]
    table: Option<String>,
    /// On a data dir: how many tenants' copies pending schema migrations are dry-run on.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    migrate_tenants: u64,
    /// Print only failures and the summary line.
    #[arg(long)]
    quiet: bool,
}

pub const AFTER_HELP: &str = "\
What is checked, each result named like a test:
  isolation  every tenant route of the route table, called on one tenant with each login of the
             other (and the platform admin), by path and by X-Tenant header: 404, none of its data
  anonymous  the same routes without credentials: 401
  pages      the admin pages with the other tenant's session: 404; without one: 303 to sign-in
  platform   platform-admin routes refused to a tenant's owner (403) and to anonymous callers,
             signed-in-only routes refused to anonymous callers, node-to-node routes to both
  roles      each lower role on its own tenant: 403 where its permissions say no, 2xx on the
             reads they allow (writes it may do are not sent)
  control    the tenant's own owner on every read of the walk: 2xx (so refusals are real)
  audit      a write leaves an entry with its request id; the newest entries form one hash chain
  limits     answers carry RateLimit-Limit, -Remaining and -Reset
  security_headers  nosniff, X-Frame-Options, Referrer-Policy and a CSP on API answers and pages
  custom     your --checks file
  With a data dir only: the copied tenants' audit chains and the platform's against their
  catalog anchors (the whole fleet's: `tenantd audit verify`), pending migrations dry-run on
  copies of --migrate-tenants tenants, and a snapshot restored into a new tenant.

Against a data dir, nothing of it is touched: the catalog and the files of the tenants the checks
use (the first two active tenants by slug, and the first --migrate-tenants) are copied (SQLite's
online backup, so a running server is fine; the copy stays small however large the fleet),
check users of every built-in role are added to the copy's first two tenants (two are created
when it has fewer), rate limits are lifted in the copy, and a server runs on it on 127.0.0.1
until the checks end.

Against a running server (--url), the credentials file names the logins; requests with the wrong
credentials are real writes that only isolation stops, so point it at staging or a copy:
  [[login]]
  tenant = \"acme\"
  role = \"owner\"                    # every tenant needs one: a session, never an API key
  email = \"olivia@acme.example\"
  password = \"…\"
  [[login]]
  tenant = \"acme\"
  role = \"read\"                     # an API key: role names its scope
  token = \"tdk_…\"
  [[login]]
  tenant = \"globex\"
  role = \"owner\"
  email = \"…\"
  password = \"…\"
  [platform_admin]                  # optional
  email = \"root@example.com\"
  password = \"…\"
Every login is tried before any check runs; one that does not work is named, exit 1.

Exit status: 0 when every check passed, 1 when any failed (or a login does not work), 2 for bad
options or a bad --checks/--credentials file (the message names the line).

Examples:
  tenantd check --data-dir /var/lib/tenantd
  tenantd --config myapp/tenantd.toml check --checks myapp/checks.toml --junit check.xml
  tenantd check --url http://127.0.0.1:8080 --credentials creds.toml --quiet";

pub fn run(config: Config, data_dir_given: bool, a: CheckArgs) -> CliResult {
    // Every file is read and checked before anything is copied or sent.
    let checks = match &a.checks {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::usage(format!("cannot read --checks {}: {e}", p.display())))?;
            custom::parse(&text).map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?
        }
        None => Vec::new(),
    };
    let (copy, target, file) = match (&a.url, &a.credentials) {
        (Some(_), _) if data_dir_given => {
            return Err(CliError::usage(
                "give either --url (a running server) or --data-dir (checked on a copy), not both",
            ))
        }
        (Some(url), Some(path)) => {
            let file = creds::read(path).map_err(CliError::usage)?;
            let addr = super::loadtest::parse_url(url)?;
            (None, Target::new(addr, url), file)
        }
        (Some(_), None) => {
            return Err(CliError::usage("--url needs --credentials FILE (logins for two tenants; see --help)"))
        }
        (None, Some(_)) => {
            return Err(CliError::usage(
                "--credentials goes with --url; a data dir is checked with users check makes itself",
            ))
        }
        (None, None) => {
            eprintln!("check: copying {} and starting a server on the copy", config.data_dir.display());
            let copy = local::prepare(config, a.migrate_tenants as usize).map_err(CliError::failed)?;
            let target = Target::new(copy.addr, &format!("http://{}", copy.addr));
            let file = copy_creds(&copy);
            (Some(copy), target, file)
        }
    };
    let creds = creds::sign_in(&target, &file).map_err(CliError::failed)?;
    if let Some(p) = &a.checks {
        custom::resolve(&checks, &creds).map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?;
    }
    let opts = check::Options { table: a.table.clone(), migrate_tenants: a.migrate_tenants as usize, quiet: a.quiet };
    println!("running checks against {} ({} and {})", target.base, creds.tenants()[0], creds.tenants()[1]);
    let run = check::run_all(&target, &creds, &checks, copy.as_ref(), &opts).map_err(CliError::failed)?;
    print!("{}", check::report::summary(&run));
    if let Some(path) = &a.junit {
        std::fs::write(path, check::report::junit(&run))
            .map_err(|e| CliError::failed(format!("cannot write --junit {}: {e}", path.display())))?;
    }
    Ok(if run.failed() > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn copy_creds(copy: &local::Copy) -> creds::File {
    creds::File { login: copy.creds.login.clone(), platform_admin: copy.creds.platform_admin.clone() }
}
