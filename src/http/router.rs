//! The route table: `(method, scope, pattern, handler, access)` entries. Tests walk this table
//! (the cross-tenant isolation suite probes every tenant route), so a new route is covered
//! without anyone remembering to.

use super::{Ctx, Method, Req, Resp};
use crate::auth::perms::{Action, Area};
use crate::error::{Error, Result};

pub type Handler = fn(&Ctx<'_>, &Req) -> Result<Resp>;

/// Where a pattern is anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Matched against the whole path (`/health/liveness`, `/api/v1/platform/...`).
    Global,
    /// Matched against the path below the tenant root: `/api/v1/t/{slug}` + pattern, or
    /// `/api/v1` + pattern when the tenant comes from `Host` or `X-Tenant`.
    Tenant,
    /// Admin pages of one tenant: `/admin/t/{slug}` + pattern. Cookie sessions, CSRF on posts.
    TenantUi,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone; no tenant involved.
    Public,
    /// Anyone, but about one tenant: only what that tenant shows on its public pages.
    TenantPublic,
    /// Any signed-in user (session token, not an API key); no tenant.
    Authenticated,
    /// A member of the tenant (or an API key bound to it) whose role grants `Need`.
    Tenant(Need),
    /// Platform administrators.
    PlatformAdmin,
    /// Another node of the cluster: the cluster secret as a bearer token. Without `[cluster]`
    /// the route does not exist (404).
    Cluster,
}

/// The permission a tenant route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `action` on the table named by the route's `{table}` parameter.
    Table(Action),
    /// `action` on an area (members, settings, ...).
    Area(Area, Action),
    /// Any standing in the tenant (member of any role, or a key bound to it).
    Member,
}

pub struct Route {
    pub method: Method,
    pub scope: Scope,
    /// Segments separated by `/`; `{name}` captures one segment.
    pub pattern: &'static str,
    pub handler: Handler,
    pub access: Access,
}

impl Route {
    /// Label for metrics and logs: the pattern, never the raw path.
    pub fn template(&self) -> String {
        match self.scope {
            Scope::Global => self.pattern.to_string(),
            Scope::Tenant => format!("/api/v1/t/{{slug}}{}", self.pattern.trim_end_matches('/')),
            Scope::TenantUi => format!("/admin/t/{{slug}}{}", self.pattern.trim_end_matches('/')),
        }
    }

    /// Pages (cookie sessions, CSRF, HTML errors) rather than the JSON API.
    pub fn is_ui(&self) -> bool {
        self.scope == Scope::TenantUi || self.pattern.starts_with("/admin")
    }
}

pub struct Router {
    routes: Vec<Route>,
    /// Each route's pattern split once, in the same order as `routes`.
    shapes: Vec<Shape>,
}

/// A pattern split into its segments, so matching compares lengths and literals instead of
/// scanning every pattern string (about 150 of them) on every request.
struct Shape {
    parts: Vec<Part>,
    literals: usize,
}

enum Part {
    Literal(&'static str),
    Param(&'static str),
}

impl Shape {
    fn of(pattern: &'static str) -> Shape {
        let parts: Vec<Part> = pattern
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => Part::Param(name),
                None => Part::Literal(p),
            })
            .collect();
        let literals = parts.iter().filter(|p| matches!(p, Part::Literal(_))).count();
        Shape { parts, literals }
    }

    fn matches(&self, segments: &[&str]) -> bool {
        self.parts.len() == segments.len()
            && self.parts.iter().zip(segments).all(|(p, s)| match p {
                Part::Literal(l) => l == s,
                Part::Param(_) => true,
            })
    }
}

/// A successful match.
pub struct Matched<'r> {
    pub route: &'r Route,
    /// Position of `route` in the table (metrics are kept per route).
    pub index: usize,
    pub params: Vec<(&'static str, String)>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Router {
        let shapes = routes.iter().map(|r| Shape::of(r.pattern)).collect();
        Router { routes, shapes }
    }

    /// The table, in match order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Adds a route after the others (tests add their own probes).
    pub fn push(&mut self, route: Route) {
        self.shapes.push(Shape::of(route.pattern));
        self.routes.push(route);
    }

    /// Finds the route for `segments` in `scope`. A path that exists with other methods is a
    /// 405 naming them; no path at all is `NoRoute`. Empty segments (`//`) are ignored.
    pub fn find(&self, scope: Scope, method: Method, segments: &[String]) -> Result<Matched<'_>> {
        let segments: Vec<&str> = segments.iter().filter(|s| !s.is_empty()).map(String::as_str).collect();
        let mut allowed: Vec<&str> = Vec::new();
        // Literal segments of the most specific path seen with other methods: a route with
        // fewer literals (e.g. `/{table}/{id}` after `/members/{user_id}`) must not take the
        // request; it is a 405 on the specific path instead.
        let mut specific = 0;
        for (index, (route, shape)) in self.routes.iter().zip(&self.shapes).enumerate() {
            if route.scope != scope || !shape.matches(&segments) || shape.literals < specific {
                continue;
            }
            if route.method == method || (method == Method::Head && route.method == Method::Get) {
                let params = shape
                    .parts
                    .iter()
                    .zip(&segments)
                    .filter_map(|(p, s)| match p {
                        Part::Param(name) => Some((*name, s.to_string())),
                        Part::Literal(_) => None,
                    })
                    .collect();
                return Ok(Matched { route, index, params });
            }
            specific = specific.max(shape.literals);
            allowed.push(route.method.as_str());
        }
        if allowed.is_empty() {
            Err(Error::NoRoute)
        } else {
            allowed.sort_unstable();
            allowed.dedup();
            Err(Error::MethodNotAllowed { allow: allowed.join(", ") })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &Ctx<'_>, _: &Req) -> Result<Resp> {
        Ok(Resp::json(200, &"ok"))
    }

    fn segs(p: &str) -> Vec<String> {
        p.split('/').map(str::to_string).collect()
    }

    #[test]
    fn matches_params_and_reports_405() {
        let r = Router::new(vec![
            Route { method: Method::Get, scope: Scope::Global, pattern: "/a/{x}", handler: ok, access: Access::Public },
            Route {
                method: Method::Post,
                scope: Scope::Global,
                pattern: "/a/{x}",
                handler: ok,
                access: Access::Public,
            },
        ]);
        let m = r.find(Scope::Global, Method::Get, &segs("/a/7")).unwrap();
        assert_eq!(m.params, vec![("x", "7".to_string())]);
        assert!(matches!(r.find(Scope::Global, Method::Delete, &segs("/a/7")), Err(Error::MethodNotAllowed { .. })));
        assert!(matches!(r.find(Scope::Global, Method::Get, &segs("/b")), Err(Error::NoRoute)));
        assert!(matches!(r.find(Scope::Tenant, Method::Get, &segs("/a/7")), Err(Error::NoRoute)));
        assert!(matches!(r.find(Scope::Global, Method::Get, &segs("/a/7/8")), Err(Error::NoRoute)));
        assert!(matches!(r.find(Scope::Global, Method::Get, &segs("/a")), Err(Error::NoRoute)));
        assert_eq!(r.find(Scope::Global, Method::Head, &segs("//a//7/")).unwrap().params, vec![("x", "7".to_string())]);
    }
}
