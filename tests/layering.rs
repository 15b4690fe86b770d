//! Issue 18 item 8: dependencies point downward (docs/architecture.md). The rules, checked on
//! the source text, so a new upward import fails here rather than in a review:
//!
//! 1. Domain modules never name the HTTP layer (`http`, `api`, `ui`, `cli`, tiny_http): they
//!    take plain values (`auth::Caller`), so their rules are testable without a request.
//! 2. Storage (`store/`, `catalog/`, `db.rs`) names only storage and plumbing: it knows files,
//!    SQL and schemas, no rules and no configuration (`audit` fills the audit tables the store
//!    creates; fleet migrations are `fleet`, on top of `store`).
//! 3. Plumbing (errors, ids, time and text helpers, logging, counters) names only plumbing.
//! 4. Pages (`ui/`) never name `store`: they reach tenant data through `records`, the same
//!    functions the data API uses.
//!
//! Every module `src/lib.rs` declares is in exactly one list, so a new one gets a place (and
//! its rules) when it is added.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::path::{Path, PathBuf};

/// Top-level modules that hold rules.
const DOMAIN: &[&str] = &[
    "analytics",
    "audit",
    "auth",
    "backup",
    "billing",
    "cache",
    "cdn",
    "cluster",
    "demo",
    "directory",
    "fleet",
    "limits",
    "migration",
    "records",
    "security",
    "tenancy",
];
/// The I/O and format layer above them (`notify` speaks to systemd and probes the server).
const HTTP: &[&str] = &["http", "api", "ui", "cli", "notify", "check", "testkit"];
/// Storage.
const STORAGE: &[&str] = &["store", "catalog", "db", "replica"];
/// What every layer may use: it names nothing above itself.
const PLUMBING: &[&str] = &["error", "ids", "log", "metrics", "util"];
/// Modules that assemble the layers (shared state, the configuration of every section): any
/// layer above storage may name them.
const ASSEMBLY: &[&str] = &["app", "config"];
/// Test support that is an HTTP server by nature, as "file: what it names": the mock Stripe
/// (issue 20 item 7) listens with tiny_http in this one file; its rules (`handle`, the routes)
/// take plain values like any domain code, and it names no module of the HTTP layer.
const TEST_SERVERS: &[&str] = &["billing/stripe/mock/server.rs: tiny_http"];

#[test]
fn issue18_domain_modules_never_name_the_http_layer() {
    let found = violations(DOMAIN, |m| HTTP.contains(&m) || m == "tiny_http");
    for allowed in TEST_SERVERS {
        assert!(
            found.iter().any(|v| v == allowed),
            "TEST_SERVERS lists {allowed}, which is no longer found: remove it"
        );
    }
    let bad: Vec<&str> = found.iter().map(String::as_str).filter(|v| !TEST_SERVERS.contains(v)).collect();
    assert!(bad.is_empty(), "domain code naming the HTTP layer (pass plain values instead):\n{}", bad.join("\n"));
}

#[test]
fn issue18_storage_names_only_storage_and_plumbing() {
    let bad = violations(STORAGE, |m| !STORAGE.contains(&m) && !PLUMBING.contains(&m));
    assert!(bad.is_empty(), "storage naming a module above it (pass plain values instead):\n{}", bad.join("\n"));
}

#[test]
fn issue18_plumbing_names_only_plumbing() {
    let bad = violations(PLUMBING, |m| !PLUMBING.contains(&m));
    assert!(bad.is_empty(), "plumbing naming a module above it:\n{}", bad.join("\n"));
}

/// A module in no list would be checked by no rule.
#[test]
fn issue18_every_module_has_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared = declared_modules(&lib);
    assert!(declared.len() > 10, "src/lib.rs declares {declared:?}: the scan is broken");
    let lists = [DOMAIN, HTTP, STORAGE, PLUMBING, ASSEMBLY];
    for m in &declared {
        let n = lists.iter().filter(|l| l.contains(&m.as_str())).count();
        assert_eq!(n, 1, "module {m} is in {n} layer lists: put it in exactly one (tests/layering.rs)");
    }
    for m in lists.concat() {
        assert!(declared.iter().any(|d| d == m), "{m} is listed but src/lib.rs declares no such module");
    }
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
    assert!(found("/* outer /* inner */ crate::api */", &["auth"]).is_empty(), "block comments nest");
    let tests = "mod tests { use super::super::query::X; }\nmod q;\nuse super::super::audit::Y;";
    assert_eq!(found(tests, &["store", "advisor"]), ["store", "audit"], "super inside an inline module");
}

/// A comment opener inside a string literal does not hide the code after the string.
#[test]
fn the_scanner_reads_past_strings() {
    let found = |text: &str| referenced_modules(text, &["auth"]);
    assert_eq!(found("let s = \"/*\"; use crate::http::Req; // */"), ["http"]);
    assert_eq!(found("let u = \"https://x\"; use crate::api::Y;"), ["api"]);
    assert_eq!(found("let s = \"\\\" /*\"; use crate::ui::Z;"), ["ui"], "escaped quote");
    assert_eq!(found("let s = r#\"a \" /* b\"#; use crate::cli::W;"), ["cli"], "raw string");
    assert_eq!(found("let s = br##\"\"# //\"##; use crate::http::V;"), ["http"], "raw byte string");
    assert_eq!(found("let (q, s) = ('\"', \"//\"); use crate::api::U;"), ["api"], "char literal");
    assert_eq!(found("let (q, e) = (b'\"', '\\''); use crate::http::T; // \""), ["http"], "byte and escaped chars");
    assert_eq!(found("fn f<'a>(x: &'a str) -> &'a str { crate::ui::t(x) }"), ["ui"], "lifetimes");
    assert!(found("let s = \"crate::http::Req\";").is_empty(), "a path in a string is no reference");
}

