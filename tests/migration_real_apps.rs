//! Issue 19: databases that Flask-AppBuilder, Django and Django on PostgreSQL wrote themselves
//! (made by scripts/real-sources.sh, which .ci/run runs first; `TENANTD_REAL_SOURCES` names its
//! directory) split into tenants by the release binary, whose users then sign in.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use std::path::PathBuf;

use common::{cli, stderr, stdout};
use rusqlite::Connection;
use serde_json::{json, Value};

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

#[test]
fn issue19_real_apps_split_and_sign_in() {
    let Ok(dir) = std::env::var("TENANTD_REAL_SOURCES") else {
        eprintln!("TENANTD_REAL_SOURCES unset: skipped here, run by .ci/run after scripts/real-sources.sh");
        return;
    };
    let dir = PathBuf::from(dir);
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    assert!(cli(&data, &["init"]).status.success());
    let mut expected: Vec<(String, String, Vec<String>)> = Vec::new();
    for db in manifest["databases"].as_array().unwrap().iter().filter(|d| d["engine"] == "sqlite") {
        let path = dir.join(db["path"].as_str().unwrap());
        let split = db["tenant"]["key"].as_str().unwrap();
        let o = cli(
            &data,
            &[
                "migration",
                "convert-to-multitenant",
                "--source-db",
                path.to_str().unwrap(),
                "--split-by",
                split,
                "--slug-from",
                "slug",
                "--name-from",
                "name",
                "--schema-mode",
                "keep",
                "--json",
            ],
        );
        assert!(o.status.success(), "{}: {}\n{}", db["name"], stdout(&o), stderr(&o));
        let r = json_of(&o);
        let v = cli(&data, &["migration", "validate", r["run_id"].as_str().unwrap()]);
        assert!(v.status.success(), "{}", stdout(&v));
        let totals = r["sources"][0]["totals"].as_array().unwrap();
        for (table, rows) in db["tables"].as_object().unwrap() {
            let t = totals.iter().find(|x| x["table"] == *table).unwrap_or_else(|| panic!("{table} not reported"));
            assert_eq!(t["source_rows"], *rows, "{table}");
            assert_eq!(t["ok"], true, "{t}");
        }
        let users_table = db["tenant"]["users"]["table"].as_str().unwrap();
        let source = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        for u in db["users"].as_array().unwrap() {
            let email: String = source
                .query_row(
                    &format!("SELECT email FROM {users_table} WHERE id = ?1"),
                    [u["id"].as_i64().unwrap()],
                    |r| r.get(0),
                )
                .unwrap();
            // "slug:role", the role the app's own membership table gives (`role`, or `is_owner`).
            let mut tenants: Vec<String> = u["tenants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let t = t.as_object().unwrap();
                    let slug = t.iter().find(|(k, _)| k.ends_with(".slug")).unwrap().1.as_str().unwrap();
                    let role = match (t.get("role"), t.get("is_owner")) {
                        (Some(r), _) => r.as_str().unwrap().to_string(),
                        (None, Some(o)) if o == true => "owner".into(),
                        _ => "member".into(),
                    };
                    format!("{slug}:{role}")
                })
                .collect();
            tenants.sort();
            let usable = u["password"].is_string() && u["is_active"] != false && !tenants.is_empty();
            expected.push((
                email,
                if usable { u["password"].as_str().unwrap().to_string() } else { String::new() },
                tenants,
            ));
        }
    }
    let (child, addr, _log) = common::spawn_serve(&data);
    let _server = common::KillOnDrop(child);
    let mut client = tenantd::http::client::Client::new(addr);
    let mut checked = 0;
    for (email, password, tenants) in &expected {
        if password.is_empty() {
            continue;
        }
        let body = json!({"email": email, "password": password}).to_string();
        let r = client
            .request("POST", "/api/v1/auth/login", &[("Content-Type", "application/json")], body.as_bytes())
            .unwrap();
        assert_eq!(r.status, 200, "{email}: {}", r.text());
        let token = format!("Bearer {}", r.json()["token"].as_str().unwrap());
        let me = client.request("GET", "/api/v1/auth/me", &[("Authorization", &token)], b"").unwrap().json();
        let mut slugs: Vec<String> = me["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| format!("{}:{}", t["slug"].as_str().unwrap(), t["role"].as_str().unwrap()))
            .collect();
        slugs.sort();
        assert_eq!(&slugs, tenants, "{email}: {me}");
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} users signed in");
}
