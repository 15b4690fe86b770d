//! The credentials `tenantd check` signs in with: a TOML file of logins, each a tenant and a
//! role with an e-mail and password (or a token), at least two tenants each with an owner, so
//! one tenant's owner can be pointed at the other tenant's routes. Every login is tried before
//! any check runs; the first that does not work is named with its tenant and role.

use std::path::Path;

use serde::Deserialize;

use super::Result;
use super::Target;

/// The file as written.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub login: Vec<Login>,
    pub platform_admin: Option<Secret>,
}

/// One tenant member to sign in as.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub tenant: String,
    pub role: String,
    pub email: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

impl Login {
    pub fn secret(&self) -> Secret {
        Secret { email: self.email.clone(), password: self.password.clone(), token: self.token.clone() }
    }
}

/// E-mail and password (a session is opened), or a token (a session token or an API key).
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub email: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

/// A login that worked.
#[derive(Debug, Clone)]
pub struct Signed {
    pub tenant: String,
    pub role: String,
    pub token: String,
    /// Set for e-mail and password logins (tokens have no address to show).
    pub email: Option<String>,
    /// A session (pages accept it as a cookie); API keys are not.
    pub session: bool,
}

/// Every login, signed in: tenants in file order, the first two probed against each other.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub logins: Vec<Signed>,
    pub platform_admin: Option<Signed>,
}

impl Credentials {
    /// The tenants, in the order the file first names them.
    pub fn tenants(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for l in &self.logins {
            if !out.contains(&l.tenant.as_str()) {
                out.push(&l.tenant);
            }
        }
        out
    }

    pub fn get(&self, tenant: &str, role: &str) -> Option<&Signed> {
        self.logins.iter().find(|l| l.tenant == tenant && l.role == role)
    }

    /// Tenant `tenant`'s owner (every tenant has one: `parse` makes sure).
    pub fn owner(&self, tenant: &str) -> Result<&Signed> {
        self.get(tenant, "owner").ok_or_else(|| format!("the credentials name no owner of {tenant}"))
    }
}

/// Reads and checks the file's shape (nothing is sent yet).
pub fn read(path: &Path) -> Result<File> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn parse(text: &str) -> Result<File> {
    let f: File = toml::from_str(text).map_err(|e| super::toml_error(text, &e))?;
    for l in &f.login {
        check_secret(&format!("login {}/{}", l.tenant, l.role), &l.secret())?;
        if l.role == "owner" && l.token.as_deref().is_some_and(|t| t.starts_with(crate::auth::KEY_PREFIX)) {
            return Err(format!(
                "login {}/owner is an API key, which never has an owner's rights: give the owner's email and password (or a session token)",
                l.tenant
            ));
        }
    }
    if let Some(p) = &f.platform_admin {
        check_secret("platform_admin", p)?;
    }
    let mut tenants: Vec<&str> = Vec::new();
    for l in &f.login {
        if !tenants.contains(&l.tenant.as_str()) {
            tenants.push(&l.tenant);
        }
        if f.login.iter().filter(|o| o.tenant == l.tenant && o.role == l.role).count() > 1 {
            return Err(format!("tenant {} role {} is given twice", l.tenant, l.role));
        }
    }
    if tenants.len() < 2 {
        return Err(format!(
            "give logins for at least two tenants (found {}): isolation is checked by pointing one tenant's credentials at the other's routes",
            tenants.len()
        ));
    }
    for t in &tenants {
        if !f.login.iter().any(|l| l.tenant == *t && l.role == "owner") {
            return Err(format!(
                "tenant {t} has no login with role = \"owner\" (needed to find its data and to probe the other tenant)"
            ));
        }
    }
    Ok(f)
}

fn check_secret(what: &str, s: &Secret) -> Result<()> {
    match (&s.email, &s.password, &s.token) {
        (Some(_), Some(_), None) | (None, None, Some(_)) => Ok(()),
        _ => Err(format!("{what}: give either email and password, or token")),
    }
}

