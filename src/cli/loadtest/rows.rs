//! Rows for any tenant table: `TableGen`, a model of the columns a row must fill, built from
//! introspection (with `--data-dir`) or from a tenant's OpenAPI document (with
//! `--credentials`). The seed and the POST bodies of the write share come from the same model.
//!
//! A row is made from two numbers. `n` (>= 1) picks among few values: non-unique columns repeat
//! with period `CYCLE`, foreign keys walk the parent's seeded ids. `token` makes UNIQUE columns
//! unique. Seeded row `id` uses n = token = id; writes use a per-thread counter for `n` and
//! `write_token_base() + n` for `token`, far above any seeded id and above the previous run's.
//!
//! Each column has a short list of candidate values (a varying one first, then constants, then
//! NULL if the column allows it). `seed::plan` inserts probe rows into the schema replayed in
//! memory and, when a CHECK rejects one, moves a column the CHECK mentions to its next
//! candidate (`advance`). Checks of the form `col IN (…)` are read up front (`one_of`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};

use super::super::CliError;
use crate::store::constraints::Constraints;
use crate::store::introspect;
use crate::store::query::{self, Affinity, Column, Table};

/// Non-unique generated values repeat with this period, so `CYCLE` probe rows try them all.
pub const CYCLE: u64 = 5;

/// The first token of this run's writes: the clock in milliseconds × 1000 (~1.8e15, below 2^53
/// so REAL columns and JSON numbers hold it exactly). A later run starts above an earlier one
/// unless the earlier one wrote over 1,000 rows per millisecond.
pub fn write_token_base() -> u64 {
    u64::try_from(crate::util::now_millis()).unwrap_or(0).saturating_mul(1000)
}

/// What a column's values look like, from its declared type and affinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Real,
    Text,
    Bool,
    Date,
    Timestamp,
    Time,
    Json,
    Uuid,
    Blob,
}

impl Kind {
    /// Declared types SQLite gives NUMERIC or TEXT affinity to (sqlite.org/datatype3.html §3.1)
    /// but that applications read as dates, flags or documents get values of that shape.
    fn of(c: &Column, unique: bool) -> Kind {
        let d = c.decl_type.to_ascii_uppercase();
        // UUIDs, JSON, dates and times are strings: only where the data API takes one.
        let strings = query::json_to_sql(c, &Json::from("")).is_ok();
        let shaped = if d.contains("BOOL") && matches!(c.affinity, Affinity::Integer | Affinity::Numeric) {
            Some(Kind::Bool)
        } else if !strings {
            None
        } else if d.contains("UUID") {
            Some(Kind::Uuid)
        } else if d.contains("JSON") {
            Some(Kind::Json)
        } else if d.contains("DATETIME") || d.contains("TIMESTAMP") {
            Some(Kind::Timestamp)
        } else if d.contains("DATE") {
            Some(Kind::Date)
        } else if d.contains("TIME") {
            Some(Kind::Time)
        } else {
            None
        };
        match (shaped, c.affinity) {
            // Flags, dates and times have too few values to be unique; a token in text is.
            (Some(Kind::Bool), _) if unique => Kind::Integer,
            (Some(Kind::Date | Kind::Timestamp | Kind::Time), _) if unique => Kind::Text,
            (Some(k), _) => k,
            (None, Affinity::Integer | Affinity::Numeric) => Kind::Integer,
            (None, Affinity::Real) => Kind::Real,
            (None, Affinity::Text) => Kind::Text,
            // Untyped columns (BLOB affinity, no declared type) take text.
            (None, Affinity::Blob) if d.is_empty() => Kind::Text,
            (None, Affinity::Blob) => Kind::Blob,
        }
    }

    fn varying_count(self) -> usize {
        if self == Kind::Text {
            3
        } else {
            1
        }
    }

