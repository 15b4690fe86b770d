//! The domain error type. Every layer below `http` returns `Result<_, Error>`; `http::response`
//! maps it to a status and a stable JSON `code` in one exhaustive match, so clients get a short,
//! safe message and the log gets the detail.

use std::fmt;

/// Errors from the domain and storage layers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something we refuse; `code` is stable and machine readable.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The named thing does not exist (or is not visible to the caller: never confirm existence).
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness or state conflict (slug taken, tenant already suspended, ...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Writes are refused while a tenant is suspended (HTTP 423).
    #[error("tenant is suspended: reads work, writes are refused until it is resumed")]
    TenantSuspended,
    /// The tenant's subscription is unpaid past its grace period: writes wait for payment (402).
    #[error("payment required: the subscription of tenant {slug} is unpaid; reads keep working, writes resume once it is paid (see /api/v1/t/{slug}/billing)")]
    PaymentRequired { slug: String },
    /// The tenant is registered but its file cannot be used (missing, corrupt, busy opening).
    #[error("tenant data is unavailable")]
    TenantUnavailable { detail: String },
    /// The request body is larger than allowed.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Nothing was done, through no fault of the request; sending it again will likely work (503).
    #[error("{0}")]
    Retry(String),
    /// The client stopped sending its request midway (408).
    #[error("the request did not arrive in time")]
    RequestTimeout,
    /// The request's headers are too many or too large (431).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// No usable credentials (missing, unknown, expired or revoked).
    #[error("missing or invalid credentials: send Authorization: Bearer <token>")]
    Unauthorized,
    /// Credentials were presented and refused for a stated reason (wrong password, MFA needed).
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// Authenticated, but not allowed.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Slow down: `retry_after` seconds. `rate`: the refusing limit's `RateLimit-Limit`,
    /// `-Remaining` (0) and `-Reset`, when a limit with such a policy refused it.
    #[error("{message}")]
    TooManyRequests { code: &'static str, message: String, retry_after: i64, rate: Option<[u64; 3]> },
    /// The server's own storage refused a write (disk full, file-size limit): the operator's
    /// problem, not the tenant's quota (HTTP 507 `insufficient_storage`).
    #[error("the server's storage refused the write (disk full or a file-size limit): nothing was written and nothing stored was lost; retry later")]
    InsufficientStorage,
    /// The tenant's storage quota is used up (HTTP 507).
    #[error("storage quota exceeded: delete data or move to a larger plan")]
    StorageQuota,
    /// A statement ran past the plan's per-query time budget.
    #[error("the query ran past its time budget")]
    QueryTimeout,
    /// The body's content type is not one this endpoint reads.
    #[error("this endpoint does not accept that content type")]
    UnsupportedMediaType,
    /// The path exists but not with this method.
    #[error("method not allowed here; allowed: {allow}")]
    MethodNotAllowed { allow: String },
    /// The path matches no route.
    #[error("no such endpoint")]
    NoRoute,
    /// The tenant lives on another node of the cluster: 307 to `location` when the request may
    /// be sent again as is (`retry_safe`: an idempotent method), else 421.
    #[error("tenant {slug} is served by node {node}: send the request to {location}")]
    Elsewhere { slug: String, node: String, location: String, retry_safe: bool },
    /// The tenant is being moved to another node: writes pause for a moment (503, Retry-After).
    #[error("the tenant is moving to another node: writes pause for a moment, reads work; retry in a second")]
    TenantMoving,
    /// A SQLite error we did not expect (constraint errors are mapped before they get here).
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// Could not get a pooled connection in time.
    #[error("database connection pool error")]
    Pool(#[from] r2d2::Error),
    #[error("i/o error")]
    Io(#[from] std::io::Error),
    /// A bug or an impossible state: logged in full, shown as a bare 500.
    #[error("internal error")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict { code, message: message.into() }
    }

    pub fn unavailable(detail: impl fmt::Display) -> Self {
        Error::TenantUnavailable { detail: detail.to_string() }
    }

    /// Detail for the log line: includes sources that must never reach a client.
    pub fn log_detail(&self) -> String {
        match self {
            Error::Sqlite(e) => format!("sqlite: {e}"),
            Error::Pool(e) => format!("pool: {e}"),
            Error::Io(e) => format!("io: {e}"),
            Error::Internal(m) => format!("internal: {m}"),
            Error::TenantUnavailable { detail } => format!("tenant unavailable: {detail}"),
            other => other.to_string(),
        }
    }
}
