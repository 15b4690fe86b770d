//! Plain line logging to stderr: `time level [req=id] message`. journald adds its own metadata,
//! so lines stay short and greppable. `TENANTD_LOG=quiet` keeps only warnings and errors.

use std::sync::OnceLock;

fn quiet() -> bool {
    static QUIET: OnceLock<bool> = OnceLock::new();
    *QUIET.get_or_init(|| std::env::var("TENANTD_LOG").is_ok_and(|v| v == "quiet"))
}

fn emit(level: &str, req: Option<&str>, msg: &str) {
    let ts = crate::util::rfc3339(crate::util::now_unix());
    // One formatted line per call so concurrent workers do not interleave within a line.
    let line = match req {
        Some(r) => format!("{ts} {level} req={r} {msg}\n"),
        None => format!("{ts} {level} {msg}\n"),
    };
    // eprint! (not a raw stderr handle) so the test harness captures it.
    eprint!("{line}");
}

pub fn info(msg: &str) {
    if !quiet() {
        emit("INFO", None, msg);
    }
}

pub fn warn(msg: &str) {
    emit("WARN", None, msg);
}

pub fn error(msg: &str) {
    emit("ERROR", None, msg);
}

pub fn request(level: &str, req: &str, msg: &str) {
    if level == "INFO" && quiet() {
        return;
    }
    emit(level, Some(req), msg);
}
