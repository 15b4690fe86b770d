//! The built-in checks over HTTP: every tenant route refused to the other tenant's
//! credentials, to none and to lower roles; the same reads allowed to the tenant's own owner (so
//! the walk cannot pass by refusing everything); writes audited and the chain linked; limit and
//! security headers on the answers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::creds::{Credentials, Signed};
use super::walk::{self, Route, Values};
use super::{error_message, expect, Outcome, Result, Run, Target};
use crate::auth::perms::{self, PermSet, Resource};
use crate::http::router::{Access, Need, Scope};

/// What `discover` learned about one tenant: values for the walk, the parameters it had to
/// guess (no such row yet), and strings of its data that must never reach anyone else.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub slug: String,
    pub values: Values,
    pub guessed: BTreeSet<String>,
    pub secrets: Vec<String>,
}

/// Finds a value for every route parameter in `slug`'s data, as its owner.
pub fn discover(t: &Target, owner: &Signed, member_email: &str, table: Option<&str>) -> Result<Tenant> {
    let slug = owner.tenant.clone();
    let get = |rest: &str| -> Result<Value> {
        let path = format!("/api/v1/t/{slug}{rest}");
        let r = t.call("GET", &path, Some(&owner.token), None)?;
        if r.status != 200 {
            return Err(format!("GET {path} as {slug}'s owner answered {}: {}", r.status, error_message(&r)));
        }
        Ok(r.json())
    };
    // What the owner may not see (an API key's scope leaves out billing, say) is guessed: the
    // refusals are checked all the same, the owner's control reads of those routes are not.
    let seen = |rest: &str| get(rest).unwrap_or(Value::Null);
    let mut v = Values { member_email: member_email.to_string(), ..Values::default() };
    let mut guessed = BTreeSet::new();
    let mut secrets = Vec::new();
    let mut put = |v: &mut Values, param: &str, found: Option<String>, guess: &str| match found {
        Some(x) => {
            v.set(param, x);
        }
        None => {
            v.set(param, guess);
            guessed.insert(param.to_string());
        }
    };
    let tables = tables_of(&get("/openapi.json")?);
    let table = match table {
        Some(want) if tables.iter().any(|t| t == want) => want.to_string(),
        Some(want) => {
            return Err(format!("{slug} has no table {want:?} in its data API (it has {})", tables.join(", ")))
        }
        None => tables.first().cloned().ok_or_else(|| format!("{slug}'s data API has no tables"))?,
    };
    let rows = get(&format!("/{table}?per_page=1"))?;
    let row = &rows["items"][0];
    secrets.extend(
        row.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(_, x)| x.as_str())
            .filter(|s| s.len() >= 8)
            .map(str::to_string),
    );
    put(&mut v, "id", row["id"].as_i64().map(|i| i.to_string()), "1");
    v.set("table", table);
    let name = seen("/settings")["display_name"].as_str().unwrap_or_default().to_string();
    if name.len() >= 6 {
        secrets.push(name);
    }
    let members = seen("/members");
    let other_member = members["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| owner.email.as_deref().is_none_or(|e| m["email"].as_str() != Some(e)));
    put(
        &mut v,
        "user_id",
        other_member.and_then(|m| m["user_id"].as_i64().or(m["id"].as_i64())).map(|i| i.to_string()),
        "0",
    );
    put(&mut v, "key_id", seen("/api-keys")["items"][0]["id"].as_str().map(str::to_string), "tdk-none");
    let roles = seen("/roles");
    let custom = roles["items"].as_array().into_iter().flatten().find(|r| r["builtin"] == false);
    v.set("role", custom.and_then(|r| r["name"].as_str()).unwrap_or("viewer"));
    let billing = seen("/billing");
    v.plan = billing["plan"].as_str().unwrap_or("free").to_string();
    put(&mut v, "number", billing["invoices"][0]["number"].as_str().map(str::to_string), "INV-NONE");
    put(&mut v, "sha256", seen("/assets")["items"][0]["sha256"].as_str().map(str::to_string), &"0".repeat(64));
    v.advice = seen("/index-advice")["items"][0]["index"].as_str().map(str::to_string);
    let tag = crate::util::random_hex(4);
    v.fork_slugs = (format!("check-fork-{tag}"), format!("check-page-fork-{tag}"));
    Ok(Tenant { slug, values: v, guessed, secrets })
}