/// tiny_http is found in every spelling a path can take.
#[test]
fn the_scanner_finds_tiny_http_spellings() {
    let found = |text: &str| referenced_modules(text, &["auth"]);
    assert_eq!(found("fn f(r: ::tiny_http::Request) {}"), ["tiny_http"]);
    assert_eq!(found("use {tiny_http::Response};"), ["tiny_http"]);
    assert_eq!(found("use tiny_http as th;"), ["tiny_http"]);
    assert!(found("let tiny_http_port = 1; mod my_tiny_http {}").is_empty());
}

/// The declaration scan sees every spelling of a module declaration.
#[test]
fn declared_modules_reads_lib_rs() {
    let lib = "//! doc: mod fake;\npub mod api;\nmod app;\npub(crate) mod audit;\n#[cfg(test)]\nmod tests {}\n\
               #[cfg(feature = \"x\")] pub mod testkit;\n";
    assert_eq!(declared_modules(lib), ["api", "app", "audit", "tests", "testkit"]);
}

/// Modules `src/lib.rs` declares (`mod x;`, `pub mod x;`, `pub(crate) mod x { … }`).
fn declared_modules(lib: &str) -> Vec<String> {
    let code = strip_comments(lib);
    let mut out = Vec::new();
    for line in code.lines() {
        let mut line = line.trim_start();
        while let Some((_, after)) = line.strip_prefix("#[").and_then(|a| a.split_once(']')) {
            line = after.trim_start();
        }
        let rest = match line.strip_prefix("pub") {
            Some(r) if r.starts_with('(') => r.split_once(')').map_or("", |(_, r)| r),
            Some(r) => r,
            None => line,
        };
        if let Some(name) = rest.trim_start().strip_prefix("mod ") {
            out.push(ident(name.trim_start()));
        }
    }
    out
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
    // Inline `mod name { … }` blocks open around `i` (`super` inside `mod tests` is the file's
    // module), with the brace depth each opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let ident_at = |k: usize| bytes[k].is_ascii_alphanumeric() || bytes[k] == b'_';
        let boundary = i == 0 || !(ident_at(i - 1) || bytes[i - 1] == b':');
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        if let Some(after) = rest.strip_prefix("mod ").filter(|_| boundary) {
            let name = ident(after.trim_start());
            if after.trim_start()[name.len()..].trim_start().starts_with('{') {
                inline.push((name, depth));
            }
        }
        // The crate itself, `tiny_http` or `::tiny_http` (not a path's inner segment, nor part
        // of a longer name).
        let leading_colons = i >= 2 && &code[i - 2..i] == "::" && (i == 2 || !ident_at(i - 3));
        if (boundary || leading_colons) && ident(rest) == "tiny_http" {
            out.push("tiny_http".to_string());
        }
        if boundary && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            // Resolve `super::super::…` against the module path at this point.
            let mut base: Vec<&str> = module.iter().copied().chain(inline.iter().map(|(m, _)| m.as_str())).collect();
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

/// The code without comments and without the contents of string literals (each becomes
/// `""`): a `/*` or `//` inside a string would otherwise hide the code after it. Char literals
/// are kept as `' '`, so that `'"'` does not open a string.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |n| &after[n..]);
        } else if rest.starts_with("/*") {
            rest = skip_block_comment(rest);
        } else if let Some(after) = raw_string_start(rest, &out) {
            rest = after;
            out.push_str("\"\"");
        } else if let Some(after) = rest.strip_prefix('"') {
            rest = skip_string(after);
            out.push_str("\"\"");
        } else if let Some(after) = char_literal(rest) {
            rest = after;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// After a `/* … */` comment starting `s` (they nest in Rust).
fn skip_block_comment(s: &str) -> &str {
    let mut depth = 0;
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            depth += 1;
            rest = after;
        } else if let Some(after) = rest.strip_prefix("*/") {
            depth -= 1;
            rest = after;
            if depth == 0 {
                return rest;
            }
        } else {
            rest = &rest[rest.chars().next().map_or(1, char::len_utf8)..];
        }
    }
    rest
}

/// After the closing quote of a `"…"` string whose opening quote was just consumed.
fn skip_string(s: &str) -> &str {
    let mut chars = s.char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return &s[k + 1..],
            _ => {}
        }
    }
    ""
}

/// When `s` starts a raw string (`r"…"`, `r#"…"#`, `br##"…"##`, with `b` already in `out`),
/// the text after it.
fn raw_string_start<'a>(s: &'a str, out: &str) -> Option<&'a str> {
    let before = out.strip_suffix('b').unwrap_or(out);
    if before.chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let after_r = s.strip_prefix('r')?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    let body = after_r[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    Some(body.find(&close).map_or("", |n| &body[n + close.len()..]))
}

/// When `s` starts a char literal (`'x'`, `'\''`, `'\u{1F600}'`), the text after it; a
/// lifetime (`'a`) is not one.
fn char_literal(s: &str) -> Option<&str> {
    let body = s.strip_prefix('\'')?;
    let mut chars = body.char_indices();
    let (_, c) = chars.next()?;
    if c == '\\' {
        let end = body[1..].find('\'')? + 1;
        return Some(&body[end + 1..]);
    }
    let (k, close) = chars.next()?;
    (close == '\'').then(|| &body[k + 1..])
}
