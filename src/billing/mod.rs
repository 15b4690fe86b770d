//! Billing: prices, subscriptions and the payment providers (issue 20).

pub mod stripe;
