//! Platform revenue (issue 21, item 5): MRR and its movements (new, expansion, contraction,
//! churn, reactivation) per calendar month, per currency and per plan, with the rates derived
//! from them (logo churn, gross and net revenue churn, retention, ARPA, LTV).
//!
//! Replayed from the billing ledger (`billing_ledger`, written by `billing::subscription`,
//! `invoice`, `dunning` and `webhook`). Every ledger line carries the subscription's whole state
//! after the change (plan, amount, interval, status, currency), so a tenant's MRR at any moment
//! is the one its last line before that moment gives. Movements are classified per tenant and
//! per ledger line (ChartMogul's definitions), so for every month and currency
//! `start + new + expansion + reactivation − contraction − churn = end` holds exactly.
//! Formulas and decisions: docs/analytics.md, "Revenue".

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use serde::Serialize;

use crate::catalog::billing::{self as records, LedgerEntry};
use crate::config::PlanConfig;
use crate::error::Result;
use crate::util::{add_months, month_bounds, rfc3339};

/// Statuses whose price is MRR: the ones still billed (Stripe's definition: `active` and
/// `past_due`). Trials, `unpaid`, `paused`, `incomplete*` and `canceled` are not.
/// A subscription set to cancel at period end stays `active` until it ends, so it counts until
/// then.
const PAYING: &[&str] = &["active", "past_due"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    New,
    Expansion,
    Contraction,
    Churn,
    Reactivation,
}

/// What a tenant's change of MRR from `prev` to `next` is. `paid_before`: the tenant has had
/// MRR in this currency before (a return is a reactivation, not new business).
fn classify(prev: i64, next: i64, paid_before: bool) -> Option<Kind> {
    match (prev, next) {
        (p, n) if p == n => None,
        (0, _) if paid_before => Some(Kind::Reactivation),
        (0, _) => Some(Kind::New),
        (_, 0) => Some(Kind::Churn),
        (p, n) if n > p => Some(Kind::Expansion),
        _ => Some(Kind::Contraction),
    }
}

/// The five MRR movements, each a positive amount in cents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Movements {
    pub new_mrr_cents: i64,
    pub expansion_mrr_cents: i64,
    pub contraction_mrr_cents: i64,
    pub churn_mrr_cents: i64,
    pub reactivation_mrr_cents: i64,
}

impl Movements {
    fn add(&mut self, kind: Kind, amount: i64) {
        let slot = match kind {
            Kind::New => &mut self.new_mrr_cents,
            Kind::Expansion => &mut self.expansion_mrr_cents,
            Kind::Contraction => &mut self.contraction_mrr_cents,
            Kind::Churn => &mut self.churn_mrr_cents,
            Kind::Reactivation => &mut self.reactivation_mrr_cents,
        };
        *slot += amount;
    }

    fn plus(mut self, o: &Movements) -> Movements {
        self.new_mrr_cents += o.new_mrr_cents;
        self.expansion_mrr_cents += o.expansion_mrr_cents;
        self.contraction_mrr_cents += o.contraction_mrr_cents;
        self.churn_mrr_cents += o.churn_mrr_cents;
        self.reactivation_mrr_cents += o.reactivation_mrr_cents;
        self
    }

    /// Net new MRR: new + expansion + reactivation − contraction − churn.
    pub fn net(&self) -> i64 {
        self.new_mrr_cents + self.expansion_mrr_cents + self.reactivation_mrr_cents
            - self.contraction_mrr_cents
            - self.churn_mrr_cents
    }
}

