//! Anchoring: the head of every tenant's chain is copied into the catalog (`audit_anchors`), and
//! the platform chain's head into a file beside the data dir, so a truncated tail or a chain
//! rewritten from scratch is detected, not only an edited entry.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{head, verify, Broken, Head};
use crate::error::Result;
use crate::ids::TenantId;

/// Tenants whose chain grew since the last anchoring, each with its new head when the write
/// that grew it said so (`mark_head`), else `None`: anchoring reads the head from the file.
#[derive(Default)]
pub struct Dirty(parking_lot::Mutex<std::collections::HashMap<TenantId, Option<Head>>>);

impl Dirty {
    /// The chain grew; its head is read when anchoring.
    pub fn mark(&self, t: &TenantId) {
        self.0.lock().insert(t.clone(), None);
    }

    /// The chain grew to `head` (id, hash), committed. Anchoring then takes it as it is: under a
    /// load spread over many tenants, most tenants written in a second are closed again by the
    /// time anchoring runs, and reading each head back opened its file (a schema parse and a
    /// WAL read-back on the thread that flushes usage, every second). A head of unknown position
    /// (`mark`) wins, and of two known ones the later.
    pub fn mark_head(&self, t: &TenantId, head: Head) {
        let mut map = self.0.lock();
        match map.get_mut(t) {
            None => {
                map.insert(t.clone(), Some(head));
            }
            Some(Some(known)) if known.0 < head.0 => *known = head,
            Some(_) => {}
        }
    }

    pub fn take(&self) -> Vec<(TenantId, Option<Head>)> {
        self.0.lock().drain().collect()
    }
}

/// The platform chain's anchor lives outside the catalog (`<data_dir>/platform-audit.anchor`,
/// "id hash"), so deleting the catalog chain's tail is detected too.
pub fn platform_anchor_path(app: &crate::app::App) -> std::path::PathBuf {
    app.paths.data_dir.join("platform-audit.anchor")
}

pub fn read_platform_anchor(app: &crate::app::App) -> Option<(i64, String)> {
    let text = std::fs::read_to_string(platform_anchor_path(app)).ok()?;
    let (id, hash) = text.trim().split_once(' ')?;
    Some((id.parse().ok()?, hash.to_string()))
}