/// The tables of a tenant's data API, by name, from its OpenAPI document.
fn tables_of(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(path, item)| !path.ends_with("{id}") && item.get("post").is_some())
        .filter_map(|(path, _)| path.rsplit('/').next().map(str::to_string))
        .collect();
    out.sort();
    out
}

/// The walk with the other tenant's credentials: `prober`'s logins (its owner, any API key, the
/// platform admin) on every route of `probed`, by path and by `X-Tenant`; then without
/// credentials.
pub fn isolation(
    run: &mut Run,
    t: &Target,
    creds: &Credentials,
    prober: &str,
    probed: &Tenant,
    only: &dyn Fn(&Route) -> bool,
) -> Result<()> {
    let mut who: Vec<(String, &Signed)> =
        creds.logins.iter().filter(|l| l.tenant == prober).map(|l| (format!("{prober}'s {}", l.role), l)).collect();
    if let Some(p) = &creds.platform_admin {
        who.push(("a platform admin".into(), p));
    }
    let router = crate::api::router();
    for route in walk::routes(&router, Scope::Tenant) {
        if route.access == Access::TenantPublic || !only(&route) {
            continue; // public by design: name and branding only
        }
        let path = route.path(&probed.slug, &probed.values)?;
        let body = walk::api_body(route.method, route.pattern, &probed.values);
        for (name, login) in &who {
            run.check("isolation", &format!("{} of {} as {name}", route.label(), probed.slug), || {
                let r = t.call(route.method, &path, Some(&login.token), body.as_ref())?;
                if let Some(o) = refused(&r, 404, probed) {
                    return Ok(o.prefixed(&format!("{} {path}", route.method)));
                }
                let rest = path.strip_prefix(&format!("/api/v1/t/{}", probed.slug)).unwrap_or("/");
                let by_header = format!("/api/v1{}", if rest.is_empty() { "/" } else { rest });
                let auth = format!("Bearer {}", login.token);
                let bytes = body.as_ref().map(Value::to_string).unwrap_or_default();
                let mut headers = vec![("Authorization", auth.as_str()), ("X-Tenant", probed.slug.as_str())];
                if body.is_some() {
                    headers.push(("Content-Type", "application/json"));
                }
                let r = t.request(route.method, &by_header, &headers, bytes.as_bytes())?;
                Ok(refused(&r, 404, probed)
                    .map_or(Outcome::Passed, |o| o.prefixed(&format!("{} {by_header} (X-Tenant)", route.method))))
            });
        }
        run.check("anonymous", &format!("{} of {}", route.label(), probed.slug), || {
            let r = t.call(route.method, &path, None, body.as_ref())?;
            Ok(refused(&r, 401, probed).map_or(Outcome::Passed, |o| o.prefixed(&format!("{} {path}", route.method))))
        });
    }
    Ok(())
}

/// `Some(failure)` unless `r` is `status` with none of the tenant's data in it.
fn refused(r: &crate::http::client::Response, status: u16, probed: &Tenant) -> Option<Outcome> {
    if r.status != status {
        return Some(Outcome::Failed(format!("answered {} instead of {status}: {}", r.status, error_message(r))));
    }
    let text = r.text();
    probed
        .secrets
        .iter()
        .find(|s| text.contains(s.as_str()))
        .map(|s| Outcome::Failed(format!("the answer contains {:?}, from the tenant's data", s)))
}

impl Outcome {
    fn prefixed(self, what: &str) -> Outcome {
        match self {
            Outcome::Failed(m) => Outcome::Failed(format!("{what}: {m}")),
            o => o,
        }
    }
}

