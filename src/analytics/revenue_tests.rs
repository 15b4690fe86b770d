//! Unit tests of `analytics::revenue` (kept beside it, in their own file).

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]
use super::*;
use crate::util::parse_time;

fn at(day: &str) -> i64 {
    parse_time(day).unwrap()
}

/// A ledger line leaving `tenant` on `plan` at `amount` per `interval`, in `status`.
fn line(tenant: &str, day: &str, kind: &str, plan: &str, amount: i64, status: &str) -> LedgerEntry {
    LedgerEntry {
        tenant_id: tenant.into(),
        at: at(day),
        kind: kind.into(),
        to_plan: Some(plan.into()),
        to_amount_cents: Some(amount),
        to_status: Some(status.into()),
        interval: Some("month".into()),
        currency: Some("usd".into()),
        ..LedgerEntry::default()
    }
}

fn yearly(mut e: LedgerEntry) -> LedgerEntry {
    e.interval = Some("year".into());
    e
}

fn eur(mut e: LedgerEntry) -> LedgerEntry {
    e.currency = Some("eur".into());
    e
}

fn run(entries: Vec<LedgerEntry>, from: &str, to: &str) -> Revenue {
    let r = compute(entries, at(from), at(to), at("2030-01-01"), &["usd".to_string()]);
    assert_reconciles(&r);
    r
}

fn month<'a>(r: &'a Revenue, m: &str, currency: &str) -> &'a Month {
    r.months.iter().find(|x| x.month == m && x.currency == currency).unwrap()
}

/// The rule: start MRR + movements = end MRR, every month, every currency, every
/// plan; customers too; months chain; plans add up to the month; the summary to the months.
fn assert_reconciles(r: &Revenue) {
    for m in &r.months {
        let mv = &m.movements;
        assert_eq!(m.start_mrr_cents + mv.net(), m.end_mrr_cents, "{m:?}");
        assert_eq!(m.net_new_mrr_cents, mv.net());
        assert_eq!(
            m.customers_start + m.new_customers + m.reactivated_customers - m.churned_customers,
            m.customers_end,
            "{m:?}"
        );
        let plans: Vec<&PlanMonth> =
            r.by_plan.iter().filter(|p| p.month == m.month && p.currency == m.currency).collect();
        let sum = plans.iter().fold(Movements::default(), |a, p| a.plus(&p.movements));
        assert_eq!(sum, *mv, "the plans add up to the month: {m:?}");
        assert_eq!(plans.iter().map(|p| p.end_mrr_cents).sum::<i64>(), m.end_mrr_cents);
        let (tin, tout): (i64, i64) =
            plans.iter().fold((0, 0), |(a, b), p| (a + p.transfer_in_mrr_cents, b + p.transfer_out_mrr_cents));
        assert_eq!(tin, tout);
    }
    for p in &r.by_plan {
        let mv = &p.movements;
        assert_eq!(
            p.start_mrr_cents + mv.net() + p.transfer_in_mrr_cents - p.transfer_out_mrr_cents,
            p.end_mrr_cents,
            "{p:?}"
        );
    }
    for c in &r.currencies {
        let rows: Vec<&Month> = r.months.iter().filter(|m| &m.currency == c).collect();
        for w in rows.windows(2) {
            assert_eq!(w[0].end_mrr_cents, w[1].start_mrr_cents, "months chain");
        }
        let s = r.summary.iter().find(|s| &s.currency == c).unwrap();
        assert_eq!(s.start_mrr_cents + s.movements.net(), s.end_mrr_cents, "{s:?}");
    }
}

#[test]
fn a_trial_is_not_mrr_and_its_conversion_is_new_business() {
    let r = run(
        vec![
            line("a", "2026-01-05", "created", "pro", 2900, "trialing"),
            line("b", "2026-01-06", "created", "pro", 2900, "trialing"),
            line("a", "2026-02-19", "status_changed", "pro", 2900, "active"),
        ],
        "2026-01-01",
        "2026-03-01",
    );
    let jan = month(&r, "2026-01", "usd");
    assert_eq!((jan.end_mrr_cents, jan.customers_end, jan.movements), (0, 0, Movements::default()));
    let feb = month(&r, "2026-02", "usd");
    assert_eq!((feb.movements.new_mrr_cents, feb.end_mrr_cents, feb.new_customers), (2900, 2900, 1));
    assert_eq!(feb.arr_cents, 2900 * 12);
}

