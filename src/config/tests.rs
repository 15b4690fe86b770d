//! Unit tests of `config::mod` (kept beside it, in their own file).

use super::*;

/// Loads `toml_text` as the config file (and `env` as the environment); an error comes as
/// its one line with the file's temporary path shown as `tenantd.toml`, as an operator who
/// keeps the file there would see it.
pub(super) fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<Loaded, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tenantd.toml");
    std::fs::write(&p, toml_text).unwrap();
    let env: Vec<(String, String)> = env.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    Config::load_with_env(&Overrides { config_file: Some(p.clone()), ..Default::default() }, &env)
        .map_err(|e| e.to_string().replace(&p.display().to_string(), "tenantd.toml"))
}

#[test]
fn defaults_validate() {
    let l = load("", &[]).unwrap();
    assert_eq!(l.config.max_open_tenants, 256);
    assert_eq!(l.config.listen, "127.0.0.1:8080");
    assert!(l.config.plans.contains_key("enterprise"));
}

#[test]
fn precedence_file_then_env() {
    let l = load("workers = 3\nmax_open_tenants = 10\n", &[("TENANTD_WORKERS", "5")]).unwrap();
    assert_eq!(l.config.workers_min, 5);
    assert_eq!(l.config.max_open_tenants, 10);
}

#[test]
fn out_of_range_names_key_value_range() {
    let e = load("workers = 0\n", &[]).err().unwrap().to_string();
    assert!(e.contains("workers") && e.contains('0') && e.contains("2..=512"), "{e}");
    let e = load("workers_min = 8\nworkers_max = 4\n", &[]).err().unwrap().to_string();
    assert!(e.contains("workers_max") && e.contains("8..=512"), "{e}");
}

#[test]
fn unknown_keys_warn() {
    let l = load("wrokers = 3\n", &[("TENANTD_NOPE", "1")]).unwrap();
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
}

#[test]
fn plan_tables_parse_and_typos_fail() {
    let l = load("[plans.gold]\nrequests_per_second = 50\nburst = 5\n[plans.pro]\nburst = 7\n", &[]).unwrap();
    assert_eq!(l.config.plans["gold"].burst, 5);
    assert_eq!(l.config.plans["pro"].burst, 7);
    assert_eq!(l.config.plans["pro"].max_users, 50, "unnamed keys keep the built-in plan's values");
    assert!(l.config.plans.contains_key("free"));
    assert!(load("[plans.gold]\nburts = 5\n", &[]).is_err());
}

#[test]
fn the_packaged_config_loads_cleanly() {
    let l = load(include_str!("../../packaging/tenantd.toml"), &[]).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(l.config.trusted_proxies, ["127.0.0.1", "::1"]);
    assert!(l.config.auth.secure_cookies);
}

#[test]
fn the_nginx_site_matches_the_packaged_config() {
    let site = include_str!("../../packaging/nginx/tenantd.conf");
    let packaged = load(include_str!("../../packaging/tenantd.toml"), &[]).unwrap().config;
    // nginx's "1m" is 1 MiB: bodies nginx lets through are ones tenantd accepts.
    assert!(site.contains("client_max_body_size 1m;"));
    assert_eq!(packaged.max_body_bytes, 1024 * 1024);
    assert!(site.contains(&format!("server {};", packaged.listen)), "the upstream is the packaged listen address");
    assert!(packaged.trusted_proxies.iter().any(|p| p == "127.0.0.1"), "nginx's X-Forwarded-For is believed");
}

#[test]
fn cache_and_query_monitor_sections_are_checked() {
    let e = load("[cache]\nquery_bytes_per_tenant = 100000\nquery_bytes_total = 50000\n", &[]).err().unwrap();
    let e = e.to_string();
    assert!(e.contains("cache.query_bytes_per_tenant") && e.contains("cache.query_bytes_total = 50000"), "{e}");
    let e = load("[query_monitor]\nstatements_per_tenant = 0\n", &[]).err().unwrap().to_string();
    assert!(e.contains("query_monitor.statements_per_tenant") && e.contains("1..=100000"), "{e}");
}

#[test]
fn bad_listen_is_refused() {
    let e = load("listen = \"nowhere\"\n", &[]).err().unwrap().to_string();
    assert!(e.contains("listen"), "{e}");
}
