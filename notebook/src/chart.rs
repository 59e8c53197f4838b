//! Chart cells: a small TOML spec, drawn as inline SVG from a cell's rows,
//! with a tooltip (`<title>`) on every bar, point and line vertex.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// The kinds of chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    Bar,
    Line,
    Area,
    Scatter,
    Histogram,
}

/// What a chart cell asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSpec {
    pub kind: ChartKind,
    /// The named cell whose rows it draws.
    pub cell: String,
    pub x: String,
    /// Not needed by a histogram (it counts rows per bin of `x`).
    pub y: Option<String>,
    /// One colour per value of this column.
    pub series: Option<String>,
    pub title: Option<String>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;
const HISTOGRAM_BINS: usize = 20;
const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

impl ChartSpec {
    /// Parses a chart cell's TOML body; errors carry a line within it.
    pub fn parse(body: &str) -> Result<Self, (usize, String)> {
        let line_of = |offset: usize| body[..offset.min(body.len())].matches('\n').count() + 1;
        let table: toml::Table = if crate::yaml_table::looks_like_yaml(body) {
            crate::yaml_table::read(body, "chart")?
        } else {
            toml::from_str(body).map_err(|e| {
                (
                    e.span().map_or(1, |s| line_of(s.start)),
                    format!("chart is not valid TOML: {}", e.message()),
                )
            })?
        };
        let find = |key: &str| body.find(key).map_or(1, line_of);
        let text = |key: &str| -> Result<Option<String>, (usize, String)> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err((find(key), format!("chart key '{key}' must be a string"))),
            }
        };
        let kind = match text("type")?.as_deref() {
            Some("bar") => ChartKind::Bar,
            Some("line") => ChartKind::Line,
            Some("area") => ChartKind::Area,
            Some("scatter") => ChartKind::Scatter,
            Some("histogram") => ChartKind::Histogram,
            Some(other) => {
                return Err((
                    find("type"),
                    format!(
                        "unknown chart type '{other}' (expected bar, line, area, scatter or histogram)"
                    ),
                ));
            }
            None => return Err((1, "a chart needs a type".into())),
        };
        let needed = |value: Option<String>, key: &str| {
            value.ok_or_else(|| (1, format!("a chart needs '{key}'")))
        };
        let spec = ChartSpec {
            kind,
            cell: needed(text("cell")?, "cell")?,
            x: needed(text("x")?, "x")?,
            y: text("y")?,
            series: text("series")?,
            title: text("title")?,
        };
        if spec.y.is_none() && kind != ChartKind::Histogram {
            return Err((1, "a chart needs 'y' (only a histogram counts rows)".into()));
        }
        for key in table.keys() {
            if !["type", "cell", "x", "y", "series", "title"].contains(&key.as_str()) {
                return Err((
                    find(key),
                    format!("unknown chart key '{key}' (known: type, cell, x, y, series, title)"),
                ));
            }
        }
        Ok(spec)
    }
}

/// A column of `batches` as text per row.
fn texts(batches: &[RecordBatch], name: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let options = FormatOptions::default().with_null("NULL");
    for b in batches {
        let column = b.column_by_name(name).ok_or_else(|| no_column(b, name))?;
        let formatter =
            ArrayFormatter::try_new(column.as_ref(), &options).map_err(|e| e.to_string())?;
        out.extend((0..b.num_rows()).map(|r| formatter.value(r).to_string()));
    }
    Ok(out)
}

/// A column of `batches` as numbers per row (`None` for nulls).
fn numbers(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for b in batches {
        let column = b.column_by_name(name).ok_or_else(|| no_column(b, name))?;
        let as_f64 = match column.data_type() {
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => cast(
                &cast(column, &DataType::Int64).map_err(|e| e.to_string())?,
                &DataType::Float64,
            ),
            _ => cast(column, &DataType::Float64),
        }
        .map_err(|_| format!("column '{name}' is not numeric ({})", column.data_type()))?;
        let values = as_f64.as_primitive::<Float64Type>();
        out.extend((0..values.len()).map(|i| (!values.is_null(i)).then(|| values.value(i))));
    }
    Ok(out)
}

