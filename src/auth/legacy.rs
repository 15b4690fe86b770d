//! Password hashes imported from other apps (issue 19): Werkzeug's pbkdf2 and scrypt (Flask,
//! Flask-AppBuilder), bcrypt (`$2a$`, `$2b$`, `$2y$`) and Django's pbkdf2. Each is checked the
//! way the software that wrote it checks it, once: a match is replaced by argon2id
//! (`auth::login`). They come from databases we do not control, so a hash's parameters are
//! bounded before any work is done, and a malformed one is refused, never a panic.

use std::fmt::Write as _;

use subtle::ConstantTimeEq;

use super::password::HashKind;

/// PBKDF2 rounds. Werkzeug has written 1,000 (0.9, `pbkdf2:sha1`) up to 1,000,000 (3.1);
/// Django 1.4 wrote 10,000 and 5.2 writes 1,000,000. Ten times the newest default still refuses
/// a hash that would take many seconds of a worker per sign-in; below 1,000 is no KDF at all.
pub const PBKDF2_MIN_ROUNDS: u32 = 1_000;
pub const PBKDF2_MAX_ROUNDS: u32 = 10_000_000;
/// scrypt memory, 128·N·r bytes: Werkzeug's default `scrypt:32768:8:1` takes 32 MiB.
pub const SCRYPT_MAX_MEMORY: u64 = 256 << 20;
/// scrypt work, 128·N·r·p bytes mixed: p passes over that memory.
pub const SCRYPT_MAX_WORK: u64 = 1 << 30;
/// bcrypt cost (2^cost rounds of key setup): 12 is a common default, 16 takes seconds.
pub const BCRYPT_MAX_COST: u32 = 16;
/// bcrypt's own minimum (OpenBSD `bcrypt_gensalt`).
const BCRYPT_MIN_COST: u32 = 4;

/// Werkzeug's scrypt defaults when the method carries no parameters (`_hash_internal`, 2.3+);
/// it always writes them, so this only mirrors its checker.
const WERKZEUG_SCRYPT_DEFAULT: (u64, u32, u32) = (32768, 8, 1);
/// `hashlib.scrypt`'s default dklen, which Werkzeug keeps.
const SCRYPT_LEN: usize = 64;

/// The HMAC digest of a PBKDF2 hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

impl Prf {
    /// Output length in bytes: both Werkzeug and Django derive one digest's worth.
    fn len(self) -> usize {
        match self {
            Prf::Sha1 => 20,
            Prf::Sha256 => 32,
            Prf::Sha512 => 64,
        }
    }

    fn derive(self, password: &str, salt: &str, rounds: u32) -> Vec<u8> {
        let (p, s) = (password.as_bytes(), salt.as_bytes());
        let mut out = vec![0u8; self.len()];
        match self {
            Prf::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(p, s, rounds, &mut out),
            Prf::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(p, s, rounds, &mut out),
            Prf::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(p, s, rounds, &mut out),
        }
        out
    }
}

/// A parsed legacy hash whose parameters are within bounds. Salts are the literal strings
/// the apps wrote: both use them as their UTF-8 bytes, undecoded.
#[derive(Debug)]
pub enum Legacy<'a> {
    /// `pbkdf2:<digest>:<rounds>$<salt>$<hex>`
    WerkzeugPbkdf2 { prf: Prf, rounds: u32, salt: &'a str, hex: &'a str },
    /// `scrypt:<N>:<r>:<p>$<salt>$<hex>`
    WerkzeugScrypt { log_n: u8, r: u32, p: u32, salt: &'a str, hex: &'a str },
    /// `$2b$<cost>$<22 salt><31 hash>`, bcrypt's own base64.
    Bcrypt(&'a str),
    /// `pbkdf2_sha256$<rounds>$<salt>$<base64>`
    DjangoPbkdf2 { prf: Prf, rounds: u32, salt: &'a str, b64: &'a str },
}

