//! Issue 23: several tenantd nodes on loopback ports with their own data dirs: placement by
//! rendezvous hashing, the directory and its copies, redirects to the node that holds a tenant,
//! tenant-scoped sign-in, and what happens while the directory node is away.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

mod common;

use common::{TestServer, PASSWORD};
use serde_json::json;
use tenantd::cluster::{self, ClusterConfig, NodeConfig};

const SECRET: &str = "a-cluster-secret-of-at-least-32-characters";

struct Nodes {
    a: TestServer,
    b: TestServer,
    c: TestServer,
    config: ClusterConfig,
    admin: [String; 3],
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn cluster_config(ports: &[u16; 3]) -> ClusterConfig {
    ClusterConfig {
        directory: "a".into(),
        secret: SECRET.into(),
        nodes: ["a", "b", "c"]
            .iter()
            .zip(ports)
            .map(|(n, p)| NodeConfig { name: n.to_string(), url: format!("http://127.0.0.1:{p}"), weight: 1.0 })
            .collect(),
        ..ClusterConfig::default()
    }
}

fn nodes() -> Nodes {
    let ports = [free_port(), free_port(), free_port()];
    let config = cluster_config(&ports);
    let start = |i: usize, name: &str| {
        let mut cc = config.clone();
        cc.name = name.into();
        TestServer::start_on(&format!("127.0.0.1:{}", ports[i]), |c| c.cluster = cc)
    };
    let (a, b, c) = (start(0, "a"), start(1, "b"), start(2, "c"));
    // The platform admin is created on the directory node; the others get it with the directory.
    tenantd::auth::create_user(&a.app, "root@example.com", PASSWORD, true).unwrap();
    for s in [&b, &c] {
        cluster::sync(&s.app).unwrap();
    }
    let admin = [&a, &b, &c].map(|s| s.login("root@example.com"));
    Nodes { a, b, c, config, admin }
}

impl Nodes {
    fn node(&self, name: &str) -> &TestServer {
        match name {
            "a" => &self.a,
            "b" => &self.b,
            _ => &self.c,
        }
    }

