//! A canonical form of Rust `Debug` output, for comparing two values field by field.
//!
//! The fidelity guard ([`crate::fidelity`]) compares a plan node with the
//! same node after an encode/decode round trip through their `Debug` text,
//! which names every field of every operator and expression (window frames
//! and their direction, filters, null treatment, orderings, grouping sets,
//! limits), including fields Squall does not know about. Two things in that
//! text differ without any difference in meaning, and [`canonical`] removes
//! them:
//!
//! - maps and sets print in hash order: the entries of every anonymous `{..}`
//!   group are sorted;
//! - run-time bookkeeping (metrics, cached plan properties, lazily filled
//!   state) is not meaning: fields named in [`IGNORED_FIELDS`] are dropped.
//!
//! The parser is tolerant: text that is not a struct, tuple, list or map is
//! kept as opaque atoms, so any `Debug` output has a canonical form.

/// Fields that hold run-time state or values derived from the rest of the
/// node: `field` anywhere, or `Struct.field` in that struct only.
pub const IGNORED_FIELDS: &[&str] = &[
    // ExecutionPlanMetricsSet: counters filled while running.
    "metrics",
    // PlanProperties: derived from the node and its children.
    "cache",
    // Lazily built state of joins and subqueries (OnceAsync, futures).
    "left_fut",
    "subquery_future",
    // Arrow IPC numbers dictionaries when it writes them; the number is no
    // part of the data.
    "dict_id",
    // The schema an aggregate's argument types were derived from: the input
    // schema, sometimes with the window's own field appended; the
    // arguments' column indices and types are compared on their own.
    "AggregateFunctionExpr.schema",
    // The URL as the user wrote it, kept for EXPLAIN only; the sink writes
    // to `object_store_url` and `table_paths`.
    "FileSinkConfig.original_url",
    // The table a listing URL was registered for: a name for caches and
    // messages, not where or what is read or written.
    "ListingTableUrl.table_ref",
    "PartitionedFile.table_reference",
    // The schema each in-memory batch carries: the data source's own schema
    // (compared) is what it is read with; batches appended by INSERT carry
    // the nullability of their VALUES, which Arrow IPC writes once per stream.
    "RecordBatch.schema",
    // An object's entity tag as listed when planning: a cache validator,
    // not what is read (readers ask for the object, or its `version`).
    "ObjectMeta.e_tag",
    // Whether a frame's result may be emitted before later rows arrive. The
    // decoded frame computes it from its bounds (`WindowFrame::new_bounds`);
    // DataFusion's SQL planner leaves it conservatively false for RANGE
    // frames whose bounds it typed later. Either way the values are the same.
    "WindowFrame.is_causal",
    // Whether DataFusion's optimizer may hash-partition a window's input by
    // its PARTITION BY keys: a planning hint (`required_input_distribution`)
    // the workers never consult; the cut has placed the exchanges already.
    "BoundedWindowAggExec.can_repartition",
    "WindowAggExec.can_repartition",
    // The order a Parquet scan reads its row groups in, for a TopK above
    // to finish early (DataFusion's inexact sort pushdown): the scan then
    // promises no order and the sort above stays, so rows are the same.
    "ParquetSource.reverse_row_groups",
    "ParquetSource.sort_order_for_reorder",
    // How a Parquet scan fetches bytes: the store and the metadata cache it
    // reads through. Their `Debug` text shows live state (request counters,
    // the cache's length, fault draws) that other tasks change while the
    // guard formats the two plans; the worker reads through its own store.
    "ParquetSource.parquet_file_reader_factory",
];

/// Texts that mean exactly the same as another, replaced before comparing.
pub const EQUIVALENT_TEXTS: &[(&str, &str)] = &[
    // A timestamp series' time zone: `generate_series` advances in the
    // parsed zone, or in +00:00 when there is none (its `advance`), and
    // datafusion-proto brings a zone-less series back without one.
    ("parsed_tz: Some(Tz(Offset(+00:00)))", "parsed_tz: None"),
];

