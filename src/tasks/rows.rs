//! Task rows as JSONL: one JSON object per line, read line by line so that one bad line (not
//! UTF-8, not JSON, missing its id) is one reported row and the rest of the file still runs.

use serde_json::Value;

use super::pipeline::Input;
use super::templates::Task;

/// The non-blank lines of a JSONL file, numbered from 1, each decoded on its own: an invalid
/// UTF-8 byte spoils its row, not the file.
pub fn jsonl_lines(bytes: &[u8]) -> Vec<(usize, Result<&str, String>)> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (i + 1, std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}")))
        })
        .filter(|(_, line)| !matches!(line, Ok(l) if l.trim().is_empty()))
        .collect()
}

/// A row's id: a string, or a number read as its text.
pub fn row_id(id: &Value) -> Option<String> {
    match id {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSONL row as a task input: every string field but `id`, `label`, `domain` and
/// `explanation` is an input field.
pub fn parse_row(line: &str) -> Result<Input, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let id = object.get("id").and_then(row_id).ok_or("no \"id\" (a string or a number)")?;
    let fields = object
        .iter()
        .filter(|(k, _)| !["id", "label", "domain", "explanation"].contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    Ok(Input { id, fields, domain: object.get("domain").and_then(Value::as_str).map(str::to_string) })
}

/// A JSONL row as an input of `task`, which needs every field the task names.
pub fn parse_task_row(line: &str, task: &Task) -> Result<Input, String> {
    let input = parse_row(line)?;
    if let Some(missing) = task.fields.iter().find(|f| !input.fields.contains_key(f.as_str())) {
        return Err(format!("id {:?}: task {:?} needs the field {missing:?}", input.id, task.name));
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_is_decoded_and_numbered_on_its_own() {
        let lines = jsonl_lines(b"{\"id\": 1}\r\n\n  \n\xff{}\n{\"id\": \"b\"}");
        let numbers: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 4, 5]);
        assert_eq!(lines[0].1, Ok("{\"id\": 1}"));
        assert!(lines[1].1.as_ref().is_err_and(|e| e.starts_with("not UTF-8")));
        assert_eq!(parse_row(lines[2].1.as_ref().unwrap()).unwrap().id, "b");
        assert_eq!(parse_row("{\"id\": 1.5, \"text\": \"t\", \"n\": 2}").unwrap().fields.len(), 1);
        assert!(parse_row("[1]").is_err() && parse_row("{\"id\": null}").is_err());
    }
}
