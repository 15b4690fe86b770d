//! Each table's role when a shared database is split by tenant, found by walking foreign keys
//! towards the tenant root (as sql-splitter and Jailer do): the root itself, dependents that
//! reach it, junctions that reach it more than one way, self-referencing tables, lookups with
//! no path (copied to every tenant) and the source app's own system/auth tables.

use std::collections::{BTreeSet, VecDeque};

use serde::Serialize;

use super::inspect::{Schema, Table};
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Root,
    Dependent,
    Junction,
    SelfReferencing,
    Lookup,
    System,
    Excluded,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Dependent => "dependent",
            Role::Junction => "junction",
            Role::SelfReferencing => "self_referencing",
            Role::Lookup => "lookup",
            Role::System => "system",
            Role::Excluded => "excluded",
        }
    }

    /// Rows of this role belong to one tenant each (found through the tenant map).
    pub fn is_tenant_data(self) -> bool {
        matches!(self, Role::Root | Role::Dependent | Role::Junction | Role::SelfReferencing)
    }
}

/// Where the tenant key comes from: `table.column`, the column holding the key value.
#[derive(Clone, Debug, Serialize)]
pub struct Split {
    pub root: String,
    pub key: String,
    /// The key is a plain column (no foreign key to a root table): every table with a column
    /// of this name is keyed by it directly.
    pub direct_column: Option<String>,
}

/// One step of a table's way to the root: its foreign key `fk` (index into the table's keys).
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub table: String,
    pub fk: usize,
    pub parent: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Placement {
    pub table: String,
    pub role: Role,
    /// Steps from this table to the root (empty for the root and directly keyed tables).
    pub path: Vec<Step>,
    /// For junctions: every foreign key (index) that reaches tenant data.
    pub via: Vec<usize>,
    /// Keyed by the plain tenant column itself.
    pub direct: bool,
    /// Length of the way to the root: tables are mapped in this order.
    pub depth: usize,
}

impl Placement {
    pub fn path_text(&self, schema: &Schema) -> String {
        if self.role == Role::Root || self.direct {
            return String::new();
        }
        let mut parts = Vec::new();
        for s in &self.path {
            let cols = schema.table(&s.table).map(|t| t.foreign_keys[s.fk].from.join(",")).unwrap_or_default();
            parts.push(format!("{}.{cols}", s.table));
        }
        if let Some(last) = self.path.last() {
            parts.push(last.parent.clone());
        }
        parts.join(" → ")
    }
}

/// Names of tables that belong to the source app's framework (users, roles, sessions,
/// migration bookkeeping) rather than to its data.
pub fn is_system(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const PREFIXES: &[&str] = &["ab_", "auth_", "django_", "knex_migrations", "flyway_", "_sqlx_", "__diesel_"];
    const EXACT: &[&str] = &[
        "alembic_version",
        "schema_migrations",
        "ar_internal_metadata",
        "sessions",
        "migrations",
        "users",
        "user",
        "roles",
    ];
    PREFIXES.iter().any(|p| n.starts_with(p)) || EXACT.contains(&n.as_str())
}

/// Resolves `--split-by TABLE.COLUMN` against the schema.
pub fn resolve_split(schema: &Schema, spec: &str) -> Result<Split> {
    let (table, column) = spec.split_once('.').ok_or_else(|| {
        Error::invalid(
            "bad_split",
            format!("--split-by wants TABLE.COLUMN, got {:?}", crate::ids::truncate_for_message(spec)),
        )
    })?;
    let t = schema.table(table).ok_or_else(|| unknown_table(schema, table))?;
    let c = t.column(column).ok_or_else(|| unknown_column(t, column))?;
    // An FK column: the tenant is the parent row.
    if let Some(fk) = t.foreign_keys.iter().find(|f| f.from.len() == 1 && f.from[0].eq_ignore_ascii_case(&c.name)) {
        let parent = schema.table(&fk.table).ok_or_else(|| unknown_table(schema, &fk.table))?;
        return Ok(Split { root: parent.name.clone(), key: fk.to[0].clone(), direct_column: None });
    }
    let is_key = t.pk.len() == 1 && t.pk[0].eq_ignore_ascii_case(&c.name);
    // A plain tenant column (`tenant_id` in every table, no tenants table) keys every table that
    // has it; a column of a table others reference (`company.region`) keys that table only, and
    // the rest follow their foreign keys to it.
    let referenced = schema.incoming(&t.name).any(|(child, _)| !child.name.eq_ignore_ascii_case(&t.name));
    let direct = !is_key && !referenced;
    Ok(Split { root: t.name.clone(), key: c.name.clone(), direct_column: direct.then(|| c.name.clone()) })
}

