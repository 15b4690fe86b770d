//! `tenantd migration analyze-schema`: what a source holds and how it would split, without
//! writing anything (the source is opened read-only; a split's trial map lives in the system's
//! temporary directory and is removed). Column profiles follow `sqlite-utils analyze-tables`;
//! roles follow sql-splitter's classification.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::Connection;
use serde::Serialize;

use super::config::{MigrationConfig, PgOptions, SourceSpec, TableAction, TableSpec, TenantSpec};
use super::inspect::{self, q, Schema};
use super::map::{self, value_text, MapReport};
use super::plan;
use super::roles::{self, Candidate, Role};
use super::source::{self, Budget, PgReport};
use super::users;
use crate::error::{Error, Result};

/// Rows profiled per table; larger tables are sampled (and the report says so).
pub const SAMPLE_ROWS: i64 = 20_000;

#[derive(Debug, Serialize)]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub decl_type: String,
    pub not_null: bool,
    pub nulls: u64,
    pub distinct: u64,
    pub most_common: Vec<(String, u64)>,
}

#[derive(Debug, Serialize)]
pub struct TableReport {
    pub name: String,
    pub rows: i64,
    pub bytes: Option<i64>,
    pub primary_key: Vec<String>,
    pub foreign_keys_out: Vec<String>,
    pub foreign_keys_in: Vec<String>,
    pub indexes: Vec<String>,
    pub triggers: Vec<String>,
    pub views: Vec<String>,
    pub autoincrement: Option<i64>,
    pub role: Option<Role>,
    pub path: Option<String>,
    /// Profiled rows: all of them, or a random sample of `SAMPLE_ROWS`.
    pub profiled_rows: i64,
    pub sampled: bool,
    pub columns: Vec<ColumnProfile>,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub level: &'static str,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Analysis {
    /// The source's URL, a PostgreSQL password replaced by `***`.
    pub source: String,
    /// How a PostgreSQL source was read: tables, type mappings, what is not exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PgReport>,
    pub tables: Vec<TableReport>,
    pub candidates: Vec<Candidate>,
    /// The split the roles and trial map are shown for (given, or the best candidate).
    pub split_by: Option<String>,
    pub tenants_found: Option<usize>,
    pub largest_tenant_share: Option<f64>,
    pub mapping: Option<MapReport>,
    pub users: Option<String>,
    pub findings: Vec<Finding>,
    #[serde(skip)]
    pub schema: Schema,
    #[serde(skip)]
    pub config: MigrationConfig,
}

