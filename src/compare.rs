//! Two sequences of messages compared as a person reads a diff: aligned on the messages
//! that are equal (a shortest edit script), then each run of removed messages paired with
//! the run of added ones in its place as *changed*, what is left over *missing* or
//! *extra*. Messages are equal byte for byte or as the same JSON document less the
//! `--ignore` paths; a changed JSON message says which fields changed. No I/O here.

use serde_json::Value;
use std::fmt::Write as _;
use wstap_wire::Opcode;

/// A message as compared: its number in its session, opcode and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    pub seq: u64,
    pub opcode: Opcode,
    pub data: Vec<u8>,
}

/// One line of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Equal in both.
    Same { a: u64, b: u64 },
    /// In the same place, not equal; for JSON, the fields that differ.
    Changed { a: u64, b: u64, fields: Vec<String> },
    /// Only in the first (the recording).
    Missing { a: u64 },
    /// Only in the second.
    Extra { b: u64 },
}

#[cfg(test)]
impl Entry {
    pub fn is_same(&self) -> bool {
        matches!(self, Entry::Same { .. })
    }
}

/// Beyond this many differences the alignment gives up and pairs messages by place.
const MAX_EDITS: usize = 1024;

/// Compares `a` (the recording) with `b`, leaving out the JSON paths in `ignore`
/// (`id`, `params.0.ts`).
pub fn compare(a: &[Compared], b: &[Compared], ignore: &[String]) -> Vec<Entry> {
    let ignore: Vec<Vec<&str>> = ignore.iter().map(|p| p.split('.').collect()).collect();
    let keys = |messages: &[Compared]| -> Vec<Key> {
        messages.iter().map(|m| Key::of(m, &ignore)).collect()
    };
    let (ka, kb) = (keys(a), keys(b));
    let script = edit_script(&ka, &kb).unwrap_or_else(|| by_place(ka.len(), kb.len(), &ka, &kb));
    let mut entries = Vec::with_capacity(script.len());
    let mut i = 0;
    while i < script.len() {
        match script[i] {
            Edit::Keep(x, y) => {
                entries.push(Entry::Same {
                    a: a[x].seq,
                    b: b[y].seq,
                });
                i += 1;
            }
            Edit::Remove(_) | Edit::Add(_) => {
                // A run of removals and additions: pair them in order as changes.
                let end = script[i..]
                    .iter()
                    .position(|e| matches!(e, Edit::Keep(..)))
                    .map_or(script.len(), |n| i + n);
                let removed: Vec<usize> = script[i..end]
                    .iter()
                    .filter_map(|e| match e {
                        Edit::Remove(x) => Some(*x),
                        _ => None,
                    })
                    .collect();
                let added: Vec<usize> = script[i..end]
                    .iter()
                    .filter_map(|e| match e {
                        Edit::Add(y) => Some(*y),
                        _ => None,
                    })
                    .collect();
                for n in 0..removed.len().max(added.len()) {
                    entries.push(match (removed.get(n), added.get(n)) {
                        (Some(&x), Some(&y)) => Entry::Changed {
                            a: a[x].seq,
                            b: b[y].seq,
                            fields: fields_changed(&ka[x], &kb[y]),
                        },
                        (Some(&x), None) => Entry::Missing { a: a[x].seq },
                        (None, Some(&y)) => Entry::Extra { b: b[y].seq },
                        (None, None) => continue,
                    });
                }
                i = end;
            }
        }
    }
    entries
}

/// What two messages are compared by.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    opcode: Opcode,
    /// The JSON document less the ignored paths, when the data is JSON.
    json: Option<Value>,
    bytes: Vec<u8>,
}

impl Key {
    fn of(message: &Compared, ignore: &[Vec<&str>]) -> Key {
        let json = serde_json::from_slice::<Value>(&message.data)
            .ok()
            .filter(|v| v.is_object() || v.is_array())
            .map(|mut value| {
                for path in ignore {
                    remove(&mut value, path);
                }
                value
            });
        Key {
            opcode: message.opcode,
            json,
            bytes: message.data.clone(),
        }
    }

    fn equal(&self, other: &Key) -> bool {
        self.opcode == other.opcode
            && match (&self.json, &other.json) {
                (Some(a), Some(b)) => a == b,
                _ => self.bytes == other.bytes,
            }
    }
}