pub fn unknown_table(schema: &Schema, name: &str) -> Error {
    let known: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).take(30).collect();
    Error::invalid(
        "unknown_table",
        format!(
            "the source has no table {:?}; its tables are: {}",
            crate::ids::truncate_for_message(name),
            known.join(", ")
        ),
    )
}

pub fn unknown_column(t: &Table, name: &str) -> Error {
    let known: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    Error::invalid(
        "unknown_column",
        format!(
            "table {} has no column {:?}; its columns are: {}",
            t.name,
            crate::ids::truncate_for_message(name),
            known.join(", ")
        ),
    )
}

/// Places every table for `split`. `excluded` tables are left out; `lookups` and `system`
/// force a role (from the config).
pub fn place(schema: &Schema, split: &Split, excluded: &BTreeSet<String>, forced: &[(String, Role)]) -> Vec<Placement> {
    let lower = |s: &str| s.to_ascii_lowercase();
    let forced_role = |name: &str| forced.iter().find(|(t, _)| t.eq_ignore_ascii_case(name)).map(|(_, r)| *r);
    let base_role = |t: &Table| -> Option<Role> {
        if excluded.contains(&lower(&t.name)) {
            return Some(Role::Excluded);
        }
        if let Some(r) = forced_role(&t.name) {
            return Some(r);
        }
        if t.name.eq_ignore_ascii_case(&split.root) {
            return Some(Role::Root);
        }
        None
    };
    // The source app's own tables by name (users, sessions, …), unless the config says otherwise.
    let named_system = |t: &Table| base_role(t).is_none() && is_system(&t.name);
    let direct = |t: &Table| -> bool {
        split
            .direct_column
            .as_ref()
            .is_some_and(|c| t.column(c).is_some() && base_role(t).is_none() && !named_system(t))
    };
    // Breadth-first from the root over incoming foreign keys: each table's shortest way there.
    // First through the app's data only; then system tables that reach the root by a key of
    // their own (a `users.account_id`) join as tenant data, with what hangs off them.
    let n = schema.tables.len();
    let mut dist: Vec<Option<usize>> = vec![None; n];
    let mut first: Vec<Option<Step>> = vec![None; n];
    for (i, t) in schema.tables.iter().enumerate() {
        if base_role(t) == Some(Role::Root) || direct(t) {
            dist[i] = Some(0);
        }
    }
    walk(schema, &mut dist, &mut first, &|t| base_role(t).is_none() && !named_system(t));
    walk(schema, &mut dist, &mut first, &|t| base_role(t).is_none());
    let mut out = Vec::with_capacity(n);
    for (i, t) in schema.tables.iter().enumerate() {
        let mut path = Vec::new();
        let mut at = i;
        while let Some(step) = &first[at] {
            path.push(step.clone());
            match schema.index_of(&step.parent) {
                Some(p) => at = p,
                None => break,
            }
        }
        let reaching: Vec<usize> = t
            .foreign_keys
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                !f.table.eq_ignore_ascii_case(&t.name) && schema.index_of(&f.table).is_some_and(|p| dist[p].is_some())
            })
            .map(|(k, _)| k)
            .collect();
        let self_ref = t.foreign_keys.iter().any(|f| f.table.eq_ignore_ascii_case(&t.name));
        let role = match base_role(t) {
            Some(r) => r,
            None if direct(t) => Role::Dependent,
            None if dist[i].is_none() && named_system(t) => Role::System,
            None if dist[i].is_none() => Role::Lookup,
            None if reaching.len() >= 2 => Role::Junction,
            None if self_ref => Role::SelfReferencing,
            None => Role::Dependent,
        };
        let via = if role == Role::Junction { reaching } else { Vec::new() };
        out.push(Placement {
            table: t.name.clone(),
            role,
            path,
            via,
            direct: direct(t),
            depth: dist[i].unwrap_or(usize::MAX),
        });
    }
    // A table with no way to the root that hangs off the app's system tables by a NOT NULL key
    // (user settings, tokens) belongs to those users, not to everyone: it is a system table too,
    // so each tenant gets only the rows its data references, never a whole copy. A nullable key
    // (`created_by` on a list of countries) is an audit column: the table stays a lookup, and
    // the users it names are copied as rows for the key, without becoming members.
    loop {
        let mut changed = false;
        for i in 0..n {
            if out[i].role != Role::Lookup || forced_role(&schema.tables[i].name) == Some(Role::Lookup) {
                continue;
            }
            let hangs = schema.tables[i].foreign_keys.iter().any(|f| {
                !f.nullable && schema.index_of(&f.table).is_some_and(|p| p != i && out[p].role == Role::System)
            });
            if hangs {
                out[i].role = Role::System;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    out
}

/// Breadth-first over incoming foreign keys from every table already placed, giving each
/// table `allow`ed and not yet placed its distance and first step.
fn walk(schema: &Schema, dist: &mut [Option<usize>], first: &mut [Option<Step>], allow: &dyn Fn(&Table) -> bool) {
    let mut placed: Vec<usize> = (0..dist.len()).filter(|&i| dist[i].is_some()).collect();
    placed.sort_by_key(|&i| dist[i]);
    let mut queue: VecDeque<usize> = placed.into();
    while let Some(p) = queue.pop_front() {
        let parent = &schema.tables[p];
        for (ci, child) in schema.tables.iter().enumerate() {
            if dist[ci].is_some() || !allow(child) {
                continue;
            }
            // Prefer a NOT NULL key: it reaches the root for every row.
            let mut keys: Vec<(usize, bool)> = child
                .foreign_keys
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.table.eq_ignore_ascii_case(&parent.name) && !f.table.eq_ignore_ascii_case(&child.name)
                })
                .map(|(k, f)| (k, f.nullable))
                .collect();
            keys.sort_by_key(|(_, nullable)| *nullable);
            if let Some((k, _)) = keys.first() {
                dist[ci] = Some(dist[p].unwrap_or(0) + 1);
                first[ci] = Some(Step { table: child.name.clone(), fk: *k, parent: parent.name.clone() });
                queue.push_back(ci);
            }
        }
    }
}

