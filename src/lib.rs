//! tenantd: one binary that turns one server into a multi-tenant SaaS platform. Every tenant
//! lives in its own SQLite file; `catalog.db` knows the tenants. See `docs/architecture.md`.

pub mod analytics;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod billing;
pub mod cache;
pub mod catalog;
pub mod cdn;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod demo;
pub mod directory;
pub mod error;
pub mod fleet;
pub mod http;
pub mod ids;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod migration;
pub mod notify;
pub mod records;
pub mod replica;
pub mod security;
pub mod store;
pub mod tenancy;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod ui;
pub mod util;
