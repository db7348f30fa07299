//! Any bytes as an Annuaire Santé extraction file, then as a search query:
//! the line reader, the header matcher, the row grouper and the query parser
//! must return, never panic, and keep their bounds (entry size, query words).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mss_directory::line::{Header, decode, fields, read_line};
use mss_directory::query::{MAX_WORDS, Query};
use mss_directory::record::{Columns, Grouper, MAX_ROWS_PER_ENTRY};

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let mut buf = Vec::new();
    if let Ok((n, _)) = read_line(&mut input, &mut buf)
        && n > 0
    {
        let header = Header::parse(&decode(&buf).0);
        let mut grouper = Grouper::new(Columns::new(&header), 0);
        let mut out = Vec::new();
        while let Ok((n, too_long)) = read_line(&mut input, &mut buf) {
            if n == 0 {
                break;
            }
            if too_long {
                continue;
            }
            let (line, _) = decode(&buf);
            let _ = grouper.push(&line, &fields(&line), &mut out);
        }
        out.extend(grouper.finish());
        for e in &out {
            assert!(e.lines.split('\n').count() <= MAX_ROWS_PER_ENTRY);
        }
    }
    let text = String::from_utf8_lossy(data);
    let q = Query::parse(&text);
    assert!(q.words.len() <= MAX_WORDS);
});
