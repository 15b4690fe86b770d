//! Validation: every tenant file passes `quick_check` and `foreign_key_check`, and holds, per
//! table, exactly the rows read for it from the source (count and an order-independent content
//! hash); per source table, the rows in tenants plus the rows left behind by rule add up.
//! Run at the end of every migration and again on demand (`tenantd migration validate RUN`),
//! which re-reads the run's source snapshot through its tenant map.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::build::{self, Tallies, Tally};
use super::config::MigrationConfig;
use super::inspect;
use super::map::MapReport;
use super::plan::{self, Plans};
use super::run::TableTotal;
use super::source::Budget;
use crate::app::App;
use crate::catalog::{imports, tenants};
use crate::error::{Error, Result};
use crate::ids::TenantId;

/// Differences between a tenant file and the tallies read for it from the source (`None`:
/// post_sql changed the tables after the load, so only integrity and foreign keys are checked
/// here; the load itself was compared before post_sql ran).
pub fn check_tenant_file(
    path: &Path,
    plans: &[plan::TablePlan],
    expected: Option<&BTreeMap<String, Tally>>,
) -> Result<Vec<String>> {
    let conn = crate::db::open_read_only(path)?;
    let mut out = Vec::new();
    if let Err(e) = crate::db::integrity_check(&conn) {
        out.push(e.to_string());
    }
    out.extend(build::foreign_key_violations(&conn, 10)?.into_iter().map(|v| format!("foreign key: {v}")));
    if let Some(expected) = expected {
        let found = build::tenant_tallies(&conn, plans)?;
        out.extend(compare(expected, &found));
    }
    Ok(out)
}

/// Per table: row counts, then content, of what was expected against what was found.
pub fn compare(expected: &BTreeMap<String, Tally>, found: &BTreeMap<String, Tally>) -> Vec<String> {
    let mut out = Vec::new();
    for (table, want) in expected {
        let got = found.get(table).copied().unwrap_or_default();
        if got.rows != want.rows {
            out.push(format!("{table}: {} rows in the tenant, {} read from the source", got.rows, want.rows));
        } else if got.hash != want.hash {
            out.push(format!("{table}: same {} rows but different content", got.rows));
        }
    }
    out
}

