//! The cluster directory in a catalog (`cluster_directory`): which node holds each tenant.
//!
//! The directory node's rows are the truth; changes are made there only (`apply`), each batch
//! under one new version. Every other node pulls the rows changed since the version it has
//! (`since`) and stores them the same way (`store`), so any node can answer "where is acme"
//! with its own catalog while the directory node is away.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One tenant's entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub slug: String,
    pub tenant_id: String,
    pub node: String,
    /// `active`, `moving` (a move is under way; the source still serves) or `removed`.
    pub state: String,
    /// Placed by hand (`--node`, a move): `cluster rebalance` leaves it where it is.
    #[serde(default)]
    pub pinned: bool,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub version: i64,
    #[serde(default)]
    pub updated_at: i64,
}

impl Placement {
    pub fn is_live(&self) -> bool {
        self.state != "removed"
    }
}

/// The directory's version: the highest version of any row (0 when empty).
pub fn version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT coalesce(max(version), 0) FROM cluster_directory", [], |r| r.get(0))?)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Placement> {
    let domains: String = r.get(5)?;
    Ok(Placement {
        slug: r.get(0)?,
        tenant_id: r.get(1)?,
        node: r.get(2)?,
        state: r.get(3)?,
        pinned: r.get(4)?,
        domains: serde_json::from_str(&domains).unwrap_or_default(),
        bytes: r.get::<_, i64>(6)?.max(0) as u64,
        version: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

const COLUMNS: &str = "slug, tenant_id, node, state, pinned, domains, bytes, version, updated_at";

/// Every row changed after `version` (removals included), oldest change first.
pub fn since(conn: &Connection, version: i64) -> Result<Vec<Placement>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {COLUMNS} FROM cluster_directory WHERE version > ?1 ORDER BY version, slug"))?;
    let rows = stmt.query_map([version], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The live entries (not removed), by slug.
pub fn live(conn: &Connection) -> Result<Vec<Placement>> {
    let mut stmt =
        conn.prepare(&format!("SELECT {COLUMNS} FROM cluster_directory WHERE state != 'removed' ORDER BY slug"))?;
    let rows = stmt.query_map([], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn find(conn: &Connection, slug: &str) -> Result<Option<Placement>> {
    Ok(conn.query_row(&format!("SELECT {COLUMNS} FROM cluster_directory WHERE slug = ?1"), [slug], row).optional()?)
}

/// Stores rows as they are (a copy taking the directory node's rows, versions included).
pub fn store(tx: &Connection, rows: &[Placement]) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO cluster_directory (slug, tenant_id, node, state, pinned, domains, bytes, version, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(slug) DO UPDATE SET tenant_id = excluded.tenant_id, node = excluded.node,
           state = excluded.state, pinned = excluded.pinned, domains = excluded.domains,
           bytes = excluded.bytes, version = excluded.version, updated_at = excluded.updated_at",
    )?;
    for p in rows {
        let domains = serde_json::to_string(&p.domains).map_err(|e| Error::Internal(e.to_string()))?;
        stmt.execute(params![
            p.slug,
            p.tenant_id,
            p.node,
            p.state,
            p.pinned,
            domains,
            p.bytes as i64,
            p.version,
            p.updated_at
        ])?;
    }
    Ok(())
}

/// A change asked of the directory node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Change {
    pub slug: String,
    pub tenant_id: String,
    /// The node that holds the tenant after the change (ignored for `removed`).
    pub node: String,
    pub state: String,
    #[serde(default)]
    pub pinned: Option<bool>,
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Refuse unless the entry is on this node now (a move's compare-and-set).
    #[serde(default)]
    pub expect_node: Option<String>,
}

/// Applies changes on the directory node under one new version; refuses the whole batch when
/// one names a slug held by another tenant or expects a node the entry is not on.
pub fn apply(tx: &Connection, changes: &[Change], nodes: &[&str], now: i64) -> Result<i64> {
    let v = version(tx)? + 1;
    let mut rows = Vec::with_capacity(changes.len());
    for c in changes {
        crate::ids::Slug::parse(&c.slug)?;
        crate::ids::TenantId::parse(&c.tenant_id)?;
        if !["active", "moving", "removed"].contains(&c.state.as_str()) {
            return Err(Error::invalid("invalid_state", format!("state {:?}: active, moving or removed", c.state)));
        }
        if c.state != "removed" && !nodes.contains(&c.node.as_str()) {
            return Err(Error::invalid("unknown_node", format!("no node {:?} in [cluster] nodes", c.node)));
        }
        let old = find(tx, &c.slug)?;
        if let Some(o) = old.as_ref().filter(|o| o.is_live() && o.tenant_id != c.tenant_id) {
            return Err(Error::conflict(
                "slug_taken",
                format!("slug {:?} is taken in the cluster (tenant {} on node {})", c.slug, o.tenant_id, o.node),
            ));
        }
        if let Some(expect) = &c.expect_node {
            let at = old.as_ref().filter(|o| o.is_live()).map(|o| o.node.as_str());
            if at != Some(expect.as_str()) {
                return Err(Error::conflict(
                    "directory_changed",
                    format!("{} is on {:?} in the directory, not {expect:?}: someone else changed it", c.slug, at),
                ));
            }
        }
        let keep = old.filter(|o| o.tenant_id == c.tenant_id);
        rows.push(Placement {
            slug: c.slug.clone(),
            tenant_id: c.tenant_id.clone(),
            node: if c.state == "removed" {
                keep.as_ref().map(|o| o.node.clone()).unwrap_or_default()
            } else {
                c.node.clone()
            },
            state: c.state.clone(),
            pinned: c.pinned.or(keep.as_ref().map(|o| o.pinned)).unwrap_or(false),
            domains: c.domains.clone().or(keep.as_ref().map(|o| o.domains.clone())).unwrap_or_default(),
            bytes: c.bytes.or(keep.as_ref().map(|o| o.bytes)).unwrap_or(0),
            version: v,
            updated_at: now,
        });
    }
    store(tx, &rows)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(include_str!("../../schema.sql")).unwrap();
        c
    }

    fn change(slug: &str, id: &str, node: &str) -> Change {
        Change {
            slug: slug.into(),
            tenant_id: id.into(),
            node: node.into(),
            state: "active".into(),
            pinned: None,
            domains: None,
            bytes: Some(10),
            expect_node: None,
        }
    }

    const A: &str = "00000000000000a1";
    const B: &str = "00000000000000b2";

    #[test]
    fn versions_move_and_copies_catch_up() {
        let dir = conn();
        let nodes = ["n1", "n2"];
        assert_eq!(apply(&dir, &[change("acme", A, "n1")], &nodes, 1).unwrap(), 1);
        assert_eq!(apply(&dir, &[change("beta", B, "n2")], &nodes, 2).unwrap(), 2);
        let copy = conn();
        store(&copy, &since(&dir, 0).unwrap()).unwrap();
        assert_eq!(version(&copy).unwrap(), 2);
        // A move with compare-and-set, then a removal; the copy learns both from `since(2)`.
        let mut mv = change("acme", A, "n2");
        mv.expect_node = Some("n1".into());
        apply(&dir, &[mv.clone()], &nodes, 3).unwrap();
        let err = apply(&dir, &[mv], &nodes, 4).unwrap_err();
        assert!(err.to_string().contains("not \"n1\""), "{err}");
        let mut rm = change("beta", B, "");
        rm.state = "removed".into();
        apply(&dir, &[rm], &nodes, 5).unwrap();
        let delta = since(&dir, 2).unwrap();
        assert_eq!(delta.len(), 2);
        store(&copy, &delta).unwrap();
        assert_eq!(find(&copy, "acme").unwrap().unwrap().node, "n2");
        assert_eq!(live(&copy).unwrap().len(), 1);
        assert_eq!(find(&copy, "beta").unwrap().unwrap().node, "n2", "a removal keeps where it was");
    }

    #[test]
    fn refuses_taken_slugs_unknown_nodes_and_bad_input_whole() {
        let dir = conn();
        let nodes = ["n1"];
        apply(&dir, &[change("acme", A, "n1")], &nodes, 1).unwrap();
        let err = apply(&dir, &[change("zeta", B, "n1"), change("acme", B, "n1")], &nodes, 2).unwrap_err();
        assert!(err.to_string().contains("taken"), "{err}");
        assert!(find(&dir, "zeta").unwrap().is_none(), "a refused batch changes nothing it named");
        assert!(apply(&dir, &[change("x", B, "n9")], &nodes, 2).unwrap_err().to_string().contains("n9"));
        assert!(apply(&dir, &[change("Bad Slug", B, "n1")], &nodes, 2).is_err());
        assert!(apply(&dir, &[change("ok", "zz", "n1")], &nodes, 2).is_err());
    }
}
