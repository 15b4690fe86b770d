//! tenantd patch: the accept loop, kept alive through running out of descriptors, and able to
//! stop accepting while the server goes on answering (a graceful stop).
//!
//! The published loop ended for good on the first `accept` error (out of descriptors, say), and
//! a `dup` refused for the same reason panicked it; either way the process lived on deaf.
//! Here descriptor exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM, or a refused `dup` or thread)
//! closes what was accepted, backs off (5 ms doubling to 100 ms) and accepts again; the network
//! errors accept(2) passes on from a dying connection are retried at once; only an error that
//! says the listener itself is gone (EBADF, EINVAL, ENOTSOCK, EFAULT) ends the loop. If the
//! loop ends in any way other than `stop`, or panics, `AcceptStats::failed` turns true and an
//! error is queued for `Server::recv`, so the embedding server can exit rather than go deaf.

use std::io::{Error as IoError, ErrorKind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::ClientConnection;
use crate::connection::{Connection, Listener};
use crate::util::refined_tcp_stream::Timeouts;
use crate::util::{MessagesQueue, RefinedTcpStream, TaskPool};
use crate::Message;

const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

/// What the accept loop has done, for health checks and metrics.
#[derive(Debug, Default)]
pub struct AcceptStats {
    accepted: AtomicU64,
    exhausted: AtomicU64,
    fresh: AtomicUsize,
    failed: AtomicBool,
    stop: AtomicBool,
    closed: Mutex<bool>,
    closed_cv: Condvar,
}

impl AcceptStats {
    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Times the loop backed off for want of descriptors (or threads), each time closing the
    /// connection it could not serve, if it had one.
    pub fn exhausted(&self) -> u64 {
        self.exhausted.load(Ordering::Relaxed)
    }

    /// Connections accepted that have not sent (the head of) a first request yet and are still
    /// open: a client that has just connected is about to send one, so a stop waits for it.
    pub fn fresh(&self) -> usize {
        self.fresh.load(Ordering::SeqCst)
    }

    /// True once the loop has ended other than through `Server::stop_accepting` or drop (a
    /// fatal listener error or a panic): nothing is accepted any more.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Whether the listening socket is closed.
    pub fn closed(&self) -> bool {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits until the listening socket is closed, at most `timeout`; true if it is.
    pub(crate) fn wait_closed(&self, timeout: Duration) -> bool {
        let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        let (closed, _) = self
            .closed_cv
            .wait_timeout_while(closed, timeout, |c| !*c)
            .unwrap_or_else(PoisonError::into_inner);
        *closed
    }

    fn set_closed(&self) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.closed_cv.notify_all();
    }
}

/// Marks the end of the accept thread however it ends; see the module docs.
struct EndGuard {
    stats: Arc<AcceptStats>,
    messages: Arc<MessagesQueue<Message>>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if thread::panicking() || !self.stats.stopping() {
            self.stats.failed.store(true, Ordering::SeqCst);
            let e = IoError::new(ErrorKind::Other, "the accept loop ended");
            self.messages.push(e.into());
        }
        self.stats.set_closed();
    }
}

enum AcceptError {
    /// Out of descriptors, memory or threads: close, back off, try again.
    Exhausted,
    /// A connection that died before it was accepted: try again at once.
    Transient,
    /// The listener itself is unusable.
    Fatal,
}

fn classify(e: &IoError) -> AcceptError {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EAGAIN) => {
            AcceptError::Exhausted
        }
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT) => AcceptError::Fatal,
        // accept(2): "Linux accept() passes already-pending network errors on the new socket
        // as an error code from accept()" (ECONNABORTED, EPROTO, ENETDOWN, EHOSTUNREACH, …);
        // EINTR and EPERM (a firewall) belong with them.
        Some(_) => AcceptError::Transient,
        None if e.kind() == ErrorKind::OutOfMemory => AcceptError::Exhausted,
        None => AcceptError::Transient,
    }
}

pub(crate) struct Loop {
    pub listener: Listener,
    pub timeouts: Option<Timeouts>,
    pub stats: Arc<AcceptStats>,
    pub messages: Arc<MessagesQueue<Message>>,
}

