use std::io::Read;
use std::io::Result as IoResult;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. If the limit is not reached
/// when the destructor is called, the remaining bytes will be read and
/// thrown away.
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: usize,
    last_read_signal: Sender<IoResult<()>>,
    /// tenantd patch: set instead of draining more than `DRAIN_LIMIT` bytes (see `Drop`).
    abandon: Option<Arc<AtomicBool>>,
}

/// tenantd patch: the most an unread body is drained on drop so that its connection can carry
/// another request. A larger rest is left unread and the connection is closed instead
/// (`abandon`): draining it held the thread that dropped the request (a server worker) for as
/// long as the client kept sending.
pub const DRAIN_LIMIT: usize = 1 << 20;

impl<R> EqualReader<R>
where
    R: Read,
{
    pub fn new(reader: R, size: usize) -> (EqualReader<R>, Receiver<IoResult<()>>) {
        let (tx, rx) = channel();

        let r = EqualReader {
            reader,
            size,
            last_read_signal: tx,
            abandon: None,
        };

        (r, rx)
    }

    /// tenantd patch: `new`, and a rest over `DRAIN_LIMIT` left unread sets `abandon`.
    pub fn abandonable(reader: R, size: usize, abandon: Arc<AtomicBool>) -> EqualReader<R> {
        let (mut r, _) = EqualReader::new(reader, size);
        r.abandon = Some(abandon);
        r
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };

        match self.reader.read(buf) {
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

impl<R> Drop for EqualReader<R>
where
    R: Read,
{
    fn drop(&mut self) {
        // tenantd patch: drain through a fixed buffer. The published code allocated
        // `vec![0; remaining]`, so a request declaring a huge Content-Length that was answered
        // without reading its body aborted the whole process (allocation failure) or panicked
        // (capacity overflow).
        if self.size > DRAIN_LIMIT {
            if let Some(abandon) = &self.abandon {
                abandon.store(true, Ordering::SeqCst);
                return;
            }
        }
        let mut buf = [0u8; 8192];

        while self.size > 0 {
            let want = buf.len().min(self.size);
            match self.reader.read(&mut buf[..want]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // tenantd patch: the rest is still unread (a read timeout, a reset): it
                    // must not be taken for the next request.
                    if let Some(abandon) = &self.abandon {
                        abandon.store(true, Ordering::SeqCst);
                    }
                    self.last_read_signal.send(Err(e)).ok();
                    break;
                }
                Ok(0) => {
                    self.last_read_signal.send(Ok(())).ok();
                    break;
                }
                Ok(n) => {
                    self.size -= n;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EqualReader;
    use std::io::Read;

    #[test]
    fn test_limit() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let (mut equal_reader, _) = EqualReader::new(org_reader.by_ref(), 5);

            let mut string = String::new();
            equal_reader.read_to_string(&mut string).unwrap();
            assert_eq!(string, "hello");
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    #[test]
    fn test_not_enough() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let (mut equal_reader, _) = EqualReader::new(org_reader.by_ref(), 5);

            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
            assert_eq!(vec[0], b'h');
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }
}
