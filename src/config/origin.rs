//! Where each setting came from, so an error points at it: a line of the config file (found
//! through the toml crate's spans), a `TENANTD_*` variable, or a command-line flag. Also turns
//! serde's type errors ("invalid value: integer `-5`, expected usize") into what the operator
//! should write instead ("expected a whole number in 1..=1000000").

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};

use super::{Config, ConfigError};

/// Old names still accepted for a key: (old, current).
const ALIASES: &[(&str, &str)] = &[("workers", "workers_min")];

/// The current name of a top-level key (`workers` → `workers_min`).
fn canonical(key: &str) -> &str {
    ALIASES.iter().find(|(old, _)| *old == key).map_or(key, |(_, new)| new)
}

/// The config file as read: its name as given (`tenantd.toml`, `/etc/tenantd/tenantd.toml`)
/// and its text, kept so errors found later can be traced back to a line.
pub(super) struct ConfigFile {
    name: String,
    text: String,
}

/// A value set by a `TENANTD_*` variable: the key it set, the variable and its text.
pub(super) struct EnvSetting {
    pub key: String,
    pub var: String,
    pub raw: String,
}

impl EnvSetting {
    /// `TENANTD_X=value: problem`.
    fn error_line(&self, problem: &str) -> String {
        format!("{}={}: {problem}", self.var, self.raw)
    }
}

/// A value set by a flag: the key, the flag and its value as typed (`""` when empty).
pub(super) struct FlagSetting {
    pub key: &'static str,
    pub flag: &'static str,
    pub raw: String,
}

impl FlagSetting {
    pub fn new(key: &'static str, flag: &'static str, raw: String) -> Self {
        let raw = if raw.is_empty() { "\"\"".to_string() } else { raw };
        FlagSetting { key, flag, raw }
    }
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::message(format!("cannot read config {}: {e}", path.display())))?;
        Ok(ConfigFile { name: path.display().to_string(), text })
    }

    /// The file as a table, once it parses and every value in it has the type its key takes
    /// (checked here, with the file's spans at hand, rather than after merging with the
    /// environment, where serde's errors name neither key nor line).
    pub fn table(&self) -> Result<toml::Table, ConfigError> {
        let table = self.text.parse::<toml::Table>().map_err(|e| self.syntax_error(&e))?;
        if let Err(e) = toml::from_str::<Config>(&self.text) {
            return Err(self.type_error(&table, &e));
        }
        Ok(table)
    }

    /// 1-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    /// The source text of a value, when it fits on one line.
    fn written(&self, span: Range<usize>) -> Option<&str> {
        let s = self.text.get(span)?.trim();
        (!s.is_empty() && !s.contains('\n')).then_some(s)
    }

    fn syntax_error(&self, e: &toml::de::Error) -> ConfigError {
        let what = e.message().trim();
        match e.span() {
            Some(span) => {
                ConfigError::message(format!("{} line {}: not valid TOML: {what}", self.name, self.line_of(span.start)))
            }
            None => ConfigError::message(format!("{}: not valid TOML: {what}", self.name)),
        }
    }

    fn type_error(&self, table: &toml::Table, e: &toml::de::Error) -> ConfigError {
        let Some(span) = e.span() else {
            return ConfigError::message(format!("{}: {}", self.name, e.message()));
        };
        let line = self.line_of(span.start);
        let mut path = Vec::new();
        let found = DeTable::parse(&self.text).ok().and_then(|doc| key_at(doc.get_ref(), span.start, &mut path));
        let Some(value_span) = found else {
            return ConfigError::message(format!("{} line {line}: {}", self.name, e.message()));
        };
        let problem = describe(e.message(), table, &path);
        let written = self.written(value_span).or_else(|| self.written(span)).unwrap_or("…");
        ConfigError::message(self.error_line(line, &path.join("."), Some(written), &problem))
    }

    /// `file line N: key = value: problem` (without ` = value` for a table).
    fn error_line(&self, line: usize, key: &str, written: Option<&str>, problem: &str) -> String {
        match written {
            Some(w) => format!("{} line {line}: {key} = {w}: {problem}", self.name),
            None => format!("{} line {line}: {key}: {problem}", self.name),
        }
    }

    /// `e` placed at the line of its key, with the key and value as written there.
    fn locate(&self, e: &ConfigError) -> Option<String> {
        let key = e.key()?;
        let doc = DeTable::parse(&self.text).ok()?;
        let segments: Vec<&str> = key.split('.').collect();
        let (first, rest) = segments.split_first()?;
        let spellings =
            std::iter::once(*first).chain(ALIASES.iter().filter(|(_, new)| new == first).map(|(old, _)| *old));
        for spelled in spellings {
            let path: Vec<&str> = std::iter::once(spelled).chain(rest.iter().copied()).collect();
            let Some((key_span, value)) = find(doc.get_ref(), &path) else {
                continue;
            };
            let written = match value.get_ref() {
                DeValue::Table(_) => None,
                _ => self.written(value.span()).or(e.value()),
            };
            return Some(self.error_line(self.line_of(key_span.start), &path.join("."), written, e.problem()));
        }
        None
    }
}

