//! A retrieval index file (`.gbx`); what loads must write back to the same bytes.
#![no_main]

use glassbox::tasks::index::Index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(index) = Index::from_bytes(bytes) {
        let again = Index::from_bytes(&index.to_bytes()).expect("an index reads back what it writes");
        assert_eq!(again.to_bytes(), index.to_bytes());
    }
});
