//! The migration config: what `migrate-from-config` reads, what `analyze-schema --emit-config`
//! writes and what the command-line flags of `convert-to-multitenant` are turned into, so one
//! engine serves all three. Errors name the JSON pointer of the offending value
//! (`/tables/3/columns/email`). The JSON Schema is `docs/migration-config.schema.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationConfig {
    #[serde(default = "one")]
    pub version: u32,
    pub sources: Vec<SourceSpec>,
    /// `fleet` (default): the source's schema must be the fleet's tenant schema. `keep`: each
    /// tenant keeps the source's schema as its own (`custom` in `schema status`).
    #[serde(default)]
    pub schema_mode: SchemaMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<UsersSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_sql: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaMode {
    #[default]
    Fleet,
    Keep,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// A SQLite file path (or `sqlite:PATH`), or `postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`.
    pub url: String,
    pub tenant: TenantSpec,
    /// How a PostgreSQL source is read (ignored for SQLite files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PgOptions>,
}

/// How a PostgreSQL source is read into the run's snapshot (docs/migration.md, "PostgreSQL
/// sources"). Here rather than in `postgres` so configs parse the same in builds without it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PgOptions {
    /// The schema whose tables are read (default `public`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// numeric/decimal as REAL (binary floating point, digits may be lost) instead of TEXT
    /// holding the exact digits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub numeric_as_real: bool,
}

impl PgOptions {
    pub fn schema(&self) -> &str {
        self.schema.as_deref().unwrap_or("public")
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// One tenant for the whole source: its slug and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// One tenant per distinct value of `TABLE.COLUMN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_from: Option<String>,
    /// Where rows that belong to no tenant go (a new tenant with this slug); else left behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableAction {
    /// Copy (the role decides how when splitting).
    Copy,
    Exclude,
    /// Copy whole into every tenant.
    Lookup,
    /// The source app's own table: when splitting, only the rows tenant data references.
    System,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<TableAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnSpec>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop: bool,
    /// A literal for a column the source lacks, or for the source's NULLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A SQL expression over the source row, evaluated by SQLite while reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsersSpec {
    #[serde(default = "yes")]
    pub import: bool,
    pub table: String,
    pub email: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// A column that marks administrators (Django's `is_superuser`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_flag: Option<String>,
    /// Role tables: `user_roles` (user column, role column) joined to `roles` (id, name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_link: Option<RoleLink>,
    /// Source role name → tenantd role (`owner`, `admin`, `member`, `viewer` or a custom role).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, String>,
    /// The table that says who is in which tenant as what (found when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<MembershipLink>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipLink {
    pub table: String,
    pub user_column: String,
    /// A role name (`role`), or a flag (`is_owner`, `is_admin`).
    pub role_column: String,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoleLink {
    pub table: String,
    pub user_column: String,
    pub role_column: String,
    pub roles_table: String,
    pub role_id: String,
    pub role_name: String,
}

impl MigrationConfig {
    /// Parses a config file's text: JSON syntax, then shape (unknown keys, wrong types) with
    /// the pointer of the offending value.
    pub fn parse(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid("bad_config", format!("migration config is not valid JSON: {e}")))?;
        check_shape(&value, "", &SHAPE)?;
        let mut value = value;
        strip_comments(&mut value);
        let config: MigrationConfig = serde_json::from_value(value)
            .map_err(|e| Error::invalid("bad_config", format!("migration config: {e}")))?;
        if config.version != 1 {
            return Err(pointer_error("/version", "only version 1 is understood"));
        }
        if config.sources.is_empty() {
            return Err(pointer_error("/sources", "name at least one source"));
        }
        for (i, s) in config.sources.iter().enumerate() {
            let t = &s.tenant;
            match (&t.slug, &t.split_by) {
                (Some(_), Some(_)) => {
                    return Err(pointer_error(
                        &format!("/sources/{i}/tenant"),
                        "give either slug or split_by, not both",
                    ))
                }
                (None, None) => {
                    return Err(pointer_error(&format!("/sources/{i}/tenant"), "give slug (one tenant) or split_by"))
                }
                _ => {}
            }
        }
        Ok(config)
    }

    pub fn table(&self, name: &str) -> Option<(usize, &TableSpec)> {
        self.tables.iter().enumerate().find(|(_, t)| t.name.eq_ignore_ascii_case(name))
    }
}

fn strip_comments(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("$comment");
            map.values_mut().for_each(strip_comments);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_comments),
        _ => {}
    }
}

