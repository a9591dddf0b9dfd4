//! Source lines of the nodes of a YAML document, so config errors can name the line at fault.
//!
//! `serde_norway` gives typed values but no positions once deserialization succeeded; this module
//! walks the same text with `saphyr-parser`'s event stream and records, for every mapping key and
//! sequence item, the 1-based line where it starts, under a dotted path such as
//! `columns.3.topics.0.fields.1.name`.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span, SpannedEventReceiver};

/// Lines of the nodes of one document, keyed by dotted path from the root.
#[derive(Debug, Default)]
pub(crate) struct LineIndex {
    lines: HashMap<String, usize>,
    scalars: HashMap<String, String>,
}

impl LineIndex {
    /// Indexes `text`. A document the event parser cannot read gives an empty index: the caller has
    /// already parsed it with serde, so that only loses line numbers, never data.
    pub(crate) fn build(text: &str) -> LineIndex {
        let mut collector = Collector::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut collector, false).is_err() {
            return LineIndex::default();
        }
        let mut index = LineIndex::default();
        let mut pos = 0;
        index.walk(&collector.events, &mut pos, "");
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

    /// Walks one node starting at `events[*pos]`, leaving `*pos` just past it.
    fn walk(&mut self, events: &[(Ev, usize)], pos: &mut usize, path: &str) {
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
                        self.walk(events, pos, &child);
                    }
                    Some(_) => {
                        // A complex key: skip it and its value without recording them.
                        self.walk(events, pos, "\u{0}");
                        self.walk(events, pos, "\u{0}");
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
                            self.walk(events, pos, &child);
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

#[derive(Debug, Default)]
struct Collector {
    events: Vec<(Ev, usize)>,
}

impl<'input> SpannedEventReceiver<'input> for Collector {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        let line = span.start.line();
        let ev = match ev {
            Event::MappingStart(..) => Ev::MappingStart,
            Event::SequenceStart(..) => Ev::SequenceStart,
            Event::MappingEnd | Event::SequenceEnd => Ev::End,
            Event::Scalar(value, ..) => Ev::Scalar(value.into_owned()),
            Event::Alias(_) => Ev::Other,
            // Stream and document markers are not nodes.
            _ => return,
        };
        self.events.push((ev, line));
    }
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
}
