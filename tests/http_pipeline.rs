//! The request pipeline over real sockets: routing, tenant resolution, path hardening, body
//! limits, ambiguous lengths, panics, unsafe headers, health.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

mod common;

use common::TestServer;
use tenantd::http::router::{Access, Route, Router, Scope};
use tenantd::http::{Ctx, Method, Req, Resp};

#[test]
fn health_endpoints_answer_health_json() {
    let s = TestServer::start();
    for path in ["/health/liveness", "/health/readiness", "/health/", "/health"] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/health+json"));
        assert!(r.header("cache-control").unwrap().starts_with("max-age"));
        assert_eq!(r.json()["status"], "pass", "{path}");
    }
    let ready = s.get("/health/readiness").json();
    assert_eq!(ready["checks"]["catalog:responseTime"][0]["status"], "pass");
    assert_eq!(ready["checks"]["datadir:writable"][0]["status"], "pass");
}

#[test]
fn every_response_has_request_id_and_security_headers() {
    let s = TestServer::start();
    for path in ["/health/liveness", "/nope", "/api/v1/t/missing"] {
        let r = s.get(path);
        let id = r.header("x-request-id").unwrap();
        assert_eq!(id.len(), 16);
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert!(r.header("content-security-policy").is_some());
    }
}

#[test]
fn tenant_resolution_by_path_header_and_host() {
    let s = TestServer::start_with(|c| c.base_domain = Some("example.test".into()));
    s.create_tenant("acme");
    s.create_tenant("globex");
    let mut c = s.client();
    let by_path = c.get("/api/v1/t/acme").unwrap();
    assert_eq!(by_path.status, 200, "{}", by_path.text());
    assert_eq!(by_path.json()["slug"], "acme");
    let by_header = c.request("GET", "/api/v1/", &[("X-Tenant", "globex")], b"").unwrap();
    assert_eq!(by_header.json()["slug"], "globex");
    // tiny_http needs the Host header we give it; the client sends its own first, so send raw.
    let raw = b"GET /api/v1/ HTTP/1.1\r\nHost: acme.example.test:8080\r\n\r\n";
    let by_host = c.raw(raw, false).unwrap();
    assert_eq!(by_host.status, 200, "{}", by_host.text());
    assert_eq!(by_host.json()["slug"], "acme");
}

#[test]
fn conflicting_tenant_signals_are_400_not_a_guess() {
    let s = TestServer::start_with(|c| c.base_domain = Some("example.test".into()));
    s.create_tenant("acme");
    s.create_tenant("globex");
    let mut c = s.client();
    let r = c.request("GET", "/api/v1/t/acme", &[("X-Tenant", "globex")], b"").unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "tenant_conflict");
    let raw = b"GET /api/v1/t/acme HTTP/1.1\r\nHost: globex.example.test\r\n\r\n";
    let r = c.raw(raw, false).unwrap();
    assert_eq!(r.json()["error"]["code"], "tenant_conflict");
    // Agreeing signals are fine.
    let r = c.request("GET", "/api/v1/t/acme", &[("X-Tenant", "acme")], b"").unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn bad_slugs_and_encoded_traversal_are_400_and_touch_no_file() {
    let s = TestServer::start();
    s.create_tenant("acme");
    let before = common::files_under(&s.data_dir());
    let mut c = s.client();
    for path in [
        "/api/v1/t/%2e%2e/",
        "/api/v1/t/%2E%2E",
        "/api/v1/t/a%2fb",
        "/api/v1/t/..%2f..%2fetc",
        "/api/v1/t/ACME",
        "/api/v1/t/-acme",
        "/api/v1/t/a%00b",
        "/api/v1/t/acme_1",
        &format!("/api/v1/t/{}", "a".repeat(64)),
    ] {
        let r = c.get(path).unwrap();
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let code = r.json()["error"]["code"].as_str().unwrap().to_string();
        assert!(code == "invalid_slug" || code == "invalid_path", "{path}: {code}");
    }
    let r = c.request("GET", "/api/v1/", &[("X-Tenant", "../x")], b"").unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(common::files_under(&s.data_dir()), before, "no file may be created or removed");
}

