//! Arbitrary bytes as a compressed chunk payload (behind the hash check, so the fuzzer reaches
//! decompression, rkyv validation and the reference checks): never a panic, never UB.
#![no_main]

use lanner_formats::archive::decode_payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // The first four bytes choose the declared decompressed size (bounded to keep runs fast).
    let raw_len = u32::from_le_bytes(data[..4].try_into().unwrap()) % (1 << 20);
    if let Ok(d) = decode_payload(&data[4..], raw_len) {
        let c = d.chunk();
        for e in c.events.iter() {
            let _ = d.paths().get(e.path);
            let _ = d.paths().get(e.path2);
            if let Some(p) = c.process(e.process) {
                let _ = c.string(p.args.to_native());
                let _ = c.process(p.parent.to_native());
            }
        }
    }
});