/// A ranked guess at the tenant column, with the evidence.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    pub split_by: String,
    pub root: String,
    pub score: f64,
    /// Tables whose rows reach the root through foreign keys (or share the column).
    pub tables_reached: usize,
    pub distinct_values: i64,
    pub evidence: Vec<String>,
}

const TENANT_WORDS: &[&str] = &[
    "tenant",
    "org",
    "organization",
    "organisation",
    "company",
    "account",
    "customer",
    "workspace",
    "team",
    "client",
    "site",
    "store",
    "shop",
    "project_group",
    "school",
    "clinic",
];

fn tenantish(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let n = n.trim_end_matches("_id").trim_end_matches("id").trim_end_matches('_');
    let singular = n.trim_end_matches('s');
    TENANT_WORDS.iter().any(|w| singular == *w || singular.ends_with(&format!("_{w}")) || n == *w)
}

/// Candidate tenant columns: every table with a single-column key referenced by others, and
/// every column named like a tenant key, ranked by how much of the schema they reach.
pub fn candidates(schema: &Schema, distinct: &dyn Fn(&str, &str) -> i64) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let none = BTreeSet::new();
    let mut consider = |spec: String, evidence: Vec<String>| {
        let Ok(split) = resolve_split(schema, &spec) else { return };
        if out.iter().any(|c| c.root == split.root && c.split_by == spec) || is_system(&split.root) {
            return;
        }
        let placed = place(schema, &split, &none, &[]);
        let reached = placed.iter().filter(|p| p.role.is_tenant_data() && p.role != Role::Root).count();
        let values = distinct(&split.root, &split.key);
        let mut score = reached as f64;
        let mut evidence = evidence;
        if tenantish(&split.root) || tenantish(&split.key) {
            score += 3.0;
            evidence.push(format!("{} is named like a tenant", split.root));
        }
        if values <= 1 {
            score -= 5.0;
            evidence.push(format!("only {values} distinct value(s)"));
        }
        evidence.push(format!("{reached} tables reach it, {values} distinct values"));
        out.push(Candidate {
            split_by: spec,
            root: split.root,
            score,
            tables_reached: reached,
            distinct_values: values,
            evidence,
        });
    };
    for t in &schema.tables {
        if t.pk.len() == 1 && schema.incoming(&t.name).any(|(c, _)| !c.name.eq_ignore_ascii_case(&t.name)) {
            consider(format!("{}.{}", t.name, t.pk[0]), vec![format!("{} is referenced by foreign keys", t.name)]);
        }
        for c in &t.columns {
            let fk = t.foreign_keys.iter().any(|f| f.from.len() == 1 && f.from[0] == c.name);
            if tenantish(&c.name) && c.name.to_ascii_lowercase().ends_with("id") && !fk && c.pk == 0 {
                consider(
                    format!("{}.{}", t.name, c.name),
                    vec![format!("{}.{} is named like a tenant key", t.name, c.name)],
                );
            }
        }
    }
    out.retain(|c| c.tables_reached > 0 || c.distinct_values > 1);
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.split_by.cmp(&b.split_by)));
    out.truncate(5);
    out
}

