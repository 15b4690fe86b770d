//! Per-tenant statement statistics in the spirit of `pg_stat_statements`: for each SQL text the
//! query builder produced (values are always bound, so the text is already normalized), calls,
//! total/mean/max time and rows. Statements slower than `query_monitor.slow_query_ms` also go
//! to a bounded ring with their `EXPLAIN QUERY PLAN`, and to the log.
//!
//! Cost on the hot path: two clock reads, one uncontended mutex and one hash lookup per
//! statement; `EXPLAIN` runs only for slow statements. Held on the open tenant's handle, so
//! the numbers cover the time since the tenant was last opened (like a server restart resets
//! `pg_stat_statements`).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::types::Value;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// `[query_monitor]` in the config file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueryMonitorConfig {
    pub enabled: bool,
    /// Statements at least this slow are logged with their plan (0 = every statement).
    pub slow_query_ms: u64,
    /// Distinct statements tracked per tenant; beyond this the least called is dropped.
    pub statements_per_tenant: usize,
    /// Slow statements kept per tenant (a ring: the oldest goes first).
    pub slow_log_per_tenant: usize,
}

impl Default for QueryMonitorConfig {
    fn default() -> Self {
        QueryMonitorConfig { enabled: true, slow_query_ms: 50, statements_per_tenant: 200, slow_log_per_tenant: 50 }
    }
}