/// Whether a span holds a byte offset (an empty span holds its start: serde reports an
/// unclosed table there).
fn covers(span: &Range<usize>, at: usize) -> bool {
    span.start == at || (span.start < at && at < span.end)
}

/// The innermost key whose name or value holds byte `at`; fills `path` with its dotted path
/// and returns its value's span. Tables are searched first: a `[limits]` header's span need
/// not cover the keys under it.
fn key_at(table: &DeTable<'_>, at: usize, path: &mut Vec<String>) -> Option<Range<usize>> {
    for (k, v) in table.iter() {
        path.push(k.get_ref().to_string());
        if let DeValue::Table(inner) = v.get_ref() {
            if let Some(found) = key_at(inner, at, path) {
                return Some(found);
            }
        }
        if covers(&k.span(), at) || covers(&v.span(), at) {
            return Some(v.span());
        }
        path.pop();
    }
    None
}

type Entry<'a, 'i> = (Range<usize>, &'a toml::Spanned<DeValue<'i>>);

/// The key at `path` (its span) and its value.
fn find<'a, 'i>(table: &'a DeTable<'i>, path: &[&str]) -> Option<Entry<'a, 'i>> {
    let (first, rest) = path.split_first()?;
    let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *first)?;
    match (rest.is_empty(), v.get_ref()) {
        (true, _) => Some((k.span(), v)),
        (false, DeValue::Table(inner)) => find(inner, rest),
        (false, _) => None,
    }
}

/// An error about key `key` placed where it was set: a flag, else the last `TENANTD_*`
/// variable that set it, else its line in the file; unplaced (defaults) it reads
/// `key = value: expected …`.
pub(super) fn place(
    e: ConfigError,
    flags: &[FlagSetting],
    env: &[EnvSetting],
    file: Option<&ConfigFile>,
) -> ConfigError {
    let Some(key) = e.key().map(str::to_string) else {
        return e;
    };
    if let Some(f) = flags.iter().find(|f| f.key == key) {
        let line = format!("{} {}: {}", f.flag, f.raw, e.problem());
        return e.placed(line);
    }
    if let Some(s) = env.iter().rev().find(|s| canonical(&s.key) == key) {
        let line = s.error_line(e.problem());
        return e.placed(line);
    }
    match file.and_then(|f| f.locate(&e)) {
        Some(line) => e.placed(line),
        None => e,
    }
}

