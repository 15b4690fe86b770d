//! `tenantd loadtest --scenario FILE`: a load in stages, read from TOML. Each stage has a
//! duration, a fixed or ramped number of client threads, an optional fixed or ramped open-loop
//! rate, and a mix of operations per table; the file may also set the tenants, their rows, how
//! requests pick a tenant and the weight of given tenants. The whole file is checked before
//! anything is touched; errors name the line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::driver::{Distribution, OpMix};
use super::parse_duration;
use crate::check::{line_of, toml_error};

pub const EXAMPLE: &str = "\
# A morning peak: warm up, ramp the connections, then a rising open-loop rate.
tenants = 50
rows = 500
distribution = \"zipf\"            # or uniform; [tenant_weights] overrides either
plan = \"enterprise\"

[tenant_weights]                   # by slug or by number (1 = load-00001); the rest weigh 1
\"load-00001\" = 20

[[stage]]
name = \"warm-up\"
duration = \"10s\"
concurrency = 4
mix = \"read=90,list=10\"          # on --table (default: the first table)

[[stage]]
name = \"ramp\"
duration = \"30s\"
concurrency = { from = 4, to = 32 }          # threads start evenly over the stage
mix = { customers = \"read=70,write=10\", projects = \"list=20\" }

[[stage]]
name = \"peak\"
duration = \"20s\"
concurrency = 32
rate = { from = 500, to = 3000 }             # open loop: requests/s over all threads
mix = { customers = \"read=80,write=20\" }";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    tenants: Option<usize>,
    rows: Option<u64>,
    distribution: Option<String>,
    plan: Option<String>,
    #[serde(default)]
    tenant_weights: BTreeMap<String, f64>,
    #[serde(default, rename = "stage")]
    stages: Vec<toml::Spanned<StageFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    name: Option<String>,
    duration: String,
    concurrency: Option<Ramp<u64>>,
    rate: Option<Ramp<f64>>,
    mix: Option<MixFile>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Ramp<T> {
    Fixed(T),
    Range { from: T, to: T },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MixFile {
    /// On the default table.
    One(String),
    /// Table name → `read=…,list=…,write=…`.
    Tables(BTreeMap<String, String>),
}

/// A checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub tenants: Option<usize>,
    pub rows: Option<u64>,
    pub distribution: Option<Distribution>,
    pub plan: Option<String>,
    /// Slug or 1-based number → weight.
    pub tenant_weights: BTreeMap<String, f64>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub duration: Duration,
    /// (at the start, at the end): equal when fixed.
    pub concurrency: (usize, usize),
    pub rate: Option<(f64, f64)>,
    /// (table, operations); `None` as the table = the default table.
    pub mix: Vec<(Option<String>, OpMix)>,
}

impl Scenario {
    /// Every table a stage names, in the order first named (the default table is not among them).
    pub fn tables(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.stages {
            for (t, _) in &s.mix {
                if let Some(t) = t {
                    if !out.contains(t) {
                        out.push(t.clone());
                    }
                }
            }
        }
        out
    }

    /// Whether a stage loads the default table.
    pub fn uses_default_table(&self) -> bool {
        self.stages.iter().any(|s| s.mix.iter().any(|(t, _)| t.is_none()))
    }
}

/// Parses and checks a scenario; errors name the line.
pub fn parse(text: &str) -> Result<Scenario, String> {
    let f: File = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    if f.stages.is_empty() {
        return Err("the scenario has no [[stage]]: add at least one with a duration".into());
    }
    if f.tenants.is_some_and(|n| !(1..=1_000_000).contains(&n)) {
        return Err("tenants must be between 1 and 1,000,000".into());
    }
    if f.rows.is_some_and(|r| r > 10_000_000) {
        return Err("rows must be at most 10,000,000".into());
    }
    let distribution = f.distribution.as_deref().map(Distribution::parse).transpose()?;
    for (who, w) in &f.tenant_weights {
        if !(w.is_finite() && *w >= 0.0) {
            return Err(format!("tenant_weights: {who:?} = {w} must be a number >= 0"));
        }
    }
    let mut stages = Vec::new();
    for (i, spanned) in f.stages.into_iter().enumerate() {
        let line = line_of(text, spanned.span().start);
        let s = spanned.into_inner();
        let name = s.name.unwrap_or_else(|| format!("stage {}", i + 1));
        let bad = |why: String| format!("line {line}: stage {name:?}: {why}");
        let duration = parse_duration(&s.duration).map_err(|e| bad(e.to_string().replace("--duration", "duration")))?;
        let concurrency = match s.concurrency.unwrap_or(Ramp::Fixed(16)) {
            Ramp::Fixed(n) => (n, n),
            Ramp::Range { from, to } => (from, to),
        };
        if !(1..=4096).contains(&concurrency.0) || !(1..=4096).contains(&concurrency.1) {
            return Err(bad("concurrency must be 1..=4096 threads".into()));
        }
        if concurrency.0 > concurrency.1 {
            return Err(bad("a concurrency ramp goes up: from must be <= to".into()));
        }
        let rate = s.rate.map(|r| match r {
            Ramp::Fixed(x) => (x, x),
            Ramp::Range { from, to } => (from, to),
        });
        if rate.is_some_and(|(a, b)| ![a, b].iter().all(|x| x.is_finite() && *x > 0.0 && *x <= 10_000_000.0)) {
            return Err(bad("rate must be requests per second in (0, 10,000,000]".into()));
        }
        let mix = match s.mix.unwrap_or(MixFile::One("read=80,list=10,write=10".into())) {
            MixFile::One(m) => vec![(None, OpMix::parse(&m).map_err(|e| bad(format!("mix {m:?}: {e}")))?)],
            MixFile::Tables(t) => {
                if t.is_empty() {
                    return Err(bad("mix names no table".into()));
                }
                let mut out = Vec::new();
                for (table, m) in t {
                    let ops = OpMix::parse(&m).map_err(|e| bad(format!("mix of {table}: {m:?}: {e}")))?;
                    out.push((Some(table), ops));
                }
                out
            }
        };
        stages.push(Stage { name, duration, concurrency: (concurrency.0 as usize, concurrency.1 as usize), rate, mix });
    }
    Ok(Scenario {
        name: f.name.unwrap_or_else(|| "scenario".into()),
        tenants: f.tenants,
        rows: f.rows,
        distribution,
        plan: f.plan,
        tenant_weights: f.tenant_weights,
        stages,
    })
}

/// The weight of each of `slugs` (in order): a weight named by slug or by 1-based number, else 1.
/// An entry that names no tenant is an error.
pub fn weights(given: &BTreeMap<String, f64>, slugs: &[&str]) -> Result<Vec<f64>, String> {
    let mut w = vec![1.0; slugs.len()];
    for (who, &x) in given {
        let i = match who.parse::<usize>() {
            Ok(n) if (1..=slugs.len()).contains(&n) => n - 1,
            _ => slugs.iter().position(|s| s == who).ok_or_else(|| {
                format!("tenant_weights names {who:?}, which is not one of the {} loaded tenants", slugs.len())
            })?,
        };
        w[i] = x;
    }
    if w.iter().all(|x| *x == 0.0) {
        return Err("tenant_weights leave every tenant at weight 0".into());
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses() {
        let s = parse(EXAMPLE).unwrap();
        assert_eq!(s.stages.len(), 3);
        assert_eq!(s.stages[1].concurrency, (4, 32));
        assert_eq!(s.stages[2].rate, Some((500.0, 3000.0)));
        assert_eq!(s.tables(), vec!["customers".to_string(), "projects".to_string()]);
        assert!(s.uses_default_table());
        assert_eq!(s.tenants, Some(50));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("[[stage]]\nduration = \"1s\"\nmix = \"read=1\"\nthreads = 3\n").unwrap_err();
        assert!(e.starts_with("line 4:") && e.contains("threads"), "{e}");
        let e = parse("\n[[stage]]\nname = \"a\"\nduration = \"soon\"\n").unwrap_err();
        assert!(e.starts_with("line 2: stage \"a\"") && e.contains("duration"), "{e}");
        let e = parse("[[stage]]\nduration = \"1s\"\nconcurrency = { from = 8, to = 2 }\n").unwrap_err();
        assert!(e.contains("from must be <= to"), "{e}");
        let e = parse("[[stage]]\nduration = \"1s\"\nmix = { customers = \"delete=1\" }\n").unwrap_err();
        assert!(e.contains("customers") && e.contains("unknown operation"), "{e}");
        assert!(parse("tenants = 3\n").unwrap_err().contains("no [[stage]]"));
        let e = parse("[[stage]]\nduration = \"1s\"\nrate = -5\n").unwrap_err();
        assert!(e.contains("rate"), "{e}");
    }

    #[test]
    fn weights_by_slug_or_number() {
        let mut given = BTreeMap::new();
        given.insert("load-00002".to_string(), 5.0);
        given.insert("3".to_string(), 0.0);
        assert_eq!(weights(&given, &["load-00001", "load-00002", "load-00003"]).unwrap(), vec![1.0, 5.0, 0.0]);
        given.insert("nobody".into(), 1.0);
        assert!(weights(&given, &["load-00001", "load-00002", "load-00003"]).unwrap_err().contains("nobody"));
    }
}
