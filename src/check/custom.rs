//! The operator's own checks (`tenantd check --checks FILE`): a TOML file of `[[check]]`
//! tables, each one request made as a role of each tenant, with the status and JSON fields the
//! answer must have. The whole file is read and checked before anything is sent; an unknown
//! field or a bad expectation is an error naming its line.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::creds::Credentials;
use super::{error_message, line_of, toml_error, Outcome, Result, Run, Target};

pub const EXAMPLE: &str = include_str!("../../assets/new/checks.toml");

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    check: Vec<toml::Spanned<Check>>,
}

/// One declared check.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    #[serde(default = "get")]
    pub method: String,
    /// `{tenant}` stands for the tenant's slug.
    pub path: String,
    pub body: Option<toml::Value>,
    /// A role of the credentials file, `anonymous` or `platform_admin`.
    #[serde(rename = "as")]
    pub as_role: String,
    /// Default: every tenant of the credentials file that has the role.
    pub tenants: Option<Vec<String>>,
    /// `own` (default): `{tenant}` is the login's tenant; `other`: the next tenant of the file.
    #[serde(default = "own")]
    pub target: String,
    pub status: u16,
    /// Dotted paths into the JSON answer (`items.0.name`) and the values they must have.
    #[serde(default)]
    pub json: BTreeMap<String, toml::Value>,
    /// Dotted paths that must exist in the JSON answer.
    #[serde(default)]
    pub present: Vec<String>,
    /// Filled in by `parse`: the line of the `[[check]]` header.
    #[serde(skip)]
    pub line: usize,
}

fn get() -> String {
    "GET".into()
}

fn own() -> String {
    "own".into()
}

