//! `tenantd billing …`: subscriptions, local invoices, dunning (issue 20).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::{print_json, CliError, CliResult};
use crate::app::App;
use crate::billing::{self, invoice, money, subscription};
use crate::catalog::{billing as records, tenants};
use crate::ids::Slug;
use crate::tenancy::Actor;

#[derive(Subcommand, Debug)]
pub enum BillingCmd {
    /// Every tenant's subscription (or one tenant's, with its history and ledger).
    Status {
        #[arg(long, value_name = "SLUG")]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Close the periods that ended by --as-of (default: now): invoices, trial ends, renewals,
    /// then dunning (past due → read-only after the grace period → suspended after retention).
    #[command(
        after_help = "The server runs this every hour by itself. Safe to run again: a period is invoiced once.\n\nExamples:\n  tenantd billing run\n  tenantd billing run --as-of 2026-11-30"
    )]
    Run {
        /// A date or RFC 3339 UTC time.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Invoices, newest first.
    Invoices {
        #[arg(long, value_name = "SLUG")]
        tenant: Option<String>,
        /// draft, open, paid, void or uncollectible.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One invoice: JSON, or the printable page with --html.
    Invoice {
        number: String,
        #[arg(long)]
        html: bool,
    },
    /// Record that an invoice was paid (restores a held tenant at once when nothing else is overdue).
    MarkPaid { number: String },
    /// Void an open invoice.
    Void { number: String },
    /// Write an open invoice off: the subscription becomes `unpaid`.
    MarkUncollectible { number: String },
    /// Cancel a tenant's subscription at the end of its period (or --now).
    Cancel {
        slug: String,
        #[arg(long)]
        now: bool,
    },
    /// Undo a cancellation at period end.
    Resume { slug: String },
    /// Make the calls queued for Stripe now (the server makes them every 5 s), and queue the
    /// meter events of the hours that closed.
    Sync {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(app: Arc<App>, cmd: BillingCmd) -> CliResult {
    let actor = Actor::cli();
    match cmd {
        BillingCmd::Status { tenant, json } => status(&app, tenant.as_deref(), json),
        BillingCmd::Run { as_of, json } => {
            let as_of = match as_of {
                Some(s) => crate::util::parse_time(&s).ok_or_else(|| {
                    CliError::usage(format!("--as-of {s:?}: give YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"))
                })?,
                None => crate::util::now_unix(),
            };
            // A date to come would invoice periods not used yet and hold tenants whose
            // invoices are not due: only catching up (or now) is allowed.
            if as_of > crate::util::now_unix() + 60 {
                return Err(CliError::usage("--as-of is in the future: billing run closes periods that already ended"));
            }
            let r = invoice::run(&app, as_of, &actor)?;
            if json {
                print_json(&r)?;
            } else {
                for i in &r.invoices {
                    println!("invoice {}  {}  {}", i.number, i.tenant_id, money(i.total_cents, &i.currency));
                }
                let d = &r.dunning;
                println!(
                    "as of {}: {} invoices, {} trials ended, {} canceled; {} past due, {} read-only, {} restored, {} suspended",
                    crate::util::rfc3339(as_of),
                    r.invoices.len(),
                    r.trials_ended,
                    r.canceled,
                    d.past_due.len(),
                    d.held.len(),
                    d.released.len(),
                    d.suspended.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BillingCmd::Invoices { tenant, status, json } => {
            let slug = tenant.map(|s| Slug::parse(&s)).transpose()?;
            let list = invoice::list(&app, slug.as_ref(), status.as_deref())?;
            if json {
                print_json(
                    &list.iter().map(|(s, i)| serde_json::json!({"tenant": s, "invoice": i})).collect::<Vec<_>>(),
                )?;
            } else {
                println!("{:<12} {:<20} {:<14} {:>14} {:<10} DUE", "NUMBER", "TENANT", "STATUS", "TOTAL", "ISSUED");
                for (slug, i) in &list {
                    let date = |t: i64| crate::util::rfc3339(t).get(..10).unwrap_or("").to_string();
                    println!(
                        "{:<12} {:<20} {:<14} {:>14} {:<10} {}",
                        i.number,
                        slug,
                        i.status,
                        money(i.total_cents, &i.currency),
                        date(i.issued_at),
                        date(i.due_at)
                    );
                }
                println!("{} invoices", list.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        BillingCmd::Invoice { number, html } => {
            let conn = app.catalog.conn()?;
            let inv = records::invoice_by_number(&conn, &number)?
                .ok_or_else(|| CliError::usage(format!("no invoice {number:?} (see `tenantd billing invoices`)")))?;
            if html {
                let name = crate::ids::TenantId::parse(&inv.tenant_id)
                    .ok()
                    .and_then(|id| tenants::find_by_id(&conn, &id).ok().flatten())
                    .map(|t| t.name)
                    .unwrap_or_else(|| inv.tenant_id.clone());
                println!("{}", invoice::render_html(&inv, &name, &app.config.billing.issuer));
            } else {
                print_json(&inv)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BillingCmd::MarkPaid { number } => marked(&app, &number, "paid", &actor),
        BillingCmd::Void { number } => marked(&app, &number, "void", &actor),
        BillingCmd::MarkUncollectible { number } => marked(&app, &number, "uncollectible", &actor),
        BillingCmd::Cancel { slug, now } => {
            let s = subscription::cancel(&app, &Slug::parse(&slug)?, !now, &actor)?;
            println!(
                "{slug}: {} ({})",
                s.status,
                if s.cancel_at_period_end { "ends at the end of its period" } else { "ended" }
            );
            Ok(ExitCode::SUCCESS)
        }
        BillingCmd::Sync { json } => {
            let now = crate::util::now_unix();
            let queued = billing::queue_meter_events(&app, now)?;
            let r = billing::provider::drain(&app, now)?;
            if json {
                print_json(&r)?;
            } else {
                for f in r.failed.iter().chain(&r.retried) {
                    println!("FAILED  {f}");
                }
                println!(
                    "{queued} meter events queued; {} calls made, {} to retry, {} given up, {} still queued",
                    r.done,
                    r.retried.len(),
                    r.failed.len(),
                    r.pending
                );
            }
            Ok(if r.failed.is_empty() && r.retried.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        BillingCmd::Resume { slug } => {
            let s = subscription::resume(&app, &Slug::parse(&slug)?, &actor)?;
            println!("{slug}: {} (continues)", s.status);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn marked(app: &App, number: &str, status: &str, actor: &Actor) -> CliResult {
    let inv = invoice::mark(app, number, status, actor)?;
    println!("invoice {} is {}", inv.number, inv.status);
    Ok(ExitCode::SUCCESS)
}

fn status(app: &App, tenant: Option<&str>, json: bool) -> CliResult {
    let conn = app.catalog.conn()?;
    let all = tenants::list(&conn, false)?;
    let list: Vec<_> = match tenant {
        Some(s) => vec![tenants::get_by_slug(&conn, &Slug::parse(s)?)?],
        None => all,
    };
    let mut rows = Vec::new();
    for t in &list {
        rows.push(serde_json::json!({
            "tenant": t.slug.as_str(),
            "plan": t.plan,
            "read_only": t.billing_hold,
            "subscription": records::current(&conn, &t.id)?,
            "history": if tenant.is_some() { serde_json::to_value(records::history(&conn, &t.id)?).unwrap_or_default() } else { serde_json::Value::Null },
            "ledger": if tenant.is_some() { serde_json::to_value(records::ledger(&conn, Some(&t.id))?).unwrap_or_default() } else { serde_json::Value::Null },
        }));
    }
    if json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("provider {}", billing::Provider::of(app).as_str());
    let (pending, trouble) = billing::provider::backlog(&conn)?;
    if pending > 0 || !trouble.is_empty() {
        println!("{pending} calls queued for Stripe; failing:");
        for t in &trouble {
            println!("  {} {}: {}", t.op, t.tenant_id, t.last_error.as_deref().unwrap_or(""));
        }
    }
    println!("{:<20} {:<12} {:<10} {:>14} {:<22} NOTE", "TENANT", "PLAN", "STATUS", "PRICE", "PERIOD ENDS");
    for (t, r) in list.iter().zip(&rows) {
        match records::current(&conn, &t.id)? {
            Some(s) => println!(
                "{:<20} {:<12} {:<10} {:>14} {:<22} {}{}",
                t.slug,
                s.plan,
                s.status,
                format!("{}/{}", money(s.amount_cents, &s.currency), s.interval),
                crate::util::rfc3339(s.current_period_end),
                if s.cancel_at_period_end { "cancels at period end " } else { "" },
                if r["read_only"] == true { "READ-ONLY (unpaid)" } else { "" }
            ),
            None => println!("{:<20} {:<12} {:<10}", t.slug, t.plan, "-"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
