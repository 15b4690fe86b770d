//! Config errors as an operator sees them: the real binary, one line on stderr naming where the
//! bad value was set, and exit code 2 (issue 18 item 5).
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use std::process::{Command, Output};

/// `tenantd init` in a fresh directory holding `tenantd.toml` (found there, since no `--config`
/// is given), with `env` set. `init` rather than `serve`: if the config were accepted by
/// mistake, the test ends instead of serving.
fn init_with(config: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tenantd.toml"), config).unwrap();
    let mut cmd = Command::new(common::bin());
    cmd.args(["--data-dir", "data", "init"]).current_dir(dir.path()).env("TENANTD_LOG", "quiet");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TENANTD_") && k != "TENANTD_LOG") {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn issue18_bad_config_value_names_file_line_key_and_exits_2() {
    let o = init_with("listen = \"127.0.0.1:0\"\nmax_open_tenants = -5\n", &[]);
    assert_eq!(
        common::stderr(&o),
        "tenantd: tenantd.toml line 2: max_open_tenants = -5: expected a whole number in 1..=1000000\n"
    );
    assert_eq!(o.status.code(), Some(2));

    let o = init_with("[limits]\nenabled = 3\n", &[]);
    assert_eq!(common::stderr(&o), "tenantd: tenantd.toml line 2: limits.enabled = 3: expected true or false\n");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn issue18_bad_env_var_is_named_and_exits_2() {
    let o = init_with("", &[("TENANTD_MAX_OPEN_TENANTS", "-5")]);
    assert_eq!(common::stderr(&o), "tenantd: TENANTD_MAX_OPEN_TENANTS=-5: expected a whole number in 1..=1000000\n");
    assert_eq!(o.status.code(), Some(2));
}