/// Removes what `path` names from `value` (an object's key; an array's element becomes
/// `null`, so later indexes keep their meaning).
pub fn remove(value: &mut Value, path: &[impl AsRef<str>]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = value;
    for key in parents {
        let next = match at {
            Value::Object(map) => map.get_mut(key.as_ref()),
            Value::Array(items) => key
                .as_ref()
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(next) => at = next,
            None => return,
        }
    }
    match at {
        Value::Object(map) => {
            map.remove(last.as_ref());
        }
        Value::Array(items) => {
            if let Some(item) = last
                .as_ref()
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get_mut(i))
            {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

/// The fields in which two JSON messages differ (`.a.b`: changed, added or removed); for
/// other messages, what differs in a word.
fn fields_changed(a: &Key, b: &Key) -> Vec<String> {
    match (&a.json, &b.json) {
        (Some(x), Some(y)) => {
            let mut out = Vec::new();
            json_differences(x, y, &mut String::new(), &mut out);
            out
        }
        _ if a.opcode != b.opcode => vec![format!("opcode {} -> {}", a.opcode, b.opcode)],
        _ => vec![format!("{} -> {} bytes", a.bytes.len(), b.bytes.len())],
    }
}

/// At most this many fields are named per changed message.
const MAX_FIELDS: usize = 8;

fn json_differences(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>) {
    if out.len() >= MAX_FIELDS {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, va) in x {
                let len = path.len();
                let _ = write!(path, ".{key}");
                match y.get(key) {
                    Some(vb) => json_differences(va, vb, path, out),
                    None => out.push(format!("{path} removed")),
                }
                path.truncate(len);
            }
            for key in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{path}.{key} added"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                let _ = write!(path, ".{i}");
                json_differences(va, vb, path, out);
                path.truncate(len);
            }
            if x.len() != y.len() {
                out.push(format!("{} length {} -> {}", shown(path), x.len(), y.len()));
            }
        }
        _ if a != b => out.push(format!("{}: {} -> {}", shown(path), short(a), short(b))),
        _ => {}
    }
    out.truncate(MAX_FIELDS);
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "."
    } else {
        path
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(39).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// One step of an edit script: keep `a[x]` as `b[y]`, remove `a[x]`, add `b[y]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Keep(usize, usize),
    Remove(usize),
    Add(usize),
}

/// A shortest edit script from `a` to `b` (Myers' greedy algorithm, keeping each round's
/// furthest reaches to walk back), or `None` past [`MAX_EDITS`] differences.
fn edit_script(a: &[Key], b: &[Key]) -> Option<Vec<Edit>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max = (n + m).min(MAX_EDITS as isize);
    let offset = max + 1;
    let mut v = vec![0isize; 2 * offset as usize + 1];
    let mut trace: Vec<Vec<isize>> = Vec::new();
    for d in 0..=max {
        trace.push(v.clone());
        let mut k = -d;
        while k <= d {
            let down =
                k == -d || (k != d && v[(k - 1 + offset) as usize] < v[(k + 1 + offset) as usize]);
            let mut x = if down {
                v[(k + 1 + offset) as usize]
            } else {
                v[(k - 1 + offset) as usize] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize].equal(&b[y as usize]) {
                x += 1;
                y += 1;
            }
            v[(k + offset) as usize] = x;
            if x >= n && y >= m {
                return Some(walk_back(&trace, offset, n, m, d));
            }
            k += 2;
        }
    }
    None
}

/// The script, from the furthest reaches of every round.
fn walk_back(trace: &[Vec<isize>], offset: isize, n: isize, m: isize, depth: isize) -> Vec<Edit> {
    let (mut x, mut y) = (n, m);
    let mut edits = Vec::new();
    for d in (0..=depth).rev() {
        let v = &trace[d as usize];
        let k = x - y;
        let down =
            k == -d || (k != d && v[(k - 1 + offset) as usize] < v[(k + 1 + offset) as usize]);
        let prev_k = if down { k + 1 } else { k - 1 };
        let prev_x = v[(prev_k + offset) as usize];
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            x -= 1;
            y -= 1;
            edits.push(Edit::Keep(x as usize, y as usize));
        }
        if d > 0 {
            if down {
                y -= 1;
                edits.push(Edit::Add(y as usize));
            } else {
                x -= 1;
                edits.push(Edit::Remove(x as usize));
            }
        }
    }
    edits.reverse();
    edits
}

