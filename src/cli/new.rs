//! `tenantd new DIR [--template saas|crm|blank]`: a project directory to start from, with the
//! configuration (every key), a tenant schema, sample rows, plans, checks, a migration config
//! and deployment examples. The files are built into the binary (assets/new/), so the command
//! works offline and matches the binary that will run the project.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{CliError, CliResult};

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The project directory to create (it must not exist, or be empty).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// What the tenant schema starts with.
    #[arg(long, value_enum, default_value_t = Template::Saas)]
    template: Template,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// Projects, documents and comments: a collaborative SaaS app, plans free and team.
    Saas,
    /// Customers, projects, tasks and notes: the demo's CRM schema, two migrations.
    Crm,
    /// One `items` table to replace with your own.
    Blank,
}

pub const AFTER_HELP: &str = "\
Writes:
  tenantd.toml            every configuration key, this project's live, the rest commented
  schema/0001_*.sql       the tenant schema as numbered migrations (tenant_schema_dir)
  demo.sql                sample rows for `tenantd demo` (demo_seed_sql)
  checks.toml             a commented example of your own checks for `tenantd check`
  migration-config.json   an example for `tenantd migration migrate-from-config`
  deploy/tenantd.service, deploy/nginx-tenantd.conf, README.md, .gitignore
Paths in tenantd.toml are absolute. DIR must not exist or be empty: nothing is overwritten.

Examples:
  tenantd new myapp
  tenantd new crm-app --template crm
  tenantd --config myapp/tenantd.toml demo";

struct Files {
    schema: &'static [(&'static str, &'static str)],
    demo: &'static str,
    plans: &'static str,
    table: &'static str,
}

fn files(t: Template) -> Files {
    match t {
        Template::Saas => Files {
            schema: &[("0001_init.sql", include_str!("../../assets/new/saas/0001_init.sql"))],
            demo: include_str!("../../assets/new/saas/demo.sql"),
            plans: include_str!("../../assets/new/saas/plans.toml"),
            table: "projects",
        },
        Template::Crm => Files {
            schema: &[
                // The demo's own schema, as built into the binary.
                ("0001_init.sql", include_str!("../../assets/schema/0001_init.sql")),
                ("0002_notes_and_phone.sql", include_str!("../../assets/schema/0002_notes_and_phone.sql")),
            ],
            demo: include_str!("../../assets/new/crm/demo.sql"),
            plans: include_str!("../../assets/new/crm/plans.toml"),
            table: "customers",
        },
        Template::Blank => Files {
            schema: &[("0001_init.sql", include_str!("../../assets/new/blank/0001_init.sql"))],
            demo: include_str!("../../assets/new/blank/demo.sql"),
            plans: include_str!("../../assets/new/blank/plans.toml"),
            table: "items",
        },
    }
}

const CONFIG: &str = include_str!("../../assets/new/tenantd.toml");
const README: &str = include_str!("../../assets/new/README.md");
const SERVICE: &str = include_str!("../../assets/new/tenantd.service");
const NGINX: &str = include_str!("../../packaging/nginx/tenantd.conf");
const MIGRATION: &str = include_str!("../../docs/migration-config.example.json");