/// Checks that a `TENANTD_*` variable's value has the type its key takes; `table` is the config
/// loaded so far (for the range of an integer key).
pub(super) fn check_env_value(table: &toml::Table, s: &EnvSetting, value: &toml::Value) -> Result<(), ConfigError> {
    let one = toml::Table::from_iter([(s.key.clone(), value.clone())]);
    match toml::Value::Table(one).try_into::<Config>() {
        Ok(_) => Ok(()),
        Err(e) => {
            let problem = describe(e.message(), table, std::slice::from_ref(&s.key));
            Err(ConfigError::message(s.error_line(&problem)))
        }
    }
}

/// serde's type error in the operator's words: "expected true or false", "expected a whole
/// number in 1..=1000000". `base` and `path` let an integer key's range be looked up.
fn describe(serde_message: &str, base: &toml::Table, path: &[String]) -> String {
    let Some((_, want)) = serde_message.rsplit_once(", expected ") else {
        return serde_message.to_string();
    };
    if serde_message.starts_with("unknown field") {
        return format!("not a known key; expected {want}");
    }
    match want {
        "usize" | "u64" | "u32" | "u16" | "u8" => {
            integer_range(base, path).unwrap_or_else(|| "expected a whole number, 0 or more".into())
        }
        "isize" | "i64" | "i32" | "i16" | "i8" => {
            integer_range(base, path).unwrap_or_else(|| "expected a whole number".into())
        }
        "a boolean" => "expected true or false".into(),
        "f64" | "f32" => "expected a number".into(),
        "a string" | "path string" => "expected a string in double quotes".into(),
        "a sequence" => "expected a list, e.g. [\"a\", \"b\"]".into(),
        w if w.starts_with("struct ") || w == "a map" => "expected a table".into(),
        w => format!("expected {w}"),
    }
}

/// What an integer key accepts, in `validate`'s words. The ranges live in one place,
/// `Config::validate`, so ask it: set the key to 0 and then to a large value, among the
/// operator's other settings and, should those fail first, among the defaults.
fn integer_range(base: &toml::Table, path: &[String]) -> Option<String> {
    let key = path.join(".");
    let key = canonical(&key);
    for base in [base.clone(), toml::Table::new()] {
        for probe in [0, i64::from(u32::MAX)] {
            let mut table = base.clone();
            if !set(&mut table, path, toml::Value::Integer(probe)) {
                continue;
            }
            let Ok(config) = toml::Value::Table(table).try_into::<Config>() else {
                continue;
            };
            if let Err(e) = config.validate() {
                if e.key() == Some(key) {
                    return Some(e.problem().to_string());
                }
            }
        }
    }
    None
}

