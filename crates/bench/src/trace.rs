//! Trace traffic: replay of a per-request CSV in the Azure LLM inference trace format.
//!
//! The file has the header `TIMESTAMP,ContextTokens,GeneratedTokens` (any column order) and
//! one request per row: its arrival time, prompt tokens and generated tokens. `TIMESTAMP` is
//! either a date-time as in the public Azure traces (`2023-11-16 18:15:46.6805900`, a `T`
//! between date and time is accepted too) or plain seconds (`12.5`); times count from the
//! first row and must not decrease. Empty lines are skipped.
//!
//! A replay ([`Replay`]) scales the trace: a row at trace time `x` arrives at `x * timeScale`
//! (s); each row is replayed `floor(rateScale)` times plus one more with probability
//! `frac(rateScale)` (so `rateScale < 1` keeps a row with that probability). The first copy
//! arrives at the row's own time, further copies uniformly later within the gap to the next
//! row, at most [`JITTER_MAX_SECONDS`] (so copies never overtake the next row). The trace
//! loops: one loop lasts [`Trace::period_seconds`] `* timeScale`. All random draws come from
//! the run's seed: the same seed replays the same arrivals for every policy.
//!
//! Its rate (what the oracle, `static`, the recovery steps and the time series use) is the
//! arrivals of the scaled, looped trace binned at [`RATE_BIN_SECONDS`]: `rate(t)` is
//! `rateScale * (rows arriving in the 10 s bin holding t) / 10 s`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use wvo_perf::workload::SplitMix64;

use crate::BenchError;

/// Width of the bins of a trace's rate function, s.
pub const RATE_BIN_SECONDS: f64 = 10.0;
/// Rows expanded in a row without any copy before a replay counts as ended (only a
/// `rateScale` below ~1e-5 gets there).
const MAX_EMPTY_ROWS: usize = 1_000_000;

/// Longest delay of an extra copy of a row (`rateScale > 1`) after the row, s.
pub const JITTER_MAX_SECONDS: f64 = 10.0;

/// One request of a trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceRow {
    /// Arrival time from the first row, s (unscaled).
    pub t: f64,
    /// Prompt tokens (`ContextTokens`), tokens.
    pub input: u32,
    /// Generated tokens (`GeneratedTokens`; 0 counts as 1: a request yields at least its
    /// first token), tokens.
    pub output: u32,
}

/// A parsed trace file.
#[derive(Clone, PartialEq)]
pub struct Trace {
    /// Rows in file order (times non-decreasing).
    pub rows: Vec<TraceRow>,
    /// Length of one loop, s (unscaled): the last row's time plus the mean gap between rows.
    pub period_seconds: f64,
    /// Mean prompt tokens over the rows, tokens.
    pub mean_input: f64,
    /// Mean generated tokens over the rows, tokens.
    pub mean_output: f64,
    /// Largest prompt of any row, tokens.
    pub max_input: u32,
    /// 1-based line of the largest prompt (for error messages).
    pub max_input_line: usize,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("rows", &self.rows.len())
            .field("period_seconds", &self.period_seconds)
            .field("mean_input", &self.mean_input)
            .field("mean_output", &self.mean_output)
            .finish()
    }
}

fn trace_error(file: &str, line: usize, column: &str, problem: impl Into<String>) -> BenchError {
    BenchError::Trace {
        file: file.to_string(),
        line,
        column: column.to_string(),
        problem: problem.into(),
    }
}

const COLUMNS: [&str; 3] = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"];

/// Days from 1970-01-01 to the civil date `y-m-d` (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A timestamp as (whole seconds, fraction of a second in [0, 1)), so that differences keep
/// sub-microsecond precision.
fn parse_timestamp(s: &str) -> Result<(i64, f64), String> {
    let bad =
        || format!("expected a date-time like 2023-11-16 18:15:46.6805900 or seconds, got {s:?}");
    if !s.contains(':') {
        let v: f64 = s.parse().map_err(|_| bad())?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("seconds must be finite and >= 0, got {s:?}"));
        }
        let whole = v.floor();
        return Ok((whole as i64, v - whole));
    }
    let (date, time) = s.split_once([' ', 'T']).ok_or_else(bad)?;
    let mut d = date.split('-');
    let (Some(y), Some(mo), Some(day), None) = (d.next(), d.next(), d.next(), d.next()) else {
        return Err(bad());
    };
    let num = |x: &str| -> Result<i64, String> {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) || x.len() > 4 {
            return Err(bad());
        }
        x.parse().map_err(|_| bad())
    };
    let (y, mo, day) = (num(y)?, num(mo)?, num(day)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let time = time.trim_end_matches('Z');
    let mut t = time.split(':');
    let (Some(h), Some(mi), Some(sec), None) = (t.next(), t.next(), t.next(), t.next()) else {
        return Err(bad());
    };
    let (h, mi) = (num(h)?, num(mi)?);
    let (sec_whole, sec_frac) = match sec.split_once('.') {
        Some((w, f)) => {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let frac: f64 = format!("0.{f}").parse().map_err(|_| bad())?;
            (num(w)?, frac)
        }
        None => (num(sec)?, 0.0),
    };
    if h > 23 || mi > 59 || sec_whole > 60 {
        return Err(bad());
    }
    let whole = days_from_civil(y, mo, day) * 86_400 + h * 3600 + mi * 60 + sec_whole;
    Ok((whole, sec_frac))
}

