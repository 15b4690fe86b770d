//! Stripe's request parameters: `application/x-www-form-urlencoded` with bracketed keys
//! (`metadata[plan]=pro`, `items[0][price]=price_…`, `expand[]=…`), in the body of a POST and
//! the query string of a GET or DELETE. Unknown parameters are refused, as Stripe refuses
//! them, so a typo in tenantd's client fails against the mock too.

use std::collections::BTreeMap;

use super::error::ApiError;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(raw: &[u8]) -> Result<Params, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match part.iter().position(|&b| b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &b""[..]),
            };
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Params { pairs })
    }

    #[cfg(test)]
    pub fn of(pairs: &[(&str, &str)]) -> Params {
        Params { pairs: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    /// The value of `key`; the last one when repeated.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A value that must be present and non-empty.
    pub fn require(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key).filter(|v| !v.is_empty()).ok_or_else(|| ApiError::missing_param(key))
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::invalid_param(key, format!("Invalid integer: {v}"))),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_param(key, format!("Invalid boolean: {v}"))),
        }
    }

    /// One of `allowed`, when present.
    pub fn one_of(&self, key: &str, allowed: &[&str]) -> Result<Option<&str>, ApiError> {
        match self.get(key) {
            Some(v) if !allowed.contains(&v) => {
                Err(ApiError::invalid_param(key, format!("Invalid {key}: must be one of {}", allowed.join(", "))))
            }
            v => Ok(v),
        }
    }

    /// The entries of a hash parameter: `metadata[a]=1` → ("a", "1").
    pub fn hash(&self, prefix: &str) -> Vec<(&str, &str)> {
        self.pairs
            .iter()
            .filter_map(|(k, v)| {
                let inner = k.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?;
                (!inner.contains('[')).then_some((inner, v.as_str()))
            })
            .collect()
    }

    /// An array of hashes: `items[0][price]=p&items[0][quantity]=2` → {0: {price, quantity}}.
    pub fn indexed(&self, prefix: &str) -> Result<BTreeMap<usize, Params>, ApiError> {
        let mut out: BTreeMap<usize, Params> = BTreeMap::new();
        for (k, v) in &self.pairs {
            let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_prefix('[')) else { continue };
            let Some((index, field)) = rest.split_once(']') else { continue };
            let index = index.parse().map_err(|_| ApiError::invalid_param(k, format!("Invalid array index in {k}")))?;
            let field = field.strip_prefix('[').map(|f| f.replacen(']', "", 1)).unwrap_or_default();
            out.entry(index).or_default().pairs.push((field, v.clone()));
        }
        Ok(out)
    }

    /// An array of strings: `enabled_events[]=a&enabled_events[]=b` (or `[0]`, `[1]`).
    pub fn list(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(key)
                    .and_then(|r| r.strip_prefix('['))
                    .and_then(|r| r.strip_suffix(']'))
                    .is_some_and(|i| i.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Refuses any parameter not in `allowed`. An entry names a key with array indexes written
    /// `[#]` (`items[#][price]`, `expand[#]`), or ends in `*` to take a hash's every key
    /// (`metadata*` takes `metadata` and `metadata[anything]`). `expand` is always allowed
    /// (and ignored: the mock never expands).
    pub fn allow(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (k, _) in &self.pairs {
            let shape = shape(k);
            let known = shape == "expand[#]"
                || allowed.iter().any(|a| match a.strip_suffix('*') {
                    Some(prefix) => shape.starts_with(prefix),
                    None => *a == shape,
                });
            if !known {
                return Err(ApiError::unknown_param(k));
            }
        }
        Ok(())
    }

    /// The parameters in a canonical order, to compare two requests under one idempotency key.
    pub fn fingerprint(&self) -> Vec<(String, String)> {
        let mut pairs = self.pairs.clone();
        pairs.sort();
        pairs
    }
}

/// `items[0][price]` → `items[#][price]`; `expand[]` → `expand[#]`.
fn shape(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut rest = key;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            out.push_str(after);
            return out;
        };
        let inner = &after[..close];
        out.push_str(if inner.bytes().all(|b| b.is_ascii_digit()) { "#" } else { inner });
        out.push(']');
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Form decoding: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode(raw: &[u8]) -> Result<String, ApiError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(byte.ok_or_else(|| ApiError::invalid("Invalid percent-encoding in the request parameters"))?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::invalid("Request parameters must be UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stripes_bracketed_form() {
        let p = Params::parse(
            b"customer=cus_1&items[0][price]=price_a&items%5B0%5D%5Bquantity%5D=2&items[1][price]=price_b\
              &metadata[plan]=pro+plan&expand[]=latest_invoice&enabled_events[]=*&enabled_events[]=x",
        )
        .unwrap();
        assert_eq!(p.get("customer"), Some("cus_1"));
        let items = p.indexed("items").unwrap();
        assert_eq!(items[&0].get("price"), Some("price_a"));
        assert_eq!(items[&0].int("quantity").unwrap(), Some(2));
        assert_eq!(items[&1].get("price"), Some("price_b"));
        assert_eq!(p.hash("metadata"), [("plan", "pro plan")]);
        assert_eq!(p.list("enabled_events"), ["*", "x"]);
        assert!(p
            .allow(&["customer", "items[#][price]", "items[#][quantity]", "metadata*", "enabled_events[#]"])
            .is_ok());
        let e = p.allow(&["customer", "items[#][price]", "metadata*", "enabled_events[#]"]).unwrap_err();
        assert_eq!((e.code, e.param.as_deref()), (Some("parameter_unknown"), Some("items[0][quantity]")));
    }

    #[test]
    fn bad_values_are_stripe_errors() {
        let p = Params::of(&[("n", "x"), ("b", "yes"), ("e", "")]);
        assert_eq!(p.int("n").unwrap_err().message, "Invalid integer: x");
        assert!(p.bool("b").is_err());
        assert_eq!(p.require("e").unwrap_err().code, Some("parameter_missing"));
        assert!(Params::parse(b"a=%zz").is_err());
        assert!(Params::parse(b"a=%ff").is_err(), "not UTF-8");
        assert_eq!(Params::parse(b"a=%C3%AB&&b").unwrap(), Params::of(&[("a", "\u{eb}"), ("b", "")]));
    }

    #[test]
    fn fingerprints_ignore_order() {
        assert_eq!(
            Params::of(&[("a", "1"), ("b", "2")]).fingerprint(),
            Params::of(&[("b", "2"), ("a", "1")]).fingerprint()
        );
        assert_ne!(Params::of(&[("a", "1")]).fingerprint(), Params::of(&[("a", "2")]).fingerprint());
    }
}
