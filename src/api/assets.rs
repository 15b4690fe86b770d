//! Tenant assets: `POST|GET /api/v1/t/{slug}/assets`, `DELETE /api/v1/t/{slug}/assets/{sha256}`
//! (the file as the raw body with its Content-Type, or a one-file multipart form), and the CDN
//! edges' public
//! `GET /cdn/{edge}/{tenant_id}/{sha256}`.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::http::{Ctx, Req, Resp};
use crate::tenancy::assets::{self, Asset};

/// An asset with its URL on the edge chosen for this client (when CDN edges are configured).
fn described(ctx: &Ctx<'_>, req: &Req, tenant: &crate::ids::TenantId, a: &Asset) -> Value {
    let edge = ctx.app.cdn.as_ref().and_then(|c| c.edge_for(req.client));
    json!({
        "sha256": a.sha256,
        "content_type": a.content_type,
        "bytes": a.bytes,
        "created_at": a.created_at,
        "edge": edge,
        // With the type's extension, by which a web server in front types the edge's copy.
        "url": edge.map(|e| format!("/cdn/{e}/{tenant}/{}.{}", a.sha256, assets::extension(a.content_type))),
    })
}

/// `POST /assets`: stores the body (the file itself with its Content-Type, or a
/// `multipart/form-data` form with one file, as browsers and `curl -F` send); 201 with its
/// SHA-256 name and URL.
pub fn upload(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let declared = req.header("content-type").unwrap_or("");
    let lower = declared.to_ascii_lowercase();
    let a = if lower.starts_with("multipart/form-data") {
        let mut files = crate::ui::multipart(req)?.into_iter().filter(|p| p.filename.is_some());
        let (file, more) = (files.next(), files.next());
        let file = match (file, more) {
            (Some(f), None) => f,
            (None, _) => return Err(Error::invalid("no_file", "the form holds no file part (a part with a filename)")),
            (Some(_), Some(_)) => return Err(Error::invalid("one_file_per_upload", "send one file per request")),
        };
        // A browser names a type it does not know application/octet-stream: the content decides.
        match file.content_type.as_deref().map(str::to_ascii_lowercase) {
            Some(ct) if !ct.starts_with("application/octet-stream") => assets::upload(ctx.app, t, &ct, &file.data)?,
            _ => assets::upload_untyped(ctx.app, t, &file.data)?,
        }
    } else if lower.starts_with("multipart/") {
        return Err(Error::invalid(
            "multipart_not_supported",
            "send multipart/form-data with one file part, or the file itself as the body with its Content-Type",
        ));
    } else {
        assets::upload(ctx.app, t, declared, &req.body)?
    };
    if let Some(cdn) = &ctx.app.cdn {
        cdn.uploaded(&t.id, &a.sha256);
    }
    Ok(Resp::json(201, &described(ctx, req, &t.id, &a)))
}

/// `GET /assets`: newest first.
pub fn list(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let t = ctx.tenant()?;
    let items: Vec<Value> = assets::list(ctx.app, t)?.iter().map(|a| described(ctx, req, &t.id, a)).collect();
    Ok(Resp::json(200, &json!({"items": items})))
}

/// `DELETE /assets/{sha256}`: from the origin and every edge.
pub fn delete(ctx: &Ctx<'_>, _req: &Req) -> Result<Resp> {
    assets::delete(ctx.app, ctx.tenant()?, ctx.param("sha256")?)?;
    Ok(Resp::empty(204))
}