fn parse_tokens(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| format!("expected a whole number of tokens >= 0, got {s:?}"))
}

impl Trace {
    /// Parses a trace CSV; `file` names it in errors (which give the 1-based line and the
    /// column).
    pub fn parse(text: &str, file: &str) -> Result<Trace, BenchError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty());
        let Some((header_line, header)) = lines.next() else {
            return Err(trace_error(
                file,
                1,
                "header",
                "empty file: expected the header TIMESTAMP,ContextTokens,GeneratedTokens",
            ));
        };
        let header_line_no = header_line;
        let names: Vec<&str> = header.split(',').map(str::trim).collect();
        let mut index = [usize::MAX; 3];
        for (i, name) in names.iter().enumerate() {
            let Some(k) = COLUMNS.iter().position(|c| c == name) else {
                return Err(trace_error(
                    file,
                    header_line_no,
                    name,
                    format!("unknown column {name:?}: expected {}", COLUMNS.join(",")),
                ));
            };
            if index[k] != usize::MAX {
                return Err(trace_error(
                    file,
                    header_line_no,
                    name,
                    "column listed twice",
                ));
            }
            index[k] = i;
        }
        if let Some(k) = index.iter().position(|&i| i == usize::MAX) {
            return Err(trace_error(
                file,
                header_line_no,
                COLUMNS[k],
                format!("missing column: expected {}", COLUMNS.join(",")),
            ));
        }
        let mut rows = Vec::new();
        let mut first: Option<(i64, f64)> = None;
        let mut last_t = 0.0;
        let (mut sum_in, mut sum_out) = (0.0, 0.0);
        let (mut max_input, mut max_input_line) = (0, header_line_no);
        for (line, text) in lines {
            let cells: Vec<&str> = text.split(',').map(str::trim).collect();
            if cells.len() != names.len() {
                return Err(trace_error(
                    file,
                    line,
                    "row",
                    format!(
                        "expected {} comma-separated values, got {}",
                        names.len(),
                        cells.len()
                    ),
                ));
            }
            let stamp = parse_timestamp(cells[index[0]])
                .map_err(|e| trace_error(file, line, COLUMNS[0], e))?;
            let input = parse_tokens(cells[index[1]])
                .map_err(|e| trace_error(file, line, COLUMNS[1], e))?;
            let output = parse_tokens(cells[index[2]])
                .map_err(|e| trace_error(file, line, COLUMNS[2], e))?;
            let (w0, f0) = *first.get_or_insert(stamp);
            let t = (stamp.0 - w0) as f64 + (stamp.1 - f0);
            if t < last_t - 1e-9 {
                return Err(trace_error(
                    file,
                    line,
                    COLUMNS[0],
                    format!(
                        "times must not decrease: {:.6} s after the first row, the row before \
                         is at {last_t:.6} s",
                        t
                    ),
                ));
            }
            let t = t.max(last_t);
            last_t = t;
            if input > max_input {
                (max_input, max_input_line) = (input, line);
            }
            let output = output.max(1);
            sum_in += f64::from(input);
            sum_out += f64::from(output);
            rows.push(TraceRow { t, input, output });
        }
        if rows.len() < 2 || last_t <= 0.0 {
            return Err(trace_error(
                file,
                header_line_no,
                COLUMNS[0],
                format!(
                    "a trace needs at least two rows at different times, got {} row(s) over {last_t} s",
                    rows.len()
                ),
            ));
        }
        let n = rows.len() as f64;
        Ok(Trace {
            period_seconds: last_t + last_t / (n - 1.0),
            mean_input: sum_in / n,
            mean_output: sum_out / n,
            max_input,
            max_input_line,
            rows,
        })
    }
}

/// A trace with its scaling: what a `traffic: {shape: trace}` model replays.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    /// The trace.
    pub trace: Arc<Trace>,
    /// Copies per row (expected), dimensionless, > 0.
    pub rate_scale: f64,
    /// Stretch of time (trace time x timeScale), dimensionless, > 0.
    pub time_scale: f64,
    /// Scaled row times (row time x timeScale), s.
    times: Vec<f64>,
}

impl Replay {
    /// `trace` replayed with `rate_scale` copies per row and time stretched by `time_scale`.
    pub fn new(trace: Arc<Trace>, rate_scale: f64, time_scale: f64) -> Replay {
        let times = trace.rows.iter().map(|r| r.t * time_scale).collect();
        Replay {
            trace,
            rate_scale,
            time_scale,
            times,
        }
    }

    /// Length of one loop of the scaled trace, s.
    pub fn period(&self) -> f64 {
        self.trace.period_seconds * self.time_scale
    }

