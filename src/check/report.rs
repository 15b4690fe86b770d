//! The end of a check run: failures with their reasons and the `N passed, M failed` line, and
//! the same results as JUnit XML for CI systems (one `<testsuite>` per group).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Outcome, Run};

/// The failures and the summary line, like a test runner's.
pub fn summary(run: &Run) -> String {
    let mut out = String::new();
    let failures: Vec<_> = run.results.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).collect();
    if !failures.is_empty() {
        out.push_str("\nfailures:\n");
        for r in &failures {
            if let Outcome::Failed(why) = &r.outcome {
                let _ = writeln!(out, "\n---- {}::{} ----\n{why}", r.group, r.name);
            }
        }
    }
    let verdict = if failures.is_empty() { "ok" } else { "FAILED" };
    let _ = writeln!(
        out,
        "\ncheck result: {verdict}. {} passed, {} failed, {} skipped; finished in {:.2}s",
        run.passed(),
        run.failed(),
        run.skipped(),
        run.elapsed().as_secs_f64()
    );
    out
}

/// JUnit XML (the schema Jenkins, GitLab and GitHub reporters read).
pub fn junit(run: &Run) -> String {
    let mut groups: BTreeMap<&str, Vec<&super::CheckResult>> = BTreeMap::new();
    for r in &run.results {
        groups.entry(r.group.as_str()).or_default().push(r);
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"tenantd check\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        run.results.len(),
        run.failed(),
        run.skipped(),
        run.elapsed().as_secs_f64()
    );
    for (group, results) in groups {
        let failed = results.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).count();
        let skipped = results.iter().filter(|r| matches!(r.outcome, Outcome::Skipped(_))).count();
        let time: f64 = results.iter().map(|r| r.elapsed.as_secs_f64()).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            xml(group),
            results.len()
        );
        for r in results {
            let open = format!(
                "    <testcase classname=\"tenantd.check.{}\" name=\"{}\" time=\"{:.3}\"",
                xml(group),
                xml(&r.name),
                r.elapsed.as_secs_f64()
            );
            match &r.outcome {
                Outcome::Passed => {
                    let _ = writeln!(out, "{open}/>");
                }
                Outcome::Failed(why) => {
                    let _ = writeln!(
                        out,
                        "{open}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml(why),
                        xml(why)
                    );
                }
                Outcome::Skipped(why) => {
                    let _ = writeln!(out, "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>", xml(why));
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Text for XML attributes and content; control characters XML 1.0 forbids become spaces.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::CheckResult;
    use super::*;
    use std::time::Duration;

    fn run() -> Run {
        let mut r = Run::new(true);
        let rec = |g: &str, n: &str, o: Outcome| CheckResult {
            group: g.into(),
            name: n.into(),
            outcome: o,
            elapsed: Duration::from_millis(3),
        };
        r.record(rec("isolation", "GET /x as <a> & \"b\"", Outcome::Passed));
        r.record(rec("isolation", "POST /y", Outcome::Failed("answered 200\u{1} instead of 404".into())));
        r.record(rec("backup", "restore", Outcome::Skipped("needs --data-dir".into())));
        r
    }

    #[test]
    fn summary_counts_like_a_test_runner() {
        let s = summary(&run());
        assert!(s.contains("---- isolation::POST /y ----\nanswered 200"), "{s}");
        assert!(s.contains("check result: FAILED. 1 passed, 1 failed, 1 skipped"), "{s}");
    }

    #[test]
    fn junit_is_escaped_and_grouped() {
        let x = junit(&run());
        assert!(x.contains("<testsuites name=\"tenantd check\" tests=\"3\" failures=\"1\" skipped=\"1\""), "{x}");
        assert!(x.contains("name=\"GET /x as &lt;a&gt; &amp; &quot;b&quot;\""), "{x}");
        assert!(x.contains("<failure message=\"answered 200  instead of 404\">"), "{x}");
        assert!(x.contains("<testsuite name=\"backup\" tests=\"1\" failures=\"0\" skipped=\"1\""), "{x}");
    }
}
