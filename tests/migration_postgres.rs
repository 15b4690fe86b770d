//! Issue 19, item 4: PostgreSQL as a migration source, on the database Django wrote into a
//! throwaway PostgreSQL server plus the plain-SQL `ledger_entry` table of every type the
//! converter maps (scripts/real-sources.sh). Run when `TENANTD_PG_URL` names that database
//! (.ci/run sets it; `TENANTD_REAL_SOURCES` too, for the manifest's row counts); skipped
//! otherwise. The password in the URL must never appear in output, files or the catalog.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use common::{cli, stderr, stdout};
use rusqlite::types::Value as Sql;
use rusqlite::Connection;
use serde_json::Value;

fn pg_url() -> Option<String> {
    match std::env::var("TENANTD_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("TENANTD_PG_URL unset: skipped here, run by .ci/run after scripts/real-sources.sh");
            None
        }
    }
}

fn password(url: &str) -> Option<String> {
    let config = postgres::Config::from_str(url).unwrap();
    config.get_password().map(|p| String::from_utf8(p.to_vec()).unwrap())
}

/// `url` with its password replaced by `pw` (added when it has none).
fn with_password(url: &str, pw: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => format!("{}:{pw}@{hosts}", userinfo.split(':').next().unwrap()),
        None => format!("postgres:{pw}@{authority}"),
    };
    format!("{scheme}://{authority}{tail}")
}

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

/// Nothing the run wrote or printed holds the password.
fn assert_no_password(url: &str, data: &Path, outputs: &[&std::process::Output]) {
    let Some(pw) = password(url) else { return };
    for o in outputs {
        assert!(!stdout(o).contains(&pw) && !stderr(o).contains(&pw), "password printed");
    }
    for f in common::files_under(data) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!bytes.windows(pw.len()).any(|w| w == pw.as_bytes()), "password stored in {}", f.display());
    }
}

/// Row counts per table of the django-postgres database: the manifest's when
/// TENANTD_REAL_SOURCES is set, else counted in PostgreSQL here.
fn expected_rows(url: &str) -> BTreeMap<String, u64> {
    if let Ok(dir) = std::env::var("TENANTD_REAL_SOURCES") {
        let text = std::fs::read_to_string(Path::new(&dir).join("manifest.json")).unwrap();
        let manifest: Value = serde_json::from_str(&text).unwrap();
        let db = manifest["databases"].as_array().unwrap().iter().find(|d| d["name"] == "django-postgres").unwrap();
        return db["tables"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
    }
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let names: Vec<String> = client
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    names
        .into_iter()
        .map(|n| {
            let count: i64 = client.query_one(&format!("SELECT count(*) FROM \"{n}\""), &[]).unwrap().get(0);
            (n, count as u64)
        })
        .collect()
}

fn convert(data: &Path, url: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "migration",
        "convert-to-multitenant",
        "--source-db",
        url,
        "--split-by",
        "crm_account.id",
        "--slug-from",
        "slug",
        "--name-from",
        "name",
        "--schema-mode",
        "keep",
        "--json",
    ];
    args.extend_from_slice(extra);
    cli(data, &args)
}

