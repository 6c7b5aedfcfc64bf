//! What reaches the terminal: text from a model file (names, vocabularies, templates) and text a
//! model generates may hold control characters, which a terminal would obey. They are written as
//! `\uXXXX`, which is also the JSON escape for the same character, so JSON output keeps its
//! meaning; newlines and tabs pass through.

use std::io::{self, Write};

/// UTF-8's first byte of U+0080..U+00BF: with a second byte of 0x80..=0x9F it is a C1 control.
const C1_LEAD: u8 = 0xc2;

/// Appends `bytes` to `out` with every control character except newline and tab escaped. A C1
/// lead byte at the end is held in `held_lead` until the next call shows what follows it.
fn escape_into(out: &mut Vec<u8>, bytes: &[u8], held_lead: &mut bool) {
    for &b in bytes {
        if std::mem::take(held_lead) {
            if (0x80..=0x9f).contains(&b) {
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                continue;
            }
            out.push(C1_LEAD);
        }
        match b {
            b'\n' | b'\t' => out.push(b),
            0x00..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            C1_LEAD => *held_lead = true,
            _ => out.push(b),
        }
    }
}

/// `text` with its control characters escaped, for messages written outside [`Escaped`].
pub fn escape_controls(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut held_lead = false;
    escape_into(&mut out, text.as_bytes(), &mut held_lead);
    if held_lead {
        out.push(C1_LEAD);
    }
    String::from_utf8(out).expect("escaping keeps UTF-8 valid: it only replaces whole characters")
}

/// A writer that escapes control characters on their way to `inner`.
pub struct Escaped<W: Write> {
    inner: W,
    held_lead: bool,
}

impl<W: Write> Escaped<W> {
    pub fn new(inner: W) -> Self {
        Escaped { inner, held_lead: false }
    }
}

impl<W: Write> Write for Escaped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len());
        escape_into(&mut out, buf, &mut self.held_lead);
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Drop for Escaped<W> {
    fn drop(&mut self) {
        if self.held_lead {
            // Best effort: a write error at drop has no one to report to.
            let _ = self.inner.write_all(&[C1_LEAD]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_other_text_is_kept() {
        assert_eq!(
            escape_controls("a\u{1b}[2Jb\r\n\tc\u{7f}\u{85}é\u{a0}日"),
            "a\\u001b[2Jb\\u000d\n\tc\\u007f\\u0085é\u{a0}日"
        );
    }

    #[test]
    fn a_c1_control_split_across_writes_is_still_escaped() {
        let mut sink = Vec::new();
        {
            let mut w = Escaped::new(&mut sink);
            w.write_all(b"x\xc2").unwrap();
            w.write_all(b"\x9by\xc2").unwrap();
            w.write_all(b"\xa9").unwrap();
        }
        assert_eq!(String::from_utf8(sink).unwrap(), "x\\u009by©");
    }

    #[test]
    fn escaped_json_reads_back_as_the_same_text() {
        let name = "evil\u{1b}]0;title\u{7}\u{9b}31m";
        let mut sink = Vec::new();
        Escaped::new(&mut sink).write_all(serde_json::to_string(&name).unwrap().as_bytes()).unwrap();
        assert!(sink.iter().all(|&b| b >= 0x20 && b != 0x7f));
        assert_eq!(serde_json::from_slice::<String>(&sink).unwrap(), name);
    }
}