/// The admin pages with the other tenant's session: 404 (with the prober's own CSRF token, so
/// only the tenant can refuse); without a session, a redirect to sign-in.
pub fn pages(run: &mut Run, t: &Target, creds: &Credentials, prober: &str, probed: &Tenant) -> Result<()> {
    let owner = creds.owner(prober)?;
    let router = crate::api::router();
    let routes = walk::routes(&router, Scope::TenantUi);
    if !owner.session {
        for route in &routes {
            run.record_skip(
                "pages",
                &format!("{} of {}", route.label(), probed.slug),
                &format!("{prober}'s owner signs in with an API key, which pages do not take"),
            );
        }
        return Ok(());
    }
    let cookie = format!("tenantd_session={}", owner.token);
    let csrf = csrf_of(t, &cookie)?;
    for route in &routes {
        let path = route.path(&probed.slug, &probed.values)?;
        let form = walk::form_body(route.pattern, &csrf, &probed.values);
        run.check("pages", &format!("{} of {} as {prober}'s owner", route.label(), probed.slug), || {
            let r = page(t, route.method, &path, Some(&cookie), &form)?;
            Ok(refused(&r, 404, probed).map_or(Outcome::Passed, |o| o.prefixed(&format!("{} {path}", route.method))))
        });
        run.check("pages", &format!("{} of {} without a session", route.label(), probed.slug), || {
            let r = page(t, route.method, &path, None, &walk::form_body(route.pattern, "", &probed.values))?;
            let to_login = r.header("location").is_some_and(|l| l.starts_with("/admin/login"));
            Ok(expect(r.status == 303 && to_login, || {
                format!(
                    "{} {path} answered {} (location {:?}) instead of 303 to /admin/login",
                    route.method,
                    r.status,
                    r.header("location")
                )
            }))
        });
    }
    Ok(())
}

fn page(
    t: &Target,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: &str,
) -> Result<crate::http::client::Response> {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    let body = if method == "POST" {
        headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        form.as_bytes()
    } else {
        b""
    };
    t.request(method, path, &headers, body)
}

