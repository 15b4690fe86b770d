//! PostgreSQL types in SQLite (issue 19, item 4): how each type is stored, the SELECT
//! expression that converts it on PostgreSQL's side, and the CREATE TABLE / CREATE INDEX a
//! snapshot gets. Pure: `postgres` reads the catalog and the rows; this decides their shape.
//! docs/migration.md ("PostgreSQL sources") documents the same table as `Conv::for_type`.

use super::config::PgOptions;
use super::inspect::q;

/// How one PostgreSQL type is stored in SQLite and converted in the SELECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Conv {
    /// smallint, integer, bigint (serial and identity columns too).
    Integer,
    /// real, double precision.
    Float,
    /// numeric/decimal as text with the exact digits.
    NumericText,
    /// numeric/decimal as binary floating point (`PgOptions::numeric_as_real`).
    NumericReal,
    Boolean,
    TimestampTz,
    Timestamp,
    Date,
    /// Any array, of any dimension: JSON text.
    Array,
    Bytea,
    Enum,
    /// Types whose PostgreSQL text form is the value: text, varchar, char, citext, uuid, json,
    /// jsonb, time.
    Text,
    /// Anything else (interval, inet, money, ranges, composites, …): the text form, and the
    /// report says the type was not mapped exactly.
    Other,
}

/// The SQLite storage class a converted value arrives as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Storage {
    Integer,
    Real,
    Text,
    Blob,
}

impl Conv {
    /// `base`: the type's name after domains are resolved; `builtin`: it lives in pg_catalog
    /// (a same-named type elsewhere is someone else's); `typtype`: pg_type's kind (`e` enum).
    pub fn for_type(base: &str, builtin: bool, typtype: &str, is_array: bool, opts: &PgOptions) -> Conv {
        if is_array {
            return Conv::Array;
        }
        if typtype == "e" {
            return Conv::Enum;
        }
        if base == "citext" {
            return Conv::Text;
        }
        if !builtin || typtype != "b" {
            return Conv::Other;
        }
        match base {
            "int2" | "int4" | "int8" => Conv::Integer,
            "float4" | "float8" => Conv::Float,
            "numeric" if opts.numeric_as_real => Conv::NumericReal,
            "numeric" => Conv::NumericText,
            "bool" => Conv::Boolean,
            "timestamptz" => Conv::TimestampTz,
            "timestamp" => Conv::Timestamp,
            "date" => Conv::Date,
            "bytea" => Conv::Bytea,
            "text" | "varchar" | "bpchar" | "char" | "name" | "uuid" | "json" | "jsonb" | "time" => Conv::Text,
            _ => Conv::Other,
        }
    }

    pub(super) fn storage(self) -> Storage {
        match self {
            Conv::Integer | Conv::Boolean => Storage::Integer,
            Conv::Float | Conv::NumericReal => Storage::Real,
            Conv::Bytea => Storage::Blob,
            _ => Storage::Text,
        }
    }

