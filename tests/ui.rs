//! Admin pages over HTTP: sign-in with CSRF, cookies, forms that create and validate records,
//! escaping of tenant-controlled strings, the platform console.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use common::{TestServer, PASSWORD};
use tenantd::http::client::Response;

struct Browser<'s> {
    s: &'s TestServer,
    cookies: Vec<(String, String)>,
}

impl<'s> Browser<'s> {
    fn new(s: &'s TestServer) -> Self {
        Browser { s, cookies: Vec::new() }
    }

    fn send(&mut self, method: &str, path: &str, form: Option<&str>) -> Response {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let mut headers: Vec<(&str, &str)> = vec![("Cookie", &cookie)];
        if form.is_some() {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        let r = self.s.client().request(method, path, &headers, form.unwrap_or("").as_bytes()).unwrap();
        for (k, v) in &r.headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let (kv, _) = v.split_once(';').unwrap_or((v, ""));
                let (name, value) = kv.split_once('=').unwrap();
                self.cookies.retain(|(n, _)| n != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_string(), value.to_string()));
                }
            }
        }
        r
    }

    fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, None)
    }

    fn post(&mut self, path: &str, form: &str) -> Response {
        self.send("POST", path, Some(form))
    }
}

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").unwrap() + "name=\"_csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

fn sign_in<'s>(s: &'s TestServer, email: &str) -> Browser<'s> {
    let mut b = Browser::new(s);
    let page = b.get("/admin/login");
    let csrf = hidden_csrf(&page.text());
    let r = b.post(
        "/admin/login",
        &format!("_csrf={csrf}&next=%2Fadmin&email={}&password={PASSWORD}", email.replace('@', "%40")),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    b
}

#[test]
fn sign_in_sets_a_hardened_cookie_and_needs_the_form_token() {
    let s = TestServer::start();
    s.member("ada@acme.test", "acme", "owner");
    let mut b = Browser::new(&s);
    let page = b.get("/admin/login");
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").unwrap().contains("form-action 'self'"));
    // Without the form's token: refused, no session.
    let r = b.post("/admin/login", &format!("_csrf=forged&email=ada%40acme.test&password={PASSWORD}"));
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());
    let csrf = hidden_csrf(&b.get("/admin/login").text());
    let r = b.post("/admin/login", &format!("_csrf={csrf}&next=%2Fadmin&email=ada%40acme.test&password={PASSWORD}"));
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with("tenantd_session=tds_") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let home = b.get("/admin");
    assert_eq!(home.status, 200);
    assert!(home.text().contains("/admin/t/acme/"));
    // Open redirects are not followed.
    let csrf = hidden_csrf(&b.get("/admin/login").text());
    let r = b.post(
        "/admin/login",
        &format!("_csrf={csrf}&next=https%3A%2F%2Fevil.test&email=ada%40acme.test&password={PASSWORD}"),
    );
    assert_eq!(r.header("location"), Some("/admin"));
}

#[test]
fn wrong_password_on_the_page_shows_a_message() {
    let s = TestServer::start();
    s.member("ada@acme.test", "acme", "owner");
    let mut b = Browser::new(&s);
    let csrf = hidden_csrf(&b.get("/admin/login").text());
    let r = b.post("/admin/login", &format!("_csrf={csrf}&email=ada%40acme.test&password=nope-nope-nope"));
    assert_eq!(r.status, 401);
    assert!(r.text().contains("email or password is incorrect"));
}