/// One month of one currency, platform-wide.
#[derive(Clone, Debug, Serialize)]
pub struct Month {
    /// `YYYY-MM` (UTC).
    pub month: String,
    pub currency: String,
    pub from: String,
    pub to: String,
    /// The month is not over (it ends at `data_until`).
    pub partial: bool,
    pub start_mrr_cents: i64,
    #[serde(flatten)]
    pub movements: Movements,
    pub net_new_mrr_cents: i64,
    pub end_mrr_cents: i64,
    pub arr_cents: i64,
    pub customers_start: i64,
    pub new_customers: i64,
    pub reactivated_customers: i64,
    pub churned_customers: i64,
    pub customers_end: i64,
    pub logo_churn_rate: Option<f64>,
    pub gross_revenue_churn_rate: Option<f64>,
    pub net_revenue_churn_rate: Option<f64>,
    pub net_revenue_retention: Option<f64>,
    pub gross_revenue_retention: Option<f64>,
    pub arpa_cents: Option<i64>,
    pub ltv_cents: Option<i64>,
    /// Why `ltv_cents` is null.
    pub ltv_withheld: Option<&'static str>,
}

/// One month of one plan in one currency. A tenant moving between plans is a transfer out of
/// the old plan (its old MRR) and into the new one; the difference is the new plan's expansion
/// or contraction. So per plan `start + new + expansion + reactivation + transfer_in −
/// contraction − churn − transfer_out = end`, and the plans' movements add up to the month's.
#[derive(Clone, Debug, Serialize)]
pub struct PlanMonth {
    pub month: String,
    pub currency: String,
    pub plan: String,
    pub start_mrr_cents: i64,
    #[serde(flatten)]
    pub movements: Movements,
    pub transfer_in_mrr_cents: i64,
    pub transfer_out_mrr_cents: i64,
    pub end_mrr_cents: i64,
    pub customers_end: i64,
}

/// The whole range, per currency. Retention here is the cohort's: the customers paying at the
/// range's start, their MRR at its end over their MRR at its start.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub currency: String,
    pub start_mrr_cents: i64,
    #[serde(flatten)]
    pub movements: Movements,
    pub end_mrr_cents: i64,
    pub arr_cents: i64,
    pub customers_start: i64,
    pub customers_end: i64,
    pub net_revenue_retention: Option<f64>,
    pub gross_revenue_retention: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Revenue {
    /// The start of the first month covered (`from` rounded down to its month).
    pub from: String,
    pub to: String,
    /// Where the data stops: `to`, or now if earlier.
    pub data_until: String,
    pub currencies: Vec<String>,
    pub notes: Vec<&'static str>,
    pub summary: Vec<Summary>,
    pub months: Vec<Month>,
    pub by_plan: Vec<PlanMonth>,
}

const NOTES: &[&str] = &[
    "amounts are cents of each row's currency; currencies are never added together",
    "MRR counts active and past_due subscriptions; trials, unpaid, paused and one-off charges are not MRR",
    "a yearly price counts as amount/12 MRR",
];

/// `from`/`to` as `analytics::range` reads them, but `from` defaults to the start of the month
/// eleven months before `to`'s: a year of months.
pub fn range(from: Option<&str>, to: Option<&str>, now: i64) -> Result<(i64, i64)> {
    let (f, t) = super::range(from, to, now)?;
    if from.is_some() {
        return Ok((f, t));
    }
    Ok((add_months(month_bounds(t - 1).0, -11), t))
}

/// The currencies of the priced plans: the rows shown while the ledger is still empty.
pub fn plan_currencies(plans: &BTreeMap<String, PlanConfig>) -> Vec<String> {
    let set: BTreeSet<String> = plans.values().filter(|p| p.is_priced()).map(|p| p.currency.clone()).collect();
    set.into_iter().collect()
}

/// The revenue document for the months overlapping `[from, to)`, replayed from the catalog's
/// ledger as of `now`.
pub fn revenue(conn: &Connection, from: i64, to: i64, now: i64, currencies: &[String]) -> Result<Revenue> {
    Ok(compute(records::ledger(conn, None)?, from, to, now, currencies))
}

/// A tenant's subscription as its last ledger line left it.
#[derive(Clone, Debug)]
struct Sub {
    plan: String,
    currency: String,
    status: String,
    mrr: i64,
}

