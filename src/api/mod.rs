//! JSON handlers by area, and the route table that wires them to the router.

pub mod auth;
pub mod health;
pub mod members;
pub mod openapi;
pub mod platform;
pub mod records;
pub mod tenant;

use crate::auth::perms::{Action, Area};
use crate::http::router::{Access, Need, Route, Router, Scope};
use crate::http::Method;

/// Every route the server answers. The isolation tests walk this table. Fixed tenant paths come
/// before `/{table}`, so a table named like one of them is reachable only through the others'
/// methods: don't name tables `members`, `roles`, `api-keys`, `settings` or `openapi.json`.
pub fn router() -> Router {
    use Method::*;
    use Scope::{Global as G, Tenant as T};
    let r = |method, scope, pattern, handler, access| Route {
        method,
        scope,
        pattern,
        handler,
        access,
    };
    let area = |a, act| Access::Tenant(Need::Area(a, act));
    let table = |act| Access::Tenant(Need::Table(act));
    Router::new(vec![
        r(Get, G, "/health", health::summary, Access::Public),
        r(Get, G, "/health/liveness", health::liveness, Access::Public),
        r(
            Get,
            G,
            "/health/readiness",
            health::readiness,
            Access::Public,
        ),
        r(Post, G, "/api/v1/auth/login", auth::login, Access::Public),
        r(
            Post,
            G,
            "/api/v1/auth/logout",
            auth::logout,
            Access::Authenticated,
        ),
        r(Get, G, "/api/v1/auth/me", auth::me, Access::Authenticated),
        r(
            Post,
            G,
            "/api/v1/auth/mfa/enroll",
            auth::mfa_enroll,
            Access::Authenticated,
        ),
        r(
            Post,
            G,
            "/api/v1/auth/mfa/confirm",
            auth::mfa_confirm,
            Access::Authenticated,
        ),
        r(
            Get,
            G,
            "/api/v1/platform/tenants",
            platform::list_tenants,
            Access::PlatformAdmin,
        ),
        r(
            Post,
            G,
            "/api/v1/platform/tenants",
            platform::create_tenant,
            Access::PlatformAdmin,
        ),
        r(Get, T, "/", tenant::public_info, Access::TenantPublic),
        r(
            Get,
            T,
            "/openapi.json",
            openapi::spec,
            Access::Tenant(Need::Member),
        ),
        r(
            Get,
            T,
            "/members",
            members::list,
            area(Area::Members, Action::Read),
        ),
        r(
            Post,
            T,
            "/members",
            members::add,
            area(Area::Members, Action::Write),
        ),
        r(
            Patch,
            T,
            "/members/{user_id}",
            members::update,
            area(Area::Members, Action::Write),
        ),
        r(
            Delete,
            T,
            "/members/{user_id}",
            members::remove,
            area(Area::Members, Action::Write),
        ),
        r(
            Get,
            T,
            "/roles",
            members::roles,
            area(Area::Members, Action::Read),
        ),
        r(
            Put,
            T,
            "/roles/{role}",
            members::put_role,
            area(Area::Members, Action::Write),
        ),
        r(
            Delete,
            T,
            "/roles/{role}",
            members::delete_role,
            area(Area::Members, Action::Write),
        ),
        r(
            Get,
            T,
            "/api-keys",
            members::keys,
            area(Area::ApiKeys, Action::Read),
        ),
        r(
            Post,
            T,
            "/api-keys",
            members::create_key,
            area(Area::ApiKeys, Action::Write),
        ),
        r(
            Delete,
            T,
            "/api-keys/{key_id}",
            members::revoke_key,
            area(Area::ApiKeys, Action::Write),
        ),
        r(
            Get,
            T,
            "/settings",
            members::settings,
            area(Area::Settings, Action::Read),
        ),
        r(
            Patch,
            T,
            "/settings",
            members::update_settings,
            area(Area::Settings, Action::Write),
        ),
        r(Get, T, "/{table}", records::list, table(Action::Read)),
        r(Post, T, "/{table}", records::create, table(Action::Create)),
        r(Get, T, "/{table}/{id}", records::get, table(Action::Read)),
        r(
            Patch,
            T,
            "/{table}/{id}",
            records::update,
            table(Action::Update),
        ),
        r(
            Delete,
            T,
            "/{table}/{id}",
            records::delete,
            table(Action::Delete),
        ),
    ])
}