#[test]
fn create_through_the_form_then_see_it_in_the_list() {
    let s = TestServer::start();
    s.member("ada@acme.test", "acme", "owner");
    let mut b = sign_in(&s, "ada@acme.test");
    let form = b.get("/admin/t/acme/data/customers/new");
    assert_eq!(form.status, 200);
    let csrf = hidden_csrf(&form.text());
    let r =
        b.post("/admin/t/acme/data/customers", &format!("_csrf={csrf}&name=Zed+Corp&email=zed%40x.test&status=lead"));
    assert_eq!(r.status, 303, "{}", r.text());
    let list = b.get("/admin/t/acme/data/customers");
    assert!(list.text().contains("Zed Corp"));
    // The home page counts it (through `records::Work`, as the data API reads).
    let home = b.get("/admin/t/acme/").text();
    assert!(home.contains(r#"href="/admin/t/acme/data/customers"><div class="n">1</div>"#), "{home}");
    // A validation error comes back on the form, next to the field, with the values kept.
    let r = b.post("/admin/t/acme/data/customers", &format!("_csrf={csrf}&name=&email=q%40x.test&status=lead"));
    assert_eq!(r.status, 400);
    let html = r.text();
    assert!(html.contains("column name is required"), "{html}");
    assert!(html.contains("q@x.test"), "values are kept");
    // Missing CSRF token: 403 and nothing created.
    let r = b.post("/admin/t/acme/data/customers", "name=NoToken");
    assert_eq!(r.status, 403);
    let t = s.login("ada@acme.test");
    assert_eq!(s.get_as("/api/v1/t/acme/customers", &t).json()["total"], 1);
}

#[test]
fn tenant_controlled_strings_are_escaped() {
    let s = TestServer::start();
    s.member("ada@acme.test", "acme", "owner");
    let t = s.login("ada@acme.test");
    let evil = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>";
    let r = s.post_json("/api/v1/t/acme/customers", Some(&t), &serde_json::json!({"name": evil, "company": evil}));
    assert_eq!(r.status, 201);
    let r = s.call("PATCH", "/api/v1/t/acme/settings", Some(&t), Some(&serde_json::json!({"display_name": evil})));
    assert_eq!(r.status, 200);
    let mut b = sign_in(&s, "ada@acme.test");
    for path in [
        "/admin/t/acme/",
        "/admin/t/acme/data/customers",
        "/admin/t/acme/data/customers/1",
        "/admin/t/acme/settings",
        "/admin",
    ] {
        let html = b.get(path).text();
        assert!(!html.contains("<script>alert"), "{path} has raw script");
        assert!(!html.contains("<img src=x"), "{path} has a raw tag");
    }
    assert!(b.get("/admin/t/acme/data/customers").text().contains("&lt;script&gt;"));
}

#[test]
fn platform_console_for_platform_admins_only() {
    let s = TestServer::start();
    s.create_tenant("acme");
    tenantd::auth::create_user(&s.app, "root@ops.test", PASSWORD, true).unwrap();
    s.member("ada@acme.test", "acme", "owner");
    let mut root = sign_in(&s, "root@ops.test");
    let page = root.get("/admin/platform");
    assert_eq!(page.status, 200);
    let csrf = hidden_csrf(&page.text());
    let r = root.post("/admin/platform/tenants/acme/suspend", &format!("_csrf={csrf}"));
    assert_eq!(r.status, 303);
    assert_eq!(s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap().status.as_str(), "suspended");
    let mut ada = sign_in(&s, "ada@acme.test");
    assert_eq!(ada.get("/admin/platform").status, 403);
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00";

#[test]
fn logo_upload_through_the_page_is_served_and_applied() {
    let s = TestServer::start();
    s.member("ada@acme.test", "acme", "owner");
    let mut b = sign_in(&s, "ada@acme.test");
    let csrf = hidden_csrf(&b.get("/admin/t/acme/settings").text());
    let upload = |b: &mut Browser<'_>, file: &[u8]| {
        let mut body = format!("--B0\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{csrf}\r\n--B0\r\nContent-Disposition: form-data; name=\"logo\"; filename=\"x\"\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n--B0--\r\n");
        let cookie = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let headers = [("Cookie", cookie.as_str()), ("Content-Type", "multipart/form-data; boundary=B0")];
        b.s.client().request("POST", "/admin/t/acme/settings/logo", &headers, &body).unwrap()
    };
    let r = upload(&mut b, b"<svg onload=alert(1)>");
    assert!(r.header("location").unwrap().contains("error="), "SVG and other non-images are refused");
    let r = upload(&mut b, PNG);
    assert!(r.header("location").unwrap().contains("ok="), "{:?}", r.header("location"));
    let logo = s.get("/api/v1/t/acme/logo");
    assert_eq!(logo.status, 200);
    assert_eq!(logo.header("content-type"), Some("image/png"));
    assert_eq!(logo.body, PNG);
    assert!(b.get("/admin/t/acme/").text().contains("/api/v1/t/acme/logo"), "applied to the tenant's pages");
}

#[test]
fn custom_roles_from_the_members_page() {
    let s = TestServer::start();
    s.member("ada@acme.test", "acme", "owner");
    let mut b = sign_in(&s, "ada@acme.test");
    let csrf = hidden_csrf(&b.get("/admin/t/acme/members").text());
    let r = b.post(
        "/admin/t/acme/roles",
        &format!("_csrf={csrf}&name=tasker&permissions=can_read%3Atasks%2C+can_create%3Atasks"),
    );
    assert!(r.header("location").unwrap().contains("ok="));
    assert!(b.get("/admin/t/acme/members").text().contains("can_create:tasks"));
    let r = b.post("/admin/t/acme/roles", &format!("_csrf={csrf}&name=bad&permissions=can_fly%3Atasks"));
    assert!(r.header("location").unwrap().contains("error="));
    let r = b.post("/admin/t/acme/roles/tasker/delete", &format!("_csrf={csrf}"));
    assert!(r.header("location").unwrap().contains("ok="));
}

#[test]
fn security_and_audit_pages() {
    let s = TestServer::start();
    s.member("ada@acme.test", "acme", "owner");
    let mut b = sign_in(&s, "ada@acme.test");
    let csrf = hidden_csrf(&b.get("/admin/t/acme/data/customers/new").text());
    b.post("/admin/t/acme/data/customers", &format!("_csrf={csrf}&name=Audited"));
    let audit = b.get("/admin/t/acme/audit");
    assert_eq!(audit.status, 200);
    assert!(audit.text().contains("record.create"));
    let page = b.get("/admin/t/acme/security");
    assert_eq!(page.status, 200);
    let r = b.post("/admin/t/acme/security", &format!("_csrf={csrf}&ip_deny=not-a-cidr&api_keys_allowed=true"));
    assert!(r.header("location").unwrap().contains("error="), "bad CIDR refused");
    let r = b.post("/admin/t/acme/security", &format!("_csrf={csrf}&ip_deny=127.0.0.0%2F8&api_keys_allowed=true"));
    assert!(r.header("location").unwrap().contains("ok="));
    assert_eq!(b.get("/admin/t/acme/").status, 403, "the page now refuses our own address");
}

#[test]
fn queries_page_shows_stats_and_applies_advice_with_csrf() {
    let s = TestServer::start_with(|c| c.query_monitor.slow_query_ms = 0);
    let token = s.token("owner@acme.test", "acme", "owner");
    assert_eq!(s.get_as("/api/v1/t/acme/customers?company=Initech", &token).status, 200);
    let mut b = sign_in(&s, "owner@acme.test");
    let page = b.get("/admin/t/acme/queries");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("idx_advised_customers_company") && html.contains("SCAN customers"), "{html}");
    assert!(html.contains("WHERE &quot;company&quot; = ?"), "statement text is escaped");
    let r = b.post("/admin/t/acme/queries/apply", "_csrf=wrong&index=idx_advised_customers_company");
    assert_eq!(r.status, 403);
    let csrf = hidden_csrf(&html);
    let r = b.post("/admin/t/acme/queries/apply", &format!("_csrf={csrf}&index=idx_advised_customers_company"));
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().contains("ok="), "{:?}", r.header("location"));
    assert!(!b.get("/admin/t/acme/queries").text().contains("Create index"), "applied advice is gone");
    // A member without the settings area gets no page.
    s.member("staff@acme.test", "acme", "member");
    assert_eq!(sign_in(&s, "staff@acme.test").get("/admin/t/acme/queries").status, 403);
}