/// Signs every login in and checks it is what the file says (a member of its tenant with its
/// role). The first failure is named; nothing else is sent after it.
pub fn sign_in(target: &Target, f: &File) -> Result<Credentials> {
    let mut logins = Vec::new();
    for l in &f.login {
        let who = format!("tenant {} role {}", l.tenant, l.role);
        let signed = open(target, &l.secret(), Some(&l.tenant)).map_err(|e| failed(&who, &e))?;
        let signed = Signed { tenant: l.tenant.clone(), role: l.role.clone(), ..signed };
        confirm(target, &signed).map_err(|e| failed(&who, &e))?;
        logins.push(signed);
    }
    let platform_admin = match &f.platform_admin {
        None => None,
        Some(p) => {
            let s = open(target, p, None).map_err(|e| failed("the platform admin", &e))?;
            let r = target
                .call("GET", "/api/v1/platform/tenants?per_page=1", Some(&s.token), None)
                .map_err(|e| failed("the platform admin", &e))?;
            if r.status != 200 {
                return Err(failed(
                    "the platform admin",
                    &format!("GET /api/v1/platform/tenants answered {}", r.status),
                ));
            }
            Some(Signed { tenant: String::new(), role: "platform_admin".into(), ..s })
        }
    };
    Ok(Credentials { logins, platform_admin })
}

fn failed(who: &str, why: &str) -> String {
    format!("the credentials of {who} do not work: {why}")
}

/// A session for an e-mail and password, or the token as given.
fn open(target: &Target, s: &Secret, tenant: Option<&str>) -> Result<Signed> {
    let blank = |token: String, email: Option<String>, session: bool| Signed {
        tenant: String::new(),
        role: String::new(),
        token,
        email,
        session,
    };
    if let Some(t) = &s.token {
        // API keys start with the key prefix; anything else is a session token.
        return Ok(blank(t.clone(), None, !t.starts_with(crate::auth::KEY_PREFIX)));
    }
    let (email, password) = (s.email.clone().unwrap_or_default(), s.password.clone().unwrap_or_default());
    let path = match tenant {
        Some(slug) => format!("/api/v1/t/{slug}/auth/login"),
        None => "/api/v1/auth/login".into(),
    };
    let body = serde_json::json!({"email": email, "password": password});
    let r = target.call("POST", &path, None, Some(&body))?;
    if r.status != 200 {
        return Err(format!("sign-in as {email} answered {}: {}", r.status, super::error_message(&r)));
    }
    match r.json()["token"].as_str() {
        Some(t) => Ok(blank(t.to_string(), Some(email), true)),
        None => Err(format!("sign-in as {email} returned no token (is {} a tenantd server?)", target.base)),
    }
}

/// The login can use its tenant (`openapi.json` needs any standing) and, for sessions, has the
/// role the file names.
fn confirm(target: &Target, s: &Signed) -> Result<()> {
    let path = format!("/api/v1/t/{}/openapi.json", s.tenant);
    let r = target.call("GET", &path, Some(&s.token), None)?;
    if r.status != 200 {
        return Err(format!("GET {path} answered {}: {}", r.status, super::error_message(&r)));
    }
    if !s.session {
        return Ok(());
    }
    let me = target.call("GET", "/api/v1/auth/me", Some(&s.token), None)?;
    let json = me.json();
    let role = json["tenants"].as_array().and_then(|ts| ts.iter().find(|t| t["slug"] == s.tenant.as_str()));
    match role.and_then(|t| t["role"].as_str()) {
        Some(r) if r == s.role => Ok(()),
        Some(r) => Err(format!("the user's role in {} is {r}, not {}", s.tenant, s.role)),
        // Platform admins reach every tenant without a membership.
        None if json["user"]["is_platform_admin"] == true => Ok(()),
        None => Err(format!("the user is not a member of {}", s.tenant)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
[[login]]
tenant = "acme"
role = "owner"
email = "o@acme.example"
password = "pw"

[[login]]
tenant = "globex"
role = "owner"
token = "a-session-token"
"#;

    #[test]
    fn two_tenants_with_owners_parse() {
        let f = parse(TWO).unwrap();
        assert_eq!(f.login.len(), 2);
        assert!(f.platform_admin.is_none());
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let one = "[[login]]\ntenant = \"acme\"\nrole = \"owner\"\ntoken = \"t\"\n";
        assert!(parse(one).unwrap_err().contains("at least two tenants"));
        let no_owner = TWO.replace("role = \"owner\"\ntoken", "role = \"viewer\"\ntoken");
        assert!(parse(&no_owner).unwrap_err().contains("globex has no login with role = \"owner\""));
        let key = TWO.replace("a-session-token", "tdk_x");
        assert!(parse(&key).is_err_and(|e| e.contains("globex/owner is an API key")));
        let both = TWO.replace("token = \"a-session-token\"", "token = \"a-session-token\"\nemail = \"a@b\"");
        assert!(parse(&both).unwrap_err().contains("either email and password, or token"));
        let unknown = TWO.replace("role = \"owner\"\nemail", "role = \"owner\"\nemial = \"x\"\nemail");
        let e = parse(&unknown).unwrap_err();
        assert!(e.contains("line"), "{e}");
    }
}