fn is_ignored(owner: Option<&str>, field: &str) -> bool {
    IGNORED_FIELDS.iter().any(|f| match f.split_once('.') {
        Some((s, name)) => owner == Some(s) && name == field,
        None => *f == field,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open(char),
    Close(char),
    Comma,
    Colon,
    Text(String),
}

fn tokenize(s: &str) -> Vec<Token> {
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut atom = String::new();
    let flush = |atom: &mut String, tokens: &mut Vec<Token>| {
        if !atom.is_empty() {
            tokens.push(Token::Text(std::mem::take(atom)));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                flush(&mut atom, &mut tokens);
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = (i + 1).min(chars.len());
                tokens.push(Token::Text(chars[start..end].iter().collect()));
            }
            '{' | '(' | '[' => {
                flush(&mut atom, &mut tokens);
                tokens.push(Token::Open(c));
            }
            '}' | ')' | ']' => {
                flush(&mut atom, &mut tokens);
                tokens.push(Token::Close(c));
            }
            ',' => {
                flush(&mut atom, &mut tokens);
                tokens.push(Token::Comma);
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                atom.push_str("::");
                i += 1;
            }
            ':' => {
                flush(&mut atom, &mut tokens);
                tokens.push(Token::Colon);
            }
            c if c.is_whitespace() => flush(&mut atom, &mut tokens),
            c => atom.push(c),
        }
        i += 1;
    }
    flush(&mut atom, &mut tokens);
    tokens
}

/// A parsed piece: a text atom, or a bracketed group of comma-separated elements.
#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Colon,
    Group {
        open: char,
        elements: Vec<Vec<Node>>,
    },
}

fn closing(open: char) -> char {
    match open {
        '{' => '}',
        '(' => ')',
        _ => ']',
    }
}

/// Parses tokens up to the closing bracket of `open` (or the end).
#[recursive::recursive]
fn parse_group(tokens: &[Token], pos: &mut usize, open: Option<char>) -> Vec<Vec<Node>> {
    let mut elements = vec![Vec::new()];
    while *pos < tokens.len() {
        let token = tokens[*pos].clone();
        *pos += 1;
        match token {
            Token::Open(c) => {
                let inner = parse_group(tokens, pos, Some(c));
                elements.last_mut().expect("one element").push(Node::Group {
                    open: c,
                    elements: inner,
                });
            }
            Token::Close(c) => {
                if open.map(closing) == Some(c) {
                    break;
                }
                // An unbalanced bracket (custom Debug text): keep it as text.
                elements
                    .last_mut()
                    .expect("one element")
                    .push(Node::Text(c.to_string()));
            }
            Token::Comma => elements.push(Vec::new()),
            Token::Colon => elements.last_mut().expect("one element").push(Node::Colon),
            Token::Text(t) => elements
                .last_mut()
                .expect("one element")
                .push(Node::Text(t)),
        }
    }
    if elements.last().is_some_and(Vec::is_empty) {
        elements.pop();
    }
    elements
}

fn field_name(element: &[Node]) -> Option<&str> {
    match element {
        [Node::Text(name), Node::Colon, ..] => Some(name),
        _ => None,
    }
}

#[recursive::recursive]
fn render_sequence(nodes: &[Node], out: &mut String) {
    for (i, node) in nodes.iter().enumerate() {
        // A `{` group right after a name is a struct; anywhere else it is a map or set.
        let owner = match i.checked_sub(1).map(|j| &nodes[j]) {
            Some(Node::Text(name)) => Some(name.as_str()),
            _ => None,
        };
        let after_name = owner.is_some();
        match node {
            Node::Text(t) => {
                if i > 0 && !matches!(nodes[i - 1], Node::Colon) {
                    out.push(' ');
                }
                out.push_str(t);
            }
            Node::Colon => out.push(':'),
            Node::Group { open, elements } => {
                let mut rendered: Vec<String> = elements
                    .iter()
                    .filter(|e| {
                        !(*open == '{' && field_name(e).is_some_and(|f| is_ignored(owner, f)))
                    })
                    .map(|e| {
                        let mut s = String::new();
                        render_sequence(e, &mut s);
                        s
                    })
                    .collect();
                if *open == '{' && !after_name {
                    rendered.sort();
                }
                out.push(*open);
                out.push_str(&rendered.join(","));
                out.push(closing(*open));
            }
        }
    }
}

