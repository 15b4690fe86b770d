//! Unit tests of `replica::log` (kept beside it, in their own file).

use super::*;

fn record(position: u64, kind: Kind) -> Record {
    Record {
        kind,
        position,
        time_ms: 1000 + position as i64,
        page_size: 512,
        db_pages: 3,
        pages: vec![(1, vec![position as u8; 512]), (3, vec![7; 512]), (2, vec![9; 512])],
        tail: Tail { position, time_ms: 1000 + position as i64, salt: (5, 6), frame_end: position as u32 * 3 },
    }
}

#[test]
fn appends_reads_back_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new(dir.path().join("t"));
    let mut a = Appender::open(&log).unwrap();
    let mut l = a.lock().unwrap();
    assert_eq!(l.tail().unwrap(), None);
    for p in 1..=3 {
        l.append(&record(p, Kind::Changes)).unwrap();
    }
    assert_eq!(l.tail().unwrap().unwrap().position, 3);
    assert_eq!(recorded_position(&log), 3);
    let mut seen = Vec::new();
    log.read_after(1, None, |r| {
        seen.push((r.position, r.pages.len(), r.pages[0].1[0]));
        Ok(true)
    })
    .unwrap();
    assert_eq!(seen, vec![(2, 3, 2), (3, 3, 3)]);
    // A crash in the middle of the fourth append.
    let bytes = record(4, Kind::Changes).encode();
    let seg = &log.segments().unwrap()[0].1;
    let mut f = OpenOptions::new().append(true).open(seg).unwrap();
    f.write_all(&bytes[..bytes.len() / 2]).unwrap();
    // As another process would find it: the lock file's length does not match.
    drop(l);
    let mut b = Appender::open(&log).unwrap();
    let mut l = b.lock().unwrap();
    assert_eq!(l.tail().unwrap().unwrap().position, 3);
    l.append(&record(4, Kind::Changes)).unwrap();
    assert_eq!(l.tail().unwrap().unwrap().position, 4);
    let mut n = 0;
    log.read_after(0, None, |_| {
        n += 1;
        Ok(true)
    })
    .unwrap();
    assert_eq!(n, 4);
}

#[test]
fn a_cursor_resumes_where_the_last_read_stopped_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new(dir.path().join("t"));
    let mut a = Appender::open(&log).unwrap();
    let mut l = a.lock().unwrap();
    for p in 1..=3 {
        l.append(&record(p, Kind::Changes)).unwrap();
    }
    let positions = |after, from| {
        let mut seen = Vec::new();
        let c = log
            .read_after(after, from, |r| {
                seen.push(r.position);
                Ok(seen.len() < 2)
            })
            .unwrap();
        (seen, c)
    };
    let (seen, c) = positions(0, None);
    assert_eq!((seen, c.map(|c| c.position)), (vec![1, 2], Some(2)));
    l.append(&record(4, Kind::Image)).unwrap();
    l.append(&record(5, Kind::Changes)).unwrap();
    // Resumed from the cursor: the rest of the first segment, then the next one.
    let (seen, c2) = positions(2, c);
    assert_eq!((seen, c2.map(|c| c.position)), (vec![3, 4], Some(4)));
    let (seen, _) = positions(4, c2);
    assert_eq!(seen, vec![5]);
    // A cursor for another position is ignored: the read starts from the segments.
    assert_eq!(positions(1, c2).0, vec![2, 3]);
    // Nothing new: no cursor (the caller keeps its own).
    assert_eq!(log.read_after(5, None, |_| Ok(true)).unwrap(), None);
}

#[test]
fn an_image_starts_a_segment_and_old_segments_prune() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new(dir.path().join("t"));
    let mut a = Appender::open(&log).unwrap();
    let mut l = a.lock().unwrap();
    l.append(&record(1, Kind::Image)).unwrap();
    l.append(&record(2, Kind::Changes)).unwrap();
    l.append(&record(3, Kind::Image)).unwrap();
    assert_eq!(log.segments().unwrap().len(), 2);
    assert!(log.read_after(0, None, |_| Ok(true)).is_ok());
    assert_eq!(log.prune(1, i64::MAX).unwrap(), 0, "position 2 is still needed");
    assert_eq!(log.prune(2, i64::MAX).unwrap(), 1);
    assert!(log.read_after(0, None, |_| Ok(true)).is_err(), "position 1 is gone");
    assert!(log.read_after(2, None, |_| Ok(true)).is_ok());
}
