//! Small helpers without a better home: time formatting, hex, random tokens, percent-encoding,
//! a parallel map.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    now_millis().div_euclid(1000)
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    #[cfg(feature = "testkit")]
    let real = real + CLOCK_SHIFT_MS.load(std::sync::atomic::Ordering::Relaxed);
    real
}

/// How far `tenantd::testkit::Clock` has moved the wall clock (whole process).
#[cfg(feature = "testkit")]
pub static CLOCK_SHIFT_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Formats Unix seconds as RFC 3339 UTC (`2026-11-27T12:00:00Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Formats Unix seconds as an HTTP date (RFC 9110 IMF-fixdate: `Fri, 27 Nov 2026 12:00:00 GMT`).
pub fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (wd, mon) = (DAYS[days.rem_euclid(7) as usize], MONTHS[(m - 1) as usize]);
    format!("{wd}, {d:02} {mon} {y:04} {:02}:{:02}:{:02} GMT", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (query strings, `otpauth:`
/// URIs). Here rather than in `http` because domain code (TOTP) needs it too.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs `f` over `items` on `threads` threads, keeping input order in the output. A panic in
/// `f` is raised again here once the workers are done: callers pair the output with `items`
/// by position, so a worker's results may never go missing.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let threads = threads.clamp(1, items.len().max(1));
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Compact UTC stamp usable in file names (`20261127T120000Z`).
pub fn file_stamp(secs: i64) -> String {
    rfc3339(secs).replace(['-', ':'], "")
}

/// Start of the UTC calendar month containing `secs`, and the start of the next one.
pub fn month_bounds(secs: i64) -> (i64, i64) {
    let (y, m, _) = civil_from_days(secs.div_euclid(86_400));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (days_from_civil(y, m, 1) * 86_400, days_from_civil(ny, nm, 1) * 86_400)
}

/// `secs` plus `months` calendar months (UTC), the day clamped to the target month's length
/// (Jan 31 + 1 month = Feb 28 or 29), the time of day kept: billing periods.
pub fn add_months(secs: i64, months: i64) -> i64 {
    let days = secs.div_euclid(86_400);
    let time = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let total = y * 12 + (m as i64 - 1) + months;
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let (fy, fm) = if nm == 12 { (ny + 1, 1) } else { (ny, nm + 1) };
    let month_len = (days_from_civil(fy, fm, 1) - days_from_civil(ny, nm, 1)) as u32;
    days_from_civil(ny, nm, d.min(month_len)) * 86_400 + time
}

/// `now` minus a relative amount such as `30d` (the part after the `-` of `-30d`): a whole
/// number followed by one of `units`, each a unit's name and its length in `now`'s unit.
pub fn ago(rel: &str, now: i64, units: &[(&str, i64)]) -> Option<i64> {
    let (n, unit) = rel.split_at(rel.len().saturating_sub(1));
    let n: i64 = n.parse().ok()?;
    let len = units.iter().find(|(u, _)| *u == unit)?.1;
    n.checked_mul(len).map(|d| now - d)
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` (UTC) to Unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| {
        s.get(a..b).filter(|t| t.bytes().all(|c| c.is_ascii_digit())).and_then(|t| t.parse::<i64>().ok())
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if s.as_bytes().get(4) != Some(&b'-')
        || s.as_bytes().get(7) != Some(&b'-')
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let day = days_from_civil(y, m as u32, d as u32) * 86_400;
    match s.len() {
        10 => Some(day),
        20 if s.ends_with('Z') && matches!(s.as_bytes()[10], b'T' | b' ') => {
            let (h, mi, se) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
            (h < 24 && mi < 60 && se < 61).then_some(day + h * 3600 + mi * 60 + se)
        }
        _ => None,
    }
}

/// (year, month, day) to days since 1970-01-01 (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
/// Algorithm from Howard Hinnant's "chrono-compatible low-level date algorithms".
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// `n` random bytes as lower-case hex, from the OS-seeded thread RNG.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    hex(&buf)
}