impl Legacy<'_> {
    pub fn kind(&self) -> HashKind {
        match self {
            Legacy::WerkzeugPbkdf2 { .. } => HashKind::WerkzeugPbkdf2,
            Legacy::WerkzeugScrypt { .. } => HashKind::WerkzeugScrypt,
            Legacy::Bcrypt(_) => HashKind::Bcrypt,
            Legacy::DjangoPbkdf2 { .. } => HashKind::DjangoPbkdf2,
        }
    }

    /// Recomputes the hash from `password` and compares in constant time, as the writing app
    /// does: Werkzeug compares lowercase hex strings (`hmac.compare_digest`), Django compares
    /// whole encoded strings (`constant_time_compare`).
    pub fn verify(&self, password: &str) -> bool {
        match *self {
            Legacy::WerkzeugPbkdf2 { prf, rounds, salt, hex } => {
                ct_eq(&to_hex(&prf.derive(password, salt, rounds)), hex)
            }
            Legacy::WerkzeugScrypt { log_n, r, p, salt, hex } => {
                let mut out = [0u8; SCRYPT_LEN];
                scrypt::Params::new(log_n, r, p, SCRYPT_LEN)
                    .is_ok_and(|params| scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut out).is_ok())
                    && ct_eq(&to_hex(&out), hex)
            }
            // bcrypt compares the decoded hashes with `subtle` itself; a password over 72 bytes
            // is cut to 72, as OpenBSD's bcrypt and PHP do and Python's bcrypt did before 5.0.
            Legacy::Bcrypt(stored) => bcrypt::verify(password, stored).unwrap_or(false),
            Legacy::DjangoPbkdf2 { prf, rounds, salt, b64 } => {
                ct_eq(&to_base64(&prf.derive(password, salt, rounds)), b64)
            }
        }
    }
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Standard base64 with padding (Python's `base64.b64encode`).
fn to_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Parses a stored hash that is not argon2; the error says why it cannot be used (for the
/// importer's report: it names schemes and numbers, never a salt or a hash).
pub fn parse(stored: &str) -> Result<Legacy<'_>, String> {
    if stored.is_empty() {
        return Err("no password hash".into());
    }
    if stored.starts_with('!') {
        return Err("an unusable password (Django marks accounts without one with '!')".into());
    }
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p)) {
        return bcrypt_hash(stored);
    }
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha256$") {
        return django(Prf::Sha256, rest);
    }
    if let Some(rest) = stored.strip_prefix("pbkdf2_sha1$") {
        return django(Prf::Sha1, rest);
    }
    let scheme = stored.split(['$', ':']).next().unwrap_or_default();
    match scheme {
        "pbkdf2" | "scrypt" => werkzeug(stored),
        _ => Err(unsupported_scheme(stored, scheme)),
    }
}

/// Names schemes we know of but do not verify; anything else is "unrecognised" (an unknown
/// prefix may be a plaintext password, so it is never echoed).
fn unsupported_scheme(stored: &str, scheme: &str) -> String {
    // Django's other hashers and Werkzeug's salted digests (removed in Werkzeug 3.0).
    const KNOWN: &[&str] = &[
        "argon2",
        "bcrypt",
        "bcrypt_sha256",
        "md5",
        "sha1",
        "sha256",
        "sha512",
        "plain",
        "unsalted_md5",
        "unsalted_sha1",
    ];
    if stored.starts_with("$2x$") {
        return "bcrypt $2x$ (crypt_blowfish's buggy variant) is not supported".into();
    }
    if stored.starts_with('$') {
        return "a crypt or PHC string of an unsupported algorithm".into();
    }
    match KNOWN.iter().find(|k| **k == scheme) {
        Some(k) => format!("{k}$ hashes are not supported"),
        None => "unrecognised hash format".into(),
    }
}

fn malformed(what: &str) -> String {
    format!("malformed {what} hash")
}

fn bcrypt_hash(stored: &str) -> Result<Legacy<'_>, String> {
    // `$2b$NN$` + 22 salt + 31 hash characters, bcrypt's alphabet (OpenBSD `bcrypt.c`).
    let b = stored.as_bytes();
    let alphabet = |c: &u8| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/';
    if b.len() != 60 || b[6] != b'$' || !b[7..].iter().all(alphabet) {
        return Err(malformed("bcrypt"));
    }
    let cost = match (b[4], b[5]) {
        (t @ b'0'..=b'9', u @ b'0'..=b'9') => u32::from(t - b'0') * 10 + u32::from(u - b'0'),
        _ => return Err(malformed("bcrypt")),
    };
    if cost < BCRYPT_MIN_COST {
        return Err(malformed("bcrypt"));
    }
    if cost > BCRYPT_MAX_COST {
        return Err(format!("bcrypt cost {cost} is above the bound of {BCRYPT_MAX_COST}"));
    }
    Ok(Legacy::Bcrypt(stored))
}

