//! `mock-stripe`: the mock Stripe API (tenantd::billing::stripe::mock) as a program, for the
//! fidelity check with the official Python library and for trying tenantd by hand. Prints
//! `mock-stripe listening on http://127.0.0.1:PORT` as its first line of output, then serves
//! until SIGINT or SIGTERM. Exit codes: 0 after a signal, 2 when it cannot start.
//! See docs/stripe-mock.md.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tenantd::billing::stripe::mock::{self, MockConfig, WebhookConfig};

#[derive(Parser)]
#[command(
    about = "A stateful mock of the part of Stripe's API tenantd calls (test support, loopback only)",
    after_help = "Examples:\n  mock-stripe --listen 127.0.0.1:12111\n  \
                  mock-stripe --webhook-url http://127.0.0.1:8080/api/v1/billing/stripe/webhook --webhook-secret whsec_test\n\n\
                  Then: curl -H 'Authorization: Bearer sk_test_x' -d email=a@example.com http://127.0.0.1:12111/v1/customers\n\
                  or, in Python: stripe.api_base = \"http://127.0.0.1:12111\""
)]
struct Args {
    /// Address to listen on (loopback only; port 0 picks a free one).
    #[arg(long, env = "MOCK_STRIPE_LISTEN", default_value = "127.0.0.1:0")]
    listen: String,
    /// Where to POST signed events (every type). More endpoints: POST /v1/webhook_endpoints.
    #[arg(long, env = "MOCK_STRIPE_WEBHOOK_URL", requires = "webhook_secret")]
    webhook_url: Option<String>,
    /// The endpoint's signing secret (whsec_…).
    #[arg(long, env = "MOCK_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Accept only this API key (default: any sk_test_… key).
    #[arg(long, env = "MOCK_STRIPE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let webhooks = match (args.webhook_url, args.webhook_secret) {
        (Some(url), Some(secret)) if !secret.trim().is_empty() => vec![WebhookConfig { url, secret }],
        (Some(_), _) => return fail("--webhook-secret must not be blank"),
        (None, _) => Vec::new(),
    };
    let config = MockConfig { api_key: args.api_key, webhooks, ..MockConfig::default() };
    let running = match mock::start(&args.listen, config) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    let mut signals =
        match signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]) {
            Ok(s) => s,
            Err(e) => return fail(&format!("cannot watch for signals: {e}")),
        };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "mock-stripe listening on {}", running.base_url());
    let _ = out.flush();
    let _ = signals.forever().next();
    drop(running);
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("mock-stripe: {message}");
    ExitCode::from(2)
}
