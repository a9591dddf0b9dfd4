//! Source lines of the nodes of a YAML document, so config errors can name the line at fault.
//!
//! `serde_norway` gives typed values but no positions once deserialization succeeded; this module
//! walks the same text with `saphyr-parser`'s event stream and records, for every mapping key and
//! sequence item, the 1-based line where it starts, under a dotted path such as
//! `columns.3.topics.0.fields.1.name`.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// Lines of the nodes of one document, keyed by dotted path from the root.
#[derive(Debug, Default)]
pub(crate) struct LineIndex {
    lines: HashMap<String, usize>,
    scalars: HashMap<String, String>,
}

impl LineIndex {
    /// Indexes the first document of `text`. Where the event parser cannot read on (it is stricter
    /// than `serde_norway` in places, e.g. a U+FEFF inside a scalar), the nodes before that point
    /// are indexed and later ones fall back to their closest indexed ancestor: the caller has
    /// already parsed the text with serde, so that only loses line precision, never data.
    ///
    /// The events are pulled one by one (`Parser::load` recurses once per nesting level, so block
    /// nesting as deep as the text is long would exhaust the stack), and pulling stops at the first
    /// error (the parser repeats it forever).
    pub(crate) fn build(text: &str) -> LineIndex {
        let mut events: Vec<(Ev, usize)> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((ev, span)) = item else {
                break;
            };
            let ev = match ev {
                Event::MappingStart(..) => Ev::MappingStart,
                Event::SequenceStart(..) => Ev::SequenceStart,
                Event::MappingEnd | Event::SequenceEnd => Ev::End,
                Event::Scalar(value, ..) => Ev::Scalar(value.into_owned()),
                Event::Alias(_) => Ev::Other,
                Event::DocumentEnd => break,
                // Stream and document markers are not nodes.
                _ => continue,
            };
            events.push((ev, span.start.line()));
        }
        let mut index = LineIndex::default();
        let mut pos = 0;
        index.walk(&events, &mut pos, "", 0);
        index
    }

    /// The line of the node at `path`, if known.
    pub(crate) fn line(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }

    /// The text of the scalar at `path`, if it is one.
    pub(crate) fn scalar(&self, path: &str) -> Option<&str> {
        self.scalars.get(path).map(String::as_str)
    }

    /// The index of the item of the sequence at `seq` that contains `line`.
    pub(crate) fn item_at_line(&self, seq: &str, line: usize) -> Option<usize> {
        let mut found = None;
        for i in 0.. {
            match self.line(&join(seq, &i.to_string())) {
                Some(start) if start <= line => found = Some(i),
                _ => break,
            }
        }
        found
    }

    /// The line of the node at `path`, else of the closest indexed ancestor.
    pub(crate) fn line_or_ancestor(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(line) = self.line(p) {
                return Some(line);
            }
            p = &p[..p.rfind('.')?];
        }
    }

    /// Walks one node starting at `events[*pos]`, leaving `*pos` just past it. Nodes deeper than
    /// [`MAX_DEPTH`] are skipped unrecorded (without recursion), so block nesting as deep as the text
    /// is long cannot exhaust the stack.
    fn walk(&mut self, events: &[(Ev, usize)], pos: &mut usize, path: &str, depth: usize) {
        if depth > MAX_DEPTH {
            skip(events, pos);
            return;
        }
        let Some((ev, _)) = events.get(*pos) else {
            return;
        };
        *pos += 1;
        match ev {
            Ev::MappingStart => loop {
                match events.get(*pos) {
                    None => return,
                    Some((Ev::End, _)) => {
                        *pos += 1;
                        return;
                    }
                    Some((Ev::Scalar(key), line)) => {
                        let child = join(path, key);
                        self.lines.entry(child.clone()).or_insert(*line);
                        *pos += 1;
                        self.walk(events, pos, &child, depth + 1);
                    }
                    Some(_) => {
                        // A complex key: skip it and its value without recording them.
                        skip(events, pos);
                        skip(events, pos);
                    }
                }
            },
            Ev::SequenceStart => {
                let mut i = 0usize;
                loop {
                    match events.get(*pos) {
                        None => return,
                        Some((Ev::End, _)) => {
                            *pos += 1;
                            return;
                        }
                        Some((_, line)) => {
                            let child = join(path, &i.to_string());
                            self.lines.entry(child.clone()).or_insert(*line);
                            self.walk(events, pos, &child, depth + 1);
                            i += 1;
                        }
                    }
                }
            }
            Ev::Scalar(value) => {
                self.scalars.insert(path.to_owned(), value.clone());
            }
            Ev::Other | Ev::End => {}
        }
    }
}

