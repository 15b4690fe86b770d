//! Held-back answers for tenants that keep hammering. While a tenant is auto-throttled, its 429
//! answers wait `[limits] tarpit_ms` on this thread before they are written: the flooding client
//! (one request in flight per connection) then waits between attempts instead of taking the
//! server's CPU from other tenants. A held answer costs a queue slot, not a worker; the queue
//! is bounded, and when it is full the answer goes out at once.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Resp;

/// Answers held at most; beyond this they are written at once.
const CAPACITY: usize = 10_000;

pub struct Held {
    pub rq: tiny_http::Request,
    pub resp: Resp,
    pub id: String,
    pub due: Instant,
}

enum Msg {
    Hold(Box<Held>),
    /// Write everything now and stop (shutdown).
    Flush,
}

pub struct Tarpit {
    tx: mpsc::SyncSender<Msg>,
    thread: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl Tarpit {
    /// `write` sends one answer (the server's `write_response`).
    pub fn start(write: impl Fn(Held) + Send + 'static) -> std::io::Result<Tarpit> {
        let (tx, rx) = mpsc::sync_channel(CAPACITY);
        let thread = std::thread::Builder::new().name("tenantd-tarpit".into()).spawn(move || run(&rx, &write))?;
        Ok(Tarpit { tx, thread: parking_lot::Mutex::new(Some(thread)) })
    }

    /// Holds an answer until `held.due`; gives it back when the queue is full.
    pub fn hold(&self, held: Box<Held>) -> Result<(), Box<Held>> {
        match self.tx.try_send(Msg::Hold(held)) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(Msg::Hold(h)) | mpsc::TrySendError::Disconnected(Msg::Hold(h))) => Err(h),
            Err(_) => Ok(()),
        }
    }

    /// Writes every held answer now and stops the thread.
    pub fn flush(&self) {
        let _ = self.tx.send(Msg::Flush);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

fn run(rx: &mpsc::Receiver<Msg>, write: &impl Fn(Held)) {
    // The delay is the same for every answer, so arrival order is due order.
    let mut queue: VecDeque<Held> = VecDeque::new();
    loop {
        let msg = match queue.front() {
            Some(h) => match rx.recv_timeout(h.due.saturating_duration_since(Instant::now())) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => Some(Msg::Flush),
            },
            None => Some(rx.recv().unwrap_or(Msg::Flush)),
        };
        match msg {
            Some(Msg::Hold(h)) => queue.push_back(*h),
            Some(Msg::Flush) => {
                queue.drain(..).for_each(write);
                while let Ok(Msg::Hold(h)) = rx.try_recv() {
                    write(*h);
                }
                return;
            }
            None => {}
        }
        let now = Instant::now();
        while queue.front().is_some_and(|h| h.due <= now) {
            if let Some(h) = queue.pop_front() {
                write(h);
            }
        }
    }
}

/// How long a throttled tenant's refusals are held.
pub fn delay(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}
