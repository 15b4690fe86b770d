//! The Stripe provider's self-contained parts: webhook signature verification as Stripe
//! specifies it (`signature`), and a stateful mock of the part of Stripe's API tenantd calls
//! (`mock`, test support; docs/stripe-mock.md says what it covers).

pub mod mock;
pub mod signature;