/// (slug, tenant id) of every tenant, from `tenant list --json`.
fn tenants(data: &Path) -> Vec<(String, String)> {
    let o = cli(data, &["tenant", "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    json_of(&o)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["slug"].as_str().unwrap().to_string(), t["id"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn issue19_pg_split_registers_validates_and_counts_every_row() {
    let Some(url) = pg_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let o = convert(&data, &url, &[]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let r = json_of(&o);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["registered"], 5, "one tenant per crm_account row");
    let source = &r["sources"][0];
    assert!(!source["source"].as_str().unwrap().contains(password(&url).as_deref().unwrap_or("\u{0}")));
    let pg = &source["postgres"];
    assert_eq!(pg["schema"], "public");
    let run_id = r["run_id"].as_str().unwrap();
    let v = cli(&data, &["migration", "validate", run_id]);
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
    assert!(stdout(&v).contains("5 tenants, 0 differ"), "{}", stdout(&v));
    let expected = expected_rows(&url);
    let totals = source["totals"].as_array().unwrap();
    assert_eq!(totals.len(), expected.len(), "{totals:?}");
    for (table, rows) in &expected {
        let t = totals.iter().find(|x| x["table"] == *table).unwrap_or_else(|| panic!("{table} not reported"));
        assert_eq!(t["source_rows"].as_u64(), Some(*rows), "{table}");
        assert_eq!(t["ok"], true, "{t}");
        let copied = pg["tables"].as_array().unwrap().iter().find(|x| x["name"] == *table).unwrap();
        assert_eq!(copied["rows"].as_u64(), Some(*rows), "{table}: counted in the snapshot's transaction");
    }
    assert_eq!(expected["ledger_entry"], 32);
    // The run's record keeps the URL, never the password.
    let catalog = Connection::open(data.join("catalog.db")).unwrap();
    let stored: String =
        catalog.query_row("SELECT source FROM import_runs WHERE id = ?1", [run_id], |r| r.get(0)).unwrap();
    if password(&url).is_some() {
        assert!(stored.contains(":***@"), "{stored}");
    }
    assert_no_password(&url, &data, &[&o, &v]);
}

/// Every mapped type, read back from the tenant files. `--null-tenant` puts the ledger row
/// without an account (the empty array, the empty bytea) into a tenant of its own too.
#[test]
fn issue19_pg_types_arrive_exactly_in_the_tenant_files() {
    let Some(url) = pg_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let o = convert(&data, &url, &["--null-tenant", "unassigned"]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let kinds = ["invoice", "payment", "refund", "credit-note"];
    let mut seen = 0;
    for (slug, id) in tenants(&data) {
        let db = Connection::open(data.join("tenants").join(&id).join("data.db")).unwrap();
        let ddl: String =
            db.query_row("SELECT sql FROM sqlite_master WHERE name = 'ledger_entry'", [], |r| r.get(0)).unwrap();
        assert!(ddl.contains("CHECK (\"kind\" IN ('invoice', 'payment', 'refund', 'credit-note'))"), "{ddl}");
        assert!(ddl.contains("CHECK (\"settled\" IN (0, 1))"), "{ddl}");
        assert!(ddl.contains("\"id\" INTEGER PRIMARY KEY"), "{ddl}");
        assert!(ddl.contains("REFERENCES \"crm_account\" (\"id\")"), "{ddl}");
        let rows = ledger(&db);
        seen += rows.len();
        if slug == "unassigned" {
            let r = &rows[0];
            assert_eq!(rows.len(), 1);
            assert_eq!(r["amount"], Sql::Text("-0.01".into()));
            assert_eq!(r["kind"], Sql::Text("credit-note".into()));
            assert_eq!(r["settled"], Sql::Integer(1));
            assert_eq!(r["booked_at"], Sql::Text("2025-06-01T06:30:00.000000Z".into()), "+05:30 in UTC");
            assert_eq!(r["raw"], Sql::Text("[]".into()));
            assert_eq!(r["meta"], Sql::Text("{}".into()));
            assert_eq!(r["line_counts"], Sql::Text("[]".into()), "empty array");
            assert_eq!(r["external_id"], Sql::Null);
            assert_eq!(r["attachment"], Sql::Blob(Vec::new()), "empty bytea is an empty blob, not NULL");
            continue;
        }
        let (account, name): (i64, String) =
            db.query_row("SELECT id, name FROM crm_account", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        for g in 1..=6i64 {
            let r = rows
                .iter()
                .find(|r| r["line_counts"] == Sql::Text(format!("[{g},{account},null]")))
                .unwrap_or_else(|| panic!("{slug}: no row {g}"));
            let cents = account * 100_000 + g * 3_725 - 12_000;
            assert_eq!(r["amount"], Sql::Text(format!("{}.{:02}", cents / 100, cents % 100)), "exact digits");
            assert_eq!(r["kind"], Sql::Text(kinds[((account + g) % 4) as usize].into()));
            assert_eq!(r["settled"], Sql::Integer(((account + g) % 3 == 0) as i64));
            // 2025-01-01T00:00:00Z + account days + g × 97 min 13.25 s.
            let quarter_secs = 1_735_689_600 * 4 + account * 86_400 * 4 + g * 23_333;
            let when =
                tenantd::util::rfc3339(quarter_secs / 4).replace('Z', &format!(".{:06}Z", quarter_secs % 4 * 250_000));
            assert_eq!(r["booked_at"], Sql::Text(when));
            let slug_src: String = db.query_row("SELECT slug FROM crm_account", [], |r| r.get(0)).unwrap();
            let raw = format!("{{\"n\": {g},  \"slug\": \"{slug_src}\", \"n\": \"dup\"}}");
            assert_eq!(r["raw"], Sql::Text(raw), "json as written, duplicate key and spacing kept");
            let meta = format!(
                "{{\"n\": {g}, \"ok\": {}, \"slug\": \"{slug_src}\", \"tags\": [\"x\", {g}, null]}}",
                g % 2 == 0
            );
            assert_eq!(r["meta"], Sql::Text(meta), "jsonb in PostgreSQL's text form");
            let Sql::Text(uuid) = &r["external_id"] else { panic!("uuid as text: {:?}", r["external_id"]) };
            assert!(is_uuid(uuid), "{uuid}");
            let Sql::Blob(bytes) = &r["attachment"] else { panic!("bytea as blob: {:?}", r["attachment"]) };
            assert_eq!(bytes.len(), 16, "md5 digest bytes");
            let memo = if g % 4 == 0 { Sql::Null } else { Sql::Text(format!("entry {g} für {name} ✓")) };
            assert_eq!(r["memo"], memo);
        }
        if let Some(r) = rows.iter().find(|r| r["amount"] == Sql::Text("9999999999.99".into())) {
            assert_eq!(r["booked_at"], Sql::Text("2000-01-01T07:59:59.999999Z".into()), "microseconds kept");
            assert_eq!(r["raw"], Sql::Text("null".into()), "JSON null is text, not SQL NULL");
            assert_eq!(r["meta"], Sql::Text("{\"deep\": {\"a\": [1, 2.5, \"three\", {\"b\": false}]}}".into()));
            assert_eq!(r["line_counts"], Sql::Text("[[1,2],[3,4]]".into()), "2-D array");
            assert_eq!(r["external_id"], Sql::Text("00000000-0000-0000-0000-000000000000".into()));
            assert_eq!(r["attachment"], Sql::Blob(vec![0, 255, 0]));
            assert_eq!(r["memo"], Sql::Text("tab\tnewline\nquote'".into()));
            assert_eq!(r["settled"], Sql::Integer(0));
            seen += 1000;
        }
    }
    assert_eq!(seen, 1032, "32 ledger rows, the extreme one once");
}

fn ledger(db: &Connection) -> Vec<BTreeMap<String, Sql>> {
    let mut stmt = db.prepare("SELECT * FROM ledger_entry ORDER BY id").unwrap();
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_string).collect();
    let rows = stmt
        .query_map([], |r| {
            Ok(names.iter().enumerate().map(|(i, n)| (n.clone(), r.get::<_, Sql>(i).unwrap())).collect())
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

#[test]
fn issue19_pg_analyze_shows_the_url_without_its_password() {
    let Some(url) = pg_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let config = dir.path().join("m.json");
    let o = cli(
        &data,
        &["migration", "analyze-schema", "--source-db", &url, "--json", "--emit-config", config.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let a = json_of(&o);
    let shown = a["source"].as_str().unwrap();
    assert_eq!(shown, tenantd::migration::source::redact_url(&url));
    if password(&url).is_some() {
        assert!(shown.contains(":***@"), "{shown}");
    }
    assert_eq!(a["split_by"], "crm_account.id");
    assert_eq!(a["tenants_found"], 5);
    let ledger = a["tables"].as_array().unwrap().iter().find(|t| t["name"] == "ledger_entry").unwrap();
    assert_eq!(ledger["rows"], 32);
    assert_eq!(ledger["role"], "dependent");
    let types = a["postgres"]["types"].to_string();
    assert!(types.contains("\"postgres\":\"numeric\"") && types.contains("\"postgres\":\"integer[]\""), "{types}");
    let not_copied = a["postgres"]["not_copied"].to_string();
    assert!(not_copied.contains("ledger_entry_meta") && not_copied.contains("gin"), "{not_copied}");
    let emitted = std::fs::read_to_string(&config).unwrap();
    assert!(emitted.contains(shown), "the emitted config names the source as shown: {emitted}");
    // The human report too; the temporary snapshot (in TMPDIR) is gone afterwards.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let o2 = common::cli_with_env(&data, &[("TMPDIR", &tmp)], &["migration", "analyze-schema", "--source-db", &url]);
    assert!(o2.status.success(), "{}", stderr(&o2));
    assert!(stdout(&o2).starts_with(&format!("source {shown}\n")), "{}", stdout(&o2));
    assert!(common::files_under(&tmp).is_empty(), "left in TMPDIR: {:?}", common::files_under(&tmp));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "no directory left either");
    assert_no_password(&url, dir.path(), &[&o, &o2]);
}

#[test]
fn issue19_pg_bad_connections_get_one_line_without_the_password() {
    let Some(url) = pg_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let wrong = "wrong-Pa55-not-this-one";
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cases = [
        (with_password(&url, wrong), "password authentication failed"),
        (format!("postgresql://crm:{wrong}@127.0.0.1:{closed}/crm"), "refused"),
        (
            {
                let base = with_password(&url, &password(&url).unwrap_or_default());
                format!("{}/no_such_db", base.rsplit_once('/').unwrap().0)
            },
            "does not exist",
        ),
    ];
    for (bad, needle) in &cases {
        for cmd in ["convert-to-multitenant", "analyze-schema"] {
            let mut args = vec!["migration", cmd, "--source-db", bad.as_str()];
            if cmd == "convert-to-multitenant" {
                args.extend(["--tenant-slug", "x", "--schema-mode", "keep"]);
            }
            let o = cli(&data, &args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{cmd} {needle}: {}{err}", stdout(&o));
            assert!(err.contains(needle), "{needle:?} in {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
            assert!(err.contains("127.0.0.1"), "names the host: {err}");
            assert!(!err.contains(wrong), "{err}");
            assert_no_password(&url, &data, &[&o]);
        }
    }
    let list = stdout(&cli(&data, &["tenant", "list"]));
    assert!(list.contains("0 tenants"), "nothing registered: {list}");
}

/// With --no-source-backup the PostgreSQL snapshot is deleted after the run: validate says
/// it cannot re-read the source, instead of opening the URL as a file.
#[test]
fn issue19_pg_without_a_kept_snapshot_validate_says_so() {
    let Some(url) = pg_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let o = cli(
        &data,
        &[
            "migration",
            "convert-to-multitenant",
            "--source-db",
            &url,
            "--tenant-slug",
            "crm",
            "--schema-mode",
            "keep",
            "--no-source-backup",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let r = json_of(&o);
    assert_eq!(r["registered"], 1);
    let run_id = r["run_id"].as_str().unwrap();
    let snapshot = data.join("backups").join("migrations").join(run_id).join("source-0.db");
    assert!(!snapshot.exists(), "--no-source-backup deletes the snapshot");
    let v = cli(&data, &["migration", "validate", run_id]);
    let err = stderr(&v);
    assert_eq!(v.status.code(), Some(2), "{}{err}", stdout(&v));
    assert!(err.contains("cannot re-read a PostgreSQL source"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert_no_password(&url, &data, &[&o, &v]);
}

/// Drops the test's own schema from the source database, also when the test fails.
struct DropSchema(String, String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.0, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.1));
        }
    }
}

/// `--pg-schema` reads another schema; what SQLite cannot hold exactly is carried as text or
/// NULL and reported, and what cannot be copied (views, domains' and CHECK constraints, a
/// foreign key to another schema, expression and partial indexes) is named. The schema is
/// made here, in the source database, and dropped again.
#[test]
fn issue19_pg_other_schema_reports_what_is_not_exact() {
    let Some(url) = pg_url() else { return };
    let schema = format!("tenantd_edge_{}", std::process::id());
    let _drop = DropSchema(url.clone(), schema.clone());
    let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema}; SET search_path = {schema};
         CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
         CREATE TYPE mood AS ENUM ('ok', 'it''s');
         CREATE TABLE parent (code text PRIMARY KEY, n positive, span interval, at timestamptz[], m mood,
             big numeric, f float8, d date, ts timestamp, c char(5), twice int GENERATED ALWAYS AS (n * 2) STORED,
             CHECK (n < 100));
         CREATE TABLE child (a int, b text, parent_code text REFERENCES parent (code) ON DELETE CASCADE,
             acct bigint REFERENCES public.crm_account (id), PRIMARY KEY (a, b));
         CREATE UNIQUE INDEX child_b ON child (b);
         CREATE INDEX child_partial ON child (a) WHERE a > 0;
         CREATE TABLE nokey (x int, y text);
         CREATE TABLE \"Mixed \"\"Case\"\"\" (\"Col q\" text);
         CREATE TABLE part (id int, k text) PARTITION BY LIST (k);
         CREATE TABLE part_a PARTITION OF part FOR VALUES IN ('a');
         CREATE TABLE part_b PARTITION OF part FOR VALUES IN ('b');
         CREATE VIEW v AS SELECT * FROM parent;
         INSERT INTO parent VALUES
           ('p1', 5, '1 day 2 hours', ARRAY['2025-01-01 00:00:00+02'::timestamptz], 'it''s', 'NaN', 'NaN',
            '0044-03-15 BC', 'infinity', 'ab'),
           ('p2', 7, NULL, '{{}}', 'ok', '123456789012345678901234567890.123456789', '-Infinity', '2024-02-29',
            '2024-02-29 23:59:59.5', NULL);
         INSERT INTO child VALUES (1, 'x', 'p1', NULL), (2, 'y', 'p2', NULL);
         INSERT INTO nokey VALUES (1, 'a'), (1, 'a'), (NULL, NULL);
         INSERT INTO \"Mixed \"\"Case\"\"\" VALUES ('q');
         INSERT INTO part VALUES (1, 'a'), (2, 'b'), (3, 'b');"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let args = ["migration", "convert-to-multitenant", "--source-db", &url, "--pg-schema", &schema];
    let o = cli(&data, &[&args[..], &["--tenant-slug", "edge", "--schema-mode", "keep", "--json"]].concat());
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let r = json_of(&o);
    let report = &r["sources"][0]["postgres"];
    let rows: BTreeMap<String, u64> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["rows"].as_u64().unwrap()))
        .collect();
    let want = [("Mixed \"Case\"", 1), ("child", 2), ("nokey", 3), ("parent", 2), ("part", 3)];
    assert_eq!(rows, want.iter().map(|(k, v)| (k.to_string(), *v)).collect(), "partitions read through their parent");
    let not_exact = report["not_exact"].to_string();
    for needle in ["parent.span: interval", "parent.f: 1 NaN", "parent.twice: generated"] {
        assert!(not_exact.contains(needle), "{needle:?} in {not_exact}");
    }
    let not_copied = report["not_copied"].to_string();
    for needle in ["view v", "domain positive", "parent_n_check", "public.crm_account", "child_partial"] {
        assert!(not_copied.contains(needle), "{needle:?} in {not_copied}");
    }
    let run_id = r["run_id"].as_str().unwrap();
    let v = cli(&data, &["migration", "validate", run_id]);
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
    let (_, id) = tenants(&data).into_iter().find(|(s, _)| s == "edge").unwrap();
    let db = Connection::open(data.join("tenants").join(&id).join("data.db")).unwrap();
    let parent: Vec<Vec<Sql>> = db
        .prepare("SELECT code, span, at, m, big, f, d, ts, c, twice FROM parent ORDER BY code")
        .unwrap()
        .query_map([], |r| (0..10).map(|i| r.get::<_, Sql>(i)).collect())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let t = |s: &str| Sql::Text(s.to_string());
    assert_eq!(
        parent[0],
        [
            t("p1"),
            t("P1DT2H"),
            t("[\"2024-12-31T22:00:00+00:00\"]"),
            t("it's"),
            t("NaN"),
            Sql::Null,
            t("0044-03-15 BC"),
            t("infinity"),
            t("ab"),
            Sql::Integer(10)
        ]
    );
    assert_eq!(parent[1][2], t("[]"));
    assert_eq!(parent[1][4], t("123456789012345678901234567890.123456789"), "every digit");
    assert_eq!(parent[1][5], Sql::Real(f64::NEG_INFINITY));
    assert_eq!(parent[1][6], t("2024-02-29"));
    assert_eq!(parent[1][7], t("2024-02-29T23:59:59.500000"), "no zone on a timestamp without one");
    let ddl: String = db.query_row("SELECT sql FROM sqlite_master WHERE name = 'child'", [], |r| r.get(0)).unwrap();
    assert!(ddl.contains("PRIMARY KEY (\"a\", \"b\")") && ddl.contains("ON DELETE CASCADE"), "{ddl}");
    assert!(!ddl.contains("crm_account"), "{ddl}");
    let unique: i64 =
        db.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'child_b'", [], |r| r.get(0)).unwrap();
    assert_eq!(unique, 1, "the unique index on child (b)");
    // numeric_as_real: REAL, and the report says digits may be lost.
    let o = cli(
        &data,
        &[&args[..], &["--numeric-as-real", "--tenant-slug", "edge-real", "--schema-mode", "keep"]].concat(),
    );
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("parent.big: numeric stored as REAL (numeric_as_real"), "{}", stdout(&o));
    assert!(stdout(&o).contains("parent.big: 1 NaN"), "{}", stdout(&o));
    let o = cli(&data, &["migration", "analyze-schema", "--source-db", &url, "--pg-schema", "no_such_schema"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("has no schema \"no_such_schema\""), "{}", stderr(&o));
    assert_no_password(&url, &data, &[&o]);
}

/// `--statement-timeout` becomes PostgreSQL's `statement_timeout`: a read that waits on a lock
/// past it is cancelled and reported in one line. The locked table is in a schema of its own.
#[test]
fn issue19_pg_statement_timeout_is_one_line() {
    let Some(url) = pg_url() else { return };
    let schema = format!("tenantd_lock_{}", std::process::id());
    let _drop = DropSchema(url.clone(), schema.clone());
    let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    pg.batch_execute(&format!("CREATE SCHEMA {schema}; CREATE TABLE {schema}.busy (id int PRIMARY KEY)")).unwrap();
    let mut holder = pg.transaction().unwrap();
    holder.batch_execute(&format!("LOCK TABLE {schema}.busy IN ACCESS EXCLUSIVE MODE")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let started = std::time::Instant::now();
    let o = cli(
        &data,
        &["migration", "analyze-schema", "--source-db", &url, "--pg-schema", &schema, "--statement-timeout", "1"],
    );
    let waited = started.elapsed();
    holder.rollback().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{}{err}", stdout(&o));
    assert!(err.contains("ran past the time budget (--statement-timeout)"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(waited < std::time::Duration::from_secs(10), "cancelled after about 1 s, not {waited:?}");
    assert_no_password(&url, &data, &[&o]);
}