    pub fn sqlite_type(self) -> &'static str {
        match self.storage() {
            Storage::Integer => "INTEGER",
            Storage::Real => "REAL",
            Storage::Text => "TEXT",
            Storage::Blob => "BLOB",
        }
    }

    /// The SELECT expression that converts column `c` (already quoted). Times are formatted
    /// with `to_char` so the text does not depend on DateStyle; infinite and BC values, which
    /// `to_char` cannot show, keep PostgreSQL's own text (`infinity`, `0044-03-15 BC`).
    pub fn select(self, c: &str) -> String {
        let dated = |floor: &str, fmt: &str, at: &str| {
            format!("CASE WHEN isfinite({c}) AND {c} >= '{floor}' THEN to_char({c}{at}, '{fmt}') ELSE {c}::text END")
        };
        match self {
            Conv::Integer => format!("{c}::int8"),
            Conv::Float | Conv::NumericReal => format!("{c}::float8"),
            Conv::Boolean => format!("{c}::int4::int8"),
            Conv::TimestampTz => {
                dated("0001-01-01 00:00:00+00", "YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"", " AT TIME ZONE 'UTC'")
            }
            Conv::Timestamp => dated("0001-01-01 00:00:00", "YYYY-MM-DD\"T\"HH24:MI:SS.US", ""),
            Conv::Date => dated("0001-01-01", "YYYY-MM-DD", ""),
            Conv::Array => format!("to_json({c})::text"),
            Conv::Bytea => c.to_string(),
            Conv::NumericText | Conv::Enum | Conv::Text | Conv::Other => format!("{c}::text"),
        }
    }

    /// What the mapping does, for the report.
    pub fn how(self) -> &'static str {
        match self {
            Conv::Integer => "INTEGER",
            Conv::Float => "REAL",
            Conv::NumericText => "TEXT with the exact digits",
            Conv::NumericReal => "REAL (numeric_as_real: digits past about 15 significant are lost)",
            Conv::Boolean => "INTEGER 0/1 with CHECK (col IN (0, 1))",
            Conv::TimestampTz => "TEXT, RFC 3339 in UTC with microseconds (…Z)",
            Conv::Timestamp => "TEXT, ISO 8601 without a zone, with microseconds",
            Conv::Date => "TEXT YYYY-MM-DD",
            Conv::Array => "TEXT holding JSON (to_json)",
            Conv::Bytea => "BLOB",
            Conv::Enum => "TEXT with CHECK (col IN (labels))",
            Conv::Text => "TEXT (PostgreSQL's text form)",
            Conv::Other => "TEXT (PostgreSQL's text form): not mapped exactly",
        }
    }

    pub fn exact(self) -> bool {
        !matches!(self, Conv::Other | Conv::NumericReal)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub conv: Conv,
    pub not_null: bool,
    /// An enum's labels, in their sort order.
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForeignKeyDef {
    pub from: Vec<String>,
    pub table: String,
    pub to: Vec<String>,
    /// pg_constraint's `confupdtype` / `confdeltype`: a no action, r restrict, c cascade,
    /// n set null, d set default.
    pub on_update: char,
    pub on_delete: char,
    /// DEFERRABLE INITIALLY DEFERRED (Django declares its foreign keys so).
    pub deferred: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    pub pk: Vec<String>,
    pub foreign_keys: Vec<ForeignKeyDef>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndexDef {
    pub name: String,
    pub table: String,
    pub columns: Vec<String>,
    pub unique: bool,
}

fn list(names: &[String]) -> String {
    names.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ")
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn action(code: char) -> Option<&'static str> {
    match code {
        'r' => Some("RESTRICT"),
        'c' => Some("CASCADE"),
        'n' => Some("SET NULL"),
        // 'a' (no action) is SQLite's default too; 'd' (set default) is left out because
        // defaults are not copied (the report says so).
        _ => None,
    }
}

/// The SQLite CREATE TABLE for a PostgreSQL table: mapped types, NOT NULL, the primary key (a
/// single integer one becomes the rowid, `INTEGER PRIMARY KEY`), CHECKs for booleans and
/// enums, foreign keys with PostgreSQL's column names.
pub fn create_table_sql(t: &TableDef) -> String {
    let rowid = match t.pk.as_slice() {
        [one] => t.columns.iter().find(|c| &c.name == one && c.conv == Conv::Integer).map(|c| c.name.as_str()),
        _ => None,
    };
    let mut parts = Vec::new();
    for c in &t.columns {
        let mut d = format!("{} {}", q(&c.name), c.conv.sqlite_type());
        if rowid == Some(c.name.as_str()) {
            d.push_str(" PRIMARY KEY");
        } else if c.not_null {
            d.push_str(" NOT NULL");
        }
        match c.conv {
            Conv::Boolean => d.push_str(&format!(" CHECK ({} IN (0, 1))", q(&c.name))),
            Conv::Enum if !c.labels.is_empty() => {
                let labels: Vec<String> = c.labels.iter().map(|l| literal(l)).collect();
                d.push_str(&format!(" CHECK ({} IN ({}))", q(&c.name), labels.join(", ")));
            }
            _ => {}
        }
        parts.push(d);
    }
    if !t.pk.is_empty() && rowid.is_none() {
        parts.push(format!("PRIMARY KEY ({})", list(&t.pk)));
    }
    for f in &t.foreign_keys {
        let mut d = format!("FOREIGN KEY ({}) REFERENCES {} ({})", list(&f.from), q(&f.table), list(&f.to));
        if let Some(a) = action(f.on_update) {
            d.push_str(&format!(" ON UPDATE {a}"));
        }
        if let Some(a) = action(f.on_delete) {
            d.push_str(&format!(" ON DELETE {a}"));
        }
        if f.deferred {
            d.push_str(" DEFERRABLE INITIALLY DEFERRED");
        }
        parts.push(d);
    }
    format!("CREATE TABLE {} (\n    {}\n)", q(&t.name), parts.join(",\n    "))
}

pub fn create_index_sql(i: &IndexDef) -> String {
    format!(
        "CREATE {}INDEX {} ON {} ({})",
        if i.unique { "UNIQUE " } else { "" },
        q(&i.name),
        q(&i.table),
        list(&i.columns)
    )
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    fn conv(base: &str, typtype: &str, array: bool) -> Conv {
        Conv::for_type(base, true, typtype, array, &PgOptions::default())
    }

    #[test]
    fn type_mapping_follows_the_documented_table() {
        let table = [
            ("int2", Conv::Integer, "INTEGER"),
            ("int4", Conv::Integer, "INTEGER"),
            ("int8", Conv::Integer, "INTEGER"),
            ("numeric", Conv::NumericText, "TEXT"),
            ("float4", Conv::Float, "REAL"),
            ("float8", Conv::Float, "REAL"),
            ("bool", Conv::Boolean, "INTEGER"),
            ("timestamptz", Conv::TimestampTz, "TEXT"),
            ("timestamp", Conv::Timestamp, "TEXT"),
            ("date", Conv::Date, "TEXT"),
            ("time", Conv::Text, "TEXT"),
            ("json", Conv::Text, "TEXT"),
            ("jsonb", Conv::Text, "TEXT"),
            ("uuid", Conv::Text, "TEXT"),
            ("bytea", Conv::Bytea, "BLOB"),
            ("text", Conv::Text, "TEXT"),
            ("varchar", Conv::Text, "TEXT"),
            ("bpchar", Conv::Text, "TEXT"),
            ("interval", Conv::Other, "TEXT"),
            ("inet", Conv::Other, "TEXT"),
            ("money", Conv::Other, "TEXT"),
        ];
        for (base, want, sqlite) in table {
            let got = conv(base, "b", false);
            assert_eq!((got, got.sqlite_type()), (want, sqlite), "{base}");
            assert_eq!(got.exact(), want != Conv::Other, "{base}");
        }
        assert_eq!(conv("int4", "b", true), Conv::Array, "integer[] (any dimension)");
        assert_eq!(conv("ledger_kind", "e", false), Conv::Enum);
        assert_eq!(conv("ledger_kind", "e", true), Conv::Array, "an enum array is JSON text");
        assert_eq!(conv("int4range", "r", false), Conv::Other);
        assert_eq!(Conv::for_type("citext", false, "b", false, &PgOptions::default()), Conv::Text);
        assert_eq!(Conv::for_type("text", false, "b", false, &PgOptions::default()), Conv::Other, "not pg_catalog's");
        let real = PgOptions { numeric_as_real: true, ..Default::default() };
        let n = Conv::for_type("numeric", true, "b", false, &real);
        assert_eq!((n, n.sqlite_type(), n.exact()), (Conv::NumericReal, "REAL", false));
    }

    #[test]
    fn conversions_happen_in_the_select() {
        let c = "\"booked_at\"";
        assert_eq!(Conv::Integer.select(c), "\"booked_at\"::int8");
        assert_eq!(Conv::Boolean.select(c), "\"booked_at\"::int4::int8");
        assert_eq!(Conv::NumericText.select(c), "\"booked_at\"::text");
        assert_eq!(Conv::Array.select(c), "to_json(\"booked_at\")::text");
        assert_eq!(Conv::Bytea.select(c), "\"booked_at\"");
        assert_eq!(
            Conv::TimestampTz.select(c),
            "CASE WHEN isfinite(\"booked_at\") AND \"booked_at\" >= '0001-01-01 00:00:00+00' \
             THEN to_char(\"booked_at\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') ELSE \"booked_at\"::text END"
        );
        assert!(Conv::Date.select(c).contains("to_char(\"booked_at\", 'YYYY-MM-DD')"));
        assert!(!Conv::Timestamp.select(c).contains("Z\"'"), "no zone on a timestamp without one");
    }

    fn col(name: &str, conv: Conv, not_null: bool) -> ColumnDef {
        ColumnDef { name: name.into(), conv, not_null, labels: Vec::new() }
    }

    #[test]
    fn ddl_has_rowid_key_checks_and_foreign_keys() {
        let mut kind = col("kind", Conv::Enum, true);
        kind.labels = vec!["invoice".into(), "credit-note".into(), "it's".into()];
        let t = TableDef {
            name: "ledger_entry".into(),
            columns: vec![
                col("id", Conv::Integer, true),
                col("account_id", Conv::Integer, false),
                kind,
                col("amount", Conv::NumericText, true),
                col("settled", Conv::Boolean, true),
                col("attachment", Conv::Bytea, false),
            ],
            pk: vec!["id".into()],
            foreign_keys: vec![ForeignKeyDef {
                from: vec!["account_id".into()],
                table: "crm_account".into(),
                to: vec!["id".into()],
                on_update: 'a',
                on_delete: 'c',
                deferred: true,
            }],
        };
        assert_eq!(
            create_table_sql(&t),
            "CREATE TABLE \"ledger_entry\" (\n    \"id\" INTEGER PRIMARY KEY,\n    \"account_id\" INTEGER,\n    \
             \"kind\" TEXT NOT NULL CHECK (\"kind\" IN ('invoice', 'credit-note', 'it''s')),\n    \
             \"amount\" TEXT NOT NULL,\n    \"settled\" INTEGER NOT NULL CHECK (\"settled\" IN (0, 1)),\n    \
             \"attachment\" BLOB,\n    FOREIGN KEY (\"account_id\") REFERENCES \"crm_account\" (\"id\") ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED\n)"
        );
        // A composite or non-integer key stays a table constraint (no rowid alias).
        let t = TableDef {
            name: "we\"ird".into(),
            columns: vec![col("a", Conv::Text, true), col("b", Conv::Integer, true)],
            pk: vec!["a".into(), "b".into()],
            foreign_keys: Vec::new(),
        };
        let sql = create_table_sql(&t);
        assert!(sql.starts_with("CREATE TABLE \"we\"\"ird\""), "{sql}");
        assert!(sql.contains("\"b\" INTEGER NOT NULL,\n    PRIMARY KEY (\"a\", \"b\")"), "{sql}");
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&sql).unwrap();
        let i = IndexDef { name: "u".into(), table: "we\"ird".into(), columns: vec!["b".into()], unique: true };
        assert_eq!(create_index_sql(&i), "CREATE UNIQUE INDEX \"u\" ON \"we\"\"ird\" (\"b\")");
        conn.execute_batch(&create_index_sql(&i)).unwrap();
    }
}