pub fn pointer_error(pointer: &str, message: &str) -> Error {
    Error::invalid("bad_config", format!("migration config {pointer}: {message}"))
}

/// The expected shape of a config document, for errors that name where they are.
enum Shape {
    Obj(&'static [(&'static str, Shape)]),
    /// An object whose keys are free (column names) with values of one shape.
    Map(&'static Shape),
    Arr(&'static Shape),
    Str,
    Bool,
    Int,
    Any,
}

static COLUMN: Shape =
    Shape::Obj(&[("rename", Shape::Str), ("drop", Shape::Bool), ("default", Shape::Any), ("expr", Shape::Str)]);
static TABLE: Shape = Shape::Obj(&[
    ("name", Shape::Str),
    ("action", Shape::Str),
    ("rename", Shape::Str),
    ("columns", Shape::Map(&COLUMN)),
]);
static TENANT: Shape = Shape::Obj(&[
    ("slug", Shape::Str),
    ("name", Shape::Str),
    ("split_by", Shape::Str),
    ("slug_from", Shape::Str),
    ("name_from", Shape::Str),
    ("null_tenant", Shape::Str),
    ("plan", Shape::Str),
]);
static POSTGRES: Shape = Shape::Obj(&[("schema", Shape::Str), ("numeric_as_real", Shape::Bool)]);
static SOURCE: Shape = Shape::Obj(&[("url", Shape::Str), ("tenant", TENANT_REF), ("postgres", POSTGRES_REF)]);
const POSTGRES_REF: Shape = Shape::Any;
const TENANT_REF: Shape = Shape::Any;
static ROLE_LINK: Shape = Shape::Obj(&[
    ("table", Shape::Str),
    ("user_column", Shape::Str),
    ("role_column", Shape::Str),
    ("roles_table", Shape::Str),
    ("role_id", Shape::Str),
    ("role_name", Shape::Str),
]);
static ROLE_NAME: Shape = Shape::Str;
static USERS: Shape = Shape::Obj(&[
    ("import", Shape::Bool),
    ("table", Shape::Str),
    ("email", Shape::Str),
    ("password", Shape::Str),
    ("active", Shape::Str),
    ("admin_flag", Shape::Str),
    ("role_link", ROLE_LINK_REF),
    ("roles", Shape::Map(&ROLE_NAME)),
    ("membership", MEMBERSHIP_REF),
]);
const MEMBERSHIP_REF: Shape = Shape::Any;
static MEMBERSHIP: Shape =
    Shape::Obj(&[("table", Shape::Str), ("user_column", Shape::Str), ("role_column", Shape::Str)]);
const ROLE_LINK_REF: Shape = Shape::Any;
static SQL: Shape = Shape::Str;
static SHAPE: Shape = Shape::Obj(&[
    ("version", Shape::Int),
    ("sources", Shape::Arr(&SOURCE)),
    ("schema_mode", Shape::Str),
    ("tables", Shape::Arr(&TABLE)),
    ("users", USERS_REF),
    ("post_sql", Shape::Arr(&SQL)),
    ("continue_on_error", Shape::Bool),
]);
const USERS_REF: Shape = Shape::Any;

fn check_shape(v: &Value, at: &str, shape: &Shape) -> Result<()> {
    // Nested objects that statics cannot name directly are checked by name here.
    let nested = |key: &str| -> Option<&'static Shape> {
        match (at, key) {
            (_, "tenant") if at.starts_with("/sources/") => Some(&TENANT),
            (_, "postgres") if at.starts_with("/sources/") => Some(&POSTGRES),
            ("", "users") => Some(&USERS),
            ("/users", "role_link") => Some(&ROLE_LINK),
            ("/users", "membership") => Some(&MEMBERSHIP),
            _ => None,
        }
    };
    let wrong = |what: &str| Err(pointer_error(if at.is_empty() { "/" } else { at }, &format!("must be {what}")));
    match shape {
        Shape::Obj(fields) => {
            let Some(map) = v.as_object() else { return wrong("an object") };
            for (k, val) in map {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                // `$comment` is allowed everywhere (JSON has no comments; JSON Schema's convention).
                if k == "$comment" {
                    continue;
                }
                match fields.iter().find(|(name, _)| name == k) {
                    None => {
                        let known: Vec<&str> = fields.iter().map(|(n, _)| *n).filter(|n| !n.starts_with('$')).collect();
                        return Err(pointer_error(
                            &here,
                            &format!("unknown key; known keys here: {}", known.join(", ")),
                        ));
                    }
                    Some((_, s)) => match nested(k) {
                        Some(n) => check_shape(val, &here, n)?,
                        None => check_shape(val, &here, s)?,
                    },
                }
            }
            Ok(())
        }
        Shape::Map(inner) => {
            let Some(map) = v.as_object() else { return wrong("an object") };
            for (k, val) in map {
                check_shape(val, &format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), inner)?;
            }
            Ok(())
        }
        Shape::Arr(inner) => {
            let Some(items) = v.as_array() else { return wrong("an array") };
            for (i, val) in items.iter().enumerate() {
                check_shape(val, &format!("{at}/{i}"), inner)?;
            }
            Ok(())
        }
        Shape::Str if !v.is_string() => wrong("a string"),
        Shape::Bool if !v.is_boolean() => wrong("true or false"),
        Shape::Int if !v.is_u64() => wrong("a whole number"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        MigrationConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_documented_example_parses() {
        let c = MigrationConfig::parse(include_str!("../../docs/migration-config.example.json")).unwrap();
        assert_eq!(c.sources[0].tenant.split_by.as_deref(), Some("company.id"));
        assert_eq!(c.tables.len(), 6);
        assert_eq!(c.users.unwrap().roles["Auditor"], "viewer");
    }

    #[test]
    fn errors_name_the_json_pointer() {
        let base = r#"{"sources":[{"url":"a.db","tenant":{"slug":"acme"}}],"tables":[{"name":"a"},{"name":"b","columns":{"email":{"drop":"yes"}}}]}"#;
        assert!(err(base).contains("/tables/1/columns/email/drop"), "{}", err(base));
        let unknown = r#"{"sources":[{"url":"a.db","tenant":{"slug":"acme","slugg":1}}]}"#;
        assert!(err(unknown).contains("/sources/0/tenant/slugg"), "{}", err(unknown));
        assert!(err("{").contains("not valid JSON"));
        let both = r#"{"sources":[{"url":"a.db","tenant":{"slug":"a","split_by":"t.c"}}]}"#;
        assert!(err(both).contains("/sources/0/tenant"));
        let ok = r#"{"$comment":"x","sources":[{"url":"a.db","tenant":{"$comment":"y","split_by":"company.id","slug_from":"slug"}}],"schema_mode":"keep",
            "users":{"table":"ab_user","email":"email","password":"password","role_link":{"table":"ab_user_role","user_column":"user_id","role_column":"role_id","roles_table":"ab_role","role_id":"id","role_name":"name"}}}"#;
        let c = MigrationConfig::parse(ok).unwrap();
        assert_eq!(c.schema_mode, SchemaMode::Keep);
        assert!(c.users.unwrap().role_link.is_some());
    }

    #[test]
    fn postgres_options_parse_and_name_their_pointer() {
        let ok = r#"{"sources":[{"url":"postgresql://crm@db/crm","tenant":{"slug":"a"},"postgres":{"schema":"crm","numeric_as_real":true}}]}"#;
        let c = MigrationConfig::parse(ok).unwrap();
        let pg = c.sources[0].postgres.clone().unwrap();
        assert_eq!((pg.schema(), pg.numeric_as_real), ("crm", true));
        assert_eq!(PgOptions::default().schema(), "public");
        let bad = r#"{"sources":[{"url":"postgresql://db/crm","tenant":{"slug":"a"},"postgres":{"numeric":"real"}}]}"#;
        assert!(err(bad).contains("/sources/0/postgres/numeric"), "{}", err(bad));
    }
}