    fn sync_all(&self) {
        for s in [&self.b, &self.c] {
            cluster::sync(&s.app).unwrap();
        }
    }
}

#[test]
fn tenants_go_where_rendezvous_hashing_says_and_every_node_redirects_to_them() {
    let n = nodes();
    let slugs: Vec<String> = (0..12).map(|i| format!("co-{i}")).collect();
    for s in &slugs {
        // Created through node a, whichever node placement picks.
        let r = n.a.post_json("/api/v1/platform/tenants", Some(&n.admin[0]), &json!({"slug": s, "name": s}));
        assert_eq!(r.status, 201, "{}", r.text());
        let want = cluster::placement::choose(&n.config.nodes, s).unwrap();
        assert_eq!(r.header("tenantd-node"), Some(want.name.as_str()), "{s}");
        let holder = n.node(&want.name);
        assert!(holder.app.tenant(&tenantd::ids::Slug::parse(s).unwrap()).is_ok(), "{s} is on {}", want.name);
    }
    let on: Vec<usize> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            slugs.iter().filter(|s| cluster::placement::choose(&n.config.nodes, s).unwrap().name == *name).count()
        })
        .collect();
    assert!(on.iter().all(|k| *k > 0), "12 tenants spread over the 3 nodes: {on:?}");
    n.sync_all();
    for s in [&n.a, &n.b, &n.c] {
        assert_eq!(s.app.cluster.as_ref().unwrap().placements().len(), 12, "every copy has every tenant");
    }

    // A tenant held by b, asked of a and c: 307 for reads, 421 for a POST, by path and by header.
    let on_b = slugs.iter().find(|s| cluster::placement::choose(&n.config.nodes, s).unwrap().name == "b").unwrap();
    for other in [&n.a, &n.c] {
        let r = other.get(&format!("/api/v1/t/{on_b}/?x=1"));
        assert_eq!(r.status, 307, "{}", r.text());
        assert_eq!(r.header("location").unwrap(), format!("{}/api/v1/t/{on_b}/?x=1", n.config.nodes[1].url));
        assert_eq!(r.header("tenantd-node"), Some("b"));
        assert_eq!(r.json()["error"]["code"], "tenant_elsewhere");
        let r = other.post_json(&format!("/api/v1/t/{on_b}/customers"), None, &json!({"name": "x"}));
        assert_eq!(r.status, 421, "a POST is not sent again blindly: {}", r.text());
        let r = other.client().request("GET", "/api/v1/customers", &[("X-Tenant", on_b.as_str())], b"").unwrap();
        assert_eq!(r.status, 307);
    }
    // The holder answers itself; an unknown slug is the usual 404 everywhere.
    assert_eq!(n.b.get(&format!("/api/v1/t/{on_b}/")).status, 200);
    assert_eq!(n.a.get("/api/v1/t/nobody-here/").status, 404);

    // The same slug again, through another node: refused cluster-wide, nothing left behind.
    let r = n.c.post_json("/api/v1/platform/tenants", Some(&n.admin[2]), &json!({"slug": on_b, "name": "dup"}));
    assert_eq!(r.status, 409, "{}", r.text());
    // --node pins a tenant to a node placement would not pick.
    let pinned = (0..50)
        .map(|i| format!("pin-{i}"))
        .find(|s| cluster::placement::choose(&n.config.nodes, s).unwrap().name != "c")
        .unwrap();
    let r = n.a.post_json(
        "/api/v1/platform/tenants",
        Some(&n.admin[0]),
        &json!({"slug": pinned, "name": "p", "node": "c"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("tenantd-node"), Some("c"));
    let r = n.a.post_json(
        "/api/v1/platform/tenants",
        Some(&n.admin[0]),
        &json!({"slug": "zz", "name": "z", "node": "nope"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("no node \\\"nope\\\""), "{}", r.text());
    n.sync_all();
    let p = n.b.app.cluster.as_ref().unwrap().locate(&pinned).unwrap();
    assert!(p.pinned && p.node == "c");
}

#[test]
fn sign_in_scoped_to_a_tenant_only_admits_its_members() {
    let n = nodes();
    let s = (0..50)
        .map(|i| format!("t-{i}"))
        .find(|s| cluster::placement::choose(&n.config.nodes, s).unwrap().name == "b")
        .unwrap();
    let r = n.a.post_json("/api/v1/platform/tenants", Some(&n.admin[0]), &json!({"slug": s, "name": "T"}));
    assert_eq!(r.status, 201);
    n.b.member("member@example.com", &s, "member");
    n.b.member("stranger@example.com", "other-b", "owner");
    let login = |email: &str| {
        n.b.post_json(&format!("/api/v1/t/{s}/auth/login"), None, &json!({"email": email, "password": PASSWORD}))
    };
    let ok = login("member@example.com");
    assert_eq!(ok.status, 200, "{}", ok.text());
    let token = ok.json()["token"].as_str().unwrap().to_string();
    assert_eq!(n.b.get_as(&format!("/api/v1/t/{s}/members"), &token).status, 200);
    let r = login("stranger@example.com");
    assert_eq!(r.status, 401, "a member of another tenant gets the wrong-password answer: {}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_credentials");
    assert_eq!(login("root@example.com").status, 200, "platform admins sign in anywhere");
    // Through a node that does not hold the tenant: a 421 naming the right one.
    n.sync_all();
    let r = n.c.post_json(
        &format!("/api/v1/t/{s}/auth/login"),
        None,
        &json!({"email": "member@example.com", "password": PASSWORD}),
    );
    assert_eq!(r.status, 421);
    assert!(r.header("location").unwrap().starts_with(&n.config.nodes[1].url));
}

#[test]
fn without_the_directory_node_the_others_serve_and_only_placement_waits() {
    let mut n = nodes();
    let on = |name: &str| {
        (0..80)
            .map(|i| format!("d-{i}"))
            .find(|s| cluster::placement::choose(&n.config.nodes, s).unwrap().name == name)
            .unwrap()
    };
    let (on_b, on_c) = (on("b"), on("c"));
    for s in [&on_b, &on_c] {
        assert_eq!(
            n.a.post_json("/api/v1/platform/tenants", Some(&n.admin[0]), &json!({"slug": s, "name": s})).status,
            201
        );
    }
    n.sync_all();
    n.a.shutdown();
    // b still serves its tenant and still sends c's tenant to c, from its own copy.
    assert_eq!(n.b.get(&format!("/api/v1/t/{on_b}/")).status, 200);
    assert_eq!(n.b.get(&format!("/api/v1/t/{on_c}/")).status, 307);
    assert!(cluster::sync(&n.b.app).is_err());
    // A new tenant needs the directory: refused with 503, and nothing is left on b.
    let fresh = (0..200)
        .map(|i| format!("new-{i}"))
        .find(|s| cluster::placement::choose(&n.config.nodes, s).unwrap().name == "b")
        .unwrap();
    let r = n.b.post_json("/api/v1/platform/tenants", Some(&n.admin[1]), &json!({"slug": fresh, "name": "f"}));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("directory node"), "{}", r.text());
    assert!(n.b.app.tenant(&tenantd::ids::Slug::parse(&fresh).unwrap()).is_err(), "the local create was undone");
}

#[test]
fn platform_admins_of_the_directory_node_exist_on_every_node() {
    let n = nodes();
    tenantd::auth::create_user(&n.a.app, "ops@example.com", PASSWORD, true).unwrap();
    n.b.member("ops@example.com", "b-only", "viewer"); // an account of that email already on b
    n.sync_all();
    for s in [&n.b, &n.c] {
        let r = s.post_json("/api/v1/auth/login", None, &json!({"email": "ops@example.com", "password": PASSWORD}));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["user"]["is_platform_admin"], true);
        assert_eq!(s.get_as("/api/v1/platform/tenants", r.json()["token"].as_str().unwrap()).status, 200);
    }
    let conn = n.b.app.catalog.conn().unwrap();
    let count: i64 =
        conn.query_row("SELECT count(*) FROM users WHERE email = 'ops@example.com'", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 1, "promoted, not duplicated");
}

#[test]
fn node_calls_need_the_cluster_secret() {
    let n = nodes();
    for (path, method) in
        [("/api/v1/cluster/directory", "GET"), ("/api/v1/cluster/node", "GET"), ("/api/v1/cluster/directory", "POST")]
    {
        let r = n.a.client().request(method, path, &[], b"{}").unwrap();
        assert_eq!(r.status, 401, "{method} {path} without the secret");
        let r = n.a.client().request(method, path, &[("Authorization", "Bearer wrong-secret")], b"{}").unwrap();
        assert_eq!(r.status, 401, "{method} {path} with a wrong secret");
    }
    let auth = format!("Bearer {SECRET}");
    let r = n.a.client().request("GET", "/api/v1/cluster/directory?since=x", &[("Authorization", &auth)], b"").unwrap();
    assert_eq!(r.status, 400);
    // Changes go to the directory node only.
    let r =
        n.b.client()
            .request(
                "POST",
                "/api/v1/cluster/directory",
                &[("Authorization", &auth), ("Content-Type", "application/json")],
                br#"{"changes":[]}"#,
            )
            .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "not_directory_node");
    // A platform admin sees every node.
    let r = n.a.get_as("/api/v1/platform/cluster", &n.admin[0]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["nodes"].as_array().unwrap().len(), 3);
    assert!(r.json()["nodes"].as_array().unwrap().iter().all(|x| x["up"] == true));
    // The console's cluster card and each node's metrics.
    let cookie = format!("tenantd_session={}", n.admin[0]);
    let page = n.a.client().request("GET", "/admin/platform", &[("Cookie", cookie.as_str())], b"").unwrap();
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("<h2>Cluster</h2>") && html.contains(&n.config.nodes[2].url), "the console lists the nodes");
    let metrics = n.b.get("/metrics").text();
    assert!(metrics.contains("tenantd_cluster_directory_version "), "{metrics}");
    assert!(metrics.contains("tenantd_cluster_redirects_total "));
    // Without a cluster the paths do not exist.
    let single = TestServer::start();
    assert_eq!(single.get("/api/v1/cluster/node").status, 404);
}