/// `GET /cdn/{edge}/{tenant_id}/{sha256}[.ext]`: immutable, with a strong ETag (304), single byte
/// ranges (206/416), the type sniffed at upload, and never active content.
pub fn cdn(ctx: &Ctx<'_>, req: &Req) -> Result<Resp> {
    let cdn = ctx.app.cdn.as_ref().ok_or_else(|| Error::NotFound("asset".into()))?;
    // `<sha256>` or `<sha256>.<ext>` (the URLs tenantd gives out): the content decides the type.
    let name = ctx.param("sha256")?;
    let (edge, sha) = (ctx.param("edge")?, name.split_once('.').map_or(name, |(sha, _)| sha));
    // Asked on a miss only (a hit is a copy of a tenant that was live when it was pulled).
    let live = |id: &crate::ids::TenantId| {
        let conn = ctx.app.catalog.conn();
        let t = conn.ok().and_then(|c| crate::catalog::tenants::find_by_id(&c, id).ok().flatten());
        t.is_some_and(|t| t.status != crate::catalog::tenants::TenantStatus::Deleted)
    };
    let etag = format!("\"{sha}\"");
    let revalidated = req.header("if-none-match").is_some_and(|inm| {
        inm.split(',').any(|t| t.trim() == etag || t.trim() == "*" || t.trim() == format!("W/{etag}"))
    });
    if revalidated {
        // Content-addressed: the name is the ETag, so a 304 needs the object to exist, not its bytes.
        cdn.holds(edge, ctx.param("tenant_id")?, sha, live)?;
        let headers = vec![
            ("Cache-Control".to_string(), "public, max-age=31536000, immutable".to_string()),
            ("ETag".to_string(), etag),
            ("Tenantd-Cdn".to_string(), format!("{edge}; hit")),
        ];
        let body = Vec::new();
        return Ok(Resp {
            status: 304,
            content_type: "application/octet-stream",
            headers,
            body,
            error: None,
            rate_limit: None,
        });
    }
    let served = cdn.fetch(edge, ctx.param("tenant_id")?, sha, live)?;
    let content_type = assets::sniff(&served.bytes).unwrap_or("application/octet-stream");
    let mut headers = vec![
        ("Cache-Control".to_string(), "public, max-age=31536000, immutable".to_string()),
        ("ETag".to_string(), etag.clone()),
        ("Accept-Ranges".to_string(), "bytes".to_string()),
        ("Tenantd-Cdn".to_string(), format!("{edge}; {}", if served.hit { "hit" } else { "miss" })),
    ];
    if content_type == "image/svg+xml" {
        // User-supplied SVG can carry script: shown as an image, never run as a document.
        headers
            .push(("Content-Security-Policy".into(), "sandbox; default-src 'none'; style-src 'unsafe-inline'".into()));
    }
    if !content_type.starts_with("image/") {
        headers.push(("Content-Disposition".into(), format!("attachment; filename=\"{}\"", &sha[..16])));
    }
    let resp =
        |status, body| Resp { status, content_type, headers: headers.clone(), body, error: None, rate_limit: None };
    let len = served.bytes.len() as u64;
    match req.header("range").map(|r| byte_range(r, len)) {
        Some(Range::One(a, b)) => {
            let mut r = resp(206, served.bytes[a as usize..=b as usize].to_vec());
            r.headers.push(("Content-Range".into(), format!("bytes {a}-{b}/{len}")));
            Ok(r)
        }
        Some(Range::Unsatisfiable) => {
            let mut r = resp(416, Vec::new());
            r.headers.push(("Content-Range".into(), format!("bytes */{len}")));
            Ok(r)
        }
        Some(Range::Ignore) | None => Ok(resp(200, served.bytes)),
    }
}

#[derive(Debug, PartialEq)]
enum Range {
    One(u64, u64),
    Unsatisfiable,
    /// Several ranges, or a header we do not read: the whole object (RFC 9110 allows it).
    Ignore,
}

/// One `bytes=` range of RFC 9110 §14.1.2 (`a-b`, `a-`, `-n`) against an object of `len`.
fn byte_range(h: &str, len: u64) -> Range {
    let Some(spec) = h.trim().strip_prefix("bytes=") else { return Range::Ignore };
    if spec.contains(',') {
        return Range::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Range::Ignore };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    let (start, end) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => match num(b) {
            Some(0) => return Range::Unsatisfiable,
            Some(n) => (len.saturating_sub(n), len.saturating_sub(1)),
            None => return Range::Ignore,
        },
        (false, true) => match num(a) {
            Some(s) => (s, len.saturating_sub(1)),
            None => return Range::Ignore,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s <= e => (s, e.min(len.saturating_sub(1))),
            _ => return Range::Ignore,
        },
        (true, true) => return Range::Ignore,
    };
    if len == 0 || start >= len {
        return Range::Unsatisfiable;
    }
    Range::One(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_as_rfc_9110_reads_them() {
        assert_eq!(byte_range("bytes=0-9", 100), Range::One(0, 9));
        assert_eq!(byte_range("bytes=90-", 100), Range::One(90, 99));
        assert_eq!(byte_range("bytes=-10", 100), Range::One(90, 99));
        assert_eq!(byte_range("bytes=95-200", 100), Range::One(95, 99));
        assert_eq!(byte_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), Range::Ignore);
        assert_eq!(byte_range("items=0-1", 100), Range::Ignore);
        assert_eq!(byte_range("bytes=9-2", 100), Range::Ignore);
    }
}
