//! The route walker: every tenant route of the route table as a concrete request against one
//! tenant, with a body that would succeed if authorization let it through. `tenantd check` and
//! the project's own isolation suite (tests/isolation.rs) walk the same table with it, so a new
//! route is probed by both without editing either; a new `{param}` needs a value in `Values`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::http::router::{Access, Router, Scope};

/// One route to probe: its method, pattern (below the tenant root) and what it needs.
#[derive(Clone, Debug)]
pub struct Route {
    pub method: &'static str,
    pub scope: Scope,
    pub pattern: &'static str,
    pub access: Access,
}

impl Route {
    /// `GET /api/v1/t/{slug}/members`: the name a check report uses.
    pub fn label(&self) -> String {
        let root = if self.scope == Scope::TenantUi { "/admin/t/{slug}" } else { "/api/v1/t/{slug}" };
        format!("{} {root}{}", self.method, self.pattern.trim_end_matches('/'))
    }

    /// The concrete path for tenant `slug`, with `values` for the pattern's parameters.
    pub fn path(&self, slug: &str, values: &Values) -> Result<String, String> {
        let rest = fill(self.pattern, values)?;
        let rest = rest.trim_end_matches('/');
        Ok(match self.scope {
            Scope::TenantUi => format!("/admin/t/{slug}{rest}"),
            _ => format!("/api/v1/t/{slug}{rest}"),
        })
    }

    /// A route that only reads (safe to send with credentials that may use it).
    pub fn reads(&self) -> bool {
        self.method == "GET" || self.method == "HEAD"
    }
}

/// The routes of `scope` (`Tenant`: the JSON API; `TenantUi`: the admin pages) in table order.
pub fn routes(router: &Router, scope: Scope) -> Vec<Route> {
    router
        .routes()
        .iter()
        .filter(|r| r.scope == scope)
        .map(|r| Route { method: r.method.as_str(), scope: r.scope, pattern: r.pattern, access: r.access })
        .collect()
}

/// Values for the `{param}`s of the patterns (`table` → `customers`, `id` → `17`, …), and the
/// facts the request bodies need.
#[derive(Clone, Debug, Default)]
pub struct Values {
    pub params: BTreeMap<String, String>,
    /// An e-mail address of an existing user (bodies that add a member name it).
    pub member_email: String,
    /// Credentials a tenant sign-in body sends.
    pub login_email: String,
    pub login_password: String,
    /// A plan the tenant is on (a plan change to it changes nothing when allowed).
    pub plan: String,
    /// An index the tenant's query monitor advises, if any.
    pub advice: Option<String>,
    /// The slug a restore-into-a-new-tenant body names (API, then pages).
    pub fork_slugs: (String, String),
}

impl Values {
    pub fn set(&mut self, param: &str, value: impl Into<String>) -> &mut Values {
        self.params.insert(param.to_string(), value.into());
        self
    }
}

/// `pattern` with every `{param}` replaced; an error names a parameter without a value.
pub fn fill(pattern: &str, values: &Values) -> Result<String, String> {
    pattern
        .split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                values.params.get(name).cloned().ok_or_else(|| format!("no value for {{{name}}} in {pattern}"))
            }
            None => Ok(seg.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|segs| segs.join("/"))
}

/// The JSON body of an API route: one that would succeed if authorization let it through, so a
/// refusal can only come from authorization. `None` for methods without a body.
pub fn api_body(method: &str, pattern: &str, v: &Values) -> Option<Value> {
    Some(match (method, pattern) {
        ("GET" | "DELETE" | "HEAD", _) => return None,
        ("POST", "/members") => json!({"email": v.member_email, "role": "owner"}),
        ("POST", "/api-keys") => json!({"name": "stolen", "scope": "admin"}),
        ("PUT", "/roles/{role}") => json!({"permissions": ["can_read:*"]}),
        ("PATCH", "/settings") => json!({"display_name": "Hacked"}),
        ("PATCH", "/members/{user_id}") => json!({"role": "owner"}),
        ("POST", "/{table}") => json!({"name": "Injected"}),
        ("PATCH", "/{table}/{id}") => json!({"name": "Hacked"}),
        ("POST", "/index-advice/apply") => json!({"index": v.advice.clone().unwrap_or_default()}),
        ("POST", "/billing") => json!({"action": "change_plan", "plan": v.plan}),
        ("POST", "/backups/restore") => json!({"id": "latest", "as": v.fork_slugs.0}),
        ("POST", "/auth/login") => json!({"email": v.login_email, "password": v.login_password}),
        _ => json!({}),
    })
}

/// The form body of a page route (after the CSRF token), like `api_body`.
pub fn form_body(pattern: &str, csrf: &str, v: &Values) -> String {
    let rest = match pattern {
        "/members" => format!("email={}&role=owner", v.member_email.replace('@', "%40")),
        "/members/{user_id}/role" => "role=owner".into(),
        "/api-keys" => "name=stolen&scope=admin".into(),
        "/settings" => "display_name=Hacked".into(),
        "/data/{table}" | "/data/{table}/{id}" => "name=Hacked".into(),
        "/roles" => "name=auditor2&permissions=can_read%3A%2A".into(),
        "/queries/apply" => format!("index={}", v.advice.clone().unwrap_or_default()),
        "/billing" => format!("action=change_plan&plan={}", v.plan),
        "/backups" => format!("action=fork&id=latest&as={}", v.fork_slugs.1),
        _ => String::new(),
    };
    format!("_csrf={csrf}&{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_names_the_missing_parameter() {
        let mut v = Values::default();
        v.set("table", "customers").set("id", "7");
        assert_eq!(fill("/{table}/{id}", &v).as_deref(), Ok("/customers/7"));
        assert_eq!(fill("/", &v).as_deref(), Ok("/"));
        let e = fill("/members/{user_id}", &v).unwrap_err();
        assert!(e.contains("{user_id}"), "{e}");
    }

    #[test]
    fn every_parameter_of_the_route_table_is_known_to_check() {
        // `tenantd check` discovers these values; a new parameter must be discovered too.
        let known = ["table", "id", "user_id", "key_id", "role", "number", "sha256"];
        // Global routes add the tenant, a cluster step, a lifecycle action (check::builtin::global)
        // and a CDN edge's path (public: not walked).
        let global = ["slug", "step", "action", "number", "edge", "tenant_id", "sha256", "file"];
        for r in crate::api::router().routes().iter().filter(|r| r.scope == Scope::Global) {
            for seg in r.pattern.split('/') {
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    assert!(
                        global.contains(&name),
                        "{} {}: check does not know {{{name}}}",
                        r.method.as_str(),
                        r.pattern
                    );
                }
            }
        }
        for scope in [Scope::Tenant, Scope::TenantUi] {
            for r in routes(&crate::api::router(), scope) {
                for seg in r.pattern.split('/') {
                    if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        assert!(known.contains(&name), "{}: check does not know {{{name}}}", r.label());
                    }
                }
            }
        }
    }

    #[test]
    fn labels_and_paths() {
        let rs = routes(&crate::api::router(), Scope::Tenant);
        let list = rs.iter().find(|r| r.pattern == "/members" && r.method == "GET").map(Route::label);
        assert_eq!(list.as_deref(), Some("GET /api/v1/t/{slug}/members"));
        let root = rs.iter().find(|r| r.pattern == "/").map(|r| r.path("acme", &Values::default()));
        assert_eq!(root, Some(Ok("/api/v1/t/acme".to_string())));
    }
}