/// Reads `text` and checks every expectation; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Check>> {
    let f: File = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let mut out = Vec::new();
    for spanned in f.check {
        let line = line_of(text, spanned.span().start);
        let mut c = spanned.into_inner();
        c.line = line;
        let bad = |why: String| Err(format!("line {line}: check {:?}: {why}", c.name));
        c.method = c.method.to_ascii_uppercase();
        if !matches!(c.method.as_str(), "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE") {
            return bad(format!("method {:?} is not one of GET, HEAD, POST, PUT, PATCH, DELETE", c.method));
        }
        if !c.path.starts_with('/') || c.path.contains(char::is_whitespace) {
            return bad(format!("path {:?} must start with / and hold no spaces", c.path));
        }
        if !(100..=599).contains(&c.status) {
            return bad(format!("status {} is not an HTTP status (100-599)", c.status));
        }
        if !matches!(c.target.as_str(), "own" | "other") {
            return bad(format!("target {:?} must be \"own\" or \"other\"", c.target));
        }
        if c.name.trim().is_empty() {
            return Err(format!("line {line}: a check needs a name"));
        }
        for p in c.json.keys().chain(c.present.iter()) {
            if p.is_empty() || p.split('.').any(str::is_empty) {
                return bad(format!("{p:?} is not a dotted path like items.0.name"));
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// Checks the roles and tenants the file names against the credentials (before anything is sent).
pub fn resolve(checks: &[Check], creds: &Credentials) -> Result<()> {
    let tenants = creds.tenants();
    for c in checks {
        let bad = |why: String| Err(format!("line {}: check {:?}: {why}", c.line, c.name));
        if matches!(c.as_role.as_str(), "anonymous" | "platform_admin") {
            if c.as_role == "platform_admin" && creds.platform_admin.is_none() {
                return bad("as = \"platform_admin\" but the credentials have no [platform_admin]".into());
            }
        } else if !creds.logins.iter().any(|l| l.role == c.as_role) {
            return bad(format!(
                "as = {:?} is no role of the credentials file (nor anonymous or platform_admin)",
                c.as_role
            ));
        }
        for t in c.tenants.iter().flatten() {
            if !tenants.contains(&t.as_str()) {
                return bad(format!("tenant {t:?} is not in the credentials file ({})", tenants.join(", ")));
            }
        }
    }
    Ok(())
}

/// Runs every check for each of its tenants.
pub fn run(run: &mut Run, t: &Target, creds: &Credentials, checks: &[Check]) {
    let all = creds.tenants();
    for c in checks {
        let tenants: Vec<&str> = match &c.tenants {
            Some(list) => list.iter().map(String::as_str).collect(),
            None if matches!(c.as_role.as_str(), "anonymous" | "platform_admin") => all.clone(),
            None => all.iter().copied().filter(|t| creds.get(t, &c.as_role).is_some()).collect(),
        };
        for tenant in tenants {
            let pos = all.iter().position(|x| *x == tenant).unwrap_or(0);
            let slug = if c.target == "other" { all[(pos + 1) % all.len()] } else { tenant };
            let token = match c.as_role.as_str() {
                "anonymous" => None,
                "platform_admin" => creds.platform_admin.as_ref().map(|p| p.token.as_str()),
                role => creds.get(tenant, role).map(|l| l.token.as_str()),
            };
            let name = format!("{} (line {}) as {tenant}'s {}", c.name, c.line, c.as_role);
            if token.is_none() && c.as_role != "anonymous" {
                run.record_skip("custom", &name, &format!("{tenant} has no {} login", c.as_role));
                continue;
            }
            let path = c.path.replace("{tenant}", slug);
            run.check("custom", &name, || one(t, c, &path, token));
        }
    }
}

fn one(t: &Target, c: &Check, path: &str, token: Option<&str>) -> Result<Outcome> {
    let body = c.body.as_ref().map(|b| serde_json::to_value(b).map_err(|e| e.to_string())).transpose()?;
    let r = t.call(&c.method, path, token, body.as_ref())?;
    let mut wrong = Vec::new();
    if r.status != c.status {
        wrong.push(format!("status {} (expected {}): {}", r.status, c.status, error_message(&r)));
    }
    let json = r.json();
    for (p, want) in &c.json {
        let want = serde_json::to_value(want).map_err(|e| e.to_string())?;
        match lookup(&json, p) {
            Some(got) if *got == want => {}
            got => {
                wrong.push(format!("{p} is {} (expected {want})", got.map_or("missing".to_string(), Value::to_string)))
            }
        }
    }
    for p in &c.present {
        if lookup(&json, p).is_none() {
            wrong.push(format!("{p} is missing"));
        }
    }
    Ok(if wrong.is_empty() {
        Outcome::Passed
    } else {
        Outcome::Failed(format!("{} {path}: {}", c.method, wrong.join("; ")))
    })
}

/// `items.0.name` in a JSON value: object keys and array indexes.
pub fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |cur, seg| match cur {
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        Value::Object(o) => o.get(seg),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses() {
        let checks = parse(EXAMPLE).unwrap();
        assert!(checks.len() >= 3, "{checks:?}");
        assert!(checks.iter().all(|c| c.line > 0));
    }

    #[test]
    fn errors_name_the_line() {
        let unknown = "[[check]]\nname = \"a\"\npath = \"/x\"\nas = \"owner\"\nstatus = 200\nexpect = 3\n";
        let e = parse(unknown).unwrap_err();
        assert!(e.starts_with("line 6:") && e.contains("unknown field `expect`"), "{e}");
        let bad_status = "\n\n[[check]]\nname = \"a\"\npath = \"/x\"\nas = \"owner\"\nstatus = 999\n";
        let e = parse(bad_status).unwrap_err();
        assert!(e.starts_with("line 3:") && e.contains("999"), "{e}");
        let bad_path =
            "[[check]]\nname = \"a\"\npath = \"/x\"\nas = \"owner\"\nstatus = 200\njson = { \"items..x\" = 1 }\n";
        assert!(parse(bad_path).unwrap_err().contains("dotted path"));
        let no_status = "[[check]]\nname = \"a\"\npath = \"/x\"\nas = \"owner\"\n";
        assert!(parse(no_status).unwrap_err().contains("status"));
    }

    #[test]
    fn dotted_paths() {
        let v = serde_json::json!({"items": [{"name": "a"}], "total": 1});
        assert_eq!(lookup(&v, "items.0.name"), Some(&Value::from("a")));
        assert_eq!(lookup(&v, "total"), Some(&Value::from(1)));
        assert_eq!(lookup(&v, "items.1.name"), None);
        assert_eq!(lookup(&v, "total.x"), None);
    }
}