#[test]
fn a_yearly_price_counts_a_twelfth() {
    let r = run(vec![yearly(line("a", "2026-01-05", "created", "pro", 29_000, "active"))], "2026-01-01", "2026-02-01");
    assert_eq!(month(&r, "2026-01", "usd").end_mrr_cents, 29_000 / 12);
    assert_eq!(crate::billing::monthly_cents(29_000, "year"), 2416, "rounded down, as the billing summary");
}

#[test]
fn movements_are_classified_per_tenant() {
    let entries = vec![
        line("a", "2026-01-02", "created", "pro", 2900, "active"),
        line("b", "2026-01-02", "created", "ent", 9900, "active"),
        line("c", "2026-01-02", "created", "pro", 2900, "active"),
        // February: a upgrades, b downgrades, c cancels at once.
        line("a", "2026-02-03", "plan_changed", "ent", 9900, "active"),
        line("b", "2026-02-03", "plan_changed", "pro", 2900, "active"),
        line("c", "2026-02-04", "canceled", "pro", 2900, "canceled"),
        // March: c comes back; a is late paying (still MRR).
        line("c", "2026-03-10", "created", "pro", 2900, "active"),
        line("a", "2026-03-11", "status_changed", "ent", 9900, "past_due"),
        // April: a's invoice is written off (unpaid: churn).
        line("a", "2026-04-11", "status_changed", "ent", 9900, "unpaid"),
    ];
    let r = run(entries.clone(), "2026-01-01", "2026-05-01");
    let jan = month(&r, "2026-01", "usd");
    assert_eq!((jan.movements.new_mrr_cents, jan.end_mrr_cents, jan.new_customers), (15_700, 15_700, 3));
    let feb = month(&r, "2026-02", "usd");
    assert_eq!(feb.movements.expansion_mrr_cents, 7000);
    assert_eq!(feb.movements.contraction_mrr_cents, 7000);
    assert_eq!((feb.movements.churn_mrr_cents, feb.churned_customers), (2900, 1));
    assert_eq!(feb.logo_churn_rate, Some(0.333333));
    assert_eq!(feb.gross_revenue_churn_rate, ratio(9900, 15_700));
    assert_eq!(feb.net_revenue_churn_rate, ratio(2900, 15_700));
    assert_eq!(feb.net_revenue_retention, ratio(12_800, 15_700));
    assert_eq!(feb.gross_revenue_retention, ratio(2900 + 2900, 15_700));
    let ent = r.by_plan.iter().find(|p| p.month == "2026-02" && p.plan == "ent").unwrap();
    assert_eq!((ent.transfer_in_mrr_cents, ent.transfer_out_mrr_cents), (2900, 9900));
    assert_eq!(ent.movements.expansion_mrr_cents, 7000, "the upgrade's increase is on the new plan");
    let mar = month(&r, "2026-03", "usd");
    assert_eq!((mar.movements.reactivation_mrr_cents, mar.reactivated_customers), (2900, 1));
    assert_eq!(mar.movements.new_mrr_cents, 0, "a return is not new business");
    assert_eq!(mar.end_mrr_cents, 9900 + 2900 + 2900, "past_due is still billed");
    let apr = month(&r, "2026-04", "usd");
    assert_eq!(apr.movements.churn_mrr_cents, 9900, "unpaid is churn");
    assert_eq!(r.summary[0].net_revenue_retention, None, "nobody paid at the range's start");
    // From February: the cohort paying on February 1 (15,700) has 5,800 at the end of April
    // (c left and came back: it counts at what it pays at the end).
    let r = run(entries, "2026-02-01", "2026-05-01");
    assert_eq!(r.summary[0].start_mrr_cents, 15_700);
    assert_eq!(r.summary[0].net_revenue_retention, ratio(5800, 15_700));
}

#[test]
fn a_cancellation_at_period_end_counts_until_the_period_ends() {
    let r = run(
        vec![
            line("a", "2026-01-10", "created", "pro", 2900, "active"),
            line("a", "2026-01-20", "canceled", "pro", 2900, "active"),
            line("a", "2026-02-10", "status_changed", "pro", 2900, "canceled"),
        ],
        "2026-01-01",
        "2026-03-01",
    );
    assert_eq!(month(&r, "2026-01", "usd").end_mrr_cents, 2900);
    assert_eq!(month(&r, "2026-02", "usd").movements.churn_mrr_cents, 2900);
}

