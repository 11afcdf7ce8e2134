//! Turning serde-saphyr errors into [`Problem`]s that name the field path.
//!
//! serde-saphyr reports a line and column for syntax, type and unknown-field errors but no field
//! path, so we walk the YAML event stream once (with the parser serde-saphyr itself uses) and record
//! the path of every node by position: `hosts[1].ssh.port`.

use std::borrow::Cow;

use serde_saphyr::granit_parser::{Event, Parser};
use serde_saphyr::{DefaultMessageFormatter, Error as YamlError, MessageFormatter};

use super::Problem;

/// Position (1-based line, 1-based column) -> field path of the node that starts there.
pub(crate) struct PathIndex {
    entries: Vec<(u64, u64, String)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl PathIndex {
    pub(crate) fn build(src: &str) -> PathIndex {
        let mut entries = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        for ev in Parser::new_from_str(src) {
            let Ok((ev, span)) = ev else { break };
            let is_node = matches!(
                ev,
                Event::Scalar(..)
                    | Event::SequenceStart(..)
                    | Event::MappingStart(..)
                    | Event::Alias(_)
            );
            if is_node {
                let path = match stack.last_mut() {
                    None => String::new(),
                    Some(Frame::Seq { path, next }) => {
                        let p = format!("{path}[{next}]");
                        *next += 1;
                        p
                    }
                    Some(Frame::Map { path, key }) => match key.take() {
                        Some(k) => join(path, &k),
                        None => {
                            // A key node: it names the field it introduces.
                            let k = match &ev {
                                Event::Scalar(v, ..) => v.to_string(),
                                _ => "?".to_string(),
                            };
                            let p = join(path, &k);
                            *key = Some(k);
                            // Complex keys (mappings/sequences as keys) are not used by the
                            // inventory; treat their content as belonging to the key.
                            if !matches!(ev, Event::Scalar(..) | Event::Alias(_)) {
                                key.take();
                            }
                            p
                        }
                    },
                };
                entries.push((
                    span.start.line() as u64,
                    span.start.col() as u64 + 1,
                    path.clone(),
                ));
                match ev {
                    Event::SequenceStart(..) => stack.push(Frame::Seq { path, next: 0 }),
                    Event::MappingStart(..) => stack.push(Frame::Map { path, key: None }),
                    _ => {}
                }
            } else if matches!(ev, Event::SequenceEnd | Event::MappingEnd) {
                stack.pop();
            }
        }
        PathIndex { entries }
    }

    /// The path of the node at `(line, column)`, or of the closest node before it. A mapping and
    /// its first key start at the same position: `deepest` picks the key (for errors about a key,
    /// like an unknown field), otherwise the mapping (for errors about a value's shape).
    pub(crate) fn path_at(&self, line: u64, column: u64, deepest: bool) -> Option<&str> {
        let mut exact = self.entries.iter().filter(|e| e.0 == line && e.1 == column);
        let hit = if deepest {
            exact.next_back()
        } else {
            exact.next()
        };
        if let Some(e) = hit {
            return Some(&e.2);
        }
        self.entries
            .iter()
            .filter(|e| (e.0, e.1) <= (line, column))
            .max_by_key(|e| (e.0, e.1))
            .map(|e| e.2.as_str())
    }
}

/// Keys known at each level, for "did you mean" on unknown fields when serde-saphyr did not pass
/// the list along (it normally does).
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-', ' '], "");
    let w = norm(word);
    // Same word in another case/spelling convention (pod_subnet, PodSubnet, pod-subnet).
    if let Some(c) = candidates.iter().find(|c| norm(c) == w) {
        return Some(c);
    }
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(&w, &norm(c));
        let limit = (c.len().max(word.len()) / 3).clamp(1, 4);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    // A prefix or containment also counts (e.g. `internal` for `internalAddress`).
    best.map(|b| b.1).or_else(|| {
        candidates
            .iter()
            .find(|c| w.len() >= 4 && (norm(c).starts_with(&w) || w.starts_with(&norm(c))))
            .copied()
    })
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment).
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

fn describe_type(ty: &str, path: &str) -> Cow<'static, str> {
    let last = path.rsplit('.').next().unwrap_or(path);
    if last == "port" {
        return "expected a TCP port number (1-65535)".into();
    }
    match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => {
            format!("expected a whole number that fits in {ty}").into()
        }
        "bool" => "expected true or false".into(),
        other => format!("expected {other}").into(),
    }
}