#[test]
fn unknown_tenant_is_404_and_creates_nothing() {
    let s = TestServer::start();
    let before = common::files_under(&s.data_dir());
    let r = s.get("/api/v1/t/ghost");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");
    assert_eq!(common::files_under(&s.data_dir()), before);
}

#[test]
fn missing_tenant_file_is_503_tenant_unavailable_never_recreated() {
    let s = TestServer::start();
    let t = s.create_tenant("acme");
    let db = s.app.paths.tenant_db(&t.id);
    std::fs::remove_file(&db).unwrap();
    let r = s.get("/api/v1/t/acme");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "tenant_unavailable");
    assert!(!db.exists(), "a missing tenant file must not be recreated empty");
}

#[test]
fn unknown_route_404_and_wrong_method_405_with_allow() {
    let s = TestServer::start();
    s.create_tenant("acme");
    let mut c = s.client();
    assert_eq!(c.get("/nope").unwrap().status, 404);
    let r = c.request("DELETE", "/health/liveness", &[], b"").unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    let r = c.request("PUT", "/api/v1/t/acme", &[], b"{}").unwrap();
    assert_eq!(r.status, 405);
}

#[test]
fn ambiguous_lengths_are_refused() {
    let s = TestServer::start();
    let mut c = s.client();
    let both = b"POST /health/liveness HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let r = c.raw(both, false).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "ambiguous_length");
    let mut c = s.client();
    let twice = b"POST /health/liveness HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab";
    let r = c.raw(twice, false).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "ambiguous_length");
    // The unread body must not become a second request on the same connection: one answer,
    // then the connection ends.
    use std::io::{Read, Write};
    for head in [
        "POST /health/liveness HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /health/liveness HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n",
    ] {
        let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        sock.write_all(format!("{head}GET /health/liveness HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        let mut all = Vec::new();
        sock.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "one answer, then close: {text}");
        assert!(text.starts_with("HTTP/1.1 400 ") && text.contains("Connection: close"), "{text}");
    }
}

#[test]
fn framing_follows_the_request_head_http10_keep_alive_and_head() {
    use std::io::{Read, Write};
    let s = TestServer::start();
    let exchange = |raw: &str| {
        let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        sock.write_all(raw.as_bytes()).unwrap();
        let mut all = Vec::new();
        sock.read_to_end(&mut all).unwrap();
        String::from_utf8(all).unwrap()
    };
    // HTTP/1.0 without keep-alive: a 1.0 status line, Connection: close, then the end.
    let text = exchange("GET /health/liveness HTTP/1.0\r\n\r\n");
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n") && text.contains("\r\nConnection: close\r\n"), "{text}");
    // HTTP/1.0 asking for keep-alive: said so, and a second request on the same connection is
    // answered (the second asks to close, so the read ends).
    let text = exchange(
        "GET /health/liveness HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health/liveness HTTP/1.0\r\n\r\n",
    );
    assert_eq!(text.matches("HTTP/1.0 200 OK\r\n").count(), 2, "{text}");
    assert!(text.contains("\r\nConnection: keep-alive\r\n"), "{text}");
    // HEAD: the GET's length, no body; pipelined behind it, a GET with its body.
    let text = exchange(
        "HEAD /health/liveness HTTP/1.1\r\nHost: x\r\n\r\nGET /health/liveness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let starts: Vec<usize> = text.match_indices("HTTP/1.1 200 OK").map(|(i, _)| i).collect();
    assert_eq!(starts.len(), 2, "{text}");
    let (head, get) = text.split_at(starts[1]);
    let length = |h: &str| h.lines().find_map(|l| l.strip_prefix("Content-Length: ")).map(str::to_string);
    assert!(head.ends_with("\r\n\r\n"), "HEAD carries no body: {head:?}");
    assert_eq!(length(head), length(get), "{text}");
    let body = get.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(Some(body.len().to_string()), length(get));
}

/// Sends `raw` on a fresh connection, `chunk` bytes per write, and reads until the server closes.
fn exchange_in_chunks(s: &TestServer, raw: &[u8], chunk: usize) -> String {
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    for piece in raw.chunks(chunk) {
        sock.write_all(piece).unwrap();
    }
    let mut all = Vec::new();
    sock.read_to_end(&mut all).unwrap();
    String::from_utf8(all).unwrap()
}

#[test]
fn request_heads_are_bounded_while_they_are_read() {
    let s = TestServer::start();
    // The fork stops at 64 KiB (65,536 bytes). Exactly one byte more is sent, and no line end,
    // so the server has read all of it when it answers and the close is orderly.
    let refused = |raw: Vec<u8>, status: &str, code: &str| {
        assert_eq!(raw.len(), 65_537);
        let text = exchange_in_chunks(&s, &raw, 8192);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], code, "{text}");
    };
    let mut line = b"GET /".to_vec();
    line.resize(65_537, b'a');
    refused(line, "414", "uri_too_long");
    let mut head = b"GET /health/liveness HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    head.resize(65_537, b'a');
    refused(head, "431", "headers_too_large");
    // Within the bound, a head of 60 KiB is read and answered (the app's own header limit is
    // 32 KiB of them, so this one is refused by the app, not cut off by the reader).
    let mut big = b"GET /health/liveness HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ".to_vec();
    big.resize(60 * 1024, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    let text = exchange_in_chunks(&s, &big, 8192);
    assert!(text.starts_with("HTTP/1.1 431 ") && text.contains("at most 100 headers"), "{text}");
    assert_eq!(s.get("/health/liveness").status, 200);
}