/// The canonical form of `debug` (see the module docs).
pub fn canonical(debug: &str) -> String {
    let mut debug = debug.to_string();
    for (text, same) in EQUIVALENT_TEXTS {
        debug = debug.replace(text, same);
    }
    let tokens = tokenize(&debug);
    let mut pos = 0;
    let mut out = String::new();
    let elements = parse_group(&tokens, &mut pos, None);
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        render_sequence(element, &mut out);
    }
    out
}

/// The first place where `a` and `b` differ, with some context on each side.
pub fn first_difference(a: &str, b: &str) -> Option<(String, String)> {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))?;
    let excerpt = |s: &str| {
        let start = s[..at.min(s.len())]
            .char_indices()
            .rev()
            .nth(60)
            .map_or(0, |(i, _)| i);
        let rest: String = s[start..].chars().take(140).collect();
        rest
    };
    Some((excerpt(a), excerpt(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_sorted_and_structs_keep_their_field_order() {
        let a = canonical(r#"Field { name: "x", metadata: {"b": "2", "a": "1"} }"#);
        let b = canonical(r#"Field { name: "x", metadata: {"a": "1", "b": "2"} }"#);
        assert_eq!(a, b);
        let c = canonical(r#"S { b: 1, a: 2 }"#);
        let d = canonical(r#"S { a: 2, b: 1 }"#);
        assert_ne!(c, d);
    }

    #[test]
    fn ignored_fields_are_dropped_and_others_are_not() {
        let a = canonical("X { reverse: true, metrics: M { n: 1 } }");
        let b = canonical("X { reverse: true, metrics: M { n: 2 } }");
        assert_eq!(a, b);
        let c = canonical("X { reverse: false, metrics: M { n: 2 } }");
        assert_ne!(a, c);
    }

    #[test]
    fn struct_qualified_fields_are_ignored_only_in_their_struct() {
        let a = canonical("AggregateFunctionExpr { schema: S { n: 1 }, x: 1 }");
        let b = canonical("AggregateFunctionExpr { schema: S { n: 2 }, x: 1 }");
        assert_eq!(a, b);
        let c = canonical("Other { schema: S { n: 1 } }");
        let d = canonical("Other { schema: S { n: 2 } }");
        assert_ne!(c, d);
    }

    #[test]
    fn strings_with_brackets_and_commas_stay_whole() {
        let a = canonical(r#"L { s: "a, {b}: c\" d" }"#);
        assert!(a.contains(r#""a, {b}: c\" d""#), "{a}");
    }

    #[test]
    fn unbalanced_text_still_has_a_canonical_form() {
        assert_eq!(canonical("a ) b"), canonical("a ) b"));
        assert!(!canonical("[1, 2").is_empty());
    }

    /// A scan's store and metadata cache change while the guard formats the
    /// original and the decoded plan (other tasks' requests, retries and
    /// cached footers): that is no difference in meaning.
    #[test]
    fn a_parquet_scans_store_and_cache_are_not_compared() {
        use std::sync::Arc;

        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::datasource::physical_plan::ParquetSource;
        use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
        use datafusion::execution::cache::cache_manager::{CacheManager, CacheManagerConfig};
        use object_store::{ObjectStore, ObjectStoreExt, PutPayload, memory::InMemory, path::Path};

        let store = Arc::new(InMemory::new());
        let cache = CacheManager::try_new(&CacheManagerConfig::default())
            .expect("default caches")
            .get_file_metadata_cache();
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let source = ParquetSource::new(schema).with_parquet_file_reader_factory(Arc::new(
            CachedParquetFileReaderFactory::new(Arc::clone(&store) as Arc<dyn ObjectStore>, cache),
        ));
        let before = format!("{source:?}");
        futures::executor::block_on(store.put(&Path::from("x"), PutPayload::from_static(b"1")))
            .expect("put");
        let after = format!("{source:?}");
        assert_ne!(
            before, after,
            "the store's Debug text should show its state"
        );
        assert_eq!(canonical(&before), canonical(&after));
    }

    #[test]
    fn first_difference_points_at_the_change() {
        let (a, b) = first_difference("W { is_reversed: true }", "W { is_reversed: false }")
            .expect("they differ");
        assert!(a.contains("true") && b.contains("false"), "{a} / {b}");
        assert!(first_difference("same", "same").is_none());
    }
}