/// The CSRF token of a session, from the hidden field of a page it sees.
fn csrf_of(t: &Target, cookie: &str) -> Result<String> {
    let r = t.request("GET", "/admin", &[("Cookie", cookie)], b"")?;
    let html = r.text();
    let marker = "name=\"_csrf\" value=\"";
    html.split(marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
        .ok_or_else(|| format!("GET /admin answered {} without a CSRF token in its forms", r.status))
}

/// Lower roles: each non-owner login on its own tenant. Routes its role does not grant answer
/// 403; the reads it does grant answer 2xx (writes it may do are not sent).
pub fn roles(run: &mut Run, t: &Target, creds: &Credentials, tenants: &BTreeMap<String, Tenant>) -> Result<()> {
    let router = crate::api::router();
    let routes = walk::routes(&router, Scope::Tenant);
    for login in creds.logins.iter().filter(|l| l.role != "owner") {
        let Some(own) = tenants.get(&login.tenant) else { continue };
        let granted = permissions(t, creds, login)?;
        for route in &routes {
            let Access::Tenant(need) = route.access else { continue };
            let allowed = match need {
                Need::Member => true,
                Need::Area(area, action) => granted.allows(action, Resource::Area(area)),
                Need::Table(action) => {
                    let table = own.values.params.get("table").map(String::as_str).unwrap_or_default();
                    granted.allows(action, Resource::Table(table))
                }
            };
            let name = format!("{} as {}'s {}", route.label(), login.tenant, login.role);
            if allowed && !(route.reads() && uses_only_found(route, own)) {
                continue;
            }
            let path = route.path(&own.slug, &own.values)?;
            let body = walk::api_body(route.method, route.pattern, &own.values);
            run.check("roles", &name, || {
                let r = t.call(route.method, &path, Some(&login.token), body.as_ref())?;
                Ok(if allowed {
                    expect(r.status < 300, || {
                        format!(
                            "{} {path} answered {} to a role that may read it: {}",
                            route.method,
                            r.status,
                            error_message(&r)
                        )
                    })
                } else {
                    expect(r.status == 403, || {
                        format!("{} {path} answered {} instead of 403: {}", route.method, r.status, error_message(&r))
                    })
                })
            });
        }
    }
    Ok(())
}

/// A route whose parameters all name things that exist in the tenant.
fn uses_only_found(route: &Route, t: &Tenant) -> bool {
    !t.guessed.iter().any(|p| route.pattern.contains(&format!("{{{p}}}")))
}

/// What a login may do: its role's permissions (custom roles from the tenant's role list), or
/// an API key's scope (`role` then names the scope: read, write or admin).
fn permissions(t: &Target, creds: &Credentials, login: &Signed) -> Result<PermSet> {
    if !login.session {
        return perms::for_scope(&login.role).ok_or_else(|| {
            format!(
                "{}: an API key's role must name its scope (read, write or admin), not {:?}",
                login.tenant, login.role
            )
        });
    }
    if let Some(p) = perms::builtin(&login.role) {
        return Ok(p);
    }
    let owner = creds.owner(&login.tenant)?;
    let r = t.call("GET", &format!("/api/v1/t/{}/roles", login.tenant), Some(&owner.token), None)?;
    let roles = r.json();
    let role = roles["items"].as_array().into_iter().flatten().find(|x| x["name"] == login.role.as_str());
    let list: Vec<String> = role.ok_or_else(|| format!("{} has no role {:?}", login.tenant, login.role))?
        ["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    PermSet::from_strings(&list).map_err(|e| e.to_string())
}

/// The tenant's own owner on every read of the walk: the answers are 2xx, so the refusals
/// above come from isolation, not from routes that refuse everyone.
pub fn control(run: &mut Run, t: &Target, creds: &Credentials, own: &Tenant) -> Result<()> {
    let owner = creds.owner(&own.slug)?;
    let router = crate::api::router();
    for route in walk::routes(&router, Scope::Tenant) {
        // Public routes may answer 404 by design (no logo uploaded).
        if !route.reads() || !uses_only_found(&route, own) || route.access == Access::TenantPublic {
            continue;
        }
        let path = route.path(&own.slug, &own.values)?;
        run.check("control", &format!("{} as {}'s owner", route.label(), own.slug), || {
            let r = t.call(route.method, &path, Some(&owner.token), None)?;
            Ok(expect(r.status < 300, || format!("GET {path} answered {}: {}", r.status, error_message(&r))))
        });
    }
    Ok(())
}

/// A write (an API key made and revoked) leaves audit entries carrying the request's id, and
/// the newest entries link into one chain.
pub fn audit(run: &mut Run, t: &Target, creds: &Credentials, slug: &str) -> Result<()> {
    let owner = creds.owner(slug)?;
    let base = format!("/api/v1/t/{slug}");
    run.check("audit", &format!("a write in {slug} leaves an audit entry with its request id"), || {
        let body = serde_json::json!({"name": "tenantd check", "scope": "read"});
        let made = t.call("POST", &format!("{base}/api-keys"), Some(&owner.token), Some(&body))?;
        if made.status != 201 {
            return Ok(Outcome::Failed(format!(
                "POST {base}/api-keys answered {}: {}",
                made.status,
                error_message(&made)
            )));
        }
        let id = made.json()["id"].as_str().unwrap_or_default().to_string();
        let revoked = t.call("DELETE", &format!("{base}/api-keys/{id}"), Some(&owner.token), None)?;
        let mut missing = Vec::new();
        let log = t.call("GET", &format!("{base}/audit?per_page=100"), Some(&owner.token), None)?.json();
        for r in [&made, &revoked] {
            let rid = r.header("x-request-id").unwrap_or_default();
            if !log["items"].as_array().into_iter().flatten().any(|e| e["request_id"] == rid) {
                missing.push(rid.to_string());
            }
        }
        Ok(expect(missing.is_empty(), || format!("no audit entry for request(s) {}", missing.join(", "))))
    });
    run.check("audit", &format!("the newest audit entries of {slug} form one hash chain"), || {
        let log = t.call("GET", &format!("{base}/audit?per_page=100"), Some(&owner.token), None)?.json();
        let entries: Vec<crate::audit::Stored> =
            serde_json::from_value(log["items"].clone()).map_err(|e| format!("the audit list does not parse: {e}"))?;
        Ok(match crate::audit::verify_window(&entries) {
            Ok(n) if n > 0 => Outcome::Passed,
            Ok(_) => Outcome::Failed("the audit trail is empty".into()),
            Err(id) => Outcome::Failed(format!(
                "entry {id} does not link to the one before it (edited, inserted or reordered)"
            )),
        })
    });
    Ok(())
}

/// Limit headers on an admitted request, and the security headers on API answers and pages.
pub fn headers(run: &mut Run, t: &Target, creds: &Credentials, own: &Tenant) -> Result<()> {
    let owner = creds.owner(&own.slug)?;
    let table = own.values.params.get("table").cloned().unwrap_or_default();
    let path = format!("/api/v1/t/{}/{table}?per_page=1", own.slug);
    run.check("limits", &format!("GET {path} carries RateLimit-Limit, -Remaining and -Reset"), || {
        let r = t.call("GET", &path, Some(&owner.token), None)?;
        let bad: Vec<&str> = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]
            .into_iter()
            .filter(|h| r.header(h).is_none_or(|v| v.trim().parse::<f64>().is_err()))
            .collect();
        Ok(expect(r.status == 200 && bad.is_empty(), || {
            format!("answered {}; missing or not numbers: {}", r.status, bad.join(", "))
        }))
    });
    let wanted = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", ""),
        ("Referrer-Policy", ""),
        ("Content-Security-Policy", ""),
    ];
    for (what, path, token) in [
        ("an API answer", path.clone(), Some(owner.token.as_str())),
        ("an error answer", format!("/api/v1/t/{}/{table}", own.slug), None),
        ("the sign-in page", "/admin/login".to_string(), None),
    ] {
        run.check("security_headers", &format!("{what} (GET {path}) has the security headers"), || {
            let r = t.call("GET", &path, token, None)?;
            let bad: Vec<String> = wanted
                .iter()
                .filter(|(h, v)| r.header(h).is_none_or(|got| !got.contains(v)))
                .map(|(h, _)| h.to_string())
                .collect();
            Ok(expect(bad.is_empty(), || format!("missing: {}", bad.join(", "))))
        });
    }
    Ok(())
}