/// A line to blame when `serde_norway` rejects `text` without saying where (it gives no location
/// for, e.g., a second document): where the event parser stops, else where a second document
/// starts, else the last line with an event. Always at least 1.
pub(crate) fn trouble_line(text: &str) -> usize {
    let mut documents = 0;
    let mut last = 1;
    for item in Parser::new_from_str(text) {
        match item {
            // The parser repeats an error forever: stop at the first.
            Err(e) => return e.marker().line().max(1),
            Ok((Event::DocumentStart(..), span)) => {
                documents += 1;
                if documents == 2 {
                    return span.start.line().max(1);
                }
            }
            Ok((_, span)) => last = last.max(span.start.line()),
        }
    }
    last
}

/// Deeper than any config node (the deserializer stops at 128 levels).
const MAX_DEPTH: usize = 160;

/// Moves `*pos` past the node starting there, and past everything nested in it.
fn skip(events: &[(Ev, usize)], pos: &mut usize) {
    let mut open = 0usize;
    while let Some((ev, _)) = events.get(*pos) {
        *pos += 1;
        match ev {
            Ev::MappingStart | Ev::SequenceStart => open += 1,
            Ev::End => open = open.saturating_sub(1),
            Ev::Scalar(_) | Ev::Other => {}
        }
        if open == 0 {
            return;
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The subset of parser events the walk needs, with the line each starts on.
#[derive(Debug)]
enum Ev {
    MappingStart,
    SequenceStart,
    End,
    Scalar(String),
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_keys_and_items_by_path() {
        let text = "version: 1.0.0\ncolumns:\n- name: a\n  topics:\n  - name: t\n    fields:\n    - name: f\n    - name: g\n\n- name: b\n  function: mean\n";
        let index = LineIndex::build(text);
        assert_eq!(index.line("version"), Some(1));
        assert_eq!(index.line("columns.0"), Some(3));
        assert_eq!(index.line("columns.0.topics.0.fields.1.name"), Some(8));
        assert_eq!(index.line("columns.1"), Some(10));
        assert_eq!(index.line("columns.1.function"), Some(11));
        assert_eq!(
            index.line_or_ancestor("columns.1.function_args.ddof"),
            Some(10)
        );
        assert_eq!(index.line_or_ancestor("nowhere"), None);
        assert_eq!(index.scalar("columns.1.name"), Some("b"));
        assert_eq!(index.item_at_line("columns", 9), Some(0));
        assert_eq!(index.item_at_line("columns", 11), Some(1));
        assert_eq!(index.item_at_line("columns", 2), None);
    }

    #[test]
    fn flow_style_is_indexed_too() {
        let index = LineIndex::build("columns: [{name: a},\n  {name: b, tables: [x, y]}]\n");
        assert_eq!(index.line("columns.1.name"), Some(2));
        assert_eq!(index.line("columns.1.tables.1"), Some(2));
    }

    #[test]
    fn block_nesting_as_deep_as_the_text_is_indexed_without_recursing() {
        let text = format!("a:\n{}x\nb: 1\n", "- ".repeat(100_000));
        let index = LineIndex::build(&text);
        assert_eq!(index.line("a.0.0"), Some(2));
        assert_eq!(index.line("b"), Some(3));
    }

    #[test]
    fn the_first_document_is_indexed_and_trouble_has_a_line() {
        // A second document: the first is indexed; the trouble is where the second starts. An
        // unclosed flow sequence: where the parser stops.
        let index = LineIndex::build("a: 1\nb: 2\n---\nc: 3\n");
        assert_eq!(index.line("b"), Some(2));
        assert_eq!(trouble_line("a: 1\nb: 2\n---\nc: 3\n"), 3);
        assert_eq!(trouble_line("a: 1\nb: [\n"), 3);
    }
}
