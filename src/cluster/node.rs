//! Calls from one node to another: JSON over HTTP with the cluster secret as a bearer token.
//! Control (directory, tenant create, freeze, install), and a moving tenant's assets (`fetch`):
//! its database travels through the replica store.

use std::time::Duration;

use serde_json::Value;
use subtle::ConstantTimeEq;

use super::NodeConfig;
use crate::error::{Error, Result};

pub struct Client {
    secret: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(secret: String) -> Client {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            // No idle connections kept: a node's graceful stop would wait for them to close.
            .max_idle_connections(0)
            .build();
        Client { secret, agent: config.into() }
    }

    /// Whether a presented bearer token is the cluster secret (constant time).
    pub fn is_secret(&self, presented: &str) -> bool {
        presented.len() == self.secret.len() && bool::from(presented.as_bytes().ct_eq(self.secret.as_bytes()))
    }

    /// `GET path` on `node`, the answer's bytes as they are (an asset of a moving tenant).
    pub fn fetch(&self, node: &NodeConfig, path: &str) -> Result<Vec<u8>> {
        let url = format!("{}{path}", node.url.trim_end_matches('/'));
        let mut res = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", self.secret))
            .call()
            .map_err(|e| Error::Retry(format!("node {} ({}) did not answer: {e}", node.name, node.url)))?;
        let status = res.status().as_u16();
        // An asset is at most one request body: `max_body_bytes` is at most 1 GiB.
        let body = res
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .map_err(|e| Error::Retry(format!("reading {path} from node {}: {e}", node.name)))?;
        match status {
            200..=299 => Ok(body),
            404 => Err(Error::NotFound(format!("{path} on node {}", node.name))),
            _ => Err(Error::Retry(format!("node {} answered {status} to GET {path}", node.name))),
        }
    }

    /// Calls `node` and returns its JSON answer. A node that does not answer is `Retry` (503);
    /// its own refusals come back with their status and message.
    pub fn call(&self, node: &NodeConfig, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}{path}", node.url.trim_end_matches('/'));
        let auth = format!("Bearer {}", self.secret);
        let res = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => self.agent.delete(&url).header("Authorization", &auth).call(),
            (_, body) => {
                let bytes = body.map(|b| b.to_string()).unwrap_or_else(|| "{}".into());
                self.agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send(bytes.as_bytes())
            }
        };
        let mut res =
            res.map_err(|e| Error::Retry(format!("node {} ({}) did not answer: {e}", node.name, node.url)))?;
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let code = json["error"]["code"].as_str().unwrap_or("error").to_string();
        let message = json["error"]["message"].as_str().unwrap_or(text.trim()).to_string();
        let said = format!("node {}: {message} ({code})", node.name);
        Err(match status {
            404 => Error::NotFound(format!("{} on node {}", message.trim_end_matches(" not found"), node.name)),
            409 => Error::conflict("node_conflict", said),
            400..=499 => Error::invalid("node_refused", said),
            _ => Error::Retry(said),
        })
    }
}