/// Plain decimal digits only (Python's `int()` also takes signs, spaces and underscores, but
/// neither app writes them).
fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn rounds(s: &str, what: &str) -> Result<u32, String> {
    // Anything too long for a u32 is far above the bound anyway.
    let n: u64 = digits(s).ok_or_else(|| malformed(what))?;
    if n < u64::from(PBKDF2_MIN_ROUNDS) {
        return Err(format!("{what} with {n} rounds is below the bound of {PBKDF2_MIN_ROUNDS}"));
    }
    if n > u64::from(PBKDF2_MAX_ROUNDS) {
        return Err(format!("{what} with {n} rounds is above the bound of {PBKDF2_MAX_ROUNDS}"));
    }
    u32::try_from(n).map_err(|_| malformed(what))
}

/// Django's `PBKDF2PasswordHasher.decode`: `algorithm$iterations$salt$hash`, the hash standard
/// base64 of one digest.
fn django(prf: Prf, rest: &str) -> Result<Legacy<'_>, String> {
    const WHAT: &str = "Django pbkdf2";
    let mut parts = rest.splitn(3, '$');
    let (Some(n), Some(salt), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed(WHAT));
    };
    let rounds = rounds(n, WHAT)?;
    let b64_ok = b64.len() == prf.len().div_ceil(3) * 4
        && b64.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
    if salt.is_empty() || !b64_ok {
        return Err(malformed(WHAT));
    }
    Ok(Legacy::DjangoPbkdf2 { prf, rounds, salt, b64 })
}

