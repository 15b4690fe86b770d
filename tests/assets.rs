//! Tenant assets and CDN edges (issue 22): uploads checked by content, counted in the quota,
//! pushed to the edges and pulled on a miss, served immutable with ETag/304 and ranges, never
//! as active content, and purged everywhere.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use std::time::Duration;

use common::ServerCli as _;
use common::{stderr, stdout, within, TestServer};
use serde_json::Value;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00pixels";
const SVG: &[u8] = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";

fn with_edges() -> TestServer {
    TestServer::start_with(|c| c.cdn.edges = vec!["eu-west".into(), "us-east".into()])
}

fn upload(s: &TestServer, token: &str, content_type: &str, body: &[u8]) -> tenantd::http::client::Response {
    let auth = format!("Bearer {token}");
    s.client()
        .request("POST", "/api/v1/t/acme/assets", &[("Authorization", &auth), ("Content-Type", content_type)], body)
        .unwrap()
}

fn get(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> tenantd::http::client::Response {
    s.client().request("GET", path, headers, b"").unwrap()
}

#[test]
fn issue22_uploads_reach_every_edge_and_are_served_immutable() {
    let s = with_edges();
    let token = s.token("owner@acme.test", "acme", "owner");
    let r = upload(&s, &token, "image/png", PNG);
    assert_eq!(r.status, 201, "{}", r.text());
    let a: Value = r.json();
    let sha = a["sha256"].as_str().unwrap().to_string();
    assert_eq!(a["content_type"], "image/png");
    let url = a["url"].as_str().unwrap().to_string();
    let edge = a["edge"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("/cdn/{edge}/")), "{url}");
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    // The syncer pushes it to both edges.
    for e in ["eu-west", "us-east"] {
        let copy = s.data_dir().join("cdn").join(e).join(t.id.as_str()).join(&sha);
        within(Duration::from_secs(5), || copy.is_file()).unwrap_or_else(|| panic!("not pushed to {e}"));
        // Its typed name, by which nginx in front types it: the same file.
        use std::os::unix::fs::MetadataExt;
        let typed = copy.with_file_name(format!("{sha}.png"));
        assert_eq!(std::fs::metadata(&typed).unwrap().ino(), std::fs::metadata(&copy).unwrap().ino());
    }
    assert!(url.ends_with(&format!("{sha}.png")), "asset URLs carry the extension: {url}");
    let bare = url.trim_end_matches(".png");
    assert_eq!(get(&s, bare, &[]).body, PNG, "the bare name is served too");
    let r = get(&s, &url, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PNG);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(r.header("etag"), Some(format!("\"{sha}\"").as_str()));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("tenantd-cdn"), Some(format!("{edge}; hit").as_str()));
    // Revalidation and ranges.
    let etag = format!("\"{sha}\"");
    let r = get(&s, &url, &[("If-None-Match", &etag)]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    let r = get(&s, &url, &[("Range", "bytes=0-7")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &PNG[..8]);
    assert_eq!(r.header("content-range"), Some(format!("bytes 0-7/{}", PNG.len()).as_str()));
    let r = get(&s, &url, &[("Range", "bytes=9999-")]);
    assert_eq!(r.status, 416);
    // An edge that lost its copy pulls it from the origin on the next request.
    std::fs::remove_file(s.data_dir().join("cdn").join("us-east").join(t.id.as_str()).join(&sha)).unwrap();
    let other = format!("/cdn/us-east/{}/{sha}", t.id);
    assert_eq!(get(&s, &other, &[]).header("tenantd-cdn"), Some("us-east; miss"));
    assert_eq!(get(&s, &other, &[]).header("tenantd-cdn"), Some("us-east; hit"));
    let metrics = s.get("/metrics").text();
    for name in ["tenantd_cdn_hits_total", "tenantd_cdn_misses_total 1", "tenantd_cdn_push_lag_seconds{stat=\"p99\"}"] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // The list shows it; the same bytes again are the same asset.
    assert_eq!(upload(&s, &token, "image/png", PNG).json()["sha256"], sha.as_str());
    let list = s.get_as("/api/v1/t/acme/assets", &token).json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // Unknown edges, tenants and names are 404s.
    for path in [
        format!("/cdn/ap-south/{}/{sha}", t.id),
        format!("/cdn/eu-west/0000000000000000/{sha}"),
        format!("/cdn/eu-west/{}/{}", t.id, "0".repeat(64)),
        format!("/cdn/eu-west/{}/..%2F..%2Fcatalog.db", t.id),
    ] {
        let status = get(&s, &path, &[]).status;
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
    // Delete: gone from the origin and every edge at once.
    let auth = format!("Bearer {token}");
    let r = s
        .client()
        .request("DELETE", &format!("/api/v1/t/acme/assets/{sha}"), &[("Authorization", &auth)], b"")
        .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(get(&s, &url, &[]).status, 404);
    assert_eq!(get(&s, &other, &[]).status, 404);
    let left: Vec<_> = common::files_under(&s.data_dir().join("cdn"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&sha))
        .collect();
    assert!(left.is_empty(), "copies left on the edges: {left:?}");
}

#[test]
fn issue22_only_allowed_types_and_never_active_content() {
    let s = with_edges();
    let token = s.token("owner@acme.test", "acme", "owner");
    // SVG is kept, but served sandboxed; PDF and text as attachments.
    let svg = upload(&s, &token, "image/svg+xml", SVG).json();
    let r = get(&s, svg["url"].as_str().unwrap(), &[]);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert!(
        r.header("content-security-policy").unwrap().starts_with("sandbox"),
        "{:?}",
        r.header("content-security-policy")
    );
    let pdf = upload(&s, &token, "application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n").json();
    let r = get(&s, pdf["url"].as_str().unwrap(), &[]);
    assert!(r.header("content-disposition").unwrap().starts_with("attachment"));
    let txt = upload(&s, &token, "text/csv", b"a,b\n1,2\n");
    assert_eq!(txt.status, 201, "{}", txt.text());
    assert_eq!(txt.json()["content_type"], "text/plain; charset=utf-8");
    // Refused: HTML, executables, a type that lies, multipart, empty.
    for (ct, body, status, code) in [
        ("text/html", &b"<!DOCTYPE html><html><script>x</script></html>"[..], 415, "unsupported_media_type"),
        ("application/octet-stream", &b"\x7fELF\x02\x01\x01\x00\x00\x00"[..], 415, "unsupported_media_type"),
        ("image/jpeg", PNG, 400, "content_type_mismatch"),
        ("text/plain", PNG, 400, "content_type_mismatch"),
        ("multipart/form-data; boundary=x", &b"--x\r\n"[..], 400, "invalid_form"),
        ("multipart/mixed; boundary=x", &b"--x--\r\n"[..], 400, "multipart_not_supported"),
        ("image/png", &b""[..], 400, "empty_asset"),
    ] {
        let r = upload(&s, &token, ct, body);
        assert_eq!((r.status, r.json()["error"]["code"].as_str().unwrap_or("")), (status, code), "{ct}: {}", r.text());
    }
}

/// One part of a test form: field name, filename, content type, bytes.
type FormPart<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body (boundary `XyZ`).
fn form(parts: &[FormPart<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, ct, data) in parts {
        body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
        body.extend_from_slice(name.as_bytes());
        body.push(b'"');
        if let Some(f) = filename {
            body.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = ct {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    body
}

#[test]
fn issue22_a_one_file_multipart_form_uploads_like_the_raw_body() {
    let s = TestServer::start();
    let token = s.token("owner@acme.test", "acme", "owner");
    let raw = upload(&s, &token, "image/png", PNG).json();
    let multipart = "multipart/form-data; boundary=XyZ";
    // As a browser sends it: a text field beside the file, the file's own type.
    let body = form(&[("note", None, None, b"hello"), ("file", Some("logo.png"), Some("image/png"), PNG)]);
    let r = upload(&s, &token, multipart, &body);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["sha256"], raw["sha256"]);
    assert_eq!(r.json()["content_type"], "image/png");
    // No type, or application/octet-stream (a browser that does not know the extension): the
    // content decides; a type that lies is refused as for a raw body.
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    for ct in [None, Some("application/octet-stream")] {
        let r = upload(&s, &token, multipart, &form(&[("file", Some("a.pdf"), ct, pdf)]));
        assert_eq!(
            (r.status, r.json()["content_type"].clone()),
            (201, "application/pdf".into()),
            "{ct:?}: {}",
            r.text()
        );
    }
    for (parts, status, code) in [
        (form(&[("file", Some("a.png"), Some("image/jpeg"), PNG)]), 400, "content_type_mismatch"),
        (form(&[("note", None, None, b"no file")]), 400, "no_file"),
        (form(&[("a", Some("a.png"), None, PNG), ("b", Some("b.png"), None, PNG)]), 400, "one_file_per_upload"),
        (form(&[("file", Some("empty.png"), None, b"")]), 400, "empty_asset"),
        (
            form(&[("file", Some("page.html"), None, b"<!DOCTYPE html><script>x</script>")]),
            415,
            "unsupported_media_type",
        ),
    ] {
        let r = upload(&s, &token, multipart, &parts);
        assert_eq!((r.status, r.json()["error"]["code"].as_str().unwrap_or("")), (status, code), "{}", r.text());
    }
    let listed = s.get_as("/api/v1/t/acme/assets", &token).json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "the PNG once, the PDF once: {listed}");
}

#[test]
fn issue22_assets_count_toward_storage_and_purges_leave_no_copy() {
    let s = TestServer::start_with(|c| {
        c.cdn.edges = vec!["eu-west".into()];
        c.plans.get_mut("free").unwrap().storage_bytes = 65_536 * 4;
    });
    let token = s.token("owner@acme.test", "acme", "owner");
    let t = s.app.tenant(&tenantd::ids::Slug::parse("acme").unwrap()).unwrap();
    let used = tenantd::limits::storage_bytes(&s.app, &t.id);
    let room = (65_536 * 4 - used) as usize;
    let big = vec![b'x'; room + 1];
    let r = upload(&s, &token, "text/plain", &big);
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "storage_quota_exceeded");
    let r = upload(&s, &token, "image/png", PNG);
    assert_eq!(r.status, 201, "{}", r.text());
    let sha = r.json()["sha256"].as_str().unwrap().to_string();
    let edge_copy = s.data_dir().join("cdn").join("eu-west").join(t.id.as_str()).join(&sha);
    within(Duration::from_secs(5), || edge_copy.is_file()).unwrap();
    assert!(tenantd::limits::storage_bytes(&s.app, &t.id) >= used + PNG.len() as u64);
    // The CLI: status, and a purge of the edges (the origin keeps the asset).
    let out = s.cli(&["cdn", "status"]);
    assert!(stdout(&out).contains("eu-west"), "{}", stdout(&out));
    let out = s.cli(&["cdn", "purge", "--tenant", "acme", "--hash", &sha]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!edge_copy.exists());
    let out = s.cli(&["cdn", "purge", "--tenant", "acme", "--hash", "nothex"]);
    assert_eq!(out.status.code(), Some(2));
    // Purging the tenant removes its edge copies too.
    assert_eq!(get(&s, &format!("/cdn/eu-west/{}/{sha}", t.id), &[]).status, 200);
    assert!(edge_copy.is_file(), "pulled back on the request");
    let actor = tenantd::tenancy::Actor::cli();
    let slug = tenantd::ids::Slug::parse("acme").unwrap();
    tenantd::tenancy::soft_delete(&s.app, &slug, &actor).unwrap();
    // Deleted: its edge copies are gone, and no edge pulls it again.
    assert!(!edge_copy.exists());
    assert_eq!(get(&s, &format!("/cdn/eu-west/{}/{sha}", t.id), &[]).status, 404);
    assert!(!edge_copy.exists());
    tenantd::tenancy::purge(&s.app, &slug, &actor).unwrap();
    let left: Vec<_> = common::files_under(&s.data_dir())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(t.id.as_str()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