pub fn run(a: NewArgs) -> CliResult {
    let dir = &a.dir;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(CliError::usage(format!(
                    "{} is not empty: tenantd new writes into a new or empty directory and never overwrites",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(CliError::usage(format!("{} exists and is not a directory", dir.display())))
        }
        Err(e) => return Err(CliError::failed(format!("cannot read {}: {e}", dir.display()))),
    }
    let fail = |what: &Path, e: std::io::Error| CliError::failed(format!("cannot write {}: {e}", what.display()));
    std::fs::create_dir_all(dir.join("schema")).map_err(|e| fail(dir, e))?;
    std::fs::create_dir_all(dir.join("deploy")).map_err(|e| fail(dir, e))?;
    let abs = std::fs::canonicalize(dir).map_err(|e| fail(dir, e))?;
    let written = write_project(&abs, a.template).map_err(|(p, e)| fail(&p, e))?;
    println!("Created {} ({} template): {} files.\n", dir.display(), template_name(a.template), written);
    println!("Next:");
    println!("  tenantd --config {}/tenantd.toml demo", dir.display());
    println!("  tenantd --config {}/tenantd.toml check --checks {}/checks.toml", dir.display(), dir.display());
    println!("\n{}/README.md says what each file is for.", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn template_name(t: Template) -> &'static str {
    match t {
        Template::Saas => "saas",
        Template::Crm => "crm",
        Template::Blank => "blank",
    }
}

/// The directory's name, as a systemd unit and nginx would accept it.
fn project_name(abs: &Path) -> String {
    let raw = abs.file_name().and_then(|n| n.to_str()).unwrap_or("tenantd-app");
    let clean: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    if clean.is_empty() {
        "tenantd-app".into()
    } else {
        clean
    }
}

/// Writes every file below `abs` (which exists and is empty); returns how many.
fn write_project(abs: &Path, t: Template) -> Result<usize, (PathBuf, std::io::Error)> {
    let f = files(t);
    let name = project_name(abs);
    let dir = abs.display().to_string();
    let quoted = |p: PathBuf| toml::Value::String(p.display().to_string()).to_string();
    let fill = |text: &str| {
        text.replace("{{NAME}}", &name)
            .replace("{{TEMPLATE}}", template_name(t))
            .replace("{{DIR}}", &dir)
            .replace("{{TABLE}}", f.table)
            .replace("{{DATA_DIR}}", &quoted(abs.join("data")))
            .replace("{{SCHEMA_DIR}}", &quoted(abs.join("schema")))
            .replace("{{DEMO_SQL}}", &quoted(abs.join("demo.sql")))
            .replace("{{PLANS}}", f.plans.trim_end())
    };
    let mut out: Vec<(PathBuf, String)> = vec![
        (abs.join("tenantd.toml"), fill(CONFIG)),
        (abs.join("README.md"), fill(README)),
        (abs.join("demo.sql"), f.demo.to_string()),
        (abs.join("checks.toml"), fill(crate::check::custom::EXAMPLE)),
        (abs.join("migration-config.json"), MIGRATION.to_string()),
        (abs.join("deploy/tenantd.service"), fill(SERVICE)),
        (abs.join("deploy/nginx-tenantd.conf"), NGINX.to_string()),
        (abs.join(".gitignore"), "# tenant data, backups and the catalog: never commit them\n/data/\n".to_string()),
    ];
    for (file, sql) in f.schema {
        out.push((abs.join("schema").join(file), sql.to_string()));
    }
    for (path, text) in &out {
        std::fs::write(path, text).map_err(|e| (path.clone(), e))?;
    }
    Ok(out.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// `[section] -> keys` named in a config text, commented out or not.
    fn keys_in(text: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut section = String::new();
        for line in text.lines() {
            let l = line.trim_start_matches('#').trim();
            if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                section =
                    if s.starts_with("plans.") { "plans".into() } else { s.trim_matches('[').trim_matches(']').into() };
                continue;
            }
            if let Some((k, _)) = l.split_once(" = ") {
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                    out.entry(section.clone()).or_default().insert(k.to_string());
                }
            }
        }
        out
    }

    #[test]
    fn the_config_template_names_every_key() {
        let dir = std::env::temp_dir().join(format!("tenantd-new-test-{}", crate::util::random_hex(4)));
        std::fs::create_dir_all(dir.join("schema")).unwrap();
        std::fs::create_dir_all(dir.join("deploy")).unwrap();
        write_project(&dir, Template::Saas).unwrap();
        let written = std::fs::read_to_string(dir.join("tenantd.toml")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let have = keys_in(&written);
        let defaults = toml::to_string(&crate::config::Config::default()).unwrap();
        let mut want = keys_in(&defaults);
        // Optional keys the defaults leave out.
        for k in [
            "workers_max",
            "tenant_schema_dir",
            "demo_seed_sql",
            "base_domain",
            "alert_webhook_url",
            "hsts_max_age_seconds",
        ] {
            want.entry(String::new()).or_default().insert(k.into());
        }
        for (section, keys) in &want {
            for k in keys {
                assert!(
                    have.get(section).is_some_and(|h| h.contains(k)),
                    "assets/new/tenantd.toml lacks [{section}] {k}: add it with a comment"
                );
            }
        }
        // And what it sets is a valid configuration.
        let parsed: crate::config::Config = toml::from_str(&written).unwrap();
        parsed.validate().unwrap();
        assert!(parsed.plans.contains_key("team"), "the saas plans are live");
        assert!(parsed.tenant_schema_dir.is_some_and(|d| d.ends_with("schema")));
    }
}