#[test]
fn cluster_config_errors_name_the_key() {
    let mut c = cluster_config(&[1, 2, 3]);
    c.name = "a".into();
    assert!(c.validate().is_ok());
    let bad = |f: &dyn Fn(&mut ClusterConfig), says: &str| {
        let mut x = c.clone();
        f(&mut x);
        let e = x.validate().unwrap_err();
        assert!(e.contains(says), "{e} should say {says}");
    };
    bad(&|x| x.name = "z".into(), "cluster.name");
    bad(&|x| x.directory = "q".into(), "cluster.directory");
    bad(&|x| x.nodes[1].name = "a".into(), "twice");
    bad(&|x| x.nodes[0].url = "ftp://x".into(), "http(s)://host:port");
    bad(&|x| x.nodes[0].url = "http://x:1/path".into(), "no path");
    bad(&|x| x.nodes[2].weight = 0.0, "weight");
    bad(&|x| x.store = "gopher://x".into(), "cluster.store");
    bad(&|x| x.nodes[0].name = "Bad Name".into(), "node names");
}

#[test]
fn a_frozen_tenant_refuses_writes_with_retry_after_and_keeps_reading() {
    let n = nodes();
    let owner = n.a.token("owner@example.com", "frozen-co", "owner");
    let r = n.a.post_json("/api/v1/t/frozen-co/customers", Some(&owner), &json!({"name": "before"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let slug = tenantd::ids::Slug::parse("frozen-co").unwrap();
    let frozen = cluster::moves::freeze(&n.a.app, &slug, "b").unwrap();
    // The last write is the audit entry the target waits for.
    let head = frozen["head"][0].as_i64().unwrap();
    assert!(head > 0);
    assert_eq!(frozen["identity"]["members"][0]["email"], "owner@example.com");
    assert!(frozen["identity"]["members"][0]["password_hash"].as_str().unwrap().starts_with("$argon2"));
    let r = n.a.post_json("/api/v1/t/frozen-co/customers", Some(&owner), &json!({"name": "during"}));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["error"]["code"], "tenant_moving");
    let list = n.a.get_as("/api/v1/t/frozen-co/customers", &owner);
    assert_eq!(list.status, 200, "reads go on");
    assert_eq!(list.json()["total"], 1);
    cluster::moves::thaw(&n.a.app, &slug).unwrap();
    let r = n.a.post_json("/api/v1/t/frozen-co/customers", Some(&owner), &json!({"name": "after"}));
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn a_node_back_from_the_dead_does_not_answer_for_tenants_taken_over() {
    let n = nodes();
    let s = (0..80)
        .map(|i| format!("f-{i}"))
        .find(|s| cluster::placement::choose(&n.config.nodes, s).unwrap().name == "b")
        .unwrap();
    assert_eq!(
        n.a.post_json("/api/v1/platform/tenants", Some(&n.admin[0]), &json!({"slug": s, "name": s})).status,
        201
    );
    n.sync_all();
    assert_eq!(n.b.get(&format!("/api/v1/t/{s}/")).status, 200);
    // What a failover to c records: the tenant is c's now (b was down and kept its copy).
    let p = n.a.app.cluster.as_ref().unwrap().locate(&s).unwrap();
    let take = cluster::Change {
        slug: s.clone(),
        tenant_id: p.tenant_id.clone(),
        node: "c".into(),
        state: "active".into(),
        pinned: Some(true),
        domains: None,
        bytes: None,
        expect_node: Some("b".into()),
    };
    cluster::change(&n.a.app, &[take]).unwrap();
    n.sync_all();
    let r = n.b.get(&format!("/api/v1/t/{s}/"));
    assert_eq!(r.status, 307, "b still has the file but the directory gives the tenant to c: {}", r.text());
    assert_eq!(r.header("tenantd-node"), Some("c"));
    // A failover onto a node that is up is refused by the CLI; onto an unknown node by the API.
    let auth = format!("Bearer {SECRET}");
    for from in ["zz", "b"] {
        let body = format!(r#"{{"from":"{from}"}}"#);
        let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        let r = n.b.client().request("POST", "/api/v1/cluster/failover", &headers, body.as_bytes()).unwrap();
        assert_eq!(r.status, 400, "from {from}: {}", r.text());
    }
}

/// The smallest PNG signature + IHDR start: enough for the magic-number check.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00";

#[test]
fn a_moving_tenants_assets_are_pulled_by_the_target_and_checked() {
    let n = nodes();
    let owner = n.a.token("owner@example.com", "assets-co", "owner");
    let auth = format!("Bearer {owner}");
    let up = |body: &[u8], ct: &str| {
        n.a.client()
            .request("POST", "/api/v1/t/assets-co/assets", &[("Authorization", &auth), ("Content-Type", ct)], body)
            .unwrap()
    };
    let png = up(PNG, "image/png");
    assert_eq!(png.status, 201, "{}", png.text());
    let text = up(b"notes\n", "text/plain");
    let shas =
        [png.json()["sha256"].as_str().unwrap().to_string(), text.json()["sha256"].as_str().unwrap().to_string()];
    let id = n.a.app.tenant(&tenantd::ids::Slug::parse("assets-co").unwrap()).unwrap().id;
    // The node routes need the secret.
    let list = format!("/api/v1/cluster/assets/{id}");
    assert_eq!(n.a.get(&list).status, 401);
    let secret = format!("Bearer {SECRET}");
    let r = n.a.client().request("GET", &list, &[("Authorization", &secret)], b"").unwrap();
    let mut want = shas.to_vec();
    want.sort();
    assert_eq!(r.json()["items"], json!(want));
    let bad = n.a.client().request("GET", &format!("{list}/..%2Fdata.db"), &[("Authorization", &secret)], b"").unwrap();
    assert!(matches!(bad.status, 400 | 404), "{}", bad.status);
    let missing =
        n.a.client().request("GET", &format!("{list}/{}", "0".repeat(64)), &[("Authorization", &secret)], b"");
    assert_eq!(missing.unwrap().status, 404);
    // Node b pulls them into a scratch directory, each checked against its name; a second pull
    // finds nothing missing.
    let dir = tempfile::tempdir().unwrap();
    let into = dir.path().join("assets");
    assert_eq!(cluster::files::pull_assets(&n.b.app, &id, "a", &into).unwrap(), 2);
    assert_eq!(std::fs::read(into.join(&shas[0])).unwrap(), PNG);
    assert_eq!(cluster::files::pull_assets(&n.b.app, &id, "a", &into).unwrap(), 0);
    // Its snapshots too, chunk by chunk, checked against their manifests.
    let t = n.a.app.tenant(&tenantd::ids::Slug::parse("assets-co").unwrap()).unwrap();
    let snap = tenantd::backup::create(&n.a.app, &t, tenantd::backup::Kind::Manual).unwrap();
    let backups = dir.path().join("backups");
    assert_eq!(cluster::files::pull_backups(&n.b.app, &id, "a", &backups).unwrap(), 1);
    assert_eq!(
        std::fs::read(backups.join(&snap.file)).unwrap(),
        std::fs::read(n.a.app.paths.backups(&id).join(&snap.file)).unwrap()
    );
    assert!(backups.join(format!("{}.json", snap.id)).is_file());
    assert_eq!(cluster::files::pull_backups(&n.b.app, &id, "a", &backups).unwrap(), 0);
    let chunk = format!("/api/v1/cluster/backups/{id}/..%2F..%2Fcatalog.db");
    let r = n.a.client().request("GET", &chunk, &[("Authorization", &secret)], b"").unwrap();
    assert!(matches!(r.status, 400 | 404), "only files a manifest names: {}", r.status);
    // While the tenant is frozen for its move, no upload can land after the target's last pull.
    let slug = tenantd::ids::Slug::parse("assets-co").unwrap();
    cluster::moves::freeze(&n.a.app, &slug, "b").unwrap();
    let during = up(b"late\n", "text/plain");
    assert_eq!(during.status, 503, "{}", during.text());
    assert_eq!(during.json()["error"]["code"], "tenant_moving");
    cluster::moves::thaw(&n.a.app, &slug).unwrap();
    assert_eq!(up(b"late\n", "text/plain").status, 201);
}