/// The global routes that need more than a tenant's standing: platform-admin routes refused to
/// a tenant's owner (403; pages too) and to anonymous callers (401; pages redirect to sign-in),
/// routes for any signed-in user refused to anonymous callers, node-to-node routes refused to
/// both (401, or 404 where there is no cluster).
pub fn global(run: &mut Run, t: &Target, creds: &Credentials, probed: &Tenant) -> Result<()> {
    let owner = creds.owner(&probed.slug)?;
    let mut v = probed.values.clone();
    v.set("slug", probed.slug.clone()).set("step", "freeze").set("action", "suspend");
    // The cluster routes name tenants by id, which a tenant's owner cannot see: any id will do,
    // the secret is refused first.
    v.set("tenant_id", "0000000000000000").set("file", "x.db.zst");
    let router = crate::api::router();
    for route in router.routes().iter().filter(|r| r.scope == Scope::Global) {
        if matches!(route.access, Access::Public | Access::TenantPublic | Access::Tenant(_)) {
            continue;
        }
        let (method, ui) = (route.method.as_str(), route.is_ui());
        let label = format!("{method} {}", route.pattern);
        let path = walk::fill(route.pattern, &v)?;
        let call = |token: Option<&str>| -> Result<crate::http::client::Response> {
            if ui {
                let cookie = token.map(|tk| format!("tenantd_session={tk}"));
                page(t, method, &path, cookie.as_deref(), "_csrf=")
            } else {
                let body = (method != "GET" && method != "HEAD").then(|| serde_json::json!({}));
                t.call(method, &path, token, body.as_ref())
            }
        };
        let anonymous = |r: &crate::http::client::Response| -> Outcome {
            let to_login = r.status == 303 && r.header("location").is_some_and(|l| l.starts_with("/admin/login"));
            expect(if ui { to_login || r.status == 401 } else { r.status == 401 }, || {
                format!("{method} {path} answered {} without credentials: {}", r.status, error_message(r))
            })
        };
        match route.access {
            Access::Public | Access::TenantPublic | Access::Tenant(_) => {}
            Access::Authenticated => {
                run.check("platform", &format!("{label} without credentials"), || Ok(anonymous(&call(None)?)));
            }
            Access::PlatformAdmin => {
                run.check("platform", &format!("{label} as {}'s owner", probed.slug), || {
                    let r = call(Some(&owner.token))?;
                    Ok(refused(&r, 403, probed).map_or(Outcome::Passed, |o| o.prefixed(&format!("{method} {path}"))))
                });
                run.check("platform", &format!("{label} without credentials"), || Ok(anonymous(&call(None)?)));
            }
            Access::Cluster => {
                for (who, token) in
                    [(format!("{}'s owner", probed.slug), Some(owner.token.as_str())), ("no credentials".into(), None)]
                {
                    run.check("platform", &format!("{label} as {who}"), || {
                        let r = call(token)?;
                        Ok(expect(matches!(r.status, 401 | 404), || {
                            format!("{method} {path} answered {} to a caller without the cluster secret", r.status)
                        }))
                    });
                }
            }
        }
    }
    Ok(())
}