/// Werkzeug's `check_password_hash`: `method$salt$hash` (split at the first two `$`), the hash
/// lowercase hex.
fn werkzeug(stored: &str) -> Result<Legacy<'_>, String> {
    let mut parts = stored.splitn(3, '$');
    let (Some(method), Some(salt), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("Werkzeug"));
    };
    let mut args = method.split(':');
    let scheme = args.next();
    let args: Vec<&str> = args.collect();
    if salt.is_empty() {
        return Err(malformed("Werkzeug"));
    }
    match scheme {
        Some("pbkdf2") => werkzeug_pbkdf2(&args, salt, hex),
        // Django's `scrypt$<N>$<salt>$<r>$<p>$<base64>` shares the prefix.
        Some("scrypt") if hex.contains('$') => Err("scrypt$ hashes (Django) are not supported".into()),
        Some("scrypt") => werkzeug_scrypt(&args, salt, hex),
        _ => Err(malformed("Werkzeug")),
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn werkzeug_pbkdf2<'a>(args: &[&str], salt: &'a str, hex: &'a str) -> Result<Legacy<'a>, String> {
    const WHAT: &str = "Werkzeug pbkdf2";
    let (digest, n) = match args {
        [digest, n] => (*digest, *n),
        // Every Werkzeug since 0.9 writes the rounds into the hash; one without them would be
        // checked with the checking version's default (1,000 in 0.9 up to 1,000,000 in 3.1).
        [_] | [] => return Err(format!("{WHAT} without a round count (no Werkzeug release writes one)")),
        _ => return Err(malformed(WHAT)),
    };
    let prf = match digest {
        "sha1" => Prf::Sha1,
        "sha256" => Prf::Sha256,
        "sha512" => Prf::Sha512,
        _ => return Err(format!("{WHAT} with a digest other than sha1, sha256 or sha512")),
    };
    let rounds = rounds(n, WHAT)?;
    if !is_hex(hex, prf.len() * 2) {
        return Err(malformed(WHAT));
    }
    Ok(Legacy::WerkzeugPbkdf2 { prf, rounds, salt, hex })
}

fn werkzeug_scrypt<'a>(args: &[&str], salt: &'a str, hex: &'a str) -> Result<Legacy<'a>, String> {
    const WHAT: &str = "Werkzeug scrypt";
    let (n, r, p) = match args {
        [] => WERKZEUG_SCRYPT_DEFAULT,
        [n, r, p] => match (digits::<u64>(n), digits::<u32>(r), digits::<u32>(p)) {
            (Some(n), Some(r), Some(p)) => (n, r, p),
            _ => return Err(malformed(WHAT)),
        },
        _ => return Err(malformed(WHAT)),
    };
    if n < 2 || !n.is_power_of_two() {
        return Err(format!("{WHAT} N = {n} is not a power of two above 1"));
    }
    let memory = 128u64.saturating_mul(n).saturating_mul(u64::from(r));
    if memory > SCRYPT_MAX_MEMORY {
        return Err(format!("{WHAT} needs {} MiB (128·N·r), above the bound of 256 MiB", memory >> 20));
    }
    if memory.saturating_mul(u64::from(p)) > SCRYPT_MAX_WORK {
        return Err(format!("{WHAT} with p = {p} mixes more than 1 GiB (128·N·r·p)"));
    }
    let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| malformed(WHAT))?;
    if scrypt::Params::new(log_n, r, p, SCRYPT_LEN).is_err() || !is_hex(hex, SCRYPT_LEN * 2) {
        return Err(malformed(WHAT));
    }
    Ok(Legacy::WerkzeugScrypt { log_n, r, p, salt, hex })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::{classify, verify_any, Verdict};

    const PW: &str = "correct horse";

    // Werkzeug 3.1.9, `generate_password_hash("correct horse", method=…)`: the defaults (scrypt,
    // and pbkdf2:sha256 at 1,000,000 rounds), 2.3's pbkdf2 default, and the older digests with
    // 0.9's 1,000 rounds.
    const WZ_PBKDF2_DEFAULT: &str =
        "pbkdf2:sha256:1000000$yV5AsMdo8Ur8phhi$c9316bc7656d40f6b51a4b55f62f6f8306dc6db1e49a592035e5321b224fd0d4";
    const WZ_PBKDF2_600K: &str =
        "pbkdf2:sha256:600000$LyQsb6Ew7W8UKvK4$3d1e1f9ddf1fdc968526a4825b1097d1ddc48fe9940f972a6a728a9914c58e55";
    const WZ_PBKDF2_SHA256: &str =
        "pbkdf2:sha256:1000$G5xSOg906Qjq7Bsb$2e5bc2c97e1265d592eb015cb74e51d7c13e35ed75512be2adcba189b46f98c5";
    const WZ_PBKDF2_SHA512: &str = "pbkdf2:sha512:1000$0hL5TWdfc7eK85Al$b489756be7a0785061393dec5e1e2944156e38fede5b76e96852f2b8d667cae64ca5c5ea36331b09e86b9e99f7ca9172d1c3512add112616418525ec01f26195";
    const WZ_PBKDF2_SHA1: &str = "pbkdf2:sha1:1000$QtLHuR56usVJ0RBp$92202b69da8b13b74601bfdcafcde884c1d32811";
    const WZ_SCRYPT_DEFAULT: &str = "scrypt:32768:8:1$oefumVpcTUojb3wf$b52d4fc5bda9b45fd9035263a61578e54cd26b428446828a527bd22c465eb835bce4f0acccc52285ee60141f6a73177f47f546ac61cb32ea44b5ea66eee7b093";
    const WZ_SCRYPT_16K: &str = "scrypt:16384:8:1$oXysuvDaP6cfQ2de$4806b1bf04645fe89d09d917ca64e42d62297ea2372e309c46ef482b0d39c62a252f73bb8630ca06f8d44b919d1ef7fd943223ba22cad48e1646bff79f0cda2b";
    // Werkzeug 3.1.9, password "pässwörd ✓": passwords and salts are hashed as UTF-8.
    const WZ_UNICODE: &str =
        "pbkdf2:sha256:1000$YC32h0olqlYSvxyR$f2f3fcd058084b3cf424123ebed1248f7736946c3a66c4f07c738cfd56295aa1";

    // Python bcrypt 5.0.0 `hashpw(b"correct horse", gensalt(rounds=4[, prefix=b"2a"]))`, and
    // Apache htpasswd 2.4.71 `-nbB -C 4` (which writes PHP's `$2y$`).
    const BCRYPT_2B: &str = "$2b$04$EIfVoB6Evk4dz0jmHlrRhuGHjoJvX.OMgieu/qMj5y6TlqDGid0Lm";
    const BCRYPT_2A: &str = "$2a$04$bhcW3fHnqXqqFBkB36fAw.4O39HmC.6a9EXzRImaX9/mpIkkYrL92";
    const BCRYPT_2Y: &str = "$2y$04$sM98EFOGD3dRT4V.c6qtL.qaCayM0bC8ymS5eDZyENko3oORzu/5e";
    // htpasswd 2.4.71, 80 × "x": bcrypt reads only the first 72 bytes.
    const BCRYPT_80X: &str = "$2y$04$y4YTH1RcUbGi8FGunbgFWuug.9W35d8ghRty68Dv7wxMmns03ygJC";

    // Django 5.2.20 `make_password("correct horse")` (pbkdf2_sha256, 1,000,000 rounds), and its
    // PBKDF2PasswordHasher / PBKDF2SHA1PasswordHasher subclassed with `iterations = 1000`; the
    // last with password "pässwörd ✓" and salt "NaClNaClNaCl".
    const DJ_DEFAULT: &str =
        "pbkdf2_sha256$1000000$vbPL6D905V1IKKUOjw928g$kCC9Cvg41/f3z7KnI7Cx+YmUsSK274sIHxtfFdw1vWE=";
    const DJ_SHA256: &str = "pbkdf2_sha256$1000$ccKb6zwPnWA2LRwObIsObC$E3czOqgZbCqcHSPnBTELI5hWup0hiWE94dGL2INDi6s=";
    const DJ_SHA1: &str = "pbkdf2_sha1$1000$1DGHjns5u3bfcNOdM7gLhV$4/CWpszZzeg3oSQiXKVzPjiiXkU=";
    const DJ_UNICODE: &str = "pbkdf2_sha256$1000$NaClNaClNaCl$/fdMtpQcSrheEaFNGP1tdvRIA6iDWoT3wHhNQfmTreg=";

    fn check(stored: &str, password: &str, kind: HashKind) {
        assert_eq!(classify(stored), kind, "{stored}");
        assert_eq!(verify_any(password, stored), Verdict::MatchNeedsRehash, "{stored}");
        assert_eq!(verify_any("correct horsf", stored), Verdict::Mismatch, "{stored}");
        assert_eq!(verify_any("", stored), Verdict::Mismatch, "{stored}");
    }

    #[test]
    fn werkzeug_pbkdf2_hashes_verify() {
        for h in [WZ_PBKDF2_SHA256, WZ_PBKDF2_SHA512, WZ_PBKDF2_SHA1] {
            check(h, PW, HashKind::WerkzeugPbkdf2);
        }
        check(WZ_UNICODE, "pässwörd ✓", HashKind::WerkzeugPbkdf2);
    }

    #[test]
    fn real_defaults_are_within_bounds() {
        assert_eq!(classify(WZ_PBKDF2_DEFAULT), HashKind::WerkzeugPbkdf2);
        assert_eq!(classify(WZ_PBKDF2_600K), HashKind::WerkzeugPbkdf2);
        assert_eq!(classify(WZ_SCRYPT_DEFAULT), HashKind::WerkzeugScrypt);
        assert_eq!(classify(DJ_DEFAULT), HashKind::DjangoPbkdf2);
    }

    /// One default-round hash end to end; the others differ only in their numbers (1,000,000
    /// rounds take seconds in a debug build: the generic HMAC code is not optimised there).
    #[test]
    fn werkzeug_pbkdf2_default_verifies() {
        assert_eq!(verify_any(PW, WZ_PBKDF2_DEFAULT), Verdict::MatchNeedsRehash);
    }

    #[test]
    fn werkzeug_scrypt_hashes_verify() {
        check(WZ_SCRYPT_16K, PW, HashKind::WerkzeugScrypt);
        assert_eq!(verify_any(PW, WZ_SCRYPT_DEFAULT), Verdict::MatchNeedsRehash);
        // Werkzeug's checker reads a bare `scrypt` as its default 32768:8:1.
        let bare = WZ_SCRYPT_DEFAULT.replacen(":32768:8:1", "", 1);
        assert_eq!(verify_any(PW, &bare), Verdict::MatchNeedsRehash);
    }

    #[test]
    fn bcrypt_hashes_verify() {
        for h in [BCRYPT_2B, BCRYPT_2A, BCRYPT_2Y] {
            check(h, PW, HashKind::Bcrypt);
        }
        assert_eq!(verify_any(&"x".repeat(80), BCRYPT_80X), Verdict::MatchNeedsRehash);
        assert_eq!(verify_any(&format!("{}yz", "x".repeat(72)), BCRYPT_80X), Verdict::MatchNeedsRehash);
        assert_eq!(verify_any(&"x".repeat(71), BCRYPT_80X), Verdict::Mismatch);
    }

    #[test]
    fn django_pbkdf2_hashes_verify() {
        check(DJ_SHA256, PW, HashKind::DjangoPbkdf2);
        check(DJ_SHA1, PW, HashKind::DjangoPbkdf2);
        check(DJ_UNICODE, "pässwörd ✓", HashKind::DjangoPbkdf2);
    }

    #[test]
    fn a_changed_hash_or_salt_does_not_verify() {
        // Werkzeug compares hex strings: uppercase is not its output.
        let (method, hex) = WZ_PBKDF2_SHA256.rsplit_once('$').unwrap();
        assert_eq!(verify_any(PW, &format!("{method}${}", hex.to_uppercase())), Verdict::Mismatch);
        let salted = WZ_PBKDF2_SHA256.replacen("$G5x", "$G5y", 1);
        assert_eq!(verify_any(PW, &salted), Verdict::Mismatch);
        assert_eq!(verify_any(PW, &DJ_SHA256.replacen("=", "A", 1)), Verdict::Mismatch);
        assert_eq!(verify_any(PW, &BCRYPT_2B.replacen("Lm", "Ln", 1)), Verdict::Mismatch);
    }

    fn unsupported(stored: &str) -> String {
        match classify(stored) {
            HashKind::Unsupported(reason) => {
                assert_eq!(verify_any(PW, stored), Verdict::Mismatch, "{stored}");
                reason
            }
            other => panic!("{stored:?} classified as {other:?}"),
        }
    }

    #[test]
    fn malformed_hashes_are_refused_without_panicking() {
        let cases = [
            "",
            "$",
            "$$$",
            "pbkdf2",
            "pbkdf2:sha256:1000",
            "pbkdf2:sha256:1000$salt",
            "pbkdf2:sha256:1000$$2e5bc2c97e1265d592eb015cb74e51d7c13e35ed75512be2adcba189b46f98c5",
            "pbkdf2:sha256:1000$salt$2e5b",
            "pbkdf2:sha256:1000$salt$zz5bc2c97e1265d592eb015cb74e51d7c13e35ed75512be2adcba189b46f98c5",
            "pbkdf2:sha256:-1000$salt$2e5bc2c97e1265d592eb015cb74e51d7c13e35ed75512be2adcba189b46f98c5",
            "pbkdf2:sha256:1e6$salt$2e5bc2c97e1265d592eb015cb74e51d7c13e35ed75512be2adcba189b46f98c5",
            "pbkdf2:sha256:1000:7$salt$2e5bc2c97e1265d592eb015cb74e51d7c13e35ed75512be2adcba189b46f98c5",
            "pbkdf2:md5:1000$salt$2e5bc2c97e1265d592eb015cb74e51d7",
            "scrypt:32768:8$salt$00",
            "scrypt:x:8:1$salt$00",
            "scrypt:16384:8:1$salt$4806",
            "$2b$04$short",
            "$2b$4$EIfVoB6Evk4dz0jmHlrRhuGHjoJvX.OMgieu/qMj5y6TlqDGid0Lmx",
            "$2b$xx$EIfVoB6Evk4dz0jmHlrRhuGHjoJvX.OMgieu/qMj5y6TlqDGid0Lm",
            "$2b$03$EIfVoB6Evk4dz0jmHlrRhuGHjoJvX.OMgieu/qMj5y6TlqDGid0Lm",
            "$2b$04$EIfVoB6Evk4dz0jmHlrRhuGHjoJvX.OMgieu/qMj5y6TlqDGid0L!",
            "$2b$€€$EIfVoB6Evk4dz0jmHlrRhuGHjoJvX.OMgieu/qMj5y6TlqDGid0L",
            "$2x$04$EIfVoB6Evk4dz0jmHlrRhuGHjoJvX.OMgieu/qMj5y6TlqDGid0Lm",
            "pbkdf2_sha256$1000$salt",
            "pbkdf2_sha256$1000$$E3czOqgZbCqcHSPnBTELI5hWup0hiWE94dGL2INDi6s=",
            "pbkdf2_sha256$abc$salt$E3czOqgZbCqcHSPnBTELI5hWup0hiWE94dGL2INDi6s=",
            "pbkdf2_sha256$1000$salt$E3czOqgZ",
            "pbkdf2_sha256$1000$salt$E3czOqgZbCqcHSPnBTELI5hWup0hiWE94dGL2INDi6s=\u{0}",
            "$argon2id$v=19$m=nope",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$pbkdf2-sha256$29000$N2ZPbuIk$bTjfmFUwXWB8Ev/7KU5PkPFy5OHyuS9VMgnD7bLf4zA",
            "!AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd",
            "hunter2",
            "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99",
            "argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA",
            "scrypt$16384$salt$8$5$aGFzaA==",
        ];
        for c in cases {
            let reason = unsupported(c);
            assert!(!reason.contains("hunter2"), "{reason}");
        }
        assert_eq!(unsupported("hunter2"), "unrecognised hash format");
    }

    #[test]
    fn work_is_bounded_before_it_is_done() {
        let hex64 = "0".repeat(64);
        let hex128 = "0".repeat(128);
        let pbkdf2 = |n: u64| format!("pbkdf2:sha256:{n}$salt${hex64}");
        assert!(matches!(classify(&pbkdf2(1_000)), HashKind::WerkzeugPbkdf2));
        assert!(matches!(classify(&pbkdf2(10_000_000)), HashKind::WerkzeugPbkdf2));
        assert!(unsupported(&pbkdf2(999)).contains("below the bound"));
        // These would take minutes and hours if computed; the test returns at once.
        assert!(unsupported(&pbkdf2(10_000_001)).contains("above the bound"));
        assert!(unsupported(&pbkdf2(u64::MAX)).contains("above the bound"));
        assert!(unsupported(&format!("pbkdf2_sha256$4000000000$salt${}=", "A".repeat(43))).contains("above"));
        assert!(unsupported("pbkdf2:sha256$salt$00").contains("without a round count"));

        let scrypt = |n: u64, r: u32, p: u32| format!("scrypt:{n}:{r}:{p}$salt${hex128}");
        assert_eq!(classify(&scrypt(262_144, 8, 1)), HashKind::WerkzeugScrypt, "256 MiB");
        assert_eq!(classify(&scrypt(32768, 8, 32)), HashKind::WerkzeugScrypt, "1 GiB of work");
        assert!(unsupported(&scrypt(524_288, 8, 1)).contains("256 MiB"));
        assert!(unsupported(&scrypt(16384, 8, 1 << 30)).contains("1 GiB"));
        assert!(unsupported(&scrypt(1 << 40, u32::MAX, 1)).contains("256 MiB"));
        assert!(unsupported(&scrypt(30000, 8, 1)).contains("power of two"));
        assert!(unsupported(&scrypt(1, 8, 1)).contains("power of two"));
        assert!(unsupported(&scrypt(0, 8, 1)).contains("power of two"));
        assert!(unsupported(&scrypt(16384, 0, 1)).contains("malformed"));
        assert!(unsupported(&scrypt(16384, 8, 0)).contains("malformed"));

        let bcrypt = |cost: &str| BCRYPT_2B.replacen("$04$", &format!("${cost}$"), 1);
        assert_eq!(classify(&bcrypt("16")), HashKind::Bcrypt);
        assert!(unsupported(&bcrypt("17")).contains("above the bound"));
        assert!(unsupported(&bcrypt("99")).contains("above the bound"));
    }

    #[test]
    fn base64_matches_python() {
        // base64.b64encode(b""), (b"f"), (b"fo"), (b"foo"), (b"foob")
        assert_eq!(to_base64(b""), "");
        assert_eq!(to_base64(b"f"), "Zg==");
        assert_eq!(to_base64(b"fo"), "Zm8=");
        assert_eq!(to_base64(b"foo"), "Zm9v");
        assert_eq!(to_base64(b"foob"), "Zm9vYg==");
        assert_eq!(to_base64(&[0xfb, 0xff]), "+/8=");
    }
}
