//! Arbitrary bytes as a segment file: indexing, verifying and decoding must never panic.
#![no_main]

use std::path::Path;

use lanner_formats::archive::SegmentReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = SegmentReader::from_bytes(Path::new("fuzz.lnr"), data.to_vec()) else { return };
    let _ = r.last_chain_hex();
    let _ = r.truncation();
    for c in r.chunks() {
        if let Ok(d) = r.decode(c) {
            touch_fields(d.chunk(), d.paths());
        }
    }
});

fn touch_fields(c: &lanner_formats::event::ArchivedChunk, paths: &lanner_formats::event::PathIndex) {
    for e in c.events.iter() {
        let _ = paths.get(e.path);
        let _ = paths.get(e.path2);
        if let Some(p) = c.process(e.process) {
            let _ = c.string(p.name.to_native());
            let _ = c.process(p.parent.to_native());
        }
    }
}
