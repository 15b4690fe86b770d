//! JSON handlers by area, and the route table that wires them to the router.

pub mod health;
pub mod tenant;

use crate::http::router::{Access, Route, Router, Scope};
use crate::http::Method;

/// Every route the server answers. The isolation tests walk this table.
pub fn router() -> Router {
    use Access::*;
    use Method::*;
    use Scope::*;
    let r = |method, scope, pattern, handler, access| Route {
        method,
        scope,
        pattern,
        handler,
        access,
    };
    Router::new(vec![
        r(Get, Global, "/health", health::summary, Public),
        r(Get, Global, "/health/liveness", health::liveness, Public),
        r(Get, Global, "/health/readiness", health::readiness, Public),
        r(Get, Tenant, "/", tenant::public_info, TenantPublic),
    ])
}