    /// The `i`-th candidate that varies with `t` (unique if `t` is).
    fn varying(self, i: usize, t: u64, name: &str) -> Option<Json> {
        let (month, day, hour, minute) = (1 + t % 12, 1 + t % 28, t % 24, t % 60);
        Some(match (self, i) {
            (Kind::Integer, 0) => json!(t),
            (Kind::Bool, 0) => json!(t % 2),
            (Kind::Real, 0) => json!(t as f64 + 0.5),
            (Kind::Text, 0) => json!(format!("{name} {t}")),
            // For CHECKs that want an address (`LIKE '%@%'`) or digits only.
            (Kind::Text, 1) => json!(format!("user{t}@example.com")),
            (Kind::Text, 2) => json!(t.to_string()),
            (Kind::Date, 0) => json!(format!("2024-{month:02}-{day:02}")),
            (Kind::Timestamp, 0) => json!(format!("2024-{month:02}-{day:02}T{hour:02}:{minute:02}:00Z")),
            (Kind::Time, 0) => json!(format!("{hour:02}:{minute:02}:00")),
            (Kind::Json, 0) => json!(format!("{{\"n\":{t}}}")),
            (Kind::Uuid, 0) => json!(format!("{:08x}-0000-4000-8000-{:012x}", t >> 48, t & 0xffff_ffff_ffff)),
            // The data API stores a string sent for a BLOB column as text (`json_to_sql`).
            (Kind::Blob, 0) => json!(format!("blob {t}")),
            _ => return None,
        })
    }

    /// The `i`-th constant candidate, tried after the varying ones (never for unique columns).
    fn constant(self, i: usize) -> Option<Json> {
        Some(match (self, i) {
            (Kind::Integer | Kind::Bool, 0) => json!(0),
            (Kind::Integer | Kind::Bool, 1) => json!(1),
            (Kind::Real, 0) => json!(0.0),
            (Kind::Real, 1) => json!(1.0),
            (Kind::Text, 0) => json!("x"),
            (Kind::Date, 0) => json!("2024-01-01"),
            (Kind::Timestamp, 0) => json!("2024-01-01 00:00:00"),
            (Kind::Json, 0) => json!("{}"),
            _ => return None,
        })
    }
}

/// Where a column's values come from. The planner makes the foreign keys' (it seeds the
/// parents); `TableGen::new` the others.
#[derive(Clone, Debug)]
pub enum Source {
    Generated(Kind),
    /// The values of a `CHECK (col IN (…))`.
    OneOf(Vec<Json>),
    /// Row `1 + (n - 1) % rows` of a parent seeded with ids 1..=rows: its id, or its `column`.
    Parent {
        table: Arc<TableGen>,
        column: Option<usize>,
        rows: u64,
    },
    /// A NOT NULL key into its own table: id 1 (the seed's first row points at itself).
    SelfRef,
}

impl Source {
    /// A key into `parent` (primary key `pk`, seeded with ids 1..=rows) that names the parent's
    /// column `to`, or only the table; an error when `to` is a column loadtest does not fill.
    pub fn parent(parent: Arc<TableGen>, pk: &str, to: Option<&str>, rows: u64) -> Result<Source, String> {
        let column = match to {
            None => None,
            Some(to) if to == pk => None,
            Some(to) => Some(
                parent
                    .columns
                    .iter()
                    .position(|c| c.name == to)
                    .ok_or_else(|| format!("references {}.{to}, a column loadtest does not fill", parent.name))?,
            ),
        };
        Ok(Source::Parent { table: parent, column, rows })
    }
}

#[derive(Clone, Debug)]
pub struct ColumnGen {
    pub name: String,
    column: Column,
    source: Source,
    unique: bool,
    /// The candidate in use; calibration moves it past values a CHECK rejects.
    pick: usize,
}

impl ColumnGen {
    /// The column's `i`-th own value for row (n, token), or `None` past the last.
    fn own(&self, i: usize, n: u64, token: u64) -> Option<Json> {
        match &self.source {
            Source::OneOf(values) => match i {
                0 => values.get((n % values.len() as u64) as usize).cloned(),
                1 => values.first().cloned(),
                _ => None,
            },
            Source::Parent { table, column, rows } => (i == 0).then(|| {
                let row = 1 + n.saturating_sub(1) % (*rows).max(1);
                match column.and_then(|c| table.columns.get(c)) {
                    Some(c) => c.value(row, row),
                    None => json!(row),
                }
            }),
            Source::SelfRef => (i == 0).then(|| json!(1)),
            Source::Generated(kind) => {
                let t = if self.unique { token } else { 1 + n % CYCLE };
                match i.checked_sub(kind.varying_count()) {
                    None => kind.varying(i, t, &self.name),
                    Some(_) if self.unique => None,
                    Some(k) => kind.constant(k),
                }
            }
        }
    }

    fn own_count(&self) -> usize {
        (0..).take_while(|&i| self.own(i, 1, 1).is_some()).count()
    }

    /// How many candidates there are: its own values, then NULL if the column allows it.
    fn candidates(&self) -> usize {
        self.own_count() + usize::from(!self.column.not_null)
    }

