//! Stripe's error object and status codes (docs.stripe.com/api/errors): `{"error": {"type",
//! "code", "message", "param", "decline_code", "doc_url"}}` with 400 for `invalid_request_error`
//! and `idempotency_error`, 401 for a missing or bad key, 402 for `card_error`, 404 for an
//! object named in the URL that does not exist, 500 for `api_error`.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub decline_code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
    /// Whether the answer is saved under the request's `Idempotency-Key`. Stripe saves a result
    /// "only if an API endpoint started executing": a request that failed validation is not
    /// saved (its retry may succeed), a declined card or a 500 during execution is
    /// (docs.stripe.com/api/idempotent_requests).
    pub saved: bool,
    /// `Stripe-Should-Retry`, which the official libraries obey before their own rules.
    pub should_retry: Option<bool>,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            code: None,
            decline_code: None,
            message: message.into(),
            param: None,
            saved: false,
            should_retry: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_request_error", message)
    }

    pub fn invalid_param(param: &str, message: impl Into<String>) -> ApiError {
        ApiError { param: Some(param.to_string()), ..ApiError::invalid(message) }
    }

    pub fn missing_param(param: &str) -> ApiError {
        ApiError {
            code: Some("parameter_missing"),
            ..ApiError::invalid_param(param, format!("Missing required param: {param}."))
        }
    }

    pub fn unknown_param(param: &str) -> ApiError {
        ApiError {
            code: Some("parameter_unknown"),
            ..ApiError::invalid_param(param, format!("Received unknown parameter: {param}"))
        }
    }

    /// An object named in a parameter that does not exist: 400, like Stripe.
    pub fn no_such_param(what: &str, id: &str, param: &str) -> ApiError {
        ApiError { code: Some("resource_missing"), ..ApiError::invalid_param(param, format!("No such {what}: '{id}'")) }
    }

    /// An object named in the URL that does not exist: 404.
    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError {
            status: 404,
            code: Some("resource_missing"),
            param: Some("id".into()),
            ..ApiError::invalid(format!("No such {what}: '{id}'"))
        }
    }

    pub fn unrecognized_url(method: &str, path: &str) -> ApiError {
        ApiError {
            status: 404,
            ..ApiError::invalid(format!(
                "Unrecognized request URL ({method}: {path}). The mock Stripe implements only part of the API: see docs/stripe-mock.md."
            ))
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError { status: 401, ..ApiError::invalid(message) }
    }

    pub fn card_declined(decline_code: &'static str, message: &str) -> ApiError {
        ApiError {
            code: Some("card_declined"),
            decline_code: Some(decline_code),
            saved: true,
            should_retry: Some(false),
            ..ApiError::new(402, "card_error", message)
        }
    }

    /// Stripe's answer to a key reused with other parameters (stripe-ruby issue 503 quotes it).
    pub fn idempotency_conflict(key: &str) -> ApiError {
        ApiError::new(
            400,
            "idempotency_error",
            format!(
                "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
            ),
        )
    }

    /// A failure before the request started executing (injected, or a panic): not saved, so
    /// a retry with the same key runs the request; the libraries are told to retry.
    pub fn server(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { should_retry: Some(true), ..ApiError::new(status, "api_error", message) }
    }

    pub fn to_json(&self) -> Value {
        let mut e = Map::new();
        e.insert("type".into(), json!(self.kind));
        e.insert("message".into(), json!(self.message));
        if let Some(code) = self.code {
            e.insert("code".into(), json!(code));
            e.insert(
                "doc_url".into(),
                json!(format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-"))),
            );
        }
        if let Some(d) = self.decline_code {
            e.insert("decline_code".into(), json!(d));
        }
        if let Some(p) = &self.param {
            e.insert("param".into(), json!(p));
        }
        json!({ "error": e })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_stripes_shape() {
        let e = ApiError::missing_param("customer").to_json();
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["code"], "parameter_missing");
        assert_eq!(e["error"]["param"], "customer");
        assert_eq!(e["error"]["doc_url"], "https://stripe.com/docs/error-codes/parameter-missing");
        let d = ApiError::card_declined("generic_decline", "Your card was declined.");
        assert_eq!((d.status, d.saved), (402, true));
        assert_eq!(d.to_json()["error"]["decline_code"], "generic_decline");
        assert!(ApiError::idempotency_conflict("k").to_json()["error"].get("code").is_none());
    }
}
