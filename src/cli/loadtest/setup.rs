//! Credentials for `tenantd loadtest`: either read from a file, or provisioned directly in a
//! data dir through the library (the same calls `tenant create` and the API-key handler make).
//! A server running on that data dir sees the new tenants and keys through the catalog
//! generation that `App::change` bumps (its watcher polls it every 200 ms).

use std::path::Path;
use std::time::Instant;

use serde::Deserialize;

use super::super::{CliError, CliResult};
use super::seed::{self, Plan};
use crate::app::App;
use crate::catalog::identity::{self, NewApiKey};
use crate::catalog::tenants::{self, TenantRecord, TenantStatus};
use crate::error::Error;
use crate::ids::Slug;
use crate::tenancy::{self, Actor};
use crate::util::{now_unix, random_hex, sha256_hex};

/// One tenant the load goes to, with the token that authenticates there.
#[derive(Clone, Debug, Deserialize)]
pub struct Credential {
    pub slug: String,
    pub token: String,
}

/// Name of the API keys loadtest mints; earlier ones of that name are revoked on each run.
const KEY_NAME: &str = "loadtest";
/// Tenants whose user and key are written per catalog transaction.
const CHUNK: usize = 500;

pub fn slug_for(i: usize) -> String {
    format!("load-{i:05}")
}

/// Reads `[{"slug": "...", "token": "..."}, ...]`, checked so neither can break a request line.
pub fn read_credentials(path: &Path, want: Option<usize>) -> CliResult<Vec<Credential>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read --credentials {}: {e}", path.display())))?;
    let mut creds: Vec<Credential> = serde_json::from_str(&text).map_err(|e| {
        CliError::usage(format!("--credentials {}: expected [{{\"slug\": …, \"token\": …}}]: {e}", path.display()))
    })?;
    for c in &creds {
        Slug::parse(&c.slug)?;
        if c.token.is_empty() || !c.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CliError::usage(format!(
                "--credentials: the token of {} is empty or not printable ASCII",
                c.slug
            )));
        }
    }
    if creds.is_empty() {
        return Err(CliError::usage(format!("--credentials {} holds no tenants", path.display())));
    }
    if let Some(n) = want {
        if n > creds.len() {
            return Err(CliError::usage(format!(
                "--tenants {n} but --credentials {} holds only {}",
                path.display(),
                creds.len()
            )));
        }
        creds.truncate(n);
    }
    Ok(creds)
}

/// Creates (or reuses) tenants `load-00001`… on `plan`, each seeded as `seeding` says (ids
/// 1..=rows of the loaded table and of its parents), with a member user and a fresh write-scope
/// API key. Idempotent apart from the keys:
/// the previous run's `loadtest` keys of these tenants are revoked, new ones minted (only key
/// hashes are stored, so old keys cannot be recovered).
pub fn provision(app: &App, n: usize, seeding: &Plan, plan: &str, progress: bool) -> CliResult<Vec<Credential>> {
    tenancy::validate_plan(app, plan)?;
    let started = Instant::now();
    let mut list = Vec::with_capacity(n);
    let mut created = 0;
    for i in 1..=n {
        let slug = Slug::parse(&slug_for(i))?;
        let found = tenants::find_by_slug(&*app.catalog.conn()?, &slug)?;
        let t = match found {
            Some(t) if t.status != TenantStatus::Active => {
                return Err(CliError::usage(format!(
                    "tenant {slug} exists but is {}: resume it (tenantd tenant resume) or purge it",
                    t.status.as_str()
                )))
            }
            Some(t) if t.plan != plan => tenancy::set_plan(app, &slug, plan, &Actor::cli())?,
            Some(t) => t,
            None => {
                created += 1;
                tenancy::create(app, &slug, &format!("Load test {i}"), Some(plan), &Actor::cli())?
            }
        };
        seed::seed(app, &t, seeding)?;
        list.push(t);
        if progress && i % 250 == 0 {
            eprint!("\rprovisioning tenants: {i}/{n} ({:.0}/s)   ", i as f64 / started.elapsed().as_secs_f64());
        }
    }
    if progress && n >= 250 {
        eprintln!();
    }
    // Users nobody signs in as: one argon2 hash of a random, never-shown password serves them
    // all (hashing 10,000 times would take minutes and prove nothing here).
    let hash = crate::auth::password::hash(&format!("{}-{}", random_hex(16), random_hex(16)), &app.config.auth)?;
    let mut creds = Vec::with_capacity(n);
    for chunk in list.chunks(CHUNK) {
        app.change(|tx| {
            for t in chunk {
                creds.push(Credential { slug: t.slug.as_str().to_string(), token: mint_key(tx, t, &hash)? });
            }
            Ok(())
        })?;
    }
    eprintln!(
        "loadtest: {n} tenants ready ({created} created, {} reused), {}, plan {plan}, in {:.1} s",
        n - created,
        seeding.describe(),
        started.elapsed().as_secs_f64()
    );
    Ok(creds)
}

/// In the caller's transaction: the tenant's load user and membership (once), then a new key.
fn mint_key(tx: &rusqlite::Transaction<'_>, t: &TenantRecord, hash: &str) -> Result<String, Error> {
    let now = now_unix();
    let email = format!("{}@loadtest.invalid", t.slug);
    let user = match identity::user_by_email(tx, &email)? {
        Some(u) => u.id,
        None => identity::insert_user(tx, &email, hash, false, now)?,
    };
    if identity::membership_of(tx, &t.id, user)?.is_none() {
        identity::add_membership(tx, &t.id, user, "member", now)?;
    }
    for old in identity::api_keys_of(tx, &t.id)? {
        if old.name == KEY_NAME && old.revoked_at.is_none() {
            identity::revoke_api_key(tx, &t.id, &old.id, now)?;
        }
    }
    let id = random_hex(6);
    let key = format!("{}{id}_{}", crate::auth::KEY_PREFIX, random_hex(32));
    identity::insert_api_key(
        tx,
        &NewApiKey {
            id: &id,
            tenant: &t.id,
            name: KEY_NAME,
            key_hash: &sha256_hex(key.as_bytes()),
            scope: "write",
            tables: None,
            created_by: Some(user),
            now,
        },
    )?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(&p, r#"[{"slug":"acme","token":"tdk_x"},{"slug":"beta","token":"tdk_y"}]"#).unwrap();
        assert_eq!(read_credentials(&p, None).unwrap().len(), 2);
        assert_eq!(read_credentials(&p, Some(1)).unwrap()[0].slug, "acme");
        assert!(read_credentials(&p, Some(3)).is_err(), "more tenants than the file holds");
        std::fs::write(&p, r#"[{"slug":"acme","token":"tdk_x\r\nX-Evil: 1"}]"#).unwrap();
        assert!(read_credentials(&p, None).is_err(), "CR/LF in a token would split the request");
        std::fs::write(&p, r#"[{"slug":"../etc","token":"t"}]"#).unwrap();
        assert!(read_credentials(&p, None).is_err());
        std::fs::write(&p, "[]").unwrap();
        assert!(read_credentials(&p, None).is_err());
        assert_eq!(slug_for(7), "load-00007");
    }
}