#[test]
fn issue20_billing_page_banner_and_console() {
    let s = TestServer::start_with(|c| {
        c.billing.provider = "local".into();
        c.billing.dunning_grace_days = 3;
        let pro = c.plans.get_mut("pro").unwrap();
        pro.trial_days = 0;
        pro.price_monthly_cents = 2900;
    });
    s.member("owner@acme.test", "acme", "owner");
    let mut b = sign_in(&s, "owner@acme.test");
    let page = b.get("/admin/t/acme/billing");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("No subscription") && html.contains("29.00 USD"), "free plan, pro's price listed: {html}");
    let csrf = hidden_csrf(&html);
    let r = b.post("/admin/t/acme/billing", &format!("_csrf={csrf}&action=change_plan&plan=pro&interval=month"));
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(r.header("location").unwrap().contains("ok="), "{:?}", r.header("location"));
    let html = b.get("/admin/t/acme/billing").text();
    assert!(html.contains("active") && html.contains("29.00 USD per month"), "{html}");
    // A late invoice: the banner on every page, then read-only.
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let sub = tenantd::catalog::billing::current(&s.app.catalog.conn().unwrap(), &t.id).unwrap().unwrap();
    let actor = tenantd::tenancy::Actor::cli();
    let r = tenantd::billing::invoice::run(&s.app, sub.current_period_end + 60, &actor).unwrap();
    let number = r.invoices[0].number.clone();
    let due =
        tenantd::catalog::billing::invoice_by_number(&s.app.catalog.conn().unwrap(), &number).unwrap().unwrap().due_at;
    tenantd::billing::invoice::run(&s.app, due + 60, &actor).unwrap();
    let home = b.get("/admin/t/acme/").text();
    assert!(home.contains("Payment is overdue"), "{home}");
    let inv = b.get(&format!("/admin/t/acme/billing/invoices/{number}"));
    assert_eq!(inv.status, 200);
    assert!(inv.text().contains(&format!("Invoice {number}")));
    // The console shows the failing payment to platform admins.
    tenantd::auth::create_user(&s.app, "root@ops.test", PASSWORD, true).unwrap();
    let mut root = sign_in(&s, "root@ops.test");
    let console = root.get("/admin/platform").text();
    assert!(console.contains("Failed payment") && console.contains("acme"), "{console}");
    assert!(console.contains("29.00 USD"), "the plans' prices: {console}");
}

