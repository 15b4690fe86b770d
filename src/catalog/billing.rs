//! Billing records (`billing_*`, `invoices`, `invoice_lines`, `tenant_billing_holds`): rows in
//! and out, no rules (those are `billing`'s).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::error::Result;
use crate::ids::TenantId;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Subscription {
    pub id: i64,
    pub tenant_id: String,
    pub plan: String,
    pub interval: String,
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
    pub current_period_start: i64,
    pub current_period_end: i64,
    /// Since when the current period is charged at `amount_cents`: its start, or the last plan
    /// change within it (the part before is already a pending charge at the old price).
    pub segment_start: i64,
    pub trial_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub past_due_since: Option<i64>,
    pub canceled_at: Option<i64>,
    pub provider: String,
    pub provider_customer_id: Option<String>,
    pub provider_subscription_id: Option<String>,
    pub provider_updated_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub ended_at: Option<i64>,
}

const SUB_COLS: &str = "id, tenant_id, plan, interval, status, amount_cents, currency, current_period_start, \
    current_period_end, trial_end, cancel_at_period_end, past_due_since, canceled_at, provider, provider_customer_id, \
    provider_subscription_id, provider_updated_at, created_at, updated_at, ended_at, segment_start";

fn sub_row(r: &Row<'_>) -> rusqlite::Result<Subscription> {
    Ok(Subscription {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        plan: r.get(2)?,
        interval: r.get(3)?,
        status: r.get(4)?,
        amount_cents: r.get(5)?,
        currency: r.get(6)?,
        current_period_start: r.get(7)?,
        current_period_end: r.get(8)?,
        trial_end: r.get(9)?,
        cancel_at_period_end: r.get(10)?,
        past_due_since: r.get(11)?,
        canceled_at: r.get(12)?,
        provider: r.get(13)?,
        provider_customer_id: r.get(14)?,
        provider_subscription_id: r.get(15)?,
        provider_updated_at: r.get(16)?,
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
        ended_at: r.get(19)?,
        segment_start: r.get(20)?,
    })
}

/// Inserts a subscription (its `id` is ignored) and returns the new id.
pub fn insert_subscription(conn: &Connection, s: &Subscription) -> Result<i64> {
    conn.execute(
        &format!(
            "INSERT INTO billing_subscriptions ({}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            SUB_COLS
        ),
        params![
            s.tenant_id,
            s.plan,
            s.interval,
            s.status,
            s.amount_cents,
            s.currency,
            s.current_period_start,
            s.current_period_end,
            s.trial_end,
            s.cancel_at_period_end,
            s.past_due_since,
            s.canceled_at,
            s.provider,
            s.provider_customer_id,
            s.provider_subscription_id,
            s.provider_updated_at,
            s.created_at,
            s.updated_at,
            s.ended_at,
            s.segment_start
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Writes every mutable field of a subscription back.
pub fn update_subscription(conn: &Connection, s: &Subscription) -> Result<()> {
    conn.execute(
        "UPDATE billing_subscriptions SET plan = ?2, interval = ?3, status = ?4, amount_cents = ?5, currency = ?6, \
         current_period_start = ?7, current_period_end = ?8, trial_end = ?9, cancel_at_period_end = ?10, \
         past_due_since = ?11, canceled_at = ?12, provider_customer_id = ?13, provider_subscription_id = ?14, \
         provider_updated_at = ?15, updated_at = ?16, ended_at = ?17, segment_start = ?18 WHERE id = ?1",
        params![
            s.id,
            s.plan,
            s.interval,
            s.status,
            s.amount_cents,
            s.currency,
            s.current_period_start,
            s.current_period_end,
            s.trial_end,
            s.cancel_at_period_end,
            s.past_due_since,
            s.canceled_at,
            s.provider_customer_id,
            s.provider_subscription_id,
            s.provider_updated_at,
            s.updated_at,
            s.ended_at,
            s.segment_start
        ],
    )?;
    Ok(())
}

/// The tenant's current subscription (not ended), if any.
pub fn current(conn: &Connection, tenant: &TenantId) -> Result<Option<Subscription>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SUB_COLS} FROM billing_subscriptions WHERE tenant_id = ?1 AND ended_at IS NULL"
        ))?
        .query_row([tenant.as_str()], sub_row)
        .optional()?)
}

pub fn by_provider_id(conn: &Connection, provider_subscription_id: &str) -> Result<Option<Subscription>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SUB_COLS} FROM billing_subscriptions WHERE provider_subscription_id = ?1 AND ended_at IS NULL \
             ORDER BY id DESC LIMIT 1"
        ))?
        .query_row([provider_subscription_id], sub_row)
        .optional()?)
}