    pub fn value(&self, n: u64, token: u64) -> Json {
        self.own(self.pick, n, token).unwrap_or(Json::Null)
    }
}

/// The columns a generated row fills (every column but the INTEGER PRIMARY KEY, columns with a
/// default unless UNIQUE, and nullable BLOBs), and how.
#[derive(Clone, Debug)]
pub struct TableGen {
    pub name: String,
    pub columns: Vec<ColumnGen>,
}

impl TableGen {
    /// The model of an introspected table. `keys` says how each foreign key column is filled;
    /// `None` leaves it out (its parent cannot be seeded, and it may be NULL or has a default).
    pub fn new(table: &Table, cons: &Constraints, keys: &HashMap<String, Option<Source>>) -> TableGen {
        let unique = unique_columns(table, cons, keys);
        let mut columns = Vec::new();
        for c in &table.columns {
            if c.name == table.pk {
                continue;
            }
            let is_unique = unique.contains(&c.name);
            let source = match keys.get(&c.name) {
                Some(None) => continue,
                Some(Some(source)) => source.clone(),
                None if c.has_default && !is_unique => continue,
                None => match one_of(c, cons) {
                    Some(values) => Source::OneOf(values),
                    None => match Kind::of(c, is_unique) {
                        Kind::Blob if !c.not_null => continue,
                        kind => Source::Generated(kind),
                    },
                },
            };
            columns.push(ColumnGen { name: c.name.clone(), column: c.clone(), source, unique: is_unique, pick: 0 });
        }
        TableGen { name: table.name.clone(), columns }
    }

    /// The model of a table in a tenant's OpenAPI document (`api::openapi`): `want`, or the first
    /// table by name. The document says nothing of CHECK, UNIQUE or foreign keys, so bodies fill
    /// the required columns only, text always unique, numbers 1..=CYCLE.
    pub fn from_openapi(doc: &Json, want: Option<&str>) -> Result<TableGen, CliError> {
        let (name, item) = pick_table(doc, want)?;
        let input = &item["post"]["requestBody"]["content"]["application/json"]["schema"];
        let required: Vec<&str> = input["required"].as_array().into_iter().flatten().filter_map(Json::as_str).collect();
        let columns = input["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(c, _)| required.contains(&c.as_str()))
            .map(|(c, prop)| column_from_prop(c, prop))
            .collect();
        Ok(TableGen { name: name.to_string(), columns })
    }

    /// All columns' candidates: calibration cannot advance more often than this.
    pub fn candidate_count(&self) -> usize {
        self.columns.iter().map(ColumnGen::candidates).sum()
    }

    /// Row (n, token): a JSON object of every filled column.
    pub fn row(&self, n: u64, token: u64) -> Map<String, Json> {
        self.columns.iter().map(|c| (c.name.clone(), c.value(n, token))).collect()
    }

    /// A write's body: `row` as bytes.
    pub fn body(&self, n: u64, token: u64) -> Vec<u8> {
        // Serializing a map of JSON values into memory cannot fail; an empty body would show as
        // 400s in the report.
        serde_json::to_vec(&self.row(n, token)).unwrap_or_default()
    }

    /// After `message` (a SQLite CHECK failure), moves one column the failed CHECK mentions to
    /// its next candidate; an error naming the table, column and CHECK when none is left.
    pub fn advance(&mut self, cons: &Constraints, message: &str) -> Result<(), String> {
        let check = cons.failed(message);
        let named: Vec<String> = match check {
            Some(c) => c.columns.clone(),
            None => query::failed_check_columns(message, self.columns.iter().map(|c| c.name.as_str()))
                .into_iter()
                .map(str::to_string)
                .collect(),
        };
        for name in &named {
            if let Some(c) = self.columns.iter_mut().find(|c| &c.name == name) {
                if c.pick + 1 < c.candidates() {
                    c.pick += 1;
                    return Ok(());
                }
            }
        }
        let what = check.map_or(query::failed_check(message), |c| c.expr.as_str());
        Err(if named.is_empty() {
            format!(
                "cannot generate a row of {}: CHECK ({what}) fails on columns loadtest leaves to their defaults",
                self.name
            )
        } else {
            format!(
                "cannot generate a row of {}: CHECK ({what}) rejects every value loadtest tries for column {}",
                self.name,
                named.join(", ")
            )
        })
    }
}

/// Among the paths of an OpenAPI document that take a POST: table `want`, or the first by name,
/// with its path item.
fn pick_table<'d>(doc: &'d Json, want: Option<&str>) -> Result<(&'d str, &'d Json), CliError> {
    let mut tables: Vec<(&str, &Json)> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(path, item)| !path.ends_with("{id}") && item.get("post").is_some())
        .filter_map(|(path, item)| path.rsplit('/').next().map(|name| (name, item)))
        .collect();
    tables.sort_by(|a, b| a.0.cmp(b.0));
    let names = || tables.iter().map(|t| t.0).collect::<Vec<_>>().join(", ");
    let (name, item) = match want {
        Some(w) => tables.iter().find(|t| t.0 == w).copied().ok_or_else(|| {
            CliError::usage(format!(
                "unknown --table {:?}: the tenant's data API has {}",
                crate::ids::truncate_for_message(w),
                if tables.is_empty() { "no tables".to_string() } else { format!("tables {}", names()) }
            ))
        })?,
        None => *tables.first().ok_or_else(|| CliError::failed("the tenant's data API has no tables to load"))?,
    };
    if !introspect::valid_ident(name) {
        return Err(CliError::failed(format!(
            "the OpenAPI document names a table {name:?} loadtest cannot put in a URL"
        )));
    }
    Ok((name, item))
}

