//! Where a tenant goes: weighted rendezvous (highest-random-weight) hashing over the nodes, and
//! the moves a change of nodes asks for.
//!
//! Each (node, tenant) pair gets a uniform draw `u` in (0, 1) from SHA-256 of the two names;
//! the node's score is `-weight / ln(u)` and the highest score wins (the "logarithmic method":
//! a node of weight 2 wins twice as often as one of weight 1, and a new node takes tenants only
//! from the others in proportion, never shuffles them among the old ones).

use sha2::{Digest, Sha256};

use super::NodeConfig;

/// The node a tenant's slug hashes to among `nodes` (`None` when there are none).
pub fn choose<'n>(nodes: &'n [NodeConfig], slug: &str) -> Option<&'n NodeConfig> {
    nodes.iter().max_by(|a, b| score(a, slug).total_cmp(&score(b, slug)).then_with(|| b.name.cmp(&a.name)))
}

fn score(node: &NodeConfig, slug: &str) -> f64 {
    let mut h = Sha256::new();
    h.update(node.name.as_bytes());
    h.update([0]);
    h.update(slug.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    // 53 random bits, shifted off 0 so ln(u) is finite and negative.
    let u = ((u64::from_be_bytes(first) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -node.weight / u.ln()
}

/// A tenant as placement sees it.
#[derive(Clone, Debug)]
pub struct Placed<'a> {
    pub slug: &'a str,
    pub node: &'a str,
    pub pinned: bool,
    pub bytes: u64,
}

/// One move a plan asks for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Move {
    pub slug: String,
    pub from: String,
    pub to: String,
    pub bytes: u64,
}

/// The moves that put every tenant where `nodes` hash it, leaving pinned tenants (placed by
/// hand) where they are. With `nodes` = today's nodes plus a new one, only the tenants the new
/// node wins move: about its share of the weight, which is the least any placement can move.
pub fn plan(nodes: &[NodeConfig], tenants: &[Placed<'_>]) -> Vec<Move> {
    let mut moves: Vec<Move> = tenants
        .iter()
        .filter(|t| !t.pinned)
        .filter_map(|t| {
            let best = choose(nodes, t.slug)?;
            (best.name != t.node).then(|| Move {
                slug: t.slug.to_string(),
                from: t.node.to_string(),
                to: best.name.clone(),
                bytes: t.bytes,
            })
        })
        .collect();
    moves.sort_by(|a, b| a.bytes.cmp(&b.bytes).then_with(|| a.slug.cmp(&b.slug)));
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(spec: &[(&str, f64)]) -> Vec<NodeConfig> {
        spec.iter()
            .map(|(n, w)| NodeConfig { name: n.to_string(), url: format!("http://{n}:8080"), weight: *w })
            .collect()
    }

    #[test]
    fn choice_is_stable_and_follows_weights() {
        let three = nodes(&[("a", 1.0), ("b", 1.0), ("c", 2.0)]);
        let slugs: Vec<String> = (0..8000).map(|i| format!("t{i}")).collect();
        let mut counts = std::collections::HashMap::new();
        for s in &slugs {
            let n = choose(&three, s).unwrap();
            assert_eq!(n.name, choose(&three, s).unwrap().name, "same input, same node");
            *counts.entry(n.name.clone()).or_insert(0) += 1;
        }
        // c has half the weight: about 4000 of 8000; a and b about 2000 each.
        assert!((3700..4300).contains(&counts["c"]), "{counts:?}");
        assert!((1800..2200).contains(&counts["a"]), "{counts:?}");
        assert!(choose(&[], "x").is_none());
    }

    #[test]
    fn adding_a_node_moves_only_its_share_and_only_to_it() {
        let three = nodes(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]);
        let mut four = three.clone();
        four.extend(nodes(&[("d", 1.0)]));
        let slugs: Vec<String> = (0..10_000).map(|i| format!("tenant-{i}")).collect();
        let homes: Vec<String> = slugs.iter().map(|s| choose(&three, s).unwrap().name.clone()).collect();
        let placed: Vec<Placed<'_>> =
            slugs.iter().zip(&homes).map(|(s, n)| Placed { slug: s, node: n, pinned: false, bytes: 1 }).collect();
        assert!(plan(&three, &placed).is_empty(), "a placement by the same nodes needs no move");
        let moves = plan(&four, &placed);
        assert!(moves.iter().all(|m| m.to == "d"), "nothing moves between the old nodes");
        assert!((2300..2700).contains(&moves.len()), "{} of 10000 move (ideal 2500)", moves.len());
    }

    #[test]
    fn pinned_tenants_stay() {
        let two = nodes(&[("a", 1.0), ("b", 1.0)]);
        let slug = (0..100).map(|i| format!("s{i}")).find(|s| choose(&two, s).unwrap().name == "b").unwrap();
        let placed = [Placed { slug: &slug, node: "a", pinned: true, bytes: 5 }];
        assert!(plan(&two, &placed).is_empty());
        let placed = [Placed { slug: &slug, node: "a", pinned: false, bytes: 5 }];
        assert_eq!(plan(&two, &placed), vec![Move { slug, from: "a".into(), to: "b".into(), bytes: 5 }]);
    }
}
