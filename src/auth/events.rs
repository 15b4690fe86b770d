//! Sign-in events in the audit trails. A user is not bound to one tenant, so an attempt on a
//! known account is written to the chain of every tenant the user belongs to (their admins
//! see who tried to get in, and from where); an attempt on an unknown email goes to the
//! platform chain with the email's domain only (people type passwords into the email field).

use crate::app::App;
use crate::catalog::identity::{self, User};
use crate::catalog::tenants;

use super::LoginRequest;

/// How a sign-in attempt ended.
#[derive(Clone, Copy)]
pub enum Outcome {
    /// Signed in; `rehashed_from` names the legacy hash replaced by argon2id on the way.
    Ok {
        rehashed_from: Option<&'static str>,
    },
    WrongPassword,
    WrongCode,
    Locked,
}

/// Tenants whose chains get one user's sign-in events, at most.
const MAX_TENANTS: usize = 50;

pub fn sign_in(app: &App, user: &User, req: &LoginRequest<'_>, outcome: Outcome) {
    let rehashed_from = match outcome {
        Outcome::Ok { rehashed_from } => rehashed_from,
        _ => None,
    };
    let (action, outcome, reason, risk) = match outcome {
        Outcome::Ok { .. } => ("auth.login", "ok", None, 0),
        Outcome::WrongPassword => ("auth.login_failed", "denied", Some("wrong_password"), 30),
        Outcome::WrongCode => ("auth.login_failed", "denied", Some("wrong_totp"), 40),
        Outcome::Locked => ("auth.login_failed", "denied", Some("account_locked"), 50),
    };
    let memberships = app.catalog.conn().and_then(|c| {
        identity::tenants_of(&c, user.id)?
            .into_iter()
            .take(MAX_TENANTS)
            .map(|(id, ..)| {
                let id = crate::ids::TenantId::parse(&id)?;
                tenants::find_by_id(&c, &id)
            })
            .collect::<crate::error::Result<Vec<_>>>()
    });
    let memberships = match memberships {
        Ok(m) => m,
        Err(e) => {
            crate::log::warn(&format!("could not look up tenants to audit a sign-in: {}", e.log_detail()));
            return;
        }
    };
    let actor = format!("user:{}", user.id);
    let source = req.caller.client.map(|s| s.to_string());
    let details = match (reason, rehashed_from) {
        (Some(r), _) => serde_json::json!({"reason": r, "failed_logins": user.failed_logins + 1}),
        (None, Some(from)) => serde_json::json!({"rehashed_from": from}),
        (None, None) => serde_json::json!({}),
    };
    for t in memberships.into_iter().flatten() {
        let entry = crate::audit::Entry {
            actor: &actor,
            source: source.as_deref(),
            user_agent: req.caller.user_agent,
            request_id: Some(req.caller.request_id),
            action,
            resource: Some(&user.email),
            outcome,
            risk,
            details: details.clone(),
        };
        if let Err(e) = crate::audit::record(app, &t, &entry) {
            crate::log::warn(&format!("could not audit a sign-in for tenant {}: {}", t.slug, e.log_detail()));
        }
    }
}

/// A failed sign-in for an email no account has: the platform chain, domain only.
pub fn unknown_account(app: &App, req: &LoginRequest<'_>, now: i64) {
    let domain = req.email.trim().rsplit_once('@').map(|(_, d)| d.to_lowercase()).unwrap_or_default();
    let domain: String = domain.chars().take(100).collect();
    let res = app.catalog.background_write(|tx| {
        crate::catalog::audit::append(
            tx,
            now,
            &crate::catalog::audit::Event {
                actor: "anonymous",
                action: "auth.login_failed",
                tenant_id: None,
                resource: None,
                outcome: "denied",
                details: serde_json::json!({
                    "reason": "unknown_account",
                    "email_domain": domain,
                    "source": req.caller.client.map(|s| s.to_string()),
                    "request_id": req.caller.request_id,
                }),
            },
        )?;
        Ok(())
    });
    if let Err(e) = res {
        crate::log::warn(&format!("could not audit a failed sign-in: {}", e.log_detail()));
    }
}