/// Source rows per table against the tenants' rows and the rows left behind by rule.
pub fn totals<'a>(
    schema: &inspect::Schema,
    plans: &Plans,
    mapping: &MapReport,
    tenants: impl Iterator<Item = &'a BTreeMap<String, Tally>> + Clone,
) -> Vec<TableTotal> {
    let n_tenants = tenants.clone().count() as u64;
    plans
        .tables
        .iter()
        .map(|p| {
            let source_rows = schema.tables[p.index].rows as u64;
            let in_tenants: u64 = tenants.clone().map(|t| t.get(&p.target).map(|t| t.rows).unwrap_or(0)).sum();
            let by_rule = mapping.by_rule(&p.source);
            let differences = mapping.differences(&p.source);
            // A system row referenced by two tenants is copied to both.
            let ok = if p.role == super::roles::Role::System {
                in_tenants + by_rule >= source_rows
            } else if p.mapped {
                in_tenants + by_rule == source_rows && differences == 0
            } else {
                in_tenants == source_rows * n_tenants
            };
            TableTotal {
                table: p.target.clone(),
                role: p.role.as_str().into(),
                source_rows,
                in_tenants,
                left_behind_by_rule: by_rule,
                differences,
                ok,
            }
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct TenantVerdict {
    pub slug: String,
    pub ok: bool,
    pub differences: Vec<String>,
    pub rows: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct ValidationReport {
    pub run_id: String,
    pub tenants: Vec<TenantVerdict>,
    pub ok: bool,
}

/// Re-validates a registered run against its source snapshot.
pub fn validate(app: &App, run_id: &str, statement_timeout: Duration) -> Result<ValidationReport> {
    let run = imports::run(&*app.catalog.conn()?, run_id)?
        .ok_or_else(|| Error::NotFound(format!("migration run {run_id:?}")))?;
    if run.status != "done" {
        return Err(Error::invalid(
            "run_not_done",
            format!("migration run {run_id} is {}: nothing to validate", run.status),
        ));
    }
    let config: MigrationConfig = serde_json::from_value(run.manifest["config"].clone())
        .map_err(|e| Error::Internal(format!("run {run_id} manifest: {e}")))?;
    let run_dir = app.paths.data_dir.join("backups").join("migrations").join(run_id);
    let budget = Budget::new(statement_timeout);
    let mut verdicts = Vec::new();
    let listed = run.manifest["tenants"].as_array().cloned().unwrap_or_default();
    for (si, spec) in config.sources.iter().enumerate() {
        let snapshot = run_dir.join(format!("source-{si}.db"));
        let snapshot = if snapshot.is_file() {
            snapshot
        } else if super::source::is_postgres(&spec.url) {
            // A SQLite source can be re-read in place; a PostgreSQL one only through the
            // snapshot, which `--no-source-backup` deleted (and the URL kept has no password).
            return Err(Error::invalid(
                "source_not_kept",
                format!(
                    "run {run_id} read PostgreSQL source {} and did not keep its snapshot (--no-source-backup): validate cannot re-read a PostgreSQL source; convert again without --no-source-backup to keep one",
                    super::source::redact_url(&spec.url)
                ),
            ));
        } else {
            super::source::source_path(&spec.url)?
        };
        let reader = super::run::open_reader(&run_dir.join(format!("map-{si}.db")), &snapshot, &budget)?;
        let schema = inspect::read(&reader, "src", false)?;
        let plans = plan::plan(&schema, &config, spec.tenant.split_by.as_deref())?;
        let mine: Vec<(i64, String)> = listed
            .iter()
            .filter(|t| t["source"].as_u64() == Some(si as u64))
            .filter_map(|t| Some((t["tn"].as_i64()?, t["tenant_id"].as_str()?.to_string())))
            .collect();
        let (lo, hi) = (mine.iter().map(|m| m.0).min().unwrap_or(0), mine.iter().map(|m| m.0).max().unwrap_or(0));
        let mut expected: Tallies = BTreeMap::new();
        for p in &plans.tables {
            build::stream(&reader, p, lo, hi, &budget, |tn, values| {
                let h = build::row_hash(values, &p.hashed);
                match tn {
                    Some(tn) => expected.entry(tn).or_default().entry(p.target.clone()).or_default().add(h),
                    None => {
                        for (tn, _) in &mine {
                            expected.entry(*tn).or_default().entry(p.target.clone()).or_default().add(h);
                        }
                    }
                }
                Ok(())
            })?;
        }
        for (tn, tid) in &mine {
            let id = TenantId::parse(tid)?;
            let Some(t) = tenants::find_by_id(&*app.catalog.conn()?, &id)? else {
                verdicts.push(TenantVerdict {
                    slug: tid.clone(),
                    ok: false,
                    differences: vec!["tenant no longer exists".into()],
                    rows: BTreeMap::new(),
                });
                continue;
            };
            let mut want = expected.remove(tn).unwrap_or_default();
            for p in &plans.tables {
                want.entry(p.target.clone()).or_default();
            }
            let expected = config.post_sql.is_empty().then_some(&want);
            let differences = check_tenant_file(&app.paths.tenant_db(&id), &plans.tables, expected)?;
            let rows = want.iter().map(|(k, v)| (k.clone(), v.rows)).collect();
            verdicts.push(TenantVerdict { slug: t.slug.to_string(), ok: differences.is_empty(), differences, rows });
        }
    }
    let ok = verdicts.iter().all(|v| v.ok);
    Ok(ValidationReport { run_id: run_id.to_string(), tenants: verdicts, ok })
}