/// Too different to align: messages paired by place.
fn by_place(n: usize, m: usize, a: &[Key], b: &[Key]) -> Vec<Edit> {
    let mut edits = Vec::with_capacity(n.max(m));
    for i in 0..n.max(m) {
        match (i < n, i < m) {
            (true, true) if a[i].equal(&b[i]) => edits.push(Edit::Keep(i, i)),
            (true, true) => {
                edits.push(Edit::Remove(i));
                edits.push(Edit::Add(i));
            }
            (true, false) => edits.push(Edit::Remove(i)),
            (false, true) => edits.push(Edit::Add(i)),
            (false, false) => {}
        }
    }
    edits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(texts: &[&str]) -> Vec<Compared> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Compared {
                seq: i as u64 * 2,
                opcode: Opcode::Text,
                data: t.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn equal_sequences_are_all_the_same_even_respaced_json() {
        let a = messages(&[r#"{"a":1,"b":[1,2]}"#, "plain"]);
        let b = messages(&[r#"{ "b": [1, 2], "a": 1 }"#, "plain"]);
        assert!(compare(&a, &b, &[]).iter().all(Entry::is_same));
    }

    #[test]
    fn an_extra_message_does_not_shift_the_rest_into_changes() {
        let a = messages(&["one", "two", "three"]);
        let b = messages(&["one", "inserted", "two", "three"]);
        let entries = compare(&a, &b, &[]);
        assert_eq!(
            entries,
            [
                Entry::Same { a: 0, b: 0 },
                Entry::Extra { b: 2 },
                Entry::Same { a: 2, b: 4 },
                Entry::Same { a: 4, b: 6 },
            ]
        );
        let entries = compare(&b, &a, &[]);
        assert_eq!(entries[1], Entry::Missing { a: 2 });
    }

    #[test]
    fn a_changed_json_message_names_its_fields_and_ignored_ones_are_not_changes() {
        let a = messages(&[
            r#"{"id":1,"user":{"name":"ann","age":3},"tags":[1]}"#,
            "end",
        ]);
        let b = messages(&[
            r#"{"id":2,"user":{"name":"bob"},"tags":[1,2],"new":true}"#,
            "end",
        ]);
        let entries = compare(&a, &b, &[]);
        let Entry::Changed { fields, .. } = &entries[0] else {
            panic!("{entries:?}");
        };
        assert_eq!(
            fields,
            // Keys in order (serde_json's maps are sorted), additions last.
            &[
                ".id: 1 -> 2",
                ".tags length 1 -> 2",
                ".user.age removed",
                ".user.name: \"ann\" -> \"bob\"",
                ".new added"
            ]
        );
        assert_eq!(entries[1], Entry::Same { a: 2, b: 2 });
        let a = messages(&[r#"{"id":1,"ok":true}"#]);
        let b = messages(&[r#"{"id":9,"ok":true}"#]);
        assert!(compare(&a, &b, &["id".to_owned()])[0].is_same());
    }

    #[test]
    fn runs_of_differences_pair_as_changes_and_leave_the_rest_missing() {
        let a = messages(&["x", "a1", "a2", "a3", "y"]);
        let b = messages(&["x", "b1", "y"]);
        let entries = compare(&a, &b, &[]);
        assert!(
            matches!(entries[1], Entry::Changed { a: 2, b: 2, .. }),
            "{entries:?}"
        );
        assert_eq!(entries[2], Entry::Missing { a: 4 });
        assert_eq!(entries[3], Entry::Missing { a: 6 });
        assert_eq!(entries[4], Entry::Same { a: 8, b: 4 });
    }

    #[test]
    fn empty_and_wholly_different_sequences() {
        assert!(compare(&[], &[], &[]).is_empty());
        let a = messages(&["p", "q"]);
        assert_eq!(compare(&a, &[], &[]).len(), 2);
        let b = messages(&["r"]);
        let entries = compare(&a, &b, &[]);
        assert!(matches!(entries[0], Entry::Changed { .. }));
        assert_eq!(entries[1], Entry::Missing { a: 2 });
    }

    #[test]
    fn ignored_paths_reach_into_arrays_and_leave_other_documents_alone() {
        let mut value: Value = serde_json::json!({"params": [{"ts": 1, "x": 2}], "id": 3});
        remove(&mut value, &["params", "0", "ts"]);
        remove(&mut value, &["missing", "deeper"]);
        assert_eq!(value, serde_json::json!({"params": [{"x": 2}], "id": 3}));
        let mut array: Value = serde_json::json!([1, 2, 3]);
        remove(&mut array, &["1"]);
        assert_eq!(array, serde_json::json!([1, null, 3]));
    }

    #[test]
    fn long_different_sequences_fall_back_to_pairing_by_place() {
        let a: Vec<Compared> = (0..5000)
            .map(|i| Compared {
                seq: i,
                opcode: Opcode::Binary,
                data: i.to_be_bytes().to_vec(),
            })
            .collect();
        let b: Vec<Compared> = (0..5000)
            .map(|i| Compared {
                seq: i,
                opcode: Opcode::Binary,
                data: (i + 1_000_000).to_be_bytes().to_vec(),
            })
            .collect();
        let entries = compare(&a, &b, &[]);
        assert_eq!(entries.len(), 5000);
        assert!(entries.iter().all(|e| matches!(e, Entry::Changed { .. })));
    }
}