fn anchor_platform(app: &crate::app::App) -> Result<()> {
    let head: Option<(i64, String)> = app
        .catalog
        .conn()?
        .query_row("SELECT id, hash FROM platform_audit ORDER BY id DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((id, hash)) = head else { return Ok(()) };
    if read_platform_anchor(app).is_some_and(|(a, _)| a >= id) {
        return Ok(());
    }
    let path = platform_anchor_path(app);
    let tmp = path.with_extension("anchor.partial");
    std::fs::write(&tmp, format!("{id} {hash}\n"))?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Checks the platform chain: every link, and the anchored head still in place.
pub fn verify_platform(app: &crate::app::App) -> Result<Verdict> {
    let conn = app.catalog.conn()?;
    let entries: i64 = conn.query_row("SELECT count(*) FROM platform_audit", [], |r| r.get(0))?;
    let problem = match crate::catalog::audit::verify(&conn)? {
        Some(id) => Some(format!("platform entry {id} does not match the chain")),
        None => match read_platform_anchor(app) {
            Some((aid, ahash)) => {
                let stored: Option<String> =
                    conn.query_row("SELECT hash FROM platform_audit WHERE id = ?1", [aid], |r| r.get(0)).optional()?;
                match stored {
                    None => Some(format!(
                        "the platform chain ends before entry {aid}, which was anchored: its tail was removed"
                    )),
                    Some(h) if h != ahash => {
                        Some(format!("platform entry {aid} differs from its anchored hash: the chain was rewritten"))
                    }
                    Some(_) => None,
                }
            }
            None => None,
        },
    };
    Ok(Verdict { tenant: "(platform)".into(), entries: entries.max(0) as u64, ok: problem.is_none(), problem })
}

/// Records the current head of every chain that grew (every second and at shutdown), and the
/// platform chain's head.
pub fn anchor_dirty(app: &crate::app::App) -> Result<usize> {
    if let Err(e) = anchor_platform(app) {
        crate::log::warn(&format!("could not anchor the platform audit chain: {}", e.log_detail()));
    }
    let dirty = app.audit_dirty.take();
    let mut heads = Vec::new();
    for (id, known) in dirty {
        if let Some(h) = known {
            heads.push((id, h));
            continue;
        }
        // An open tenant's own connection (its writer when free, as a read would take it): a
        // fresh connection costs a schema parse (measured: 6% of a 10,000-tenant load's
        // instructions went here). Not a pooled one: taking one every second opened one beside
        // the writer for every tenant written to, and kept it from ever going idle (under a
        // Zipf load over 10,000 tenants, ~230 extra connections among 256 open tenants).
        let open = app.store.peek(&id).and_then(|h| h.read_conn().ok());
        let found = match open {
            Some(conn) => head(&conn),
            // Not open, and not there (purged meanwhile): nothing to anchor.
            None => match crate::db::open_read_only(&app.paths.tenant_db(&id)) {
                Ok(conn) => head(&conn),
                Err(_) => continue,
            },
        };
        match found {
            Ok(Some(h)) => heads.push((id, h)),
            Ok(None) => {}
            // One unreadable tenant must not cost the others their anchor: it stays dirty for
            // the next pass.
            Err(e) => {
                app.audit_dirty.mark(&id);
                crate::log::warn(&format!("could not read the audit head of tenant {id}: {}", e.log_detail()));
            }
        }
    }
    if heads.is_empty() {
        return Ok(0);
    }
    let now = crate::util::now_unix();
    let written = app.catalog.background_write(|tx| {
        for (id, (last, hash)) in &heads {
            tx.execute(
                "INSERT INTO audit_anchors(tenant_id, last_id, last_hash, anchored_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(tenant_id) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash,
                   anchored_at = excluded.anchored_at WHERE excluded.last_id >= audit_anchors.last_id",
                params![id.as_str(), last, hash, now],
            )?;
        }
        Ok(())
    });
    if let Err(e) = written {
        // Not anchored: try them all again next time.
        for (id, h) in heads {
            app.audit_dirty.mark_head(&id, h);
        }
        return Err(e);
    }
    Ok(heads.len())
}

/// The anchored head of a tenant's chain.
pub fn anchor_of(catalog: &Connection, id: &crate::ids::TenantId) -> Result<Option<(i64, String)>> {
    Ok(catalog
        .query_row("SELECT last_id, last_hash FROM audit_anchors WHERE tenant_id = ?1", [id.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// The verdict on one tenant's chain, for `tenantd audit verify`.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub tenant: String,
    pub entries: u64,
    pub ok: bool,
    pub problem: Option<String>,
}

pub fn verify_tenant(app: &crate::app::App, t: &crate::catalog::tenants::TenantRecord) -> Result<Verdict> {
    let anchor = anchor_of(&*app.catalog.conn()?, &t.id)?;
    let conn = crate::db::open_read_only(&app.paths.tenant_db(&t.id))?;
    let has_table: bool =
        conn.query_row("SELECT count(*) > 0 FROM sqlite_master WHERE name = '_tenantd_audit'", [], |r| r.get(0))?;
    let res = if has_table {
        verify(&conn, anchor.as_ref().map(|(i, h)| (*i, h.as_str())))?
    } else if let Some((aid, _)) = anchor {
        Err(Broken::Truncated { anchored_id: aid })
    } else {
        Ok(0)
    };
    Ok(match res {
        Ok(n) => Verdict { tenant: t.slug.to_string(), entries: n, ok: true, problem: None },
        Err(b) => Verdict {
            tenant: t.slug.to_string(),
            entries: 0,
            ok: false,
            problem: Some(match b {
                Broken::Entry(id) => {
                    format!("entry {id} does not match the chain (edited, deleted before it, inserted or reordered)")
                }
                Broken::Truncated { anchored_id } => {
                    format!("the chain ends before entry {anchored_id}, which was anchored: its tail was removed")
                }
                Broken::Rewritten { anchored_id } => {
                    format!("entry {anchored_id} differs from its anchored hash: the chain was rewritten")
                }
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_head_wins_and_of_two_known_heads_the_later() {
        let d = Dirty::default();
        let (a, b) = (TenantId::parse("00000000000000aa").unwrap(), TenantId::parse("00000000000000bb").unwrap());
        d.mark_head(&a, (5, "five".into()));
        d.mark_head(&a, (4, "four".into()));
        d.mark_head(&b, (1, "one".into()));
        d.mark(&b);
        d.mark_head(&b, (2, "two".into()));
        let mut taken = d.take();
        taken.sort();
        assert_eq!(taken, vec![(a, Some((5, "five".into()))), (b, None)]);
        assert!(d.take().is_empty());
    }
}