fn no_column(batch: &RecordBatch, name: &str) -> String {
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    format!("no column '{name}' (the cell has: {})", names.join(", "))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number as a short label.
fn label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Draws `spec` from `batches` (the drawn cell's rows) as an SVG element.
pub fn render_svg(spec: &ChartSpec, batches: &[RecordBatch]) -> Result<String, String> {
    // Points: (x label, x number if any, y, series).
    let xs = texts(batches, &spec.x)?;
    let series: Vec<String> = match &spec.series {
        Some(s) => texts(batches, s)?,
        None => vec![String::new(); xs.len()],
    };
    let (categories, ys): (Vec<String>, Vec<f64>) = if spec.kind == ChartKind::Histogram {
        let values: Vec<f64> = numbers(batches, &spec.x)?.into_iter().flatten().collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(*v), h.max(*v))
            });
        let width = if hi > lo {
            (hi - lo) / HISTOGRAM_BINS as f64
        } else {
            1.0
        };
        let mut counts = vec![0f64; HISTOGRAM_BINS];
        for v in &values {
            let bin = (((v - lo) / width) as usize).min(HISTOGRAM_BINS - 1);
            counts[bin] += 1.0;
        }
        let labels = (0..HISTOGRAM_BINS)
            .map(|i| {
                format!(
                    "{}–{}",
                    label(lo + width * i as f64),
                    label(lo + width * (i + 1) as f64)
                )
            })
            .collect();
        (labels, counts)
    } else {
        let y = spec.y.as_deref().expect("checked when parsed");
        (
            xs.clone(),
            numbers(batches, y)?
                .into_iter()
                .map(|v| v.unwrap_or(0.0))
                .collect(),
        )
    };
    let series = if spec.kind == ChartKind::Histogram {
        vec![String::new(); categories.len()]
    } else {
        series
    };
    // Distinct x values in order of first appearance (sorted numerically
    // when they are numbers), and the series.
    let mut order: Vec<String> = Vec::new();
    for c in &categories {
        if !order.contains(c) {
            order.push(c.clone());
        }
    }
    if spec.kind != ChartKind::Histogram
        && let Ok(nums) = numbers(batches, &spec.x)
        && nums.iter().all(Option::is_some)
    {
        let mut pairs: Vec<(f64, String)> = nums
            .into_iter()
            .flatten()
            .zip(categories.iter().cloned())
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        order.clear();
        for (_, c) in pairs {
            if !order.contains(&c) {
                order.push(c);
            }
        }
    }
    let mut names: Vec<String> = Vec::new();
    for s in &series {
        if !names.contains(s) {
            names.push(s.clone());
        }
    }
    let max_y = ys
        .iter()
        .cloned()
        .fold(0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let min_y = ys.iter().cloned().fold(0f64, f64::min);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y_at = |v: f64| TOP + plot_h * (1.0 - (v - min_y) / (max_y - min_y));
    let step = plot_w / order.len().max(1) as f64;
    let x_at =
        |c: &str| LEFT + step * (order.iter().position(|o| o == c).unwrap_or(0) as f64 + 0.5);
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" data-kind="{:?}">"#,
        spec.kind
    );
    // Axes and y ticks.
    for i in 0..=4 {
        let v = min_y + (max_y - min_y) * i as f64 / 4.0;
        let y = y_at(v);
        svg.push_str(&format!(
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            label(v)
        ));
    }
    let every = order.len().div_ceil(12).max(1);
    for (i, c) in order.iter().enumerate().filter(|(i, _)| i % every == 0) {
        svg.push_str(&format!(
            r#"<text x="{:.1}" y="{}" text-anchor="middle" class="tick">{}</text>"#,
            LEFT + step * (i as f64 + 0.5),
            HEIGHT - BOTTOM + 16.0,
            escape(c)
        ));
    }
    let tooltip = |c: &str, y: f64, s: &str| {
        let mut t = format!(
            "{}: {}\n{}: {}",
            spec.x,
            c,
            spec.y.as_deref().unwrap_or("rows"),
            label(y)
        );
        if !s.is_empty() {
            t.push_str(&format!("\n{}: {s}", spec.series.as_deref().unwrap_or("")));
        }
        escape(&t)
    };
    for (si, name) in names.iter().enumerate() {
        let colour = PALETTE[si % PALETTE.len()];
        let points: Vec<(&str, f64)> = categories
            .iter()
            .zip(&ys)
            .zip(&series)
            .filter(|(_, s)| *s == name)
            .map(|((c, y), _)| (c.as_str(), *y))
            .collect();
        match spec.kind {
            ChartKind::Bar | ChartKind::Histogram => {
                let bar_w = step * 0.8 / names.len() as f64;
                for (c, y) in &points {
                    let x = x_at(c) - step * 0.4 + bar_w * si as f64;
                    let (top, bottom) = (y_at(y.max(0.0)), y_at(y.min(0.0)));
                    svg.push_str(&format!(
                        r#"<rect class="mark" x="{x:.1}" y="{top:.1}" width="{bar_w:.1}" height="{:.1}" fill="{colour}"><title>{}</title></rect>"#,
                        (bottom - top).max(0.5),
                        tooltip(c, *y, name)
                    ));
                }
            }
            ChartKind::Line | ChartKind::Area | ChartKind::Scatter => {
                let mut sorted = points.clone();
                sorted.sort_by_key(|(c, _)| order.iter().position(|o| o == c));
                if spec.kind != ChartKind::Scatter && sorted.len() > 1 {
                    let path: Vec<String> = sorted
                        .iter()
                        .map(|(c, y)| format!("{:.1},{:.1}", x_at(c), y_at(*y)))
                        .collect();
                    if spec.kind == ChartKind::Area {
                        let (first, last) = (sorted[0].0, sorted[sorted.len() - 1].0);
                        svg.push_str(&format!(
                            r#"<polygon points="{:.1},{:.1} {} {:.1},{:.1}" fill="{colour}" fill-opacity="0.25" stroke="none"/>"#,
                            x_at(first),
                            y_at(min_y.max(0.0)),
                            path.join(" "),
                            x_at(last),
                            y_at(min_y.max(0.0))
                        ));
                    }
                    svg.push_str(&format!(
                        r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                        path.join(" ")
                    ));
                }
                for (c, y) in &sorted {
                    svg.push_str(&format!(
                        r#"<circle class="mark" cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"><title>{}</title></circle>"#,
                        x_at(c),
                        y_at(*y),
                        tooltip(c, *y, name)
                    ));
                }
            }
        }
    }
    svg.push_str("</svg>");
    if names.len() > 1 {
        let legend: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    r#"<span class="key"><i style="background:{}"></i>{}</span>"#,
                    PALETTE[i % PALETTE.len()],
                    escape(n)
                )
            })
            .collect();
        svg.push_str(&format!(r#"<div class="legend">{}</div>"#, legend.join("")));
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("year", DataType::Int64, false),
                Field::new("kind", DataType::Utf8, false),
                Field::new("total", DataType::Int64, false),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![1995, 1994, 1995, 1994])),
                Arc::new(StringArray::from(vec!["a", "a", "b", "b"])),
                Arc::new(Int64Array::from(vec![10, 20, 30, 40])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_chart_reads_the_same_in_yaml_and_in_toml() {
        let toml = "type = \"bar\"\ncell = \"c\"\nx = \"year\"\ny = \"total\"\ntitle = \"T: t\"\n";
        let yaml = "# a comment\ntype: bar\ncell: c\nx: year\ny: total\ntitle: \"T: t\"\n";
        let (a, b) = (
            ChartSpec::parse(toml).unwrap(),
            ChartSpec::parse(yaml).unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(
            ChartSpec::parse("type: pie\ncell: c\nx: year\n").unwrap_err(),
            (
                1,
                "unknown chart type 'pie' (expected bar, line, area, scatter or histogram)".into()
            )
        );
        assert!(
            ChartSpec::parse("type: [bar\n")
                .unwrap_err()
                .1
                .starts_with("chart is not valid YAML")
        );
    }

    #[test]
    fn every_row_is_a_mark_with_a_tooltip() {
        let spec = ChartSpec::parse(
            "type = \"bar\"\ncell = \"c\"\nx = \"year\"\ny = \"total\"\nseries = \"kind\"",
        )
        .unwrap();
        let svg = render_svg(&spec, &[batch()]).unwrap();
        assert_eq!(svg.matches("class=\"mark\"").count(), 4);
        assert!(
            svg.contains("<title>year: 1994\ntotal: 40\nkind: b</title>"),
            "{svg}"
        );
        // 1994 before 1995: numbers in order.
        assert!(svg.find(">1994<").unwrap() < svg.find(">1995<").unwrap());
        let line = ChartSpec {
            kind: ChartKind::Line,
            ..spec.clone()
        };
        assert_eq!(
            render_svg(&line, &[batch()])
                .unwrap()
                .matches("<polyline")
                .count(),
            2
        );
        let hist = ChartSpec {
            kind: ChartKind::Histogram,
            y: None,
            series: None,
            ..spec
        };
        assert_eq!(
            render_svg(&hist, &[batch()])
                .unwrap()
                .matches("class=\"mark\"")
                .count(),
            HISTOGRAM_BINS
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            ChartSpec::parse("type = \"pie\"\ncell = \"c\"\nx = \"a\"\ny = \"b\"").unwrap_err(),
            (
                1,
                "unknown chart type 'pie' (expected bar, line, area, scatter or histogram)".into()
            )
        );
        assert_eq!(
            ChartSpec::parse("type = \"bar\"\ncell = \"c\"\nx = \"a\"\ny = \"b\"\ncolor = \"k\"")
                .unwrap_err()
                .0,
            5
        );
        let spec =
            ChartSpec::parse("type = \"bar\"\ncell = \"c\"\nx = \"nope\"\ny = \"total\"").unwrap();
        assert_eq!(
            render_svg(&spec, &[batch()]).unwrap_err(),
            "no column 'nope' (the cell has: year, kind, total)"
        );
    }
}