/// Analyzes the source at `url`: a SQLite file read in place, or a PostgreSQL database read
/// through a snapshot in the system's temporary directory (`pg`: how), removed at the end.
pub fn analyze(url: &str, split_by: Option<&str>, pg: Option<&PgOptions>, budget: &Budget) -> Result<Analysis> {
    let mut local = source::LocalCopy::new(url, pg, budget)?;
    let path = local.path.clone();
    let shown = source::redact_url(url);
    let pg_options = pg.filter(|_| source::is_postgres(url)).cloned();
    let conn = source::open(&path, budget)?;
    let schema = inspect::read(&conn, "main", true).map_err(|e| match e {
        Error::Sqlite(se) => source::source_error(&path, se),
        other => other,
    })?;
    let views_of = views_by_table(&conn, &schema);
    let mut tables = Vec::new();
    for t in &schema.tables {
        budget.arm();
        let (profiled_rows, sampled, columns) = profile(&conn, t)?;
        tables.push(TableReport {
            name: t.name.clone(),
            rows: t.rows,
            bytes: t.bytes,
            primary_key: t.pk.clone(),
            foreign_keys_out: t
                .foreign_keys
                .iter()
                .map(|f| {
                    format!(
                        "({}) → {}({}){}",
                        f.from.join(", "),
                        f.table,
                        f.to.join(", "),
                        if f.nullable { " nullable" } else { "" }
                    )
                })
                .collect(),
            foreign_keys_in: schema
                .incoming(&t.name)
                .map(|(c, f)| format!("{}({})", c.name, f.from.join(", ")))
                .collect(),
            indexes: schema
                .indexes
                .iter()
                .filter(|i| i.table.eq_ignore_ascii_case(&t.name))
                .map(|i| i.name.clone())
                .collect(),
            triggers: schema
                .triggers
                .iter()
                .filter(|i| i.table.eq_ignore_ascii_case(&t.name))
                .map(|i| i.name.clone())
                .collect(),
            views: views_of.get(&t.name.to_ascii_lowercase()).cloned().unwrap_or_default(),
            autoincrement: schema.sequences.get(&t.name).copied(),
            role: None,
            path: None,
            profiled_rows,
            sampled,
            columns,
        });
    }
    let distinct = |table: &str, col: &str| -> i64 {
        budget.arm();
        conn.query_row(&format!("SELECT count(DISTINCT {}) FROM {}", q(col), q(table)), [], |r| r.get(0)).unwrap_or(0)
    };
    let candidates = roles::candidates(&schema, &distinct);
    let chosen = split_by.map(str::to_string).or_else(|| candidates.first().map(|c| c.split_by.clone()));
    let mut findings = Vec::new();
    for (names, breakable) in roles::cycles(&schema) {
        findings.push(Finding {
            level: if breakable { "warning" } else { "blocker" },
            code: "fk_cycle",
            message: format!(
                "foreign-key cycle {}{}",
                names.join(" → "),
                if breakable {
                    " (loaded with enforcement off, then checked)"
                } else {
                    ": no nullable edge, rows can never be inserted one by one"
                }
            ),
        });
    }
    orphans(&conn, &mut findings)?;
    let mut config = MigrationConfig {
        version: 1,
        sources: vec![SourceSpec { url: shown.clone(), tenant: TenantSpec::default(), postgres: pg_options }],
        ..Default::default()
    };
    let user_spec = users::detect(&schema, None);
    config.users = user_spec.clone();
    let slug_hint = match &local.postgres {
        Some(r) => r.database().to_string(),
        None => path.file_stem().and_then(|s| s.to_str()).unwrap_or("tenant").to_string(),
    };
    let mut analysis = Analysis {
        source: shown,
        tables,
        candidates,
        split_by: chosen.clone(),
        tenants_found: None,
        largest_tenant_share: None,
        mapping: None,
        users: user_spec.map(|u| u.table),
        findings: Vec::new(),
        postgres: None,
        schema: Schema {
            tables: Vec::new(),
            indexes: Vec::new(),
            views: Vec::new(),
            triggers: Vec::new(),
            sequences: BTreeMap::new(),
        },
        config: MigrationConfig::default(),
    };
    drop(conn);
    match &chosen {
        Some(spec) => trial_split(&path, &schema, spec, &mut analysis, &mut config, &mut findings, budget)?,
        None => config.sources[0].tenant.slug = Some(default_slug(&slug_hint)),
    }
    let plans = plan::plan(&schema, &config, config.sources[0].tenant.split_by.as_deref())?;
    for why in super::build::objects_that_cannot_move(&schema, &plans.tables)? {
        findings.push(Finding { level: "warning", code: "object_cannot_move", message: why });
    }
    analysis.findings = findings;
    analysis.schema = schema;
    analysis.config = config;
    analysis.postgres = local.postgres.take();
    Ok(analysis)
}

fn default_slug(stem: &str) -> String {
    let s = super::run::slugify(stem);
    if s.is_empty() {
        "tenant".into()
    } else {
        s
    }
}