/// Foreign-key cycles (strongly connected components of more than one table, or a table
/// referencing itself through NOT NULL keys), each with whether a nullable edge can break it.
pub fn cycles(schema: &Schema) -> Vec<(Vec<String>, bool)> {
    let n = schema.tables.len();
    let edges: Vec<Vec<(usize, bool)>> = schema
        .tables
        .iter()
        .map(|t| t.foreign_keys.iter().filter_map(|f| schema.index_of(&f.table).map(|p| (p, f.nullable))).collect())
        .collect();
    // Tarjan's algorithm, iterative enough for schemas (a few hundred tables).
    struct St {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(v: usize, e: &[Vec<(usize, bool)>], s: &mut St) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on[v] = true;
        for &(w, _) in &e[v] {
            match s.index[w] {
                None => {
                    visit(w, e, s);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on[w] => s.low[v] = s.low[v].min(iw),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let mut st =
        St { index: vec![None; n], low: vec![0; n], on: vec![false; n], stack: Vec::new(), next: 0, out: Vec::new() };
    for v in 0..n {
        if st.index[v].is_none() {
            visit(v, &edges, &mut st);
        }
    }
    let mut found = Vec::new();
    for comp in st.out {
        let members: BTreeSet<usize> = comp.iter().copied().collect();
        let inner: Vec<bool> = comp
            .iter()
            .flat_map(|&v| edges[v].iter().filter(|(w, _)| members.contains(w)).map(|(_, nb)| *nb))
            .collect();
        if comp.len() > 1 || !inner.is_empty() {
            let breakable = inner.iter().any(|nb| *nb);
            let mut names: Vec<String> = comp.iter().map(|&v| schema.tables[v].name.clone()).collect();
            names.sort();
            found.push((names, breakable));
        }
    }
    found
}