#[test]
fn issue21_the_analytics_dashboard_draws_charts_with_their_numbers() {
    let s = TestServer::start();
    let token = s.token("owner@acme.test", "acme", "owner");
    for _ in 0..12 {
        s.get_as("/api/v1/t/acme/customers", &token);
    }
    let mut b = sign_in(&s, "owner@acme.test");
    let page = b.get("/admin/t/acme/analytics?days=7");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.matches("role=\"img\"").count() >= 7, "3 charts and 4 sparklines: {html}");
    assert!(html.contains("<title>Requests per day</title>") && html.contains("<desc>Requests per day: "), "{html}");
    assert!(html.contains("<rect"), "bars drawn with data");
    assert!(html.contains("<caption>Requests per day</caption>"), "the numbers beside the chart");
    assert!(html.contains("Withheld"), "one tenant has no peers to compare with");
    assert!(html.contains("format=csv"));
    // The same access rule as the API: viewers have no usage rights.
    s.member("viewer@acme.test", "acme", "viewer");
    let mut v = sign_in(&s, "viewer@acme.test");
    assert_eq!(v.get("/admin/t/acme/analytics").status, 403);
}

#[test]
fn issue21_the_platform_dashboard_draws_usage_revenue_health_and_security() {
    let s = TestServer::start_with(|c| {
        c.billing.provider = "local".into();
        let pro = c.plans.get_mut("pro").unwrap();
        pro.trial_days = 0;
        pro.price_monthly_cents = 2900;
    });
    let token = s.token("owner@acme.test", "acme", "owner");
    for _ in 0..5 {
        s.get_as("/api/v1/t/acme/customers", &token);
    }
    // A subscription: new MRR this month, drawn in the movements' stacked bars.
    let mut owner = sign_in(&s, "owner@acme.test");
    let csrf = hidden_csrf(&owner.get("/admin/t/acme/billing").text());
    let r = owner.post("/admin/t/acme/billing", &format!("_csrf={csrf}&action=change_plan&plan=pro&interval=month"));
    assert_eq!(r.status, 303, "{}", r.text());
    // Tenant owners are not platform admins.
    assert_eq!(owner.get("/admin/platform/analytics").status, 403);
    tenantd::auth::create_user(&s.app, "root@ops.test", PASSWORD, true).unwrap();
    let mut root = sign_in(&s, "root@ops.test");
    let page = root.get("/admin/platform/analytics?days=7");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.matches("role=\"img\"").count() >= 8, "5 sparklines, requests, MRR line, movements: {html}");
    assert!(html.contains("<title>Requests per day</title>") && html.contains("<caption>Requests per day</caption>"));
    assert!(html.contains("<title>MRR movements by month (usd)</title>"), "{html}");
    assert!(html.contains("new: 29 usd"), "the new MRR bar: {html}");
    assert!(html.contains("29.00 USD"), "the MRR card: {html}");
    assert!(html.contains("Weakest component") && html.contains("<td>acme</td>"), "health list: {html}");
    assert!(html.contains("Failed sign-ins") && html.contains("MFA adoption"), "security: {html}");
    assert!(html.contains("Busiest tenants"));
    assert!(html.contains("/api/v1/platform/analytics/health?format=csv"), "CSV links");
    assert!(html.contains("href=\"/admin/platform/analytics\""), "in the nav");
    // The CSV links answer with CSV.
    let bearer = s.login("root@ops.test");
    for path in ["usage-trends?format=csv&granularity=day&from=-7d", "health?format=csv&from=-7d", "revenue?format=csv"]
    {
        let link = format!("/api/v1/platform/analytics/{path}");
        assert!(html.contains(&link.replace('&', "&amp;")), "{link} on the page");
        let r = s.get_as(&link, &bearer);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("text/csv"), "{path}");
    }
}