/// Maps the source by `spec` in a throwaway scratch file: roles, tenants, cross-tenant rows.
fn trial_split(
    path: &Path,
    schema: &Schema,
    spec: &str,
    analysis: &mut Analysis,
    config: &mut MigrationConfig,
    findings: &mut Vec<Finding>,
    budget: &Budget,
) -> Result<()> {
    let split = roles::resolve_split(schema, spec)?;
    let root = schema.table(&split.root).ok_or_else(|| roles::unknown_table(schema, &split.root))?;
    let pick = |names: &[&str]| names.iter().find_map(|n| root.column(n).map(|c| c.name.clone()));
    let tenant = &mut config.sources[0].tenant;
    tenant.split_by = Some(spec.to_string());
    tenant.slug_from = pick(&["slug", "subdomain", "handle", "code", "name"]);
    tenant.name_from = pick(&["name", "title", "display_name", "company_name"]);
    for t in &schema.tables {
        if roles::is_system(&t.name) {
            config.tables.push(TableSpec {
                name: t.name.clone(),
                action: Some(TableAction::System),
                rename: None,
                columns: Default::default(),
            });
        }
    }
    let plans = plan::plan(schema, config, Some(spec))?;
    for (report, placement) in analysis.tables.iter_mut().zip(&plans.placements) {
        report.role = Some(placement.role);
        let text = placement.path_text(schema);
        report.path = (!text.is_empty()).then_some(text);
        if placement.role.is_tenant_data() && report.primary_key.is_empty() {
            findings.push(Finding {
                level: "warning",
                code: "no_primary_key",
                message: format!(
                    "table {} has no primary key: rows are matched by rowid and cannot be told apart in reports",
                    report.name
                ),
            });
        }
    }
    let dir = std::env::temp_dir().join(format!("tenantd-analyze-{}", crate::util::random_hex(6)));
    std::fs::create_dir_all(&dir)?;
    let res = (|| -> Result<()> {
        let reader = super::run::open_reader(&dir.join("map.db"), path, budget)?;
        let (keys, mapping) = map::build(&reader, schema, &plans, None, None, false, budget)?;
        let counts = map::counts(&reader, &plans)?;
        let root_target = plans.tables.iter().find(|p| p.role == Role::Root).map(|p| p.target.clone());
        let sizes: Vec<u64> = counts.values().map(|m| m.values().sum()).collect();
        let total: u64 = sizes.iter().sum();
        analysis.tenants_found = Some(keys.len());
        analysis.largest_tenant_share =
            sizes.iter().max().map(|m| if total > 0 { *m as f64 / total as f64 } else { 0.0 });
        if let Some(share) = analysis.largest_tenant_share.filter(|s| *s > 0.5 && keys.len() > 1) {
            findings.push(Finding {
                level: "warning",
                code: "skewed_tenant",
                message: format!("one tenant holds {:.0}% of the rows", share * 100.0),
            });
        }
        let sample = |t: &str| mapping.samples.get(t).map(|s| s.join(", ")).unwrap_or_default();
        for (t, n) in &mapping.cross_tenant {
            let message =
                format!("{n} rows of {t} reference rows of two tenants, or rows that do (e.g. {})", sample(t));
            findings.push(Finding { level: "blocker", code: "cross_tenant_rows", message });
        }
        for (key, n) in &mapping.cross_references {
            let message = format!(
                "{n} rows reference another tenant's row through {key}: that tenant's foreign keys would not hold"
            );
            findings.push(Finding { level: "blocker", code: "cross_tenant_rows", message });
        }
        for (t, n) in &mapping.orphans {
            let message = format!(
                "{n} rows of {t} point at a row that does not exist on their way to a tenant (e.g. {})",
                sample(t)
            );
            findings.push(Finding { level: "blocker", code: "orphans", message });
        }
        for (t, n) in &mapping.left_behind {
            let message = format!(
                "{n} rows of {t} reach no tenant (a NULL key on the way; e.g. {}): left behind unless null_tenant is set",
                sample(t)
            );
            findings.push(Finding { level: "warning", code: "rows_without_tenant", message });
        }
        for (t, n) in &mapping.unexplained {
            findings.push(Finding {
                level: "blocker",
                code: "unmapped_rows",
                message: format!("{n} rows of {t} got no tenant for no known reason"),
            });
        }
        let _ = root_target;
        analysis.mapping = Some(mapping);
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    res
}

/// Rows whose foreign key points at nothing (`PRAGMA foreign_key_check`), per table.
fn orphans(conn: &Connection, findings: &mut Vec<Finding>) -> Result<()> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut per: BTreeMap<(String, String), (u64, Vec<String>)> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let table: String = r.get(0)?;
        let rowid: Option<i64> = r.get(1)?;
        let parent: String = r.get(2)?;
        let e = per.entry((table, parent)).or_default();
        e.0 += 1;
        if e.1.len() < 5 {
            e.1.push(rowid.map(|v| v.to_string()).unwrap_or_default());
        }
    }
    for ((table, parent), (n, sample)) in per {
        findings.push(Finding {
            level: "warning",
            code: "orphans",
            message: format!("{n} rows of {table} reference missing {parent} rows (rowids {})", sample.join(", ")),
        });
    }
    Ok(())
}

/// Views and the tables they read, found by preparing `SELECT * FROM view` under SQLite's
/// authorizer (prepared only, never run).
fn views_by_table(conn: &Connection, schema: &Schema) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for v in &schema.views {
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        let hook = move |ctx: rusqlite::hooks::AuthContext<'_>| {
            if let rusqlite::hooks::AuthAction::Read { table_name, .. } = ctx.action {
                log.lock().push(table_name.to_ascii_lowercase());
            }
            rusqlite::hooks::Authorization::Allow
        };
        if conn.authorizer(Some(hook)).is_ok() {
            let _ = conn.prepare(&format!("SELECT * FROM {}", q(&v.name)));
            let _ = conn.authorizer(None::<fn(rusqlite::hooks::AuthContext<'_>) -> rusqlite::hooks::Authorization>);
        }
        let mut tables = seen.lock().clone();
        tables.sort();
        tables.dedup();
        for t in tables {
            out.entry(t).or_default().push(v.name.clone());
        }
    }
    out
}