#[test]
fn ltv_is_arpa_over_logo_churn_and_withheld_without_churn() {
    let mut entries: Vec<LedgerEntry> =
        (0..4).map(|i| line(&format!("t{i}"), "2026-01-02", "created", "pro", 1000, "active")).collect();
    entries.push(line("t0", "2026-02-02", "canceled", "pro", 1000, "canceled"));
    let r = run(entries, "2026-01-01", "2026-03-01");
    let jan = month(&r, "2026-01", "usd");
    assert_eq!((jan.ltv_cents, jan.ltv_withheld.is_some()), (None, true), "no start customers");
    let feb = month(&r, "2026-02", "usd");
    assert_eq!(feb.arpa_cents, Some(1000));
    assert_eq!(feb.logo_churn_rate, Some(0.25));
    assert_eq!((feb.ltv_cents, feb.ltv_withheld), (Some(4000), None), "1000 / 25%");
    let r = run(vec![line("a", "2026-01-02", "created", "pro", 1000, "active")], "2026-01-01", "2026-03-01");
    let feb = month(&r, "2026-02", "usd");
    assert_eq!(feb.ltv_cents, None);
    assert!(feb.ltv_withheld.unwrap().contains("churn"), "{feb:?}");
}

#[test]
fn currencies_are_reported_apart() {
    let r = run(
        vec![
            line("a", "2026-01-02", "created", "pro", 2900, "active"),
            eur(line("b", "2026-01-02", "created", "pro", 2500, "active")),
            // a moves to a euro plan: churn in dollars, new in euros.
            eur(line("a", "2026-02-02", "plan_changed", "pro-eu", 2500, "active")),
        ],
        "2026-01-01",
        "2026-03-01",
    );
    assert_eq!(r.currencies, ["eur", "usd"]);
    assert_eq!(month(&r, "2026-01", "usd").end_mrr_cents, 2900);
    assert_eq!(month(&r, "2026-01", "eur").end_mrr_cents, 2500);
    assert_eq!(month(&r, "2026-02", "usd").movements.churn_mrr_cents, 2900);
    assert_eq!(month(&r, "2026-02", "eur").movements.new_mrr_cents, 2500);
}

#[test]
fn the_range_is_whole_months_cut_at_data_until() {
    let now = at("2026-03-15");
    let (from, to) = range(None, None, now).unwrap();
    assert_eq!((rfc3339(from).as_str(), to), ("2025-04-01T00:00:00Z", now));
    let r = compute(vec![], from, to, now, &["usd".to_string()]);
    assert_eq!(r.months.len(), 12);
    let last = r.months.last().unwrap();
    assert!(last.partial && last.to == "2026-03-15T00:00:00Z", "{last:?}");
    assert_eq!(r.data_until, "2026-03-15T00:00:00Z");
    let this_second = vec![line("a", "2026-03-15", "created", "pro", 2900, "active")];
    let r = compute(this_second, from, to, now, &[]);
    assert_eq!(r.months.last().unwrap().end_mrr_cents, 2900, "a range reaching now includes now");
    assert!(range(Some("nope"), None, now).unwrap_err().to_string().contains("from="));
    // Lines before the range set the starting MRR but are not movements of the range.
    let r = run(vec![line("a", "2025-06-01", "created", "pro", 2900, "active")], "2026-01-01", "2026-02-01");
    let jan = month(&r, "2026-01", "usd");
    assert_eq!((jan.start_mrr_cents, jan.movements.net()), (2900, 0));
}

/// A pseudo-random ledger of many tenants and every kind of change: the numbers still
/// reconcile (checked by `run`).
#[test]
fn a_random_ledger_reconciles() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let statuses = ["trialing", "active", "active", "past_due", "canceled", "unpaid", "paused"];
    let plans = [("pro", 2900), ("ent", 9900), ("team", 4900)];
    let base = at("2025-11-01");
    let mut entries = Vec::new();
    for _ in 0..2000 {
        let (plan, amount) = plans[next(3) as usize];
        let mut e = line(&format!("t{}", next(60)), "2025-11-01", "plan_changed", plan, amount, "active");
        e.at = base + next(200 * 86_400) as i64;
        e.to_status = Some(statuses[next(7) as usize].into());
        if next(5) == 0 {
            e.interval = Some("year".into());
            e.to_amount_cents = Some(amount * 10);
        }
        if next(9) == 0 {
            e.currency = Some("eur".into());
        }
        entries.push(e);
    }
    let r = run(entries, "2025-12-01", "2026-05-01");
    assert_eq!(r.months.len(), 5 * 2);
    assert!(r.months.iter().any(|m| m.movements.reactivation_mrr_cents > 0));
    assert!(r.months.iter().any(|m| m.movements.contraction_mrr_cents > 0));
}