    /// Rows (one copy each) of the looped, scaled trace arriving in `[a, b)` (s).
    fn rows_in(&self, a: f64, b: f64) -> usize {
        let p = self.period();
        if b <= a || p <= 0.0 {
            return 0;
        }
        let mut n = 0;
        let mut k = (a / p).floor().max(0.0);
        while k * p < b {
            let lo = a - k * p;
            let hi = b - k * p;
            let i = self.times.partition_point(|&x| x < lo);
            let j = self.times.partition_point(|&x| x < hi);
            n += j - i;
            k += 1.0;
        }
        n
    }

    /// Expected arrival rate in the [`RATE_BIN_SECONDS`] bin holding `t` (s), req/s.
    pub fn rate(&self, t: f64) -> f64 {
        let b = (t.max(0.0) / RATE_BIN_SECONDS).floor() * RATE_BIN_SECONDS;
        self.rate_scale * self.rows_in(b, b + RATE_BIN_SECONDS) as f64 / RATE_BIN_SECONDS
    }

    /// Highest binned rate over the bins meeting `[from, to]` (s), req/s.
    pub fn max_rate(&self, from: f64, to: f64) -> f64 {
        let first = (from.max(0.0) / RATE_BIN_SECONDS).floor();
        let last = (to.max(from).max(0.0) / RATE_BIN_SECONDS).floor();
        let mut best = 0.0f64;
        let mut k = first;
        while k <= last {
            best = best.max(self.rate(k * RATE_BIN_SECONDS));
            k += 1.0;
        }
        best
    }
}

/// One arrival of a replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrival {
    /// Arrival time, s from the start of the run.
    pub t: f64,
    /// Prompt tokens.
    pub input: u32,
    /// Generated tokens (before the simulator's KV-cache cap).
    pub output: u32,
}

/// The arrivals of a replay in time order, seeded.
#[derive(Clone, Debug)]
pub struct Arrivals {
    replay: Arc<Replay>,
    rng: SplitMix64,
    /// Loop number of the next row to expand.
    lap: u64,
    /// Index of the next row to expand.
    row: usize,
    /// Expanded arrivals not taken yet, in time order.
    queue: VecDeque<Arrival>,
}

impl Arrivals {
    /// The arrivals of `replay` with random draws from `seed`.
    pub fn new(replay: Arc<Replay>, seed: u64) -> Arrivals {
        let mut a = Arrivals {
            replay,
            rng: SplitMix64::new(seed),
            lap: 0,
            row: 0,
            queue: VecDeque::new(),
        };
        a.fill();
        a
    }

    /// Time of the next arrival, s (infinite when there is none).
    pub fn next_time(&self) -> f64 {
        self.queue.front().map_or(f64::INFINITY, |a| a.t)
    }

    /// Takes the next arrival.
    pub fn pop(&mut self) -> Option<Arrival> {
        let a = self.queue.pop_front();
        if self.queue.is_empty() {
            self.fill();
        }
        a
    }

    /// Expands rows until at least one arrival is queued (rows may get no copy when
    /// `rateScale < 1`, so this may take ~1/rateScale rows; it gives up, ending the replay,
    /// only after `MAX_EMPTY_ROWS` rows in a row without a copy).
    fn fill(&mut self) {
        let r = Arc::clone(&self.replay);
        let n = r.times.len();
        if n == 0 {
            return;
        }
        let whole = r.rate_scale.floor();
        let frac = r.rate_scale - whole;
        let period = r.period();
        let mut tries = 0usize;
        while self.queue.is_empty() && tries < MAX_EMPTY_ROWS {
            tries += 1;
            let base = self.lap as f64 * period;
            let t = base + r.times[self.row];
            let next = if self.row + 1 < n {
                base + r.times[self.row + 1]
            } else {
                base + period
            };
            let row = r.trace.rows[self.row];
            let mut copies = whole as u64;
            if frac > 0.0 && self.rng.unit_half_open() < frac {
                copies += 1;
            }
            let spread = (next - t).clamp(0.0, JITTER_MAX_SECONDS);
            let mut batch: Vec<f64> = (0..copies)
                .map(|c| {
                    if c == 0 {
                        t
                    } else {
                        t + self.rng.unit_half_open() * spread
                    }
                })
                .collect();
            batch.sort_by(f64::total_cmp);
            self.queue.extend(batch.into_iter().map(|t| Arrival {
                t,
                input: row.input,
                output: row.output,
            }));
            self.row += 1;
            if self.row == n {
                self.row = 0;
                self.lap += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_count_from_the_first_row() {
        let a = parse_timestamp("2023-11-16 18:15:46.6805900").unwrap();
        let b = parse_timestamp("2023-11-17 00:00:01.5").unwrap();
        let d = (b.0 - a.0) as f64 + (b.1 - a.1);
        assert!(
            (d - (5.0 * 3600.0 + 44.0 * 60.0 + 14.81941)).abs() < 1e-6,
            "{d}"
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert!(parse_timestamp("2023-13-01 00:00:00").is_err());
        assert!(parse_timestamp("yesterday").is_err());
        assert_eq!(parse_timestamp("12.25").unwrap(), (12, 0.25));
    }
}
