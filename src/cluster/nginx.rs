//! The router's configuration: nginx `map`s from a request's tenant (path, `X-Tenant`,
//! `?tenant=`, host subdomain, custom domain) to the upstream of the node that holds it, one
//! upstream per node, and the same limits as the single-node site
//! (`packaging/nginx/tenantd.conf`). A request naming no tenant (sign-up, platform console,
//! health) goes to the directory node, with the other nodes as backups.
//!
//! Map values are upstream names, so nginx needs no resolver; a changed map takes a graceful
//! reload (`nginx -s reload`: new workers take new connections, old ones finish theirs).

use std::fmt::Write as _;

use super::{NodeConfig, Placement};

/// What the rendered server block listens on and answers to.
pub struct Site<'a> {
    pub listen: &'a str,
    pub server_name: &'a str,
    /// tenantd's `base_domain`: `<slug>.<base_domain>` names a tenant.
    pub base_domain: Option<&'a str>,
    /// Matches tenantd's `max_body_bytes`.
    pub max_body_bytes: usize,
}

/// The upstream name of a node (also sent back as `Tenantd-Upstream`).
pub fn upstream(node: &str) -> String {
    format!("tenantd_node_{}", node.replace('-', "_"))
}

fn regex_escape(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if !c.is_ascii_alphanumeric() && c != '-' {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// `host:port` of a node URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.trim_end_matches('/')
}

/// The whole configuration file, for `conf.d/` (it sits in nginx's `http` block).
pub fn render(
    nodes: &[NodeConfig],
    directory_node: &str,
    placements: &[Placement],
    version: i64,
    site: &Site<'_>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# tenantd cluster router, written by `tenantd cluster nginx-config` at {} from directory version {version}.\n\
         # {} tenants on {} nodes. Do not edit: it is written again after every move or failover.\n\
         # Include it in nginx's http block (e.g. /etc/nginx/conf.d/), then `nginx -t && nginx -s reload`.\n",
        crate::util::rfc3339(crate::util::now_unix()),
        placements.len(),
        nodes.len()
    );
    // Thousands of slugs need a larger map hash than nginx's default (2048 entries).
    let _ = writeln!(out, "map_hash_max_size {};\nmap_hash_bucket_size 128;\n", (placements.len() * 2).max(2048));
    for n in nodes {
        let _ = writeln!(
            out,
            "upstream {} {{\n    server {} max_fails=0;\n    keepalive 32;\n    keepalive_requests 100000;\n    keepalive_timeout 60s;\n}}",
            upstream(&n.name),
            authority(&n.url)
        );
    }
    let _ = writeln!(
        out,
        "# No tenant named: the directory node, or another while it is down.\nupstream tenantd_default {{"
    );
    let mut ordered: Vec<&NodeConfig> = nodes.iter().filter(|n| n.name == directory_node).collect();
    ordered.extend(nodes.iter().filter(|n| n.name != directory_node));
    for (i, n) in ordered.iter().enumerate() {
        let _ = writeln!(out, "    server {}{};", authority(&n.url), if i == 0 { "" } else { " backup" });
    }
    let _ = writeln!(out, "    keepalive 32;\n}}\n");
    let slug = "[a-z0-9][a-z0-9-]{0,62}";
    let _ = writeln!(
        out,
        "# The tenant a request names, in tenantd's order: path, X-Tenant, ?tenant=, host subdomain.\n\
         map $uri $tenantd_path_slug {{\n    \"~^/(?:api/v1|admin)/t/(?<s>{slug})(?:/|$)\" $s;\n    default \"\";\n}}"
    );
    let _ = writeln!(out, "map $host $tenantd_host_slug {{");
    if let Some(base) = site.base_domain {
        let _ = writeln!(out, "    \"~^(?<s>{slug})\\.{}$\" $s;", regex_escape(base));
    }
    let _ = writeln!(out, "    default \"\";\n}}");
    let _ = writeln!(
        out,
        "map \"$tenantd_path_slug|$http_x_tenant|$arg_tenant|$tenantd_host_slug\" $tenantd_slug {{\n    \
         \"~^(?<s>{slug})\\|\" $s;\n    \"~^\\|(?<s>{slug})\\|\" $s;\n    \"~^\\|\\|(?<s>{slug})\\|\" $s;\n    \
         \"~^\\|\\|\\|(?<s>{slug})$\" $s;\n    default \"\";\n}}"
    );
    let _ = writeln!(out, "map $tenantd_slug $tenantd_slug_upstream {{\n    default tenantd_default;");
    for p in placements.iter().filter(|p| p.is_live()) {
        let _ = writeln!(out, "    {} {};", p.slug, upstream(&p.node));
    }
    let _ = writeln!(out, "}}\nmap $host $tenantd_upstream {{\n    hostnames;\n    default $tenantd_slug_upstream;");
    for p in placements.iter().filter(|p| p.is_live()) {
        for d in &p.domains {
            let _ = writeln!(out, "    {d} {};", upstream(&p.node));
        }
    }
    let _ = writeln!(out, "}}\n");
    let body_kib = site.max_body_bytes.div_ceil(1024);
    let _ = write!(
        out,
        r#"server {{
    listen {listen};
    server_name {name};
    # TLS: add `listen 443 ssl` and the certificate lines of packaging/nginx/tenantd.conf.

    # The single-node site's limits (packaging/nginx/tenantd.conf).
    client_max_body_size {body_kib}k;
    client_body_buffer_size 128k;
    client_header_buffer_size 4k;
    large_client_header_buffers 4 16k;
    client_header_timeout 10s;
    client_body_timeout 30s;
    send_timeout 30s;
    keepalive_timeout 65s;
    # Clients and upstream connections are not recycled every 1,000 requests (nginx's default).
    keepalive_requests 100000;

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_connect_timeout 5s;
    proxy_read_timeout 60s;
    proxy_send_timeout 60s;
    proxy_buffer_size 16k;
    proxy_buffers 8 16k;
    proxy_max_temp_file_size 0;
    # A request is never sent to a second node: the node that holds the tenant answers, or
    # its error does (a write must not land twice).
    proxy_next_upstream off;
    add_header Tenantd-Upstream $tenantd_upstream always;

    # Each node's metrics are scraped from the node itself.
    location = /metrics {{
        return 404;
    }}

    location / {{
        proxy_pass http://$tenantd_upstream;
    }}
}}
"#,
        listen = site.listen,
        name = site.server_name,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_tenant_and_domain_to_its_node() {
        let nodes = vec![
            NodeConfig { name: "n-1".into(), url: "http://127.0.0.1:8081".into(), weight: 1.0 },
            NodeConfig { name: "n2".into(), url: "http://10.0.0.2:8080/".into(), weight: 2.0 },
        ];
        let p = |slug: &str, node: &str, domains: &[&str], state: &str| Placement {
            slug: slug.into(),
            tenant_id: "0123456789abcdef".into(),
            node: node.into(),
            state: state.into(),
            pinned: false,
            domains: domains.iter().map(|d| d.to_string()).collect(),
            bytes: 0,
            version: 1,
            updated_at: 0,
        };
        let placements = [
            p("acme", "n2", &["shop.acme.test"], "active"),
            p("beta", "n-1", &[], "moving"),
            p("gone", "n2", &[], "removed"),
        ];
        let site = Site {
            listen: "127.0.0.1:8088",
            server_name: "saas.test",
            base_domain: Some("saas.test"),
            max_body_bytes: 1 << 20,
        };
        let conf = render(&nodes, "n2", &placements, 7, &site);
        assert!(conf.contains("upstream tenantd_node_n_1 {\n    server 127.0.0.1:8081"), "{conf}");
        assert!(conf.contains("    acme tenantd_node_n2;"));
        assert!(conf.contains("    beta tenantd_node_n_1;"), "a tenant being moved is still served by its source");
        assert!(!conf.contains("gone "), "removed tenants are not routed");
        assert!(conf.contains("    shop.acme.test tenantd_node_n2;"));
        assert!(conf.contains("\\.saas\\.test$"), "{conf}");
        assert!(conf.contains("server 10.0.0.2:8080;\n    server 127.0.0.1:8081 backup;"), "{conf}");
        assert!(conf.contains("client_max_body_size 1024k;"));
        assert!(conf.contains("directory version 7"));
    }
}
