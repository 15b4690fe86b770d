//! TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits) and RFC 4648 base32 for secrets.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECONDS: i64 = 30;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// A new 160-bit secret, base32-encoded.
pub fn new_secret() -> String {
    let mut b = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    base32_encode(&b)
}

/// The 6-digit code for one time step (RFC 4226 dynamic truncation).
pub fn code(secret: &[u8], step: i64) -> u32 {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&(step as u64).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[19] & 0x0f) as usize;
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    bin % 1_000_000
}

/// The step a code matches within ±1 step of `now`, if any (the caller rejects replays).
pub fn verify(secret_b32: &str, input: &str, now: i64) -> Option<i64> {
    let input = input.trim();
    if input.len() != 6 || !input.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let want: u32 = input.parse().ok()?;
    let secret = base32_decode(secret_b32)?;
    let step = now.div_euclid(STEP_SECONDS);
    (step - 1..=step + 1).find(|s| code(&secret, *s) == want)
}

pub fn otpauth_uri(secret_b32: &str, email: &str, issuer: &str) -> String {
    let enc = |s: &str| crate::util::percent_encode(s);
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(email),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 test vectors (8 digits there; the 6-digit code is the last six).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, expected) in
            [(59, 94_287_082u32), (1_111_111_109, 7_081_804), (1_234_567_890, 89_005_924), (2_000_000_000, 69_279_037)]
        {
            assert_eq!(code(secret, t / 30), expected % 1_000_000, "t={t}");
        }
    }

    #[test]
    fn base32_roundtrip_and_window() {
        let s = new_secret();
        assert_eq!(base32_encode(&base32_decode(&s).unwrap()), s);
        let now = 1_800_000_000;
        let secret = base32_decode(&s).unwrap();
        let c = format!("{:06}", code(&secret, now / 30 - 1));
        assert_eq!(verify(&s, &c, now), Some(now / 30 - 1));
        let far = format!("{:06}", code(&secret, now / 30 - 3));
        assert_eq!(verify(&s, &far, now), None);
        assert_eq!(verify(&s, "12345", now), None);
    }
}