#[test]
fn issue21_the_platform_dashboard_without_billing_says_so() {
    let s = TestServer::start();
    s.create_tenant("acme");
    tenantd::auth::create_user(&s.app, "root@ops.test", PASSWORD, true).unwrap();
    let html = sign_in(&s, "root@ops.test").get("/admin/platform/analytics").text();
    assert!(html.contains("Billing is off") && html.contains("billing off"), "{html}");
}

#[test]
fn issue21_kpi_cards_on_the_tenant_home_and_the_console() {
    let s = TestServer::start();
    let token = s.token("owner@acme.test", "acme", "owner");
    for _ in 0..3 {
        s.get_as("/api/v1/t/acme/customers", &token);
    }
    let home = sign_in(&s, "owner@acme.test").get("/admin/t/acme/").text();
    assert!(home.contains("class=\"card kpi\"") && home.matches("class=\"spark\"").count() == 4, "{home}");
    assert!(home.contains("href=\"/admin/t/acme/analytics?days=7\""), "{home}");
    // Viewers cannot read usage: no cards for them.
    s.member("viewer@acme.test", "acme", "viewer");
    let home = sign_in(&s, "viewer@acme.test").get("/admin/t/acme/").text();
    assert!(!home.contains("card kpi"), "{home}");
    tenantd::auth::create_user(&s.app, "root@ops.test", PASSWORD, true).unwrap();
    let console = sign_in(&s, "root@ops.test").get("/admin/platform").text();
    assert!(console.contains("Tenants at risk") && console.contains("Active tenants"), "{console}");
    assert!(console.matches("class=\"card kpi\"").count() == 5, "{console}");
    assert!(console.contains("href=\"/admin/platform/analytics?days=7\""), "{console}");
    assert!(console.contains("<div class=\"scroll\"><table class=\"data\"><thead><tr><th>Slug"), "{console}");
}

#[test]
fn issue21_the_tenant_dashboard_draws_the_peers_as_bands_with_health_and_security() {
    let s = TestServer::start_with(|c| c.analytics_min_cohort = 1);
    let token = s.token("owner@acme.test", "acme", "owner");
    let other = s.token("owner@beta.test", "beta", "owner");
    for _ in 0..4 {
        s.get_as("/api/v1/t/acme/customers", &token);
        s.get_as("/api/v1/t/beta/customers", &other);
    }
    let html = sign_in(&s, "owner@acme.test").get("/admin/t/acme/analytics?days=7").text();
    assert!(!html.contains("Withheld"), "one peer is enough here: {html}");
    assert!(
        html.contains("<title>You among your plan&#39;s peers</title>")
            || html.contains("<title>You among your plan's peers</title>"),
        "{html}"
    );
    assert!(
        html.contains("class=\"band\"") && html.contains("class=\"p50\"") && html.contains("class=\"you\""),
        "{html}"
    );
    assert!(html.contains("Peers p25"), "the table stays");
    assert!(html.contains("<h2>Health</h2>") && html.contains("of 100") && html.contains("activity_trend"), "{html}");
    assert!(html.contains("<h2>Security</h2>") && html.contains("MFA adoption"), "{html}");
}

#[test]
fn issue22_the_backups_page_snapshots_and_forks_into_a_tenant_the_user_owns() {
    let s = TestServer::start();
    s.member("owner@acme.test", "acme", "owner");
    let mut b = sign_in(&s, "owner@acme.test");
    let html = b.get("/admin/t/acme/backups").text();
    assert!(html.contains("No snapshot yet"), "{html}");
    let csrf = hidden_csrf(&html);
    let r = b.post("/admin/t/acme/backups", &format!("_csrf={csrf}&action=snapshot"));
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(r.header("location").unwrap().contains("ok="), "{:?}", r.header("location"));
    // A second one within the minute is refused with a message, not an error page.
    let r = b.post("/admin/t/acme/backups", &format!("_csrf={csrf}&action=snapshot"));
    assert!(r.header("location").unwrap().contains("error="), "{:?}", r.header("location"));
    let html = b.get("/admin/t/acme/backups").text();
    let id = html.split("<option value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let r = b.post("/admin/t/acme/backups", &format!("_csrf={csrf}&action=fork&id={id}&as=acme-copy"));
    assert!(r.header("location").unwrap().contains("ok="), "{:?}", r.header("location"));
    // The user owns the copy: its pages open.
    assert_eq!(b.get("/admin/t/acme-copy/").status, 200);
    // Without the form token: refused.
    let r = b.post("/admin/t/acme/backups", "_csrf=forged&action=snapshot");
    assert_eq!(r.status, 403);
}
