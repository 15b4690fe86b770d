//! Issue 18 item 8: dependencies point downward (docs/architecture.md). Three rules, checked on
//! the source text, so a new upward import fails here rather than in a review:
//!
//! 1. Domain modules never name the HTTP layer (`http`, `api`, `ui`, `cli`, tiny_http): they
//!    take plain values (`auth::Caller`), so their rules are testable without a request.
//! 2. Storage (`store/`, `catalog/`, `db.rs`) never names a domain module or anything above
//!    one: it knows files, SQL and schemas, no rules (`audit` fills the audit tables the store
//!    creates; fleet migrations are `fleet`, on top of `store`).
//! 3. Pages (`ui/`) never name `store`: they reach tenant data through `records`, the same
//!    functions the data API uses.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::path::{Path, PathBuf};

/// Top-level modules that hold rules.
const DOMAIN: &[&str] = &["audit", "auth", "cache", "directory", "fleet", "limits", "records", "security", "tenancy"];
/// The I/O and format layer above them.
const HTTP: &[&str] = &["http", "api", "ui", "cli"];
/// Storage.
const STORAGE: &[&str] = &["store", "catalog", "db"];

#[test]
fn issue18_domain_modules_never_name_the_http_layer() {
    let bad = violations(DOMAIN, |m| HTTP.contains(&m) || m == "tiny_http");
    assert!(bad.is_empty(), "domain code naming the HTTP layer (pass plain values instead):\n{}", bad.join("\n"));
}

#[test]
fn issue18_storage_never_names_domain_modules() {
    let bad = violations(STORAGE, |m| DOMAIN.contains(&m) || HTTP.contains(&m) || m == "app");
    assert!(bad.is_empty(), "storage naming a module above it:\n{}", bad.join("\n"));
}

#[test]
fn issue18_pages_reach_tenant_data_through_domain_functions() {
    let bad = violations(&["ui"], |m| m == "store");
    assert!(bad.is_empty(), "pages naming the store (use `records`, as the data API does):\n{}", bad.join("\n"));
}

/// The rules see what they should: an upward import in any of its spellings is found.
#[test]
fn the_scanner_finds_every_spelling() {
    let found = |text: &str, module: &[&str]| referenced_modules(text, module);
    assert_eq!(found("use crate::http::Req;", &["auth"]), ["http"]);
    assert_eq!(found("fn f(r: &crate::http::Req) {}", &["auth"]), ["http"]);
    assert_eq!(found("use crate::{db, audit::{self, Entry}};", &["store"]), ["db", "audit"]);
    assert_eq!(found("use super::super::super::audit::X;", &["store", "query", "list"]), ["audit"]);
    assert_eq!(found("use super::super::stats::X;", &["store", "query", "list"]), ["store"]);
    assert_eq!(found("use super::audit_tables;", &["store", "introspect"]), ["store"]);
    assert_eq!(found("use tiny_http::Request;", &["auth"]), ["tiny_http"]);
    assert!(found("// see crate::http::Req\nlet x = 1; /* crate::api */", &["auth"]).is_empty());
}

/// "file: module" for each reference from a file under one of `roots` to a module `bad` flags.
fn violations(roots: &[&str], bad: impl Fn(&str) -> bool) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    for root in roots {
        for file in rust_files(&src, root) {
            let text = std::fs::read_to_string(&file).unwrap();
            let module = module_path(&src, &file);
            let module: Vec<&str> = module.iter().map(String::as_str).collect();
            for m in referenced_modules(&text, &module) {
                if bad(&m) && m != module[0] {
                    out.push(format!("{}: {m}", file.strip_prefix(&src).unwrap().display()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `src/<root>.rs` or every `.rs` file under `src/<root>/`.
fn rust_files(src: &Path, root: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{root}.rs"));
    if file.is_file() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut dirs = vec![src.join(root)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    assert!(!out.is_empty(), "no source under src/{root}: update the rule lists");
    out
}

/// The module a file is: `src/store/query/list.rs` → [store, query, list].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Top-level crate modules (and `tiny_http`) a file's code names through `crate::`, `super::`
/// or a `use` of tiny_http, comments left out. `module` is the file's own path, for `super`.
fn referenced_modules(text: &str, module: &[&str]) -> Vec<String> {
    let code = strip_comments(text);
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let boundary =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        if boundary && rest.starts_with("tiny_http::") {
            out.push("tiny_http".to_string());
        }
        if boundary && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            // Resolve `super::super::…` against the file's module path.
            let mut base: Vec<&str> = module.to_vec();
            let mut j = i;
            if code[j..].starts_with("crate::") {
                base.clear();
                j += "crate::".len();
            } else {
                while code[j..].starts_with("super::") {
                    base.pop();
                    j += "super::".len();
                }
            }
            let heads = if code[j..].starts_with('{') { group_heads(&code[j..]) } else { vec![ident(&code[j..])] };
            for head in heads.into_iter().filter(|h| !h.is_empty()) {
                out.push(base.first().map_or(head, |b| b.to_string()));
            }
            i = j;
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// The first path segment of each item of a `{…}` use group.
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let (mut depth, mut start) = (0, 1);
    for (k, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                heads.push(ident(s[start..k].trim_start()));
                start = k + 1;
                if c == '}' {
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    heads
}

fn ident(s: &str) -> String {
    s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// The text without `//` and `/* */` comments (string contents are kept; a `//` inside a string
/// only hides the rest of its line, which cannot add a false finding).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |n| &after[n..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |n| &after[n + 2..]);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}