fn state_after(e: &LedgerEntry, before: Option<&Sub>) -> Sub {
    let keep = |f: fn(&Sub) -> &String| before.map(|b| f(b).clone()).unwrap_or_default();
    let status = e.to_status.clone().unwrap_or_else(|| keep(|b| &b.status));
    let plan = e.to_plan.clone().unwrap_or_else(|| keep(|b| &b.plan));
    let currency = e.currency.as_deref().map(str::to_ascii_lowercase).unwrap_or_else(|| keep(|b| &b.currency));
    let amount = e.to_amount_cents.unwrap_or(0).max(0);
    let mrr = if PAYING.contains(&status.as_str()) {
        crate::billing::monthly_cents(amount, e.interval.as_deref().unwrap_or("month"))
    } else {
        0
    };
    Sub { plan, currency, status, mrr }
}

#[derive(Default)]
struct Totals {
    moves: Movements,
    new_customers: i64,
    reactivated: i64,
    churned: i64,
}

#[derive(Default)]
struct PlanMoves {
    moves: Movements,
    transfer_in: i64,
    transfer_out: i64,
}

/// The movements of one month.
#[derive(Default)]
struct Acc {
    totals: BTreeMap<String, Totals>,
    plans: BTreeMap<(String, String), PlanMoves>,
}

impl Acc {
    fn plan(&mut self, currency: &str, plan: &str) -> &mut PlanMoves {
        self.plans.entry((currency.to_string(), plan.to_string())).or_default()
    }
}

/// Paying tenants at one moment: (currency, tenant) → (plan, MRR), MRR > 0 only.
type Snapshot = BTreeMap<(String, String), (String, i64)>;

struct Replay {
    entries: Vec<LedgerEntry>,
    next: usize,
    subs: BTreeMap<String, Sub>,
    /// (tenant, currency) that have had MRR: a return is a reactivation.
    paid: BTreeSet<(String, String)>,
}

impl Replay {
    fn new(mut entries: Vec<LedgerEntry>) -> Replay {
        // The ledger is in write order; invoice runs write lines dated at the period's end, so
        // order by time (stable: same-second lines keep their write order).
        entries.sort_by_key(|e| e.at);
        Replay { entries, next: 0, subs: BTreeMap::new(), paid: BTreeSet::new() }
    }

    /// Applies every line dated before `until`, counting movements into `acc` if given.
    fn advance(&mut self, until: i64, mut acc: Option<&mut Acc>) {
        while let Some(e) = self.entries.get(self.next).filter(|e| e.at < until) {
            let e = e.clone();
            self.next += 1;
            self.apply(&e, acc.as_deref_mut());
        }
    }

    fn apply(&mut self, e: &LedgerEntry, mut acc: Option<&mut Acc>) {
        let before = self.subs.get(&e.tenant_id).cloned();
        let after = state_after(e, before.as_ref());
        let (mrr, plan, currency) =
            before.map(|b| (b.mrr, b.plan, b.currency)).unwrap_or((0, after.plan.clone(), after.currency.clone()));
        let t = e.tenant_id.as_str();
        if currency == after.currency {
            self.step(acc, t, &currency, (mrr, &plan), (after.mrr, &after.plan));
        } else {
            // A change of currency: churn in the old one, new (or back) in the other.
            self.step(acc.as_deref_mut(), t, &currency, (mrr, &plan), (0, &plan));
            self.step(acc, t, &after.currency, (0, &after.plan), (after.mrr, &after.plan));
        }
        self.subs.insert(e.tenant_id.clone(), after);
    }

    fn step(&mut self, acc: Option<&mut Acc>, tenant: &str, currency: &str, from: (i64, &str), to: (i64, &str)) {
        let ((p, old_plan), (n, new_plan)) = (from, to);
        let key = (tenant.to_string(), currency.to_string());
        let paid_before = self.paid.contains(&key);
        if n > 0 {
            self.paid.insert(key);
        }
        let Some(acc) = acc else { return };
        if p > 0 && n > 0 && old_plan != new_plan {
            acc.plan(currency, old_plan).transfer_out += p;
            acc.plan(currency, new_plan).transfer_in += p;
        }
        let Some(kind) = classify(p, n, paid_before) else { return };
        let amount = (n - p).abs();
        acc.plan(currency, if kind == Kind::Churn { old_plan } else { new_plan }).moves.add(kind, amount);
        let t = acc.totals.entry(currency.to_string()).or_default();
        t.moves.add(kind, amount);
        match kind {
            Kind::New => t.new_customers += 1,
            Kind::Reactivation => t.reactivated += 1,
            Kind::Churn => t.churned += 1,
            Kind::Expansion | Kind::Contraction => {}
        }
    }

