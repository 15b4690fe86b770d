//! From a source schema and a config to the list of tables to copy: target names, the SQL
//! that reads each target column, and how rows are chosen (whole, or through a tenant map).

use std::collections::BTreeSet;

use serde::Serialize;

use super::config::{MigrationConfig, TableAction};
use super::inspect::{q, Schema};
use super::roles::{self, Placement, Role, Split};
use crate::error::{Error, Result};

#[derive(Clone, Debug, Serialize)]
pub struct TablePlan {
    pub source: String,
    pub target: String,
    pub role: Role,
    /// Target column names, in order.
    pub columns: Vec<String>,
    /// The SQL reading each target column from the source row (alias `t`).
    #[serde(skip)]
    pub select: Vec<String>,
    /// Columns copied as they are (`t."col"`): their values are in the content hash.
    #[serde(skip)]
    pub hashed: Vec<bool>,
    /// Rows come through the tenant map `map_<n>` (split runs); `None`: the whole table.
    pub mapped: bool,
    /// Index of the table in the source schema.
    pub index: usize,
    /// The name that reaches the source table's rowid (see `inspect::Table::rowid`).
    #[serde(skip)]
    pub rowid: &'static str,
    pub path: String,
    /// Source column → new name; source columns dropped; columns the config adds.
    #[serde(skip)]
    pub renames: Vec<(String, String)>,
    #[serde(skip)]
    pub drops: Vec<String>,
    #[serde(skip)]
    pub adds: Vec<String>,
}

pub struct Plans {
    pub tables: Vec<TablePlan>,
    pub split: Option<Split>,
    pub placements: Vec<Placement>,
}

/// Applies the config's table rules to the source schema. `split` is `TABLE.COLUMN` or none.
pub fn plan(schema: &Schema, config: &MigrationConfig, split: Option<&str>) -> Result<Plans> {
    // Every table and column the config names must exist: a typo is an error, not a no-op.
    for (i, spec) in config.tables.iter().enumerate() {
        let t = schema.table(&spec.name).ok_or_else(|| {
            super::config::pointer_error(
                &format!("/tables/{i}/name"),
                &roles::unknown_table(schema, &spec.name).to_string(),
            )
        })?;
        for (name, col) in &spec.columns {
            let exists = t.column(name).is_some();
            if !exists && col.default.is_none() && col.expr.is_none() {
                return Err(super::config::pointer_error(
                    &format!("/tables/{i}/columns/{name}"),
                    &roles::unknown_column(t, name).to_string(),
                ));
            }
        }
    }
    let excluded: BTreeSet<String> = config
        .tables
        .iter()
        .filter(|t| t.action == Some(TableAction::Exclude))
        .map(|t| t.name.to_ascii_lowercase())
        .collect();
    let forced: Vec<(String, Role)> = config
        .tables
        .iter()
        .filter_map(|t| match t.action {
            Some(TableAction::Lookup) => Some((t.name.clone(), Role::Lookup)),
            Some(TableAction::System) => Some((t.name.clone(), Role::System)),
            _ => None,
        })
        .collect();
    let (split, placements) = match split {
        Some(spec) => {
            let s = roles::resolve_split(schema, spec)?;
            let p = roles::place(schema, &s, &excluded, &forced);
            (Some(s), p)
        }
        None => {
            let p = schema
                .tables
                .iter()
                .map(|t| Placement {
                    table: t.name.clone(),
                    role: if excluded.contains(&t.name.to_ascii_lowercase()) { Role::Excluded } else { Role::Lookup },
                    path: Vec::new(),
                    via: Vec::new(),
                    direct: false,
                    depth: 0,
                })
                .collect();
            (None, p)
        }
    };
    let mut tables = Vec::new();
    for (index, (t, p)) in schema.tables.iter().zip(&placements).enumerate() {
        if p.role == Role::Excluded {
            continue;
        }
        if super::build::reserved(&t.name) {
            return Err(Error::invalid(
                "reserved_table",
                format!("source table {} has a name tenantd reserves for its own tables: exclude it (tables[].action = \"exclude\")", t.name),
            ));
        }
        if split.is_some() && t.without_rowid && p.role != Role::Lookup {
            return Err(Error::invalid(
                "unsupported_table",
                format!("table {} is WITHOUT ROWID and would be split by tenant; this is not supported yet: exclude it or make it a lookup", t.name),
            ));
        }
        let spec = config.table(&t.name).map(|(_, s)| s);
        let mut columns = Vec::new();
        let mut select = Vec::new();
        let (mut renames, mut drops, mut adds) = (Vec::new(), Vec::new(), Vec::new());
        for c in &t.columns {
            let cs = spec.and_then(|s| s.columns.iter().find(|(n, _)| n.eq_ignore_ascii_case(&c.name)).map(|(_, v)| v));
            if cs.is_some_and(|c| c.drop) {
                drops.push(c.name.clone());
                continue;
            }
            if let Some(new) = cs.and_then(|c| c.rename.clone()) {
                renames.push((c.name.clone(), new));
            }
            columns.push(cs.and_then(|c| c.rename.clone()).unwrap_or_else(|| c.name.clone()));
            let read = match cs.and_then(|c| c.expr.clone()) {
                Some(expr) => format!("({expr})"),
                None => format!("t.{}", q(&c.name)),
            };
            select.push(match cs.and_then(|c| c.default.as_ref()) {
                Some(d) => format!("coalesce({read}, {})", sql_literal(d)),
                None => read,
            });
        }
        // Columns the config adds (a default or an expression for a column the source lacks).
        if let Some(spec) = spec {
            for (name, cs) in &spec.columns {
                if t.column(name).is_some() || cs.drop {
                    continue;
                }
                columns.push(cs.rename.clone().unwrap_or_else(|| name.clone()));
                adds.push(cs.rename.clone().unwrap_or_else(|| name.clone()));
                select.push(match (&cs.expr, &cs.default) {
                    (Some(e), _) => format!("({e})"),
                    (None, Some(d)) => sql_literal(d),
                    (None, None) => "NULL".into(),
                });
            }
        }
        let hashed = select.iter().map(|s| s.starts_with("t.")).collect();
        tables.push(TablePlan {
            source: t.name.clone(),
            target: spec.and_then(|s| s.rename.clone()).unwrap_or_else(|| t.name.clone()),
            role: p.role,
            columns,
            select,
            mapped: split.is_some() && p.role != Role::Lookup,
            index,
            rowid: t.rowid().unwrap_or("rowid"),
            hashed,
            path: p.path_text(schema),
            renames,
            drops,
            adds,
        });
    }
    Ok(Plans { tables, split, placements })
}

/// A JSON value from the config as a SQL literal.
pub fn sql_literal(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::Bool(b) => if *b { "1" } else { "0" }.into(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => format!("'{}'", other.to_string().replace('\'', "''")),
    }
}