/// Sets the value at a dotted path, creating tables on the way; false when a non-table is in
/// the way.
fn set(table: &mut toml::Table, path: &[String], value: toml::Value) -> bool {
    match path {
        [] => false,
        [last] => {
            table.insert(last.clone(), value);
            true
        }
        [first, rest @ ..] => {
            let next = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match next {
                toml::Value::Table(inner) => set(inner, rest, value),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Issue 18 item 5: every config error names where the value was set, the key, the value as
    //! written and what was expected.
    use super::super::tests::load;
    use super::super::{Config, Overrides, KNOWN_KEYS};

    /// The one-line error for a config file (and environment), as an operator sees it.
    fn error(toml_text: &str, env: &[(&str, &str)]) -> String {
        match load(toml_text, env) {
            Ok(_) => panic!("{toml_text:?} with {env:?} loaded"),
            Err(e) => e,
        }
    }

    /// `ALIASES` repeats the old names `KNOWN_KEYS` (and serde's `alias`) accept: an old name
    /// missing there would be warned about as unknown while it works.
    #[test]
    fn every_alias_is_a_known_key() {
        for (old, new) in super::ALIASES {
            assert!(KNOWN_KEYS.contains(old), "{old} (the old name of {new}) is not in KNOWN_KEYS");
            assert!(KNOWN_KEYS.contains(new), "{new} (the new name of {old}) is not in KNOWN_KEYS");
            let l = load(&format!("{old} = 4\n"), &[]).unwrap();
            assert!(l.warnings.is_empty(), "{old}: {:?}", l.warnings);
        }
    }

    #[test]
    fn negative_for_unsigned_names_the_range() {
        assert_eq!(
            error("max_open_tenants = -5\n", &[]),
            "tenantd.toml line 1: max_open_tenants = -5: expected a whole number in 1..=1000000"
        );
        // A fraction is no whole number either.
        assert_eq!(
            error("listen = \"127.0.0.1:1\"\nmax_open_tenants = 1.5\n", &[]),
            "tenantd.toml line 2: max_open_tenants = 1.5: expected a whole number in 1..=1000000"
        );
    }

    #[test]
    fn out_of_range_shows_the_value_as_written() {
        assert_eq!(
            error("# comment\n\nmax_open_tenants = 2_000_000\n", &[]),
            "tenantd.toml line 3: max_open_tenants = 2_000_000: expected a whole number in 1..=1000000"
        );
        // A range starting at 0 is found too, and a range that depends on another key uses it.
        assert_eq!(
            error("delete_grace_days = -1\n", &[]),
            "tenantd.toml line 1: delete_grace_days = -1: expected a whole number in 0..=3650"
        );
        assert_eq!(
            error("workers_min = 8\nworkers_max = -1\n", &[]),
            "tenantd.toml line 2: workers_max = -1: expected a whole number in 8..=512"
        );
        assert_eq!(
            error("workers_min = 8\nworkers_max = 4\n", &[]),
            "tenantd.toml line 2: workers_max = 4: expected a whole number in 8..=512"
        );
        assert_eq!(
            error("shutdown_timeout_seconds = 1\nshutdown_grace_ms = 5000\n", &[]),
            "tenantd.toml line 2: shutdown_grace_ms = 5000: expected fewer ms than shutdown_timeout_seconds = 1 (1000 ms)"
        );
        // The old name is the one the operator wrote, so it is the one shown.
        assert_eq!(error("workers = 0\n", &[]), "tenantd.toml line 1: workers = 0: expected a whole number in 2..=512");
    }

    #[test]
    fn bool_and_string_types() {
        assert_eq!(
            error("audit_data_changes = \"yes\"\n", &[]),
            "tenantd.toml line 1: audit_data_changes = \"yes\": expected true or false"
        );
        assert_eq!(
            error("listen = 8080\n", &[]),
            "tenantd.toml line 1: listen = 8080: expected a string in double quotes"
        );
        assert_eq!(
            error("listen = \"nowhere\"\n", &[]),
            "tenantd.toml line 1: listen = \"nowhere\": expected IP:PORT, e.g. 127.0.0.1:8080"
        );
        assert_eq!(
            error("trusted_proxies = [\"127.0.0.1\", 3]\n", &[]),
            "tenantd.toml line 1: trusted_proxies = [\"127.0.0.1\", 3]: expected a string in double quotes"
        );
    }

    #[test]
    fn list_entries_name_the_bad_one() {
        assert_eq!(
            error("trusted_proxies = [\"127.0.0.1\", \"nope\"]\n", &[]),
            "tenantd.toml line 1: trusted_proxies = [\"127.0.0.1\", \"nope\"]: expected addresses or CIDR blocks \
             (\"nope\" is neither)"
        );
    }

    #[test]
    fn nested_keys_read_as_dotted_paths() {
        assert_eq!(
            error("listen = \"127.0.0.1:8080\"\n\n[limits]\nenabled = 3\n", &[]),
            "tenantd.toml line 4: limits.enabled = 3: expected true or false"
        );
        assert_eq!(
            error("[auth]\nsession_ttl_minutes = -1\n", &[]),
            "tenantd.toml line 2: auth.session_ttl_minutes = -1: expected a whole number in 1..=525600"
        );
        assert_eq!(
            error("[plans.gold]\nrequests_per_second = 5\nburst = 0\n", &[]),
            "tenantd.toml line 3: plans.gold.burst = 0: expected a whole number in 1..=1099511627776"
        );
        assert_eq!(
            error("[cache]\nconfig_ttl_seconds = 0\n", &[]),
            "tenantd.toml line 2: cache.config_ttl_seconds = 0: expected a whole number in 1..=86400"
        );
        assert_eq!(
            error("[limits]\nprincipal_share = 2.0\n", &[]),
            "tenantd.toml line 2: limits.principal_share = 2.0: expected a number above 0, at most 1"
        );
        assert_eq!(error("limits = 3\n", &[]), "tenantd.toml line 1: limits = 3: expected a table");
        assert_eq!(error("plans = 3\n", &[]), "tenantd.toml line 1: plans = 3: expected a table");
        assert_eq!(
            error("[plans.gold]\nburts = 5\n", &[]),
            "tenantd.toml line 2: plans.gold.burts = 5: not a known key; expected one of `requests_per_second`, \
             `burst`, `monthly_requests`, `storage_bytes`, `max_users`, `max_concurrent_requests`, \
             `query_timeout_ms`, `audit_retention_days`, `price_monthly_cents`, `price_yearly_cents`, `currency`, \
             `trial_days`, `stripe_price_id`, `stripe_price_id_yearly`, `included_monthly_requests`, \
             `overage_cents_per_1000_requests`, `included_storage_gb`, `overage_cents_per_gb_month`, `included_seats`, \
             `overage_cents_per_seat`, `latency_target_ms`, `backup_retention_days`"
        );
        assert_eq!(error("[plans.Gold]\n", &[]), "tenantd.toml line 1: plans.Gold: plan names use a-z, 0-9 and '-'");
    }

    #[test]
    fn syntax_errors_give_the_line() {
        assert_eq!(
            error("listen = \"127.0.0.1:8080\"\nworkers = = 4\n", &[]),
            "tenantd.toml line 2: not valid TOML: extra `=`, expected nothing"
        );
        let e = error("\n\n[limits\n", &[]);
        assert!(e.starts_with("tenantd.toml line 3: not valid TOML: "), "{e}");
    }

    #[test]
    fn env_vars_are_named() {
        assert_eq!(
            error("", &[("TENANTD_MAX_OPEN_TENANTS", "-5")]),
            "TENANTD_MAX_OPEN_TENANTS=-5: expected a whole number in 1..=1000000"
        );
        // The variable overrides the file, so the variable is what is wrong.
        assert_eq!(
            error("max_open_tenants = 10\n", &[("TENANTD_MAX_OPEN_TENANTS", "0")]),
            "TENANTD_MAX_OPEN_TENANTS=0: expected a whole number in 1..=1000000"
        );
        assert_eq!(
            error("", &[("TENANTD_AUDIT_DATA_CHANGES", "maybe")]),
            "TENANTD_AUDIT_DATA_CHANGES=maybe: expected true or false"
        );
        assert_eq!(
            error("", &[("TENANTD_LISTEN", "nowhere")]),
            "TENANTD_LISTEN=nowhere: expected IP:PORT, e.g. 127.0.0.1:8080"
        );
        assert_eq!(error("", &[("TENANTD_WORKERS", "1")]), "TENANTD_WORKERS=1: expected a whole number in 2..=512");
    }

    #[test]
    fn flags_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tenantd.toml");
        // The flag overrides the file's valid address: the flag is what is wrong.
        std::fs::write(&p, "listen = \"127.0.0.1:8080\"\n").unwrap();
        let over = Overrides { listen: Some("nowhere".into()), config_file: Some(p), ..Default::default() };
        let e = Config::load_with_env(&over, &[]).err().unwrap().to_string();
        assert_eq!(e, "--listen nowhere: expected IP:PORT, e.g. 127.0.0.1:8080");
    }
}