#[test]
fn a_head_arriving_a_byte_at_a_time_is_read_whole() {
    let s = TestServer::start();
    let two = b"GET /health/liveness HTTP/1.1\r\nHost: x\r\n\r\nGET /health/readiness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let text = exchange_in_chunks(&s, two, 1);
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
}

#[test]
fn bare_line_ends_and_unknown_versions_are_refused_and_close() {
    let s = TestServer::start();
    // A front proxy may end a line at a bare LF; we must not read the same bytes differently.
    for (raw, status, code) in [
        (&b"GET /health/liveness HTTP/1.1\r\nX-A: a\nTransfer-Encoding: chunked\r\n\r\n"[..], "400", "bad_header"),
        (b"GET /health/liveness HTTP/1.1\r\nX-A: a\rb\r\n\r\n", "400", "bad_header"),
        (b"GET /health/liveness\nX HTTP/1.1\r\n\r\n", "400", "bad_request_line"),
        (b"GET /health/liveness\r\n\r\n", "400", "bad_request_line"),
        (b"GET /health/liveness HTTP/2.0\r\n\r\n", "505", "http_version_not_supported"),
        (b"GET /health/liveness HTTP/1.1\r\nX-A: caf\xc3\xa9\r\n\r\n", "400", "bad_header"),
        (b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", "400", "bad_request_line"),
        (
            b"POST /health/liveness HTTP/1.1\r\nExpect: chocolate\r\nContent-Length: 0\r\n\r\n",
            "417",
            "expectation_failed",
        ),
    ] {
        let text = exchange_in_chunks(&s, raw, raw.len());
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
        assert!(text.contains("\r\nContent-Type: application/json\r\n"), "{text}");
        assert!(text.contains(&format!("\"code\":\"{code}\"")), "{text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "one answer, then close: {text}");
    }
}

#[test]
fn a_refused_body_is_drained_when_small_and_ends_the_connection_when_large() {
    use std::io::{Read, Write};
    let s = TestServer::start_with(|c| c.max_body_bytes = 4096);
    let post = |length: usize| {
        format!("POST /api/v1/t/acme/customers HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n")
    };
    // A small rest is read and dropped, and the connection carries the next request.
    let mut raw = post(10_000).into_bytes();
    raw.resize(raw.len() + 10_000, b'a');
    raw.extend_from_slice(b"GET /health/liveness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let text = exchange_in_chunks(&s, &raw, 4096);
    assert!(text.starts_with("HTTP/1.1 413 ") && text.contains("HTTP/1.1 200 OK"), "{text}");
    // 100 MB declared, 64 KiB sent, and the client waits: the answer comes, then the end of the
    // stream. Draining would have held a worker until all 100 MB arrived (and this read would
    // time out).
    let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    sock.write_all(post(100_000_000).as_bytes()).unwrap();
    sock.write_all(&vec![b'a'; 64 * 1024]).unwrap();
    let mut got = Vec::new();
    sock.read_to_end(&mut got).unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413 ") && text.contains("\r\nConnection: close\r\n"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert_eq!(s.get("/health/liveness").status, 200);
}

#[test]
fn the_unread_rest_of_a_chunked_body_is_never_read_as_a_request() {
    let s = TestServer::start_with(|c| c.max_body_bytes = 4096);
    // One chunk of 8,192 bytes; the server reads 4,097 of them, refuses with 413, and what
    // follows in the chunk looks like a request.
    let mut chunk = vec![b'a'; 4097];
    chunk.extend_from_slice(b"GET /health/liveness HTTP/1.1\r\nHost: x\r\n\r\n");
    chunk.resize(8192, b'a');
    let mut raw =
        b"POST /api/v1/t/acme/customers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n".to_vec();
    raw.extend_from_slice(&chunk);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let text = exchange_in_chunks(&s, &raw, raw.len());
    assert!(text.starts_with("HTTP/1.1 413 ") && text.contains("\r\nConnection: close\r\n"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "one answer, then the end: {text}");
}

#[test]
fn stalled_and_idle_connections_end_after_the_read_timeout() {
    // Idle connections have their own limit since issue 18 (keep_alive_idle_seconds).
    let s = TestServer::start_with(|c| {
        c.read_timeout_seconds = 1;
        c.keep_alive_idle_seconds = 1;
    });
    let open = |raw: &[u8]| {
        use std::io::{Read, Write};
        let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        sock.write_all(raw).unwrap();
        let mut all = Vec::new();
        sock.read_to_end(&mut all).unwrap();
        String::from_utf8(all).unwrap()
    };
    // Idle: closed without an answer.
    assert_eq!(open(b""), "");
    // A head that stops midway: 408, then the end.
    let text = open(b"GET /health/liveness HTTP/1.1\r\nHost: x\r\n");
    assert!(text.starts_with("HTTP/1.1 408 ") && text.contains("request_timeout"), "{text}");
    // A body that stops midway: the request ends with 408, and so does the connection.
    let text = open(b"POST /api/v1/t/acme/customers HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"name\"");
    assert!(text.starts_with("HTTP/1.1 408 ") && text.contains("request_timeout"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert_eq!(s.get("/health/liveness").status, 200);
}

#[test]
fn odd_lengths_and_upgrades_are_framed_safely() {
    let s = TestServer::start();
    // A length that is not a plain number would have read as "no body", and the body as the
    // next request.
    let smuggle = b"POST /health/liveness HTTP/1.1\r\nHost: x\r\nContent-Length: 44, 44\r\n\r\nGET /health/readiness HTTP/1.1\r\nHost: x\r\n\r\n";
    let text = exchange_in_chunks(&s, smuggle, smuggle.len());
    assert!(text.starts_with("HTTP/1.1 400 ") && text.contains("bad_header"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    // What `curl --http2 http://…` sends: answered over HTTP/1.1, then the connection ends
    // (the socket used to become the body, and reading it held a worker until the client left).
    let h2c = b"GET /health/liveness HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    let text = exchange_in_chunks(&s, h2c, h2c.len());
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    // A refused large body on a connection the client asked to close: the answer still arrives
    // whole (the close lingers instead of resetting it away).
    let mut raw =
        b"POST /api/v1/t/acme/customers HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000000\r\n\r\n"
            .to_vec();
    raw.resize(raw.len() + 256 * 1024, b'a');
    let text = exchange_in_chunks(&s, &raw, 16 * 1024);
    assert!(text.starts_with("HTTP/1.1 413 ") && text.contains("payload_too_large"), "{text}");
}

#[test]
fn a_huge_declared_body_is_refused_before_it_is_sent_and_the_server_lives() {
    use std::io::{Read, Write};
    let s = TestServer::start_with(|c| c.max_body_bytes = 4096);
    // tiny_http drained an unread body into one buffer of its declared size: the first aborted
    // the process ("memory allocation failed"), the second panicked (capacity overflow).
    for length in ["1000000000000000", "18446744073709551615", "100000"] {
        let mut sock = std::net::TcpStream::connect(s.addr()).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let head = format!("POST /api/v1/t/acme/customers HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");
        sock.write_all(head.as_bytes()).unwrap();
        sock.write_all(b"{\"name\": \"only the first bytes\"}").unwrap();
        // The answer comes while the client has sent a few bytes of the body, not after all.
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("payload_too_large") {
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed without an answer for Content-Length {length}");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 413 "), "{}", String::from_utf8_lossy(&got));
        drop(sock);
        assert_eq!(s.get("/health/liveness").status, 200, "the server lives after Content-Length {length}");
    }
}

#[test]
fn oversized_bodies_are_413() {
    let s = TestServer::start_with(|c| c.max_body_bytes = 4096);
    let mut c = s.client();
    let body = vec![b'x'; 5000];
    let r = c.request("POST", "/health/liveness", &[("Content-Type", "application/json")], &body).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "payload_too_large");
    // Chunked bodies are capped while reading.
    let mut c = s.client();
    let mut raw = b"POST /health/liveness HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    raw.extend_from_slice(&body);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let r = c.raw(&raw, false).unwrap();
    assert_eq!(r.status, 413);
}

fn boom(_: &Ctx<'_>, _: &Req) -> tenantd::error::Result<Resp> {
    panic!("deliberate test panic")
}

fn evil_header(_: &Ctx<'_>, _: &Req) -> tenantd::error::Result<Resp> {
    Ok(Resp::json(200, &"ok").with_header("X-Evil", "a\r\nSet-Cookie: pwned=1").with_header("X-Fine", "yes"))
}

fn test_router() -> Router {
    let mut r = tenantd::api::router();
    let route = |pattern, handler| Route {
        method: Method::Get,
        scope: Scope::Global,
        pattern,
        handler,
        access: Access::Public,
    };
    r.push(route("/test/boom", boom));
    r.push(route("/test/evil", evil_header));
    r
}

#[test]
fn a_panicking_handler_is_a_500_and_workers_live_on() {
    let s = TestServer::with_router(test_router());
    // More panics than workers: if a panic killed its worker, later requests would hang.
    for _ in 0..10 {
        let r = s.get("/test/boom");
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["error"]["code"], "internal");
        assert!(!r.text().contains("deliberate"), "panic text must not reach the client");
    }
    assert_eq!(s.get("/health/liveness").status, 200);
    assert_eq!(s.state().panics.load(std::sync::atomic::Ordering::Relaxed), 10);
}

#[test]
fn header_values_with_crlf_are_never_sent() {
    let s = TestServer::with_router(test_router());
    let r = s.get("/test/evil");
    assert_eq!(r.status, 200);
    assert!(r.header("x-evil").is_none());
    assert!(r.header("set-cookie").is_none());
    assert_eq!(r.header("x-fine"), Some("yes"));
}

#[test]
fn deep_json_and_header_floods_are_refused() {
    let s = TestServer::start();
    let t = s.token("a@acme.test", "acme", "owner");
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let auth = format!("Bearer {t}");
    let mut c = s.client();
    let r = c
        .request(
            "POST",
            "/api/v1/t/acme/customers",
            &[("Authorization", &auth), ("Content-Type", "application/json")],
            deep.as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "json_too_deep");
    let names: Vec<String> = (0..150).map(|i| format!("X-Pad-{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let r = s.client().request("GET", "/health/liveness", &headers, b"").unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(r.json()["error"]["code"], "headers_too_large");
}

#[test]
fn a_burst_of_new_connections_is_served_while_all_of_them_stay_open() {
    // tiny_http queued a burst of new connections behind a single idle connection thread, and a
    // queued connection got no answer until another connection closed (vendor/tiny_http,
    // PATCHES.md 9). Here every connection stays open, so each must have a thread of its own.
    use std::io::Write;
    let s = TestServer::start();
    let mut conns: Vec<std::io::BufReader<std::net::TcpStream>> =
        (0..32).map(|_| std::io::BufReader::new(std::net::TcpStream::connect(s.addr()).unwrap())).collect();
    for c in &mut conns {
        c.get_ref().set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        c.get_mut().write_all(b"GET /health/liveness HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let r = tenantd::http::client::read_response(c, false)
            .unwrap_or_else(|e| panic!("connection {i} got no answer: {e}"));
        assert_eq!(r.status, 200, "connection {i}: {}", r.text());
    }
}
