//! A JSONL file of task rows, line by line, each row checked against a task's fields.
#![no_main]

use glassbox::tasks::rows::{jsonl_lines, parse_row};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for (number, line) in jsonl_lines(bytes) {
        assert!(number >= 1);
        if let Ok(row) = line.and_then(parse_row) {
            let _ = row.main_text();
        }
    }
});