    fn snapshot(&self) -> Snapshot {
        self.subs
            .iter()
            .filter(|(_, s)| s.mrr > 0)
            .map(|(t, s)| ((s.currency.clone(), t.clone()), (s.plan.clone(), s.mrr)))
            .collect()
    }
}

/// MRR and paying customers of one currency (and plan, if given) in a snapshot.
fn total(s: &Snapshot, currency: &str, plan: Option<&str>) -> (i64, i64) {
    s.iter()
        .filter(|((c, _), (p, _))| c == currency && plan.is_none_or(|want| want == p))
        .fold((0, 0), |(m, n), (_, (_, mrr))| (m + mrr, n + 1))
}

/// Net and gross revenue retention of the customers paying in `start`: their MRR in `end`
/// (gross: each capped at what it was) over their MRR in `start`.
fn retention(start: &Snapshot, end: &Snapshot, currency: &str) -> (Option<f64>, Option<f64>) {
    let (mut base, mut net, mut gross) = (0, 0, 0);
    for (key, (_, was)) in start.iter().filter(|((c, _), _)| c == currency) {
        let now = end.get(key).map_or(0, |(_, m)| *m);
        base += was;
        net += now;
        gross += now.min(*was);
    }
    (ratio(net, base), ratio(gross, base))
}

fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| (n as f64 / d as f64 * 1e6).round() / 1e6)
}

/// LTV = ARPA / logo churn rate, in cents; withheld (with the reason) when the rate is 0 or
/// undefined. ARPA / rate = (end MRR / customers at end) / (churned / customers at start).
fn ltv(end_mrr: i64, customers_end: i64, customers_start: i64, churned: i64) -> (Option<i64>, Option<&'static str>) {
    if customers_end == 0 {
        return (None, Some("no paying customers at the end of the month, so no ARPA"));
    }
    if customers_start == 0 {
        return (None, Some("no paying customers at the start of the month, so no churn rate"));
    }
    if churned == 0 {
        return (None, Some("no customer churned this month: ARPA / a churn rate of 0 has no bound"));
    }
    let v = end_mrr as f64 * customers_start as f64 / (customers_end as f64 * churned as f64);
    (Some(v.round() as i64), None)
}

fn month_row(
    currency: &str,
    (start, end, partial): (i64, i64, bool),
    open: &Snapshot,
    close: &Snapshot,
    t: Option<&Totals>,
) -> Month {
    let empty = Totals::default();
    let t = t.unwrap_or(&empty);
    let (start_mrr, customers_start) = total(open, currency, None);
    let (end_mrr, customers_end) = total(close, currency, None);
    let m = t.moves;
    let (nrr, grr) = retention(open, close, currency);
    let (ltv_cents, ltv_withheld) = ltv(end_mrr, customers_end, customers_start, t.churned);
    Month {
        month: rfc3339(start).get(..7).unwrap_or_default().to_string(),
        currency: currency.to_string(),
        from: rfc3339(start),
        to: rfc3339(end),
        partial,
        start_mrr_cents: start_mrr,
        movements: m,
        net_new_mrr_cents: m.net(),
        end_mrr_cents: end_mrr,
        arr_cents: end_mrr * 12,
        customers_start,
        new_customers: t.new_customers,
        reactivated_customers: t.reactivated,
        churned_customers: t.churned,
        customers_end,
        logo_churn_rate: ratio(t.churned, customers_start),
        gross_revenue_churn_rate: ratio(m.churn_mrr_cents + m.contraction_mrr_cents, start_mrr),
        net_revenue_churn_rate: ratio(
            m.churn_mrr_cents + m.contraction_mrr_cents - m.expansion_mrr_cents - m.reactivation_mrr_cents,
            start_mrr,
        ),
        net_revenue_retention: nrr,
        gross_revenue_retention: grr,
        arpa_cents: (customers_end > 0).then(|| (end_mrr as f64 / customers_end as f64).round() as i64),
        ltv_cents,
        ltv_withheld,
    }
}

