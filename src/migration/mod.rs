//! Migration tools (issue 19): existing single-tenant application databases become tenants.
//!
//! - `source`: untrusted source files, opened read-only and defensively; the run's snapshot.
//! - `postgres` (cargo feature `postgres`): a PostgreSQL database copied into such a snapshot;
//!   `pgtypes`: how its types are stored in SQLite, and the DDL.
//! - `inspect`: the source's tables, keys, indexes, views and triggers.
//! - `roles`: each table's role in a split (root, dependent, junction, self-referencing,
//!   lookup, system) and candidate tenant columns.
//! - `analyze`: `analyze-schema` (profiles, roles, candidates, blockers; emits a config and
//!   the tenant schema).
//! - `config`: the JSON config (`migrate-from-config`), which the flags also become.
//! - `plan`: tables to copy, with renames, drops, defaults and expressions applied.
//! - `map`: a split's tenant map (row → tenant), built with SQL in a scratch database.
//! - `build`: tenant files built in batches, one pass over each source table per batch.
//! - `users`: the source app's users and roles into tenantd's identity, hashes kept.
//! - `validate`: counts, content hashes, integrity and foreign keys, per tenant and table.
//! - `run`: one run end to end; `register`: all-or-nothing registration, rollback.

pub mod analyze;
pub mod build;
pub mod config;
pub mod inspect;
pub mod map;
#[cfg(feature = "postgres")]
mod pgcatalog;
#[cfg(feature = "postgres")]
pub mod pgtypes;
pub mod plan;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod register;
pub mod roles;
pub mod run;
pub mod source;
pub mod users;
pub mod validate;

pub use config::MigrationConfig;
pub use register::rollback;
pub use run::{run, Options, RunReport};
pub use validate::validate;
