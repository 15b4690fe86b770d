use std::io::Result as IoResult;
use std::io::{BufRead, Error as IoError, ErrorKind, Read, Write};

use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use std::mem;

pub struct SequentialReaderBuilder<R>
where
    R: Read + Send,
{
    inner: SequentialReaderBuilderInner<R>,
}

enum SequentialReaderBuilderInner<R>
where
    R: Read + Send,
{
    First(R),
    NotFirst(Receiver<R>),
}

pub struct SequentialReader<R>
where
    R: Read + Send,
{
    inner: SequentialReaderInner<R>,
    next: Sender<R>,
}

enum SequentialReaderInner<R>
where
    R: Read + Send,
{
    MyTurn(R),
    Waiting(Receiver<R>),
    Empty,
}

pub struct SequentialWriterBuilder<W>
where
    W: Write + Send,
{
    writer: Arc<Mutex<W>>,
    next_trigger: Option<Receiver<()>>,
}

pub struct SequentialWriter<W>
where
    W: Write + Send,
{
    trigger: Option<Receiver<()>>,
    writer: Arc<Mutex<W>>,
    on_finish: Sender<()>,
}

impl<R: Read + Send> SequentialReaderBuilder<R> {
    pub fn new(reader: R) -> SequentialReaderBuilder<R> {
        SequentialReaderBuilder {
            inner: SequentialReaderBuilderInner::First(reader),
        }
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    pub fn new(writer: W) -> SequentialWriterBuilder<W> {
        SequentialWriterBuilder {
            writer: Arc::new(Mutex::new(writer)),
            next_trigger: None,
        }
    }
}

impl<R: Read + Send> Iterator for SequentialReaderBuilder<R> {
    type Item = SequentialReader<R>;

    fn next(&mut self) -> Option<SequentialReader<R>> {
        Some(self.next_reader())
    }
}

impl<R: Read + Send> SequentialReaderBuilder<R> {
    /// tenantd patch: `next` without the `Option` it never leaves empty, so callers need no
    /// `unwrap`.
    pub fn next_reader(&mut self) -> SequentialReader<R> {
        let (tx, rx) = channel();

        let inner = mem::replace(&mut self.inner, SequentialReaderBuilderInner::NotFirst(rx));

        match inner {
            SequentialReaderBuilderInner::First(reader) => SequentialReader {
                inner: SequentialReaderInner::MyTurn(reader),
                next: tx,
            },

            SequentialReaderBuilderInner::NotFirst(previous) => SequentialReader {
                inner: SequentialReaderInner::Waiting(previous),
                next: tx,
            },
        }
    }
}

impl<W: Write + Send> Iterator for SequentialWriterBuilder<W> {
    type Item = SequentialWriter<W>;
    fn next(&mut self) -> Option<SequentialWriter<W>> {
        Some(self.next_writer())
    }
}

impl<W: Write + Send> SequentialWriterBuilder<W> {
    /// tenantd patch: `next` without the `Option` it never leaves empty.
    pub fn next_writer(&mut self) -> SequentialWriter<W> {
        let (tx, rx) = channel();
        let mut next_next_trigger = Some(rx);
        ::std::mem::swap(&mut next_next_trigger, &mut self.next_trigger);

        SequentialWriter {
            trigger: next_next_trigger,
            writer: self.writer.clone(),
            on_finish: tx,
        }
    }
}

impl<R: Read + Send> Read for SequentialReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let mut reader = match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => return reader.read(buf),
            // tenantd patch: the previous reader vanished without handing over (its thread
            // panicked): an I/O error for this request, not a panic of this thread.
            SequentialReaderInner::Waiting(ref mut recv) => recv.recv().map_err(|_| {
                IoError::new(ErrorKind::BrokenPipe, "previous reader vanished")
            })?,
            SequentialReaderInner::Empty => unreachable!(),
        };

        let result = reader.read(buf);
        self.inner = SequentialReaderInner::MyTurn(reader);
        result
    }
}

// tenantd patch: the request head is read a line at a time out of the buffered reader's
// buffer. The published code read it one byte at a time through `Read::bytes`, about a hundred
// instructions per byte, and without any bound on its length.
impl<R: BufRead + Send> SequentialReader<R> {
    /// Appends the next line, up to and including its `\r\n`, to `line`, and returns `Ok(true)`.
    /// A bare `\n` does not end a line. Returns `Ok(false)` without consuming more once `line`
    /// would exceed `limit` bytes, and an `UnexpectedEof` error when the stream ends first.
    pub fn read_crlf_line(&mut self, line: &mut Vec<u8>, limit: usize) -> IoResult<bool> {
        let reader = self.turn()?;
        loop {
            let available = match reader.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Err(IoError::new(ErrorKind::UnexpectedEof, "Unexpected EOF"));
            }
            let start = line.len();
            let (taken, done) = match crlf_end(line.last().copied(), available) {
                Some(end) => (end, true),
                None => (available.len(), false),
            };
            if start + taken > limit {
                return Ok(false);
            }
            line.extend_from_slice(&available[..taken]);
            reader.consume(taken);
            if done {
                return Ok(true);
            }
        }
    }

    /// The reader, once the previous request has handed it over.
    pub fn turn(&mut self) -> IoResult<&mut R> {
        if let SequentialReaderInner::Waiting(ref recv) = self.inner {
            let reader = recv
                .recv()
                .map_err(|_| IoError::new(ErrorKind::BrokenPipe, "previous reader vanished"))?;
            self.inner = SequentialReaderInner::MyTurn(reader);
        }
        match self.inner {
            SequentialReaderInner::MyTurn(ref mut reader) => Ok(reader),
            _ => Err(IoError::new(ErrorKind::BrokenPipe, "reader already handed on")),
        }
    }
}

/// The length of `bytes` up to and including the first `\n` that follows a `\r`; `last` is the
/// byte read just before `bytes`.
fn crlf_end(last: Option<u8>, bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = bytes[from..].iter().position(|&b| b == b'\n') {
        let at = from + at;
        let before = if at == 0 { last } else { Some(bytes[at - 1]) };
        if before == Some(b'\r') {
            return Some(at + 1);
        }
        from = at + 1;
    }
    None
}

impl<W: Write + Send> Write for SequentialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        // tenantd patch: an error here means the previous writer is gone without a word (its
        // thread panicked); it writes no more either way, so this one may go on.
        if let Some(v) = self.trigger.as_mut() {
            let _ = v.recv();
        }
        self.trigger = None;

        self.writer.lock().unwrap_or_else(PoisonError::into_inner).write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        // tenantd patch: an error here means the previous writer is gone without a word (its
        // thread panicked); it writes no more either way, so this one may go on.
        if let Some(v) = self.trigger.as_mut() {
            let _ = v.recv();
        }
        self.trigger = None;

        self.writer.lock().unwrap_or_else(PoisonError::into_inner).flush()
    }
}

impl<R> Drop for SequentialReader<R>
where
    R: Read + Send,
{
    fn drop(&mut self) {
        let inner = mem::replace(&mut self.inner, SequentialReaderInner::Empty);

        match inner {
            SequentialReaderInner::MyTurn(reader) => {
                self.next.send(reader).ok();
            }
            SequentialReaderInner::Waiting(recv) => {
                if let Ok(reader) = recv.recv() {
                    self.next.send(reader).ok();
                }
            }
            SequentialReaderInner::Empty => (),
        }
    }
}

impl<W> Drop for SequentialWriter<W>
where
    W: Write + Send,
{
    fn drop(&mut self) {
        self.on_finish.send(()).ok();
    }
}