fn plan_rows(month: &str, open: &Snapshot, close: &Snapshot, acc: &Acc) -> Vec<PlanMonth> {
    let mut keys: BTreeSet<(String, String)> =
        open.iter().chain(close.iter()).map(|((c, _), (p, _))| (c.clone(), p.clone())).collect();
    keys.extend(acc.plans.keys().cloned());
    let none = PlanMoves::default();
    keys.into_iter()
        .map(|(currency, plan)| {
            let pm = acc.plans.get(&(currency.clone(), plan.clone())).unwrap_or(&none);
            let (start_mrr, _) = total(open, &currency, Some(&plan));
            let (end_mrr, customers_end) = total(close, &currency, Some(&plan));
            PlanMonth {
                month: month.to_string(),
                currency,
                plan,
                start_mrr_cents: start_mrr,
                movements: pm.moves,
                transfer_in_mrr_cents: pm.transfer_in,
                transfer_out_mrr_cents: pm.transfer_out,
                end_mrr_cents: end_mrr,
                customers_end,
            }
        })
        .collect()
}

/// The revenue document from ledger lines (any order). `currencies`: the rows to show while
/// the ledger has none.
pub fn compute(entries: Vec<LedgerEntry>, from: i64, to: i64, now: i64, currencies: &[String]) -> Revenue {
    let mut seen: BTreeSet<String> =
        entries.iter().filter_map(|e| e.currency.as_deref()).map(str::to_ascii_lowercase).collect();
    if seen.is_empty() {
        seen.extend(currencies.iter().cloned());
    }
    let currencies: Vec<String> = seen.into_iter().collect();
    let data_until = to.min(now).max(from);
    // A range reaching now covers the lines written this very second too.
    let until = if to >= now { now.saturating_add(1) } else { to }.max(from);
    let first = month_bounds(from).0;
    let mut replay = Replay::new(entries);
    replay.advance(first, None);
    let range_start = replay.snapshot();
    let (mut open, mut months, mut by_plan) = (range_start.clone(), Vec::new(), Vec::new());
    let mut totals: BTreeMap<String, Movements> = BTreeMap::new();
    let mut m = first;
    while m < until {
        let next = month_bounds(m).1;
        let end = next.min(until);
        let mut acc = Acc::default();
        replay.advance(end, Some(&mut acc));
        let close = replay.snapshot();
        for c in &currencies {
            let row = month_row(c, (m, end.min(data_until), end < next), &open, &close, acc.totals.get(c));
            let sum = totals.entry(c.clone()).or_default();
            *sum = sum.plus(&row.movements);
            months.push(row);
        }
        by_plan.extend(plan_rows(rfc3339(m).get(..7).unwrap_or_default(), &open, &close, &acc));
        open = close;
        m = next;
    }
    let summary = currencies
        .iter()
        .map(|c| {
            let (start_mrr, customers_start) = total(&range_start, c, None);
            let (end_mrr, customers_end) = total(&open, c, None);
            let (nrr, grr) = retention(&range_start, &open, c);
            Summary {
                currency: c.clone(),
                start_mrr_cents: start_mrr,
                movements: totals.get(c).copied().unwrap_or_default(),
                end_mrr_cents: end_mrr,
                arr_cents: end_mrr * 12,
                customers_start,
                customers_end,
                net_revenue_retention: nrr,
                gross_revenue_retention: grr,
            }
        })
        .collect();
    Revenue {
        from: rfc3339(first),
        to: rfc3339(to),
        data_until: rfc3339(data_until),
        currencies,
        notes: NOTES.to_vec(),
        summary,
        months,
        by_plan,
    }
}

#[cfg(test)]
#[path = "revenue_tests.rs"]
mod tests;