/// A required property of a create body as a column to fill: NOT NULL, without a default, text
/// unique.
fn column_from_prop(name: &str, prop: &Json) -> ColumnGen {
    let ty = match &prop["type"] {
        Json::Array(ts) => ts.iter().filter_map(Json::as_str).find(|t| *t != "null"),
        t => t.as_str(),
    };
    // `api::openapi` notes "(declared DATE)" and the like for NUMERIC date columns.
    let declared = prop["description"]
        .as_str()
        .and_then(|d| d.split("(declared ").nth(1))
        .map(|d| d.trim_end_matches(')').to_string());
    let affinity = match (ty, &declared) {
        (Some("integer"), _) => Affinity::Integer,
        (Some("number"), Some(_)) => Affinity::Numeric,
        (Some("number"), None) => Affinity::Real,
        _ => Affinity::Text,
    };
    let column = Column {
        name: name.to_string(),
        decl_type: declared.unwrap_or_default(),
        affinity,
        not_null: true,
        has_default: false,
        primary_key: false,
    };
    let unique = affinity == Affinity::Text;
    let source = Source::Generated(Kind::of(&column, unique));
    ColumnGen { name: name.to_string(), column, source, unique, pick: 0 }
}

/// The values of the first `col IN (…)` CHECK on `c` that the data API would accept for it.
fn one_of(c: &Column, cons: &Constraints) -> Option<Vec<Json>> {
    cons.checks.iter().flat_map(|k| &k.one_of).filter(|(col, _)| *col == c.name).find_map(|(_, values)| {
        let ok: Vec<Json> = values.iter().filter(|v| query::json_to_sql(c, v).is_ok()).cloned().collect();
        (!ok.is_empty()).then_some(ok)
    })
}