/// NULLs, distinct values and the most common values per column, over every row or a random
/// sample of rowids on large tables.
fn profile(conn: &Connection, t: &inspect::Table) -> Result<(i64, bool, Vec<ColumnProfile>)> {
    let cols: Vec<String> = t.columns.iter().map(|c| q(&c.name)).collect();
    if cols.is_empty() {
        return Ok((0, false, Vec::new()));
    }
    let sampled = t.rows > SAMPLE_ROWS && !t.without_rowid;
    let sql = if sampled {
        format!(
            "WITH b AS (SELECT min(rowid) lo, max(rowid) hi FROM {0}), \
             r(n, id) AS (SELECT 0, NULL UNION ALL SELECT n + 1, (SELECT lo FROM b) + abs(random()) % ((SELECT hi FROM b) - (SELECT lo FROM b) + 1) FROM r WHERE n < {1}) \
             SELECT {2} FROM {0} WHERE rowid IN (SELECT id FROM r WHERE id IS NOT NULL)",
            q(&t.name),
            SAMPLE_ROWS,
            cols.join(", ")
        )
    } else {
        format!("SELECT {} FROM {} LIMIT {}", cols.join(", "), q(&t.name), SAMPLE_ROWS)
    };
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let n = cols.len();
    let mut nulls = vec![0u64; n];
    let mut freq: Vec<HashMap<String, u64>> = vec![HashMap::new(); n];
    let mut seen = 0i64;
    while let Some(r) = rows.next()? {
        seen += 1;
        for i in 0..n {
            let v: Value = r.get(i)?;
            if v == Value::Null {
                nulls[i] += 1;
                continue;
            }
            // Bounded: past 10,000 distinct values only known ones are counted.
            let text: String = value_text(&v).chars().take(80).collect();
            let f = &mut freq[i];
            if f.len() < 10_000 || f.contains_key(&text) {
                *f.entry(text).or_default() += 1;
            }
        }
    }
    let profiles = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut top: Vec<(String, u64)> = freq[i].iter().map(|(k, v)| (k.clone(), *v)).collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(3);
            ColumnProfile {
                name: c.name.clone(),
                decl_type: c.decl_type.clone(),
                not_null: c.not_null,
                nulls: nulls[i],
                distinct: freq[i].len() as u64,
                most_common: top,
            }
        })
        .collect();
    Ok((seen, sampled, profiles))
}

/// Writes the planned tenant schema as the first numbered migration in `dir` (which must hold
/// no migrations yet): the source's tables, indexes, and the views and triggers that can move.
pub fn emit_schema(analysis: &Analysis, dir: &Path) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let existing = std::fs::read_dir(dir)?.flatten().any(|e| e.path().extension().is_some_and(|x| x == "sql"));
    if existing {
        return Err(Error::invalid(
            "schema_dir_not_empty",
            format!("{} already holds .sql migrations; give an empty directory", dir.display()),
        ));
    }
    let plans = plan::plan(&analysis.schema, &analysis.config, analysis.config.sources[0].tenant.split_by.as_deref())?;
    let cannot: Vec<String> = super::build::objects_that_cannot_move(&analysis.schema, &plans.tables)?;
    let blocked =
        |name: &str| cannot.iter().any(|c| c.split(':').next().is_some_and(|h| h.ends_with(&format!(" {name}"))));
    let included = |t: &str| plans.tables.iter().any(|p| p.source.eq_ignore_ascii_case(t));
    let mut sql = format!(
        "-- Tenant schema taken from {} by `tenantd migration analyze-schema --emit-schema`.\n\n",
        analysis.source
    );
    for t in analysis.schema.tables.iter().filter(|t| included(&t.name)) {
        sql.push_str(&format!("{};\n\n", t.sql.trim_end_matches(';')));
    }
    for o in analysis.schema.indexes.iter().filter(|o| included(&o.table)) {
        sql.push_str(&format!("{};\n", o.sql.trim_end_matches(';')));
    }
    for o in analysis.schema.views.iter().chain(&analysis.schema.triggers).filter(|o| !blocked(&o.name)) {
        sql.push_str(&format!("\n{};\n", o.sql.trim_end_matches(';')));
    }
    let path = dir.join("0001_initial.sql");
    std::fs::write(&path, sql)?;
    Ok(path)
}
