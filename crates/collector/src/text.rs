//! A small parser for the Prometheus text exposition format (0.0.4), as served on a
//! model server's `/metrics`; the OpenMetrics subset that `prometheus_client` emits
//! (`# EOF`, `_created` samples) is accepted too.
//!
//! Tolerances, because real scrapes are messy:
//! - `*_created` samples (creation timestamps of counters and histograms) are dropped:
//!   they are not measurements;
//! - a body cut off in the middle of its last line (no final newline) keeps every
//!   complete line and sets [`Exposition::truncated`];
//! - `NaN`, `+Inf` and `-Inf` parse as the float values; deciding that they mean
//!   "unknown" is the caller's job (see `crate::pod`).
//!
//! Anything else that is not a comment, a blank line or a well-formed sample is an
//! error naming the line: a server that answers garbage is not silently read as "no data".

use std::collections::BTreeMap;

/// The declared type of a metric family (`# TYPE` line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram (`_bucket`, `_sum`, `_count` samples).
    Histogram,
    /// Summary (`quantile` samples, `_sum`, `_count`).
    Summary,
    /// `untyped` or any other declared type.
    Untyped,
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Sample name, e.g. `vllm:time_to_first_token_seconds_bucket`.
    pub name: String,
    /// Labels in name order.
    pub labels: BTreeMap<String, String>,
    /// The value (may be NaN or infinite).
    pub value: f64,
    /// Optional explicit timestamp, ms since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// A parsed `/metrics` body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    /// Samples in body order, without `_created` samples.
    pub samples: Vec<Sample>,
    /// Declared family types by family name.
    pub types: BTreeMap<String, MetricType>,
    /// True when the body ended inside a line that could not be parsed (cut off).
    pub truncated: bool,
    /// How many `_created` samples were dropped.
    pub created_dropped: usize,
}