/// One column per UNIQUE set gets per-row values (a set holding the primary key is unique
/// already): the first that is neither a foreign key nor limited to a CHECK's value list, since
/// those have few values; if every column is, all of them.
fn unique_columns(table: &Table, cons: &Constraints, keys: &HashMap<String, Option<Source>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for set in &cons.unique {
        if set.iter().any(|c| *c == table.pk || out.contains(c)) {
            continue;
        }
        let free = set
            .iter()
            .find(|c| !keys.contains_key(*c) && table.column(c).is_some_and(|col| one_of(col, cons).is_none()));
        match free {
            Some(c) => out.push(c.clone()),
            None => out.extend(set.iter().cloned()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn table(ddl: &str, name: &str) -> (Connection, Table, Constraints) {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(ddl).unwrap();
        let t = query::introspect(&c).unwrap().tables.get(name).unwrap().clone();
        let k = crate::store::constraints::constraints(&c, &t).unwrap();
        (c, t, k)
    }

    #[test]
    fn columns_get_values_of_their_declared_shape() {
        let (_, t, k) = table(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, r REAL, s TEXT, d DATE, ts TIMESTAMP,
             b BOOLEAN, j JSON, u UUID, raw BLOB NOT NULL, opt BLOB, any_, def TEXT DEFAULT 'x',
             code TEXT NOT NULL UNIQUE, st TEXT CHECK (st IN ('a', 'b')), lvl INTEGER CHECK (lvl IN (1, 'two')))",
            "t",
        );
        let g = TableGen::new(&t, &k, &HashMap::new());
        let names: Vec<&str> = g.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["n", "r", "s", "d", "ts", "b", "j", "u", "raw", "any_", "code", "st", "lvl"]);
        let row: Map<String, Json> = serde_json::from_slice(&g.body(7, 1_000_007)).unwrap();
        assert_eq!(row["n"], json!(3));
        assert_eq!(row["r"], json!(3.5));
        assert_eq!(row["s"], json!("s 3"));
        assert_eq!(row["d"], json!("2024-04-04"));
        assert_eq!(row["ts"], json!("2024-04-04T03:03:00Z"));
        assert_eq!(row["b"], json!(1));
        assert_eq!(row["j"], json!("{\"n\":3}"));
        assert_eq!(row["u"], json!("00000000-0000-4000-8000-000000000003"));
        assert_eq!(row["raw"], json!("blob 3"));
        assert_eq!(row["code"], json!("code 1000007"), "UNIQUE columns carry the token");
        assert_eq!(row["st"], json!("b"), "values of an IN check, in turn");
        assert_eq!(row["lvl"], json!(1), "'two' is no integer for the data API");
        for c in &g.columns {
            query::json_to_sql(&c.column, &row[&c.name]).unwrap();
        }
    }

    #[test]
    fn a_rejected_value_moves_its_column_to_the_next_candidate() {
        let (c, t, k) = table(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, p INTEGER NOT NULL CHECK (p BETWEEN 1 AND 2),
             e TEXT CHECK (e LIKE '%@%'), CONSTRAINT never CHECK (p < 0 OR p > 0))",
            "t",
        );
        let mut g = TableGen::new(&t, &k, &HashMap::new());
        let mut advanced = 0;
        for n in 1..=CYCLE {
            loop {
                let values = query::body_values(&t, &Json::Object(g.row(n, n))).unwrap();
                let insert = query::insert_sql(&t.name, values.iter().map(|(c, _)| c.as_str()), None);
                match c.execute(&insert, rusqlite::params_from_iter(values.iter().map(|(_, v)| v))) {
                    Ok(_) => break,
                    Err(e) => {
                        g.advance(&k, &e.to_string()).unwrap();
                        advanced += 1;
                    }
                }
            }
        }
        // p: 2, 3 rejected → 0 rejected → 1; e: "e 2" rejected → an address.
        assert_eq!(advanced, 3);
        assert_eq!(g.columns[0].value(9, 9), json!(1));
        assert_eq!(g.columns[1].value(9, 9), json!("user5@example.com"));

        let (_, t, k) =
            table("CREATE TABLE u (id INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v > 100 AND v < 50))", "u");
        let mut g = TableGen::new(&t, &k, &HashMap::new());
        let msg = "CHECK constraint failed: v > 100 AND v < 50";
        let err = (0..10).find_map(|_| g.advance(&k, msg).err()).unwrap();
        assert_eq!(
            err,
            "cannot generate a row of u: CHECK (v > 100 AND v < 50) rejects every value loadtest tries for column v"
        );
    }

    #[test]
    fn the_openapi_document_gives_the_table_and_its_required_columns() {
        let doc = json!({"paths": {
            "/api/v1/t/acme/notes": {"post": {"requestBody": {"content": {"application/json": {"schema": {
                "properties": {"body": {"type": "string"}, "customer_id": {"type": "integer"}, "extra": {"type": ["string", "null"]},
                               "due": {"type": "number", "description": "number (declared DATE)"}},
                "required": ["body", "customer_id", "due"]}}}}}},
            "/api/v1/t/acme/notes/{id}": {"get": {}},
            "/api/v1/t/acme/customers": {"post": {}}
        }});
        let g = TableGen::from_openapi(&doc, Some("notes")).unwrap();
        assert_eq!(g.name, "notes");
        let row: Map<String, Json> = serde_json::from_slice(&g.body(2, 99)).unwrap();
        assert_eq!(Json::Object(row), json!({"body": "body 99", "customer_id": 3, "due": "2024-04-04"}));
        assert_eq!(TableGen::from_openapi(&doc, None).unwrap().name, "customers");
        let err = TableGen::from_openapi(&doc, Some("nope")).err().unwrap().to_string();
        assert_eq!(err, "unknown --table \"nope\": the tenant's data API has tables customers, notes");
        assert!(TableGen::from_openapi(&json!({}), None).is_err());
    }
}