impl Loop {
    pub(crate) fn run(self) {
        let _guard = EndGuard { stats: self.stats.clone(), messages: self.messages.clone() };
        let tasks = TaskPool::new();
        let mut backoff = BACKOFF_FIRST;
        while !self.stats.stopping() {
            let result = match self.listener.accept() {
                Ok((sock, _)) => self.serve(&tasks, sock),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => backoff = BACKOFF_FIRST,
                Err(e) => match classify(&e) {
                    AcceptError::Exhausted => {
                        self.stats.exhausted.fetch_add(1, Ordering::Relaxed);
                        thread::sleep(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    AcceptError::Transient => {}
                    AcceptError::Fatal => {
                        log::error!("Error accepting new client: {}", e);
                        return;
                    }
                },
            }
        }
        self.drain(&tasks);
    }

    /// Hands a new connection to a thread of the pool; the connection is closed (dropped) if
    /// its second handle or its thread cannot be had.
    fn serve(&self, tasks: &TaskPool, sock: Connection) -> std::io::Result<()> {
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = self.timeouts {
            sock.set_read_timeout(Some(t.socket()))?;
        }
        let (read, write) = RefinedTcpStream::new(sock, self.timeouts)?;
        let client = ClientConnection::new(write, read);
        let messages = self.messages.clone();
        let mut client = Some(client);
        let mut fresh = Some(Fresh::new(&self.stats));
        tasks.spawn(Box::new(move || {
            if let Some(client) = client.take() {
                for rq in client {
                    fresh.take();
                    messages.push(rq.into());
                }
            }
            fresh.take();
        }))
    }

    /// After `stop_accepting`: accepts what the kernel has queued, and the handshakes still
    /// under way, so their clients are answered rather than reset when the socket closes.
    ///
    /// First a socket filter drops new SYNs (`SYN_ONLY_DROPPED`): those clients get no answer,
    /// retry after a second and then find the port closed (refused, nothing sent). Every other
    /// packet passes, so a handshake the kernel already answered completes into the queue.
    /// Closing without the filter reset whatever completed between the last `accept` and the
    /// close, however quick the drain, and a drop-all filter reset the handshakes under way.
    /// The queue is accepted until it has stayed empty for `DRAIN_QUIET`.
    fn drain(&self, tasks: &TaskPool) {
        if let Listener::Tcp(l) = &self.listener {
            if let Err(e) = socket2::SockRef::from(l).attach_filter(&SYN_ONLY_DROPPED) {
                log::warn!("cannot filter the listener while draining: {}", e);
            }
        }
        if self.listener.set_nonblocking(true).is_err() {
            return;
        }
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < DRAIN_QUIET {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    quiet_since = Instant::now();
                    if let Err(e) = sock.set_nonblocking(false) {
                        log::error!("cannot serve a drained connection: {}", e);
                        continue;
                    }
                    let _ = self.serve(tasks, sock);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(1)),
                Err(e) if matches!(classify(&e), AcceptError::Transient) => {}
                Err(_) => return,
            }
        }
    }
}

/// How long the drain waits for handshakes under way: a round trip, on the loopback or a LAN
/// behind the front proxy, is far shorter.
const DRAIN_QUIET: Duration = Duration::from_millis(100);

/// A classic BPF program for the listener while it drains: drop a segment whose TCP flags,
/// of SYN and ACK, are SYN alone (a new connection); keep everything else. For a TCP socket
/// the filter sees the segment from its TCP header, whose flags are byte 13.
const SYN_ONLY_DROPPED: [socket2::SockFilter; 5] = [
    socket2::SockFilter::new(0x30, 0, 0, 13),         // ldb [13]
    socket2::SockFilter::new(0x54, 0, 0, 0x12),       // and #(SYN | ACK)
    socket2::SockFilter::new(0x15, 0, 1, 0x02),       // jeq #SYN, next, skip one
    socket2::SockFilter::new(0x06, 0, 0, 0),          // ret #0: drop
    socket2::SockFilter::new(0x06, 0, 0, u32::MAX),   // ret #-1: keep all
];

/// Counts a connection in `AcceptStats::fresh` until its first request is read or it ends.
struct Fresh(Arc<AcceptStats>);

impl Fresh {
    fn new(stats: &Arc<AcceptStats>) -> Fresh {
        stats.fresh.fetch_add(1, Ordering::SeqCst);
        Fresh(stats.clone())
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        self.0.fresh.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_backs_off_and_a_dead_listener_ends_the_loop() {
        let errno = |n| IoError::from_raw_os_error(n);
        for n in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(matches!(classify(&errno(n)), AcceptError::Exhausted), "{n}");
        }
        for n in [libc::ECONNABORTED, libc::EPROTO, libc::EINTR, libc::EHOSTUNREACH] {
            assert!(matches!(classify(&errno(n)), AcceptError::Transient), "{n}");
        }
        for n in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            assert!(matches!(classify(&errno(n)), AcceptError::Fatal), "{n}");
        }
    }

    #[test]
    fn an_accept_thread_that_panics_is_reported_failed_and_wakes_recv() {
        let stats = Arc::new(AcceptStats::default());
        let messages = MessagesQueue::with_capacity(1);
        let guard = EndGuard { stats: stats.clone(), messages: messages.clone() };
        let _ = thread::spawn(move || {
            let _guard = guard;
            panic!("on purpose");
        })
        .join();
        assert!(stats.failed() && stats.closed());
        assert!(matches!(messages.try_pop(), Some(Message::Error(_))));

        // A stop on request is no failure.
        let stats = Arc::new(AcceptStats::default());
        stats.request_stop();
        drop(EndGuard { stats: stats.clone(), messages: messages.clone() });
        assert!(!stats.failed() && stats.closed());
        assert!(messages.try_pop().is_none());
    }
}