/// What each path level expects, for "expected a list"/"expected a mapping" messages.
fn shape_hint(path: &str) -> &'static str {
    let last = path.rsplit('.').next().unwrap_or(path);
    let last = last.split('[').next().unwrap_or(last);
    match last {
        "" => "the inventory must be a mapping with `cluster`, `ssh` and `hosts`",
        "cluster" | "ssh" | "timeouts" => "expected a mapping of fields",
        "hosts" if path.ends_with(']') => "each host is a mapping with name, address, role...",
        "hosts" => "expected a list of hosts (`- name: ...`)",
        "preloadImages" if path.ends_with(']') => "expected a file path",
        "preloadImages" => "expected a list of file paths",
        _ => "expected a single value (a string or number)",
    }
}

fn inner(err: &YamlError) -> &YamlError {
    match err.without_snippet() {
        YamlError::AliasError { error, .. } => inner(error),
        e => e,
    }
}

/// Map one serde-saphyr error to a problem with a field path.
pub(crate) fn problem_from_yaml(err: &YamlError, src: &str) -> Problem {
    let e = inner(err);
    let (line, column) = err
        .location()
        .or_else(|| e.location())
        .map(|l| (l.line().max(1), l.column().max(1)))
        .unwrap_or((1, 1));
    let index = PathIndex::build(src);
    let about_key = matches!(
        e,
        YamlError::SerdeUnknownField { .. } | YamlError::DuplicateMappingKey { .. }
    );
    let path = index
        .path_at(line, column, about_key)
        .unwrap_or("")
        .to_string();
    let raw = DefaultMessageFormatter.format_message(e).into_owned();
    let message = match e {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let mut m = format!("unknown field `{field}`");
            if let Some(c) = closest(field, expected) {
                m.push_str(&format!("; did you mean `{c}`?"));
            }
            m.push_str(&format!("; allowed: {}", expected.join(", ")));
            // The path of the key node already ends in the unknown key: keep it.
            m
        }
        YamlError::SerdeMissingField { field, .. } => format!("missing field `{field}`"),
        YamlError::DuplicateMappingKey { key, .. } => match key {
            Some(k) => format!("`{k}` is given twice in the same mapping; keep only one"),
            None => "a key is given twice in the same mapping; keep only one".to_string(),
        },
        YamlError::InvalidScalar { ty, .. } => {
            let found = value_at(src, line, column);
            format!("{found} is not valid here: {}", describe_type(ty, &path))
        }
        YamlError::Unexpected { .. } => {
            let hint = shape_hint(&path);
            format!("wrong type: {hint}, found {}", shape_at(src, line, column))
        }
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => {
            format!("wrong type: found {unexpected}, expected {expected}")
        }
        YamlError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => {
            format!("invalid value {unexpected}, expected {expected}")
        }
        YamlError::NullIntoString { .. } => "a value is required here".to_string(),
        YamlError::MultipleDocuments { .. } => {
            "the inventory must be a single YAML document (remove the extra `---`)".to_string()
        }
        _ => {
            // Syntax errors from the parser, and everything else.
            let mut m = format!("YAML syntax error: {raw}");
            let line_text = src.lines().nth(line as usize - 1).unwrap_or("");
            if raw.contains("tab") || line_text.contains('\t') {
                m.push_str("; YAML indentation must use spaces, not tabs");
            } else if raw.contains("did not find expected key")
                || raw.contains("mapping values are not allowed")
            {
                m.push_str("; check the indentation of this line and the one before");
            }
            return Problem {
                line: line as usize,
                column: column as usize,
                path: String::new(),
                message: m,
            };
        }
    };
    Problem {
        line: line as usize,
        column: column as usize,
        path,
        message,
    }
}

/// What kind of node starts at a position, judged from the text: "a list", "a mapping"...
fn shape_at(src: &str, line: u64, column: u64) -> &'static str {
    let Some(text) = src.lines().nth(line as usize - 1) else {
        return "something else";
    };
    let rest: String = text.chars().skip(column as usize - 1).collect();
    let rest = rest.trim_start();
    if rest.starts_with('[') || rest.starts_with("- ") || rest == "-" {
        "a list"
    } else if rest.starts_with('{') || rest.contains(": ") || rest.ends_with(':') {
        "a mapping"
    } else {
        "a single value"
    }
}

/// The scalar text at a position, quoted, for messages like `"abc" is not valid here`.
fn value_at(src: &str, line: u64, column: u64) -> String {
    let Some(text) = src.lines().nth(line as usize - 1) else {
        return "this value".into();
    };
    let rest: String = text.chars().skip(column as usize - 1).collect();
    let v = rest.split([',', '}', ']', '#']).next().unwrap_or("").trim();
    if v.is_empty() {
        "this value".into()
    } else {
        format!("{:?}", v.trim_matches(|c| c == '"' || c == '\''))
    }
}
