//! `tenantd user …`: accounts and memberships.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;

use super::{print_json, CliError, CliResult};
use crate::app::App;
use crate::auth::{self, perms};
use crate::catalog::identity;
use crate::ids::Slug;
use crate::util::{now_unix, rfc3339};

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user (argon2id-hashed; the password policy applies).
    #[command(
        after_help = "Examples:\n  tenantd user create ada@example.com --password 'correct-horse-battery' --tenant acme --role owner\n  tenantd user create ops@example.com --password '…' --platform-admin"
    )]
    Create {
        email: String,
        #[arg(long)]
        password: String,
        /// Add the user to this tenant (with --role).
        #[arg(long, requires = "role")]
        tenant: Option<String>,
        /// owner, admin, member, viewer, or a custom role of the tenant.
        #[arg(long, requires = "tenant")]
        role: Option<String>,
        /// May manage all tenants (never sees tenant data without a membership).
        #[arg(long)]
        platform_admin: bool,
    },
    /// List users and their tenants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Give a user a role in a tenant.
    AddToTenant {
        email: String,
        slug: String,
        #[arg(long)]
        role: String,
    },
    /// Set a new password (ends the user's sessions). Without --password one is generated and
    /// printed once.
    ResetPassword {
        email: String,
        #[arg(long)]
        password: Option<String>,
    },
}

pub fn run(app: Arc<App>, cmd: UserCmd) -> CliResult {
    match cmd {
        UserCmd::Create { email, password, tenant, role, platform_admin } => {
            let id = auth::create_user(&app, &email, &password, platform_admin)?;
            println!("created user {email} (id {id}){}", if platform_admin { " as platform admin" } else { "" });
            if let (Some(slug), Some(role)) = (tenant, role) {
                add_to_tenant(&app, &email, &slug, &role)?;
            }
        }
        UserCmd::List { json } => {
            let conn = app.catalog.conn()?;
            let users = identity::list_users(&conn)?;
            let mut rows = Vec::new();
            for u in &users {
                let tenants: Vec<serde_json::Value> = identity::tenants_of(&conn, u.id)?
                    .into_iter()
                    .map(|(_, slug, _, role)| json!({"slug": slug, "role": role}))
                    .collect();
                rows.push(json!({"id": u.id, "email": u.email, "platform_admin": u.is_platform_admin,
                                 "mfa": u.totp_enabled, "created_at": rfc3339(u.created_at), "tenants": tenants}));
            }
            if json {
                print_json(&rows)?;
            } else {
                println!("{:<6} {:<36} {:<6} {:<5} TENANTS", "ID", "EMAIL", "ADMIN", "MFA");
                for r in &rows {
                    let tenants: Vec<String> = r["tenants"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|t| {
                                    format!("{}:{}", t["slug"].as_str().unwrap_or(""), t["role"].as_str().unwrap_or(""))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    println!(
                        "{:<6} {:<36} {:<6} {:<5} {}",
                        r["id"],
                        r["email"].as_str().unwrap_or(""),
                        if r["platform_admin"] == true { "yes" } else { "" },
                        if r["mfa"] == true { "on" } else { "" },
                        tenants.join(" ")
                    );
                }
                println!("{} users", rows.len());
            }
        }
        UserCmd::AddToTenant { email, slug, role } => add_to_tenant(&app, &email, &slug, &role)?,
        UserCmd::ResetPassword { email, password } => {
            let (pw, generated) = match password {
                Some(p) => (p, false),
                None => (auth::generate_password(), true),
            };
            auth::reset_password(&app, &email, &pw)?;
            if generated {
                println!("new password for {email} (shown once): {pw}");
            } else {
                println!("password for {email} changed; their sessions were ended");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn add_to_tenant(app: &App, email: &str, slug: &str, role: &str) -> CliResult<()> {
    let t = app.tenant(&Slug::parse(slug)?)?;
    perms::validate_role_name(role)?;
    let conn = app.catalog.conn()?;
    if !perms::BUILTIN_ROLES.contains(&role) && identity::custom_role(&conn, &t.id, role)?.is_none() {
        return Err(CliError::usage(format!(
            "unknown role {role:?} in {slug}: use owner, admin, member, viewer or a custom role"
        )));
    }
    let user = identity::user_by_email(&conn, email.trim())?
        .ok_or_else(|| CliError::usage(format!("no user {email:?}: create it with `tenantd user create`")))?;
    drop(conn);
    crate::limits::check_seat(app, &t)?;
    app.change(|tx| identity::add_membership(tx, &t.id, user.id, role, now_unix()))?;
    println!("{} is {role} in {slug}", user.email);
    Ok(())
}
