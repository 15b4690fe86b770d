//! JSON handlers by area, and the route table that wires them to the router.

pub mod analytics;
pub mod analytics_security;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod billing;
pub mod cluster;
pub mod health;
pub mod members;
pub mod metrics;
pub mod openapi;
pub mod platform;
pub mod platform_views;
pub mod query_stats;
pub mod records;
pub mod security;
pub mod tenant;
pub mod usage;

use crate::auth::perms::{Action, Area};
use crate::http::router::{Access, Need, Route, Router, Scope};
use crate::http::Method;
use crate::ui;

/// Every route the server answers. The isolation tests walk this table. Fixed tenant paths come
/// before `/{table}`, so a table named like one of them is reachable only through the others'
/// methods: don't name tables `members`, `roles`, `api-keys`, `settings`, `usage`, `billing`, `backups`, `assets`, `audit`,
/// `security-policy`, `logo`, `openapi.json`, `query-stats`, `slow-queries` or `index-advice`.
pub fn router() -> Router {
    use Method::*;
    use Scope::{Global as G, Tenant as T, TenantUi as U};
    let r = |method, scope, pattern, handler, access| Route { method, scope, pattern, handler, access };
    let area = |a, act| Access::Tenant(Need::Area(a, act));
    let table = |act| Access::Tenant(Need::Table(act));
    Router::new(vec![
        r(Get, G, "/health", health::summary, Access::Public),
        r(Get, G, "/health/liveness", health::liveness, Access::Public),
        r(Get, G, "/health/readiness", health::readiness, Access::Public),
        r(Get, G, "/health/detailed", health::detailed, Access::PlatformAdmin),
        r(Get, G, "/metrics", metrics::metrics, Access::Public),
        r(Post, G, "/api/v1/auth/login", auth::login, Access::Public),
        r(Post, G, "/api/v1/auth/logout", auth::logout, Access::Authenticated),
        r(Get, G, "/api/v1/auth/me", auth::me, Access::Authenticated),
        r(Post, G, "/api/v1/auth/mfa/enroll", auth::mfa_enroll, Access::Authenticated),
        r(Post, G, "/api/v1/auth/mfa/confirm", auth::mfa_confirm, Access::Authenticated),
        r(Get, G, "/api/v1/platform/tenants", platform::list_tenants, Access::PlatformAdmin),
        r(Post, G, "/api/v1/platform/tenants", platform::create_tenant, Access::PlatformAdmin),
        r(Patch, G, "/api/v1/platform/tenants/{slug}", platform::update_tenant, Access::PlatformAdmin),
        r(Get, G, "/api/v1/platform/resources", platform::resources, Access::PlatformAdmin),
        r(Get, G, "/api/v1/platform/alerts", audit::platform_alerts, Access::PlatformAdmin),
        r(Get, G, "/api/v1/platform/billing", billing::platform, Access::PlatformAdmin),
        r(Get, G, "/api/v1/platform/analytics/overview", analytics::platform_overview, Access::PlatformAdmin),
        r(Get, G, "/api/v1/platform/analytics/usage-trends", analytics::platform_trends, Access::PlatformAdmin),
        r(Get, G, "/api/v1/platform/analytics/security", analytics_security::platform_security, Access::PlatformAdmin),
        r(Get, G, "/api/v1/platform/analytics/health", analytics_security::platform_health, Access::PlatformAdmin),
        r(Get, G, "/api/v1/platform/analytics/revenue", analytics::platform_revenue, Access::PlatformAdmin),
        r(Post, G, "/api/v1/billing/stripe/webhook", billing::webhook, Access::Public),
        r(Get, G, "/api/v1/cluster/directory", cluster::directory_get, Access::Cluster),
        r(Post, G, "/api/v1/cluster/directory", cluster::directory_post, Access::Cluster),
        r(Post, G, "/api/v1/cluster/tenants", cluster::create_tenant, Access::Cluster),
        r(Get, G, "/api/v1/cluster/node", cluster::node_report, Access::Cluster),
        r(Post, G, "/api/v1/cluster/tenants/{slug}/{step}", cluster::source_step, Access::Cluster),
        r(Post, G, "/api/v1/cluster/moves/{step}", cluster::target_step, Access::Cluster),
        r(Post, G, "/api/v1/cluster/failover", cluster::failover, Access::Cluster),
        r(Get, G, "/api/v1/cluster/assets/{tenant_id}", cluster::assets_of, Access::Cluster),
        r(Get, G, "/api/v1/cluster/assets/{tenant_id}/{sha256}", cluster::asset, Access::Cluster),
        r(Get, G, "/api/v1/cluster/backups/{tenant_id}", cluster::backups_of, Access::Cluster),
        r(Get, G, "/api/v1/cluster/backups/{tenant_id}/{file}", cluster::backup_chunk, Access::Cluster),
        r(Get, G, "/api/v1/platform/cluster", cluster::platform_status, Access::PlatformAdmin),
        r(Post, G, "/api/v1/platform/billing/invoices/{number}", billing::platform_mark, Access::PlatformAdmin),
        r(Get, T, "/", tenant::public_info, Access::TenantPublic),
        r(Get, T, "/logo", tenant::logo, Access::TenantPublic),
        r(Post, T, "/auth/login", auth::login_tenant, Access::TenantPublic),
        r(Get, T, "/openapi.json", openapi::spec, Access::Tenant(Need::Member)),
        r(Get, T, "/members", members::list, area(Area::Members, Action::Read)),
        r(Post, T, "/members", members::add, area(Area::Members, Action::Write)),
        r(Patch, T, "/members/{user_id}", members::update, area(Area::Members, Action::Write)),
        r(Delete, T, "/members/{user_id}", members::remove, area(Area::Members, Action::Write)),
        r(Get, T, "/roles", members::roles, area(Area::Members, Action::Read)),
        r(Put, T, "/roles/{role}", members::put_role, area(Area::Members, Action::Write)),
        r(Delete, T, "/roles/{role}", members::delete_role, area(Area::Members, Action::Write)),
        r(Get, T, "/api-keys", members::keys, area(Area::ApiKeys, Action::Read)),
        r(Post, T, "/api-keys", members::create_key, area(Area::ApiKeys, Action::Write)),
        r(Delete, T, "/api-keys/{key_id}", members::revoke_key, area(Area::ApiKeys, Action::Write)),
        r(Get, T, "/usage", usage::report, area(Area::Usage, Action::Read)),
        r(Get, T, "/analytics/overview", analytics::overview, area(Area::Usage, Action::Read)),
        r(Get, T, "/analytics/usage-trends", analytics::usage_trends, area(Area::Usage, Action::Read)),
        r(Get, T, "/analytics/comparative", analytics::comparative, area(Area::Usage, Action::Read)),
        r(Get, T, "/analytics/security", analytics_security::security, area(Area::Usage, Action::Read)),
        r(Get, T, "/billing", billing::get, area(Area::Billing, Action::Read)),
        r(Post, T, "/billing", billing::post, area(Area::Billing, Action::Write)),
        r(Get, T, "/billing/invoices/{number}", billing::invoice, area(Area::Billing, Action::Read)),
        r(Get, G, "/cdn/{edge}/{tenant_id}/{sha256}", assets::cdn, Access::Public),
        r(Get, T, "/assets", assets::list, area(Area::Settings, Action::Read)),
        r(Post, T, "/assets", assets::upload, area(Area::Settings, Action::Write)),
        r(Delete, T, "/assets/{sha256}", assets::delete, area(Area::Settings, Action::Write)),
        r(Get, T, "/backups", backups::list, area(Area::Settings, Action::Read)),
        r(Post, T, "/backups", backups::create, area(Area::Settings, Action::Write)),
        r(Post, T, "/backups/restore", backups::restore, area(Area::Settings, Action::Write)),
        r(Get, T, "/audit", audit::list, area(Area::Audit, Action::Read)),
        r(Get, T, "/alerts", audit::alerts, area(Area::Audit, Action::Read)),
        r(Get, T, "/security-policy", security::get, area(Area::Settings, Action::Read)),
        r(Put, T, "/security-policy", security::put, area(Area::Settings, Action::Write)),
        r(Get, T, "/settings", members::settings, area(Area::Settings, Action::Read)),
        r(Patch, T, "/settings", members::update_settings, area(Area::Settings, Action::Write)),
        r(Put, T, "/settings/logo", tenant::put_logo, area(Area::Settings, Action::Write)),
        r(Get, T, "/query-stats", query_stats::query_stats, area(Area::Settings, Action::Read)),
        r(Get, T, "/slow-queries", query_stats::slow_queries, area(Area::Settings, Action::Read)),
        r(Get, T, "/index-advice", query_stats::index_advice, area(Area::Settings, Action::Read)),
        r(Post, T, "/index-advice/apply", query_stats::apply, area(Area::Settings, Action::Write)),
        // Admin pages.
        r(Get, G, "/admin/assets/app.css", ui::css, Access::Public),
        r(Get, G, "/admin/assets/logo.svg", ui::logo, Access::Public),
        r(Get, G, "/admin/login", ui::account::login_get, Access::Public),
        r(Post, G, "/admin/login", ui::account::login_post, Access::Public),
        r(Post, G, "/admin/logout", ui::account::logout, Access::Authenticated),
        r(Get, G, "/admin", ui::account::home, Access::Authenticated),
        r(Get, G, "/admin/mfa", ui::account::mfa_page, Access::Authenticated),
        r(Post, G, "/admin/mfa/enroll", ui::account::mfa_enroll, Access::Authenticated),
        r(Post, G, "/admin/mfa/confirm", ui::account::mfa_confirm, Access::Authenticated),
        r(Get, G, "/admin/platform", ui::platform::console, Access::PlatformAdmin),
        r(Get, G, "/admin/platform/analytics", ui::platform_analytics::page_get, Access::PlatformAdmin),
        r(Post, G, "/admin/platform/tenants", ui::platform::create, Access::PlatformAdmin),
        r(Post, G, "/admin/platform/tenants/{slug}/{action}", ui::platform::lifecycle, Access::PlatformAdmin),
        r(Get, U, "/", ui::tenant::home, Access::Tenant(Need::Member)),
        r(Get, U, "/members", ui::tenant::members_page, area(Area::Members, Action::Read)),
        r(Post, U, "/members", ui::tenant::member_add, area(Area::Members, Action::Write)),
        r(Post, U, "/members/{user_id}/role", ui::tenant::member_role, area(Area::Members, Action::Write)),
        r(Post, U, "/members/{user_id}/remove", ui::tenant::member_remove, area(Area::Members, Action::Write)),
        r(Get, U, "/api-keys", ui::tenant::keys_page, area(Area::ApiKeys, Action::Read)),
        r(Post, U, "/api-keys", ui::tenant::key_create, area(Area::ApiKeys, Action::Write)),
        r(Post, U, "/api-keys/{key_id}/revoke", ui::tenant::key_revoke, area(Area::ApiKeys, Action::Write)),
        r(Get, U, "/settings", ui::tenant::settings_page, area(Area::Settings, Action::Read)),
        r(Post, U, "/settings", ui::tenant::settings_save, area(Area::Settings, Action::Write)),
        r(Post, U, "/settings/logo", ui::tenant::logo_upload, area(Area::Settings, Action::Write)),
        r(Get, U, "/security", ui::tenant::security_page, area(Area::Settings, Action::Read)),
        r(Post, U, "/security", ui::tenant::security_save, area(Area::Settings, Action::Write)),
        r(Get, U, "/audit", ui::tenant::audit_page, area(Area::Audit, Action::Read)),
        r(Get, U, "/queries", ui::queries::page, area(Area::Settings, Action::Read)),
        r(Get, U, "/analytics", ui::analytics::page_get, area(Area::Usage, Action::Read)),
        r(Get, U, "/backups", ui::backups::page_get, area(Area::Settings, Action::Read)),
        r(Post, U, "/backups", ui::backups::page_post, area(Area::Settings, Action::Write)),
        r(Get, U, "/billing", ui::billing::page_get, area(Area::Billing, Action::Read)),
        r(Post, U, "/billing", ui::billing::page_post, area(Area::Billing, Action::Write)),
        r(Get, U, "/billing/invoices/{number}", ui::billing::invoice_page, area(Area::Billing, Action::Read)),
        r(Post, U, "/queries/apply", ui::queries::apply, area(Area::Settings, Action::Write)),
        r(Post, U, "/roles", ui::tenant::role_save, area(Area::Members, Action::Write)),
        r(Post, U, "/roles/{role}/delete", ui::tenant::role_delete, area(Area::Members, Action::Write)),
        r(Get, U, "/data/{table}", ui::data::list, table(Action::Read)),
        r(Post, U, "/data/{table}", ui::data::create, table(Action::Create)),
        r(Get, U, "/data/{table}/new", ui::data::new_form, table(Action::Create)),
        r(Get, U, "/data/{table}/{id}", ui::data::edit_form, table(Action::Read)),
        r(Post, U, "/data/{table}/{id}", ui::data::update, table(Action::Update)),
        r(Post, U, "/data/{table}/{id}/delete", ui::data::delete, table(Action::Delete)),
        // The data API last: fixed tenant paths above win over `{table}`.
        r(Get, T, "/{table}", records::list, table(Action::Read)),
        r(Post, T, "/{table}", records::create, table(Action::Create)),
        r(Get, T, "/{table}/{id}", records::get, table(Action::Read)),
        r(Patch, T, "/{table}/{id}", records::update, table(Action::Update)),
        r(Delete, T, "/{table}/{id}", records::delete, table(Action::Delete)),
    ])
}