impl Exposition {
    /// Samples named exactly `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// True when any sample has this exact name.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// A text-format error: which line (1-based) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct TextError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// Parse a Prometheus text-format body. See the module docs for what is tolerated.
pub fn parse(body: &str) -> Result<Exposition, TextError> {
    let mut out = Exposition::default();
    let ends_with_newline = body.ends_with('\n');
    let lines: Vec<&str> = body.lines().collect();
    let last = lines.len();
    for (i, raw) in lines.iter().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r').trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            if rest == "EOF" {
                break;
            }
            if let Some(decl) = rest.strip_prefix("TYPE ") {
                let mut parts = decl.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    out.types.insert(name.to_string(), metric_type(kind));
                }
            }
            continue;
        }
        match parse_sample(line) {
            Ok(sample) => {
                if sample.name.ends_with("_created") {
                    out.created_dropped += 1;
                } else {
                    out.samples.push(sample);
                }
            }
            Err(problem) => {
                // Only a body with complete lines before it counts as cut off: a
                // one-line body that is not a sample is garbage.
                if line_no == last && line_no > 1 && !ends_with_newline {
                    out.truncated = true;
                } else {
                    return Err(TextError {
                        line: line_no,
                        problem,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn metric_type(kind: &str) -> MetricType {
    match kind {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" | "gaugehistogram" => MetricType::Histogram,
        "summary" => MetricType::Summary,
        _ => MetricType::Untyped,
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let mut chars = line.char_indices().peekable();
    let name_end = match chars.peek() {
        Some(&(_, c)) if is_name_start(c) => {
            let mut end = line.len();
            for (i, c) in line.char_indices() {
                if !is_name_char(c) {
                    end = i;
                    break;
                }
            }
            end
        }
        _ => return Err(format!("expected a metric name, found `{}`", short(line))),
    };
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value_text = fields
        .next()
        .ok_or_else(|| format!("sample `{name}` has no value"))?;
    let value = parse_value(value_text)
        .ok_or_else(|| format!("sample `{name}`: `{}` is not a number", short(value_text)))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .or_else(|_| t.parse::<f64>().map(|f| (f * 1000.0) as i64))
                .map_err(|_| format!("sample `{name}`: bad timestamp `{}`", short(t)))?,
        ),
    };
    if let Some(extra) = fields.next() {
        // OpenMetrics exemplars start with '#'; anything else is garbage.
        if !extra.starts_with('#') {
            return Err(format!("sample `{name}`: unexpected `{}`", short(extra)));
        }
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Parse `a="x",b="y"}` (after the opening brace); returns the text after the `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = s
            .find(|c: char| !is_name_char(c))
            .ok_or_else(|| "unterminated label set".to_string())?;
        if name_end == 0 {
            return Err(format!("bad label name at `{}`", short(s)));
        }
        let lname = &s[..name_end];
        s = s[name_end..].trim_start();
        s = s
            .strip_prefix('=')
            .ok_or_else(|| format!("label `{lname}`: expected `=`"))?
            .trim_start();
        s = s
            .strip_prefix('"')
            .ok_or_else(|| format!("label `{lname}`: expected a quoted value"))?;
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in s.char_indices() {
            if escaped {
                match c {
                    'n' => value.push('\n'),
                    other => value.push(other),
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            } else {
                value.push(c);
            }
        }
        let end = end.ok_or_else(|| format!("label `{lname}`: unterminated value"))?;
        labels.insert(lname.to_string(), value);
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(format!("label `{lname}`: expected `,` or `}}`"));
        }
    }
}

/// Parse a sample value: a float, `NaN`, `+Inf`, `-Inf`, `Inf`.
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

fn short(s: &str) -> String {
    crate::error::truncate(s, 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_values_and_types() {
        let body = "# HELP x help text\n# TYPE x counter\nx{a=\"1\",b=\"q\\\"uote\"} 3.5 1700000000000\ny 1e3\n";
        let e = parse(body).expect("parses");
        assert_eq!(e.samples.len(), 2);
        assert_eq!(e.samples[0].label("b"), Some("q\"uote"));
        assert_eq!(e.samples[0].value, 3.5);
        assert_eq!(e.samples[0].timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(e.samples[1].value, 1000.0);
        assert_eq!(e.types.get("x"), Some(&MetricType::Counter));
    }

    #[test]
    fn special_values_parse_as_floats() {
        let e = parse("a NaN\nb +Inf\nc -Inf\n").expect("parses");
        assert!(e.samples[0].value.is_nan());
        assert_eq!(e.samples[1].value, f64::INFINITY);
        assert_eq!(e.samples[2].value, f64::NEG_INFINITY);
    }

    #[test]
    fn created_samples_are_dropped() {
        let body = "# TYPE vllm:num_preemptions_created gauge\nvllm:num_preemptions_total{engine=\"0\"} 2\nvllm:num_preemptions_created{engine=\"0\"} 1.7e9\n";
        let e = parse(body).expect("parses");
        assert_eq!(e.samples.len(), 1);
        assert_eq!(e.created_dropped, 1);
    }

    #[test]
    fn body_cut_mid_line_keeps_complete_lines() {
        let e = parse("a 1\nb{x=\"1\"} 2\nc{x=\"").expect("tolerated");
        assert!(e.truncated);
        assert_eq!(e.samples.len(), 2);
    }

    #[test]
    fn garbage_is_an_error_with_the_line() {
        let err = parse("a 1\n<html>oops</html>\nb 2\n").expect_err("garbage");
        assert_eq!(err.line, 2);
        let err = parse("a one\n").expect_err("bad value");
        assert!(err.problem.contains("not a number"), "{err}");
        let err = parse("<html>login</html>").expect_err("one-line garbage");
        assert_eq!(err.line, 1);
    }

    #[test]
    fn trailing_comma_and_eof_marker() {
        let e = parse("a{x=\"1\",} 1\n# EOF\nthis is ignored\n").expect("parses");
        assert_eq!(e.samples.len(), 1);
    }
}