/// What the advisor needs to know about a list statement: the table and how it filters and
/// sorts (the builder knows; nobody parses SQL).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Shape {
    pub table: String,
    /// Columns compared with `=`, `IN` or `IS [NOT] NULL` (an index can seek on them).
    pub equality: Vec<String>,
    /// Columns compared with `<`, `<=`, `>`, `>=`.
    pub range: Vec<String>,
    /// The `ORDER BY` column when it is not the primary key.
    pub order_by: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StatementStat {
    pub sql: String,
    pub calls: u64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    pub rows: u64,
    #[serde(skip)]
    pub shape: Option<Shape>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SlowQuery {
    pub at: i64,
    pub sql: String,
    pub ms: f64,
    pub rows: u64,
    pub plan: Vec<String>,
}

#[derive(Default)]
struct Counters {
    calls: u64,
    total_us: u64,
    max_us: u64,
    rows: u64,
    shape: Option<Shape>,
}

#[derive(Default)]
struct Inner {
    statements: HashMap<String, Counters>,
    slow: VecDeque<SlowQuery>,
    evicted: u64,
}

pub struct StatementStats {
    cfg: QueryMonitorConfig,
    slow: Duration,
    inner: Mutex<Inner>,
}

impl StatementStats {
    pub fn new(cfg: &QueryMonitorConfig) -> StatementStats {
        StatementStats {
            cfg: cfg.clone(),
            slow: Duration::from_millis(cfg.slow_query_ms),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// Records one execution. `shape` is built only the first time a statement is seen;
    /// `conn` and `args` serve `EXPLAIN QUERY PLAN` when the statement was slow.
    pub fn record(
        &self,
        sql: &str,
        elapsed: Duration,
        rows: u64,
        shape: impl FnOnce() -> Option<Shape>,
        conn: &Connection,
        args: impl FnOnce() -> Vec<Value>,
    ) {
        if !self.cfg.enabled {
            return;
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        {
            let mut g = self.inner.lock();
            if let Some(c) = g.statements.get_mut(sql) {
                bump(c, us, rows);
            } else {
                if g.statements.len() >= self.cfg.statements_per_tenant {
                    evict_least_called(&mut g);
                }
                let mut c = Counters { shape: shape(), ..Default::default() };
                bump(&mut c, us, rows);
                g.statements.insert(sql.to_string(), c);
            }
        }
        if elapsed >= self.slow {
            self.slow_query(sql, elapsed, rows, conn, &args());
        }
    }

    fn slow_query(&self, sql: &str, elapsed: Duration, rows: u64, conn: &Connection, args: &[Value]) {
        let plan = explain(conn, sql, args).unwrap_or_else(|e| vec![format!("(no plan: {e})")]);
        let ms = elapsed.as_secs_f64() * 1000.0;
        if self.cfg.slow_query_ms > 0 {
            // With a 0 threshold every statement is "slow" (diagnosis, tests): not worth a line each.
            crate::log::warn(&format!("slow query {ms:.1} ms, {rows} rows: {sql} | plan: {}", plan.join("; ")));
        }
        let entry = SlowQuery { at: crate::util::now_unix(), sql: sql.to_string(), ms, rows, plan };
        let mut g = self.inner.lock();
        while g.slow.len() >= self.cfg.slow_log_per_tenant {
            g.slow.pop_front();
        }
        g.slow.push_back(entry);
    }

    /// Every tracked statement, most total time first.
    pub fn statements(&self) -> Vec<StatementStat> {
        let g = self.inner.lock();
        let mut out: Vec<StatementStat> = g
            .statements
            .iter()
            .map(|(sql, c)| StatementStat {
                sql: sql.clone(),
                calls: c.calls,
                total_ms: c.total_us as f64 / 1000.0,
                mean_ms: c.total_us as f64 / 1000.0 / c.calls.max(1) as f64,
                max_ms: c.max_us as f64 / 1000.0,
                rows: c.rows,
                shape: c.shape.clone(),
            })
            .collect();
        out.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms).then_with(|| a.sql.cmp(&b.sql)));
        out
    }

    /// Slow statements, newest first.
    pub fn slow_queries(&self) -> Vec<SlowQuery> {
        self.inner.lock().slow.iter().rev().cloned().collect()
    }

    /// Statements dropped to stay within `statements_per_tenant`.
    pub fn evicted(&self) -> u64 {
        self.inner.lock().evicted
    }
}

fn bump(c: &mut Counters, us: u64, rows: u64) {
    c.calls += 1;
    c.total_us = c.total_us.saturating_add(us);
    c.max_us = c.max_us.max(us);
    c.rows = c.rows.saturating_add(rows);
}

fn evict_least_called(g: &mut Inner) {
    let victim = g.statements.iter().min_by_key(|(_, c)| (c.calls, c.total_us)).map(|(k, _)| k.clone());
    if let Some(k) = victim {
        g.statements.remove(&k);
        g.evicted += 1;
    }
}

/// `EXPLAIN QUERY PLAN` of `sql` with its arguments, one line per plan node, indented by depth.
pub fn explain(conn: &Connection, sql: &str, args: &[Value]) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    // Without the values (the advisor explains a statement's text) every parameter is NULL:
    // whether the plan scans or searches does not depend on them.
    let mut args = args.to_vec();
    args.resize(stmt.parameter_count(), Value::Null);
    let nodes: Vec<(i64, i64, String)> = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| Ok((r.get(0)?, r.get(1)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut depth: HashMap<i64, usize> = HashMap::new();
    Ok(nodes
        .into_iter()
        .map(|(id, parent, detail)| {
            let d = depth.get(&parent).map_or(0, |p| p + 1);
            depth.insert(id, d);
            format!("{}{detail}", "  ".repeat(d))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT)").unwrap();
        c
    }

    #[test]
    fn aggregates_per_statement() {
        let c = conn();
        let s = StatementStats::new(&QueryMonitorConfig { slow_query_ms: 1000, ..Default::default() });
        for ms in [1, 3, 2] {
            s.record("SELECT 1", Duration::from_millis(ms), 2, || None, &c, Vec::new);
        }
        let st = &s.statements()[0];
        assert_eq!((st.calls, st.rows), (3, 6));
        assert!((st.total_ms - 6.0).abs() < 1e-9 && (st.mean_ms - 2.0).abs() < 1e-9 && (st.max_ms - 3.0).abs() < 1e-9);
        assert!(s.slow_queries().is_empty(), "nothing reached the threshold");
    }

    #[test]
    fn bounded_and_least_called_goes_first() {
        let c = conn();
        let s = StatementStats::new(&QueryMonitorConfig { statements_per_tenant: 3, ..Default::default() });
        for _ in 0..5 {
            s.record("SELECT 'hot'", Duration::from_micros(5), 1, || None, &c, Vec::new);
        }
        for i in 0..10 {
            s.record(&format!("SELECT {i}"), Duration::from_micros(5), 1, || None, &c, Vec::new);
        }
        let all = s.statements();
        assert_eq!(all.len(), 3);
        assert!(all.iter().any(|x| x.sql == "SELECT 'hot'"), "the most called survives");
        assert_eq!(s.evicted(), 8);
    }

    #[test]
    fn slow_ring_keeps_the_newest_with_plans() {
        let c = conn();
        let s =
            StatementStats::new(&QueryMonitorConfig { slow_query_ms: 0, slow_log_per_tenant: 2, ..Default::default() });
        for v in ["x", "y", "z"] {
            let sql = "SELECT id FROM t WHERE a = ?";
            s.record(sql, Duration::from_micros(1), 0, || None, &c, || vec![Value::Text(v.into())]);
        }
        let slow = s.slow_queries();
        assert_eq!(slow.len(), 2);
        assert!(slow[0].plan.iter().any(|l| l.contains("SCAN t")), "{:?}", slow[0].plan);
    }

    #[test]
    fn disabled_records_nothing() {
        let c = conn();
        let s = StatementStats::new(&QueryMonitorConfig { enabled: false, slow_query_ms: 0, ..Default::default() });
        s.record("SELECT 1", Duration::from_millis(5), 1, || None, &c, Vec::new);
        assert!(s.statements().is_empty() && s.slow_queries().is_empty());
    }
}