/// Every current subscription, in tenant order.
pub fn all_current(conn: &Connection) -> Result<Vec<Subscription>> {
    let mut stmt = conn
        .prepare(&format!("SELECT {SUB_COLS} FROM billing_subscriptions WHERE ended_at IS NULL ORDER BY tenant_id"))?;
    let rows = stmt.query_map([], sub_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn history(conn: &Connection, tenant: &TenantId) -> Result<Vec<Subscription>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {SUB_COLS} FROM billing_subscriptions WHERE tenant_id = ?1 ORDER BY id"))?;
    let rows = stmt.query_map([tenant.as_str()], sub_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One line of the ledger of subscription changes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LedgerEntry {
    pub tenant_id: String,
    pub subscription_id: Option<i64>,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub from_plan: Option<String>,
    pub to_plan: Option<String>,
    pub from_amount_cents: Option<i64>,
    pub to_amount_cents: Option<i64>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub interval: Option<String>,
    pub currency: Option<String>,
    pub details: serde_json::Value,
}

pub fn append_ledger(conn: &Connection, e: &LedgerEntry) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO billing_ledger (tenant_id, subscription_id, at, actor, kind, from_plan, to_plan, from_amount_cents, \
         to_amount_cents, from_status, to_status, interval, currency, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        e.tenant_id,
        e.subscription_id,
        e.at,
        e.actor,
        e.kind,
        e.from_plan,
        e.to_plan,
        e.from_amount_cents,
        e.to_amount_cents,
        e.from_status,
        e.to_status,
        e.interval,
        e.currency,
        e.details.to_string()
    ])?;
    Ok(())
}

pub fn ledger(conn: &Connection, tenant: Option<&TenantId>) -> Result<Vec<LedgerEntry>> {
    let mut stmt = conn.prepare(
        "SELECT tenant_id, subscription_id, at, actor, kind, from_plan, to_plan, from_amount_cents, to_amount_cents, \
         from_status, to_status, interval, currency, details FROM billing_ledger WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([tenant.map(TenantId::as_str)], |r| {
        Ok(LedgerEntry {
            tenant_id: r.get(0)?,
            subscription_id: r.get(1)?,
            at: r.get(2)?,
            actor: r.get(3)?,
            kind: r.get(4)?,
            from_plan: r.get(5)?,
            to_plan: r.get(6)?,
            from_amount_cents: r.get(7)?,
            to_amount_cents: r.get(8)?,
            from_status: r.get(9)?,
            to_status: r.get(10)?,
            interval: r.get(11)?,
            currency: r.get(12)?,
            details: serde_json::from_str(&r.get::<_, String>(13)?).unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn add_pending(
    conn: &Connection,
    tenant: &str,
    kind: &str,
    description: &str,
    amount_cents: i64,
    now: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO billing_pending (tenant_id, kind, description, amount_cents, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![tenant, kind, description, amount_cents, now],
    )?;
    Ok(())
}

/// Pending charges not yet on an invoice: (id, kind, description, amount).
pub fn pending(conn: &Connection, tenant: &str) -> Result<Vec<(i64, String, String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, description, amount_cents FROM billing_pending WHERE tenant_id = ?1 AND invoice_id IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn claim_pending(conn: &Connection, ids: &[i64], invoice_id: i64) -> Result<()> {
    let mut stmt = conn.prepare_cached("UPDATE billing_pending SET invoice_id = ?2 WHERE id = ?1")?;
    for id in ids {
        stmt.execute(params![id, invoice_id])?;
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub struct Invoice {
    pub id: i64,
    pub number: String,
    pub tenant_id: String,
    pub subscription_id: Option<i64>,
    pub status: String,
    pub currency: String,
    pub period_start: i64,
    pub period_end: i64,
    pub subtotal_cents: i64,
    pub tax_rate_percent: f64,
    pub tax_cents: i64,
    pub total_cents: i64,
    pub issued_at: i64,
    pub due_at: i64,
    pub paid_at: Option<i64>,
    pub voided_at: Option<i64>,
    pub lines: Vec<InvoiceLine>,
}

#[derive(Clone, Debug, Serialize)]
pub struct InvoiceLine {
    pub kind: String,
    pub description: String,
    pub quantity: f64,
    pub unit_cents: f64,
    pub amount_cents: i64,
}

/// The next number of `counter` (in the caller's transaction: a rollback returns it, so numbers
/// have no gaps).
pub fn next_number(conn: &Connection, counter: &str) -> Result<i64> {
    conn.execute(
        "INSERT INTO billing_counters (name, value) VALUES (?1, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
        [counter],
    )?;
    Ok(conn.query_row("SELECT value FROM billing_counters WHERE name = ?1", [counter], |r| r.get(0))?)
}

pub fn insert_invoice(conn: &Connection, inv: &Invoice) -> Result<i64> {
    conn.execute(
        "INSERT INTO invoices (number, tenant_id, subscription_id, status, currency, period_start, period_end, subtotal_cents, \
         tax_rate_percent, tax_cents, total_cents, issued_at, due_at, paid_at, voided_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            inv.number,
            inv.tenant_id,
            inv.subscription_id,
            inv.status,
            inv.currency,
            inv.period_start,
            inv.period_end,
            inv.subtotal_cents,
            inv.tax_rate_percent,
            inv.tax_cents,
            inv.total_cents,
            inv.issued_at,
            inv.due_at,
            inv.paid_at,
            inv.voided_at
        ],
    )?;
    let id = conn.last_insert_rowid();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO invoice_lines (invoice_id, position, kind, description, quantity, unit_cents, amount_cents) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (i, l) in inv.lines.iter().enumerate() {
        stmt.execute(params![id, i as i64, l.kind, l.description, l.quantity, l.unit_cents, l.amount_cents])?;
    }
    Ok(id)
}

const INV_COLS: &str =
    "id, number, tenant_id, subscription_id, status, currency, period_start, period_end, subtotal_cents, \
    tax_rate_percent, tax_cents, total_cents, issued_at, due_at, paid_at, voided_at";

fn invoice_row(r: &Row<'_>) -> rusqlite::Result<Invoice> {
    Ok(Invoice {
        id: r.get(0)?,
        number: r.get(1)?,
        tenant_id: r.get(2)?,
        subscription_id: r.get(3)?,
        status: r.get(4)?,
        currency: r.get(5)?,
        period_start: r.get(6)?,
        period_end: r.get(7)?,
        subtotal_cents: r.get(8)?,
        tax_rate_percent: r.get(9)?,
        tax_cents: r.get(10)?,
        total_cents: r.get(11)?,
        issued_at: r.get(12)?,
        due_at: r.get(13)?,
        paid_at: r.get(14)?,
        voided_at: r.get(15)?,
        lines: Vec::new(),
    })
}

fn with_lines(conn: &Connection, mut inv: Invoice) -> Result<Invoice> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, description, quantity, unit_cents, amount_cents FROM invoice_lines WHERE invoice_id = ?1 ORDER BY position",
    )?;
    inv.lines = stmt
        .query_map([inv.id], |r| {
            Ok(InvoiceLine {
                kind: r.get(0)?,
                description: r.get(1)?,
                quantity: r.get(2)?,
                unit_cents: r.get(3)?,
                amount_cents: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(inv)
}

pub fn invoice_by_number(conn: &Connection, number: &str) -> Result<Option<Invoice>> {
    let inv = conn
        .query_row(&format!("SELECT {INV_COLS} FROM invoices WHERE number = ?1"), [number], invoice_row)
        .optional()?;
    inv.map(|i| with_lines(conn, i)).transpose()
}

/// Invoices of one tenant (or all), newest first, with their lines.
pub fn invoices(conn: &Connection, tenant: Option<&str>, status: Option<&str>) -> Result<Vec<Invoice>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {INV_COLS} FROM invoices WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR status = ?2) ORDER BY id DESC"
    ))?;
    let rows: Vec<Invoice> = stmt.query_map(params![tenant, status], invoice_row)?.collect::<rusqlite::Result<_>>()?;
    rows.into_iter().map(|i| with_lines(conn, i)).collect()
}

pub fn set_invoice_status(conn: &Connection, id: i64, status: &str, at: i64) -> Result<()> {
    let (paid, voided) = match status {
        "paid" => (Some(at), None),
        "void" | "uncollectible" => (None, Some(at)),
        _ => (None, None),
    };
    conn.execute(
        "UPDATE invoices SET status = ?2, paid_at = coalesce(?3, paid_at), voided_at = coalesce(?4, voided_at) WHERE id = ?1",
        params![id, status, paid, voided],
    )?;
    Ok(())
}

/// Open invoices of a tenant whose due date has passed by `now`.
pub fn overdue(conn: &Connection, tenant: &str, now: i64) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM invoices WHERE tenant_id = ?1 AND status = 'open' AND due_at <= ?2",
        params![tenant, now],
        |r| r.get(0),
    )?)
}

pub fn set_hold(conn: &Connection, tenant: &str, hold: bool, now: i64, reason: &str) -> Result<bool> {
    let n = if hold {
        conn.execute(
            "INSERT OR IGNORE INTO tenant_billing_holds (tenant_id, since, reason) VALUES (?1, ?2, ?3)",
            params![tenant, now, reason],
        )?
    } else {
        conn.execute("DELETE FROM tenant_billing_holds WHERE tenant_id = ?1", [tenant])?
    };
    Ok(n > 0)
}