/// SHA-256 of bytes as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_hasher_spreads_minted_ids_and_tells_tails_apart() {
        use std::hash::BuildHasher;
        let build = IdBuild::default();
        let ids: Vec<String> = (0..10_000).map(|_| random_hex(8)).collect();
        let mut map: IdMap<String, usize> = IdMap::default();
        for (i, id) in ids.iter().enumerate() {
            map.insert(id.clone(), i);
        }
        assert!(ids.iter().enumerate().all(|(i, id)| map.get(id) == Some(&i)));
        let buckets: std::collections::HashSet<u64> = ids.iter().map(|id| build.hash_one(id) >> 54).collect();
        assert!(buckets.len() > 900, "top bits spread over 1,024 buckets: {}", buckets.len());
        for (a, b) in [("a", "a\0"), ("abcdefgh", "abcdefgh\0"), ("", "\0")] {
            assert_ne!(build.hash_one(a.as_bytes()), build.hash_one(b.as_bytes()), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn rfc3339_known_points() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_780_800), "2026-11-27T12:00:00Z");
        assert_eq!(file_stamp(0), "19700101T000000Z");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(1_795_780_800), "Fri, 27 Nov 2026 12:00:00 GMT");
    }

    #[test]
    fn months_and_parsing() {
        let (start, next) = month_bounds(1_795_780_800); // 2026-11-27
        assert_eq!(rfc3339(start), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(next), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(month_bounds(next - 1).1), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(month_bounds(1_796_000_000 + 40 * 86_400).1), "2027-02-01T00:00:00Z");
        assert_eq!(parse_time("2026-11-27"), Some(1_795_737_600));
        assert_eq!(parse_time("2026-11-27T12:00:00Z"), Some(1_795_780_800));
        for bad in ["2026-13-01", "26-11-27", "2026-11-27T12:00:00", "yesterday", "2026-11-27T25:00:00Z"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn par_map_keeps_order_and_raises_a_workers_panic() {
        let items: Vec<u32> = (0..50).collect();
        assert_eq!(par_map(&items, 4, &|_| {}, |x| x * 2), items.iter().map(|x| x * 2).collect::<Vec<_>>());
        // Dropping the panicked worker's results would shift every later result onto the
        // wrong item (issue 18 review: fleet versions paired with the wrong tenants).
        let panicked = std::panic::catch_unwind(|| {
            par_map(&items, 4, &|_| {}, |&x| {
                assert_ne!(x, 17, "worker panic");
                x
            })
        });
        let payload = panicked.expect_err("the worker's panic reaches the caller");
        let msg = payload.downcast_ref::<String>().map(String::as_str).unwrap_or("");
        assert!(msg.contains("worker panic"), "{msg:?}");
    }

    #[test]
    fn hex_roundtrip_shape() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(random_hex(8).len(), 16);
    }
}

/// Hasher for maps keyed by ids tenantd minted itself (`TenantId`: 64 random bits), never by
/// request input, so hash flooding is not a concern and SipHash's cost is not needed: the
/// multiply-rotate of FxHash, 8 bytes at a time. Measured with callgrind, hashing was ~5,000
/// instructions of a ~105,000-instruction point read.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let tail = chunks.remainder();
        w[..tail.len()].copy_from_slice(tail);
        self.add(u64::from_le_bytes(w) ^ ((tail.len() as u64) << 59));
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds `IdHasher`s (for maps and limiters keyed by minted ids).
pub type IdBuild = std::hash::BuildHasherDefault<IdHasher>;

/// A `HashMap` keyed by minted ids (see `IdHasher`).
pub type IdMap<K, V> = std::collections::HashMap<K, V, IdBuild>;

/// Bytes an unprivileged process may still write on the file system holding `path`
/// (`statvfs`: available blocks times the fragment size).
pub fn free_space(path: &std::path::Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}
