//! A model's past arrival rate from Prometheus range queries (`/api/v1/query_range`), so a
//! restarted controller has a rate history to find a period in and forecast from.
//!
//! ```text
//!  RateRange (evaluation times: one per history bucket, UNIX s) ─► split (at most
//!      MAX_POINTS_PER_REQUEST points each) ─► one query_range per piece, in order
//!      ─► parse_range_response (pure) ─► rates_by_model (pure) ─► ModelRates
//! ```
//!
//! The rate is the one the instant path gives a model's load: completions (the
//! [`Scalar::RequestRate`] names, the first one each pod has) plus the growth of the
//! requests in the servers (`deriv` of running and waiting), never below 0; the
//! completions alone where the growth has no series. One query for all models, summed
//! `by (namespace, model_name)`.

use crate::error::CollectorError;
use crate::http;
use crate::names::Scalar;
use crate::prometheus::{matchers, parse_api_data, PrometheusSource};
use crate::text::parse_value;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Most evaluation times (points per series) Prometheus answers in one range query; a
/// longer range is split into several requests.
pub const MAX_POINTS_PER_REQUEST: usize = 11_000;

/// One point of a model's arrival-rate series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatePoint {
    /// Evaluation time, UNIX seconds (the rate is over the window ending then).
    pub at_seconds: f64,
    /// Arrival rate, req/s (NaN or infinite when Prometheus answered so).
    pub rps: f64,
}

/// Arrival-rate series per (namespace, model_name), points in time order.
pub type ModelRates = BTreeMap<(String, String), Vec<RatePoint>>;

/// The evaluation times of a range query: `start_seconds`, then every `step_seconds` up
/// to `end_seconds` (inclusive), UNIX seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateRange {
    /// First evaluation time, UNIX s.
    pub start_seconds: f64,
    /// Last evaluation time, UNIX s.
    pub end_seconds: f64,
    /// Time between evaluations, s (> 0).
    pub step_seconds: f64,
}

impl RateRange {
    /// One evaluation in the middle of each of the `buckets` newest buckets of
    /// `bucket_seconds` (buckets start at multiples of it since the UNIX epoch) whose
    /// middle is not after `now_unix_seconds`. The middle: a controller that records its
    /// trailing-window rate every cycle fills a bucket with rates centred, on average, on
    /// the bucket's start; a rate over the same window evaluated mid-bucket is centred
    /// there too. None for no bucket or non-finite or non-positive inputs.
    pub fn for_history(now_unix_seconds: f64, buckets: usize, bucket_seconds: f64) -> Option<Self> {
        if buckets == 0
            || !now_unix_seconds.is_finite()
            || !(bucket_seconds.is_finite() && bucket_seconds > 0.0)
        {
            return None;
        }
        let mut end =
            (now_unix_seconds / bucket_seconds).floor() * bucket_seconds + bucket_seconds / 2.0;
        if end > now_unix_seconds {
            end -= bucket_seconds;
        }
        Some(RateRange {
            start_seconds: end - (buckets - 1) as f64 * bucket_seconds,
            end_seconds: end,
            step_seconds: bucket_seconds,
        })
    }

    /// Number of evaluation times (0 for an empty or unusable range).
    pub fn points(&self) -> usize {
        let span = self.end_seconds - self.start_seconds;
        if !(span.is_finite() && span >= 0.0 && self.step_seconds > 0.0) {
            return 0;
        }
        (span / self.step_seconds + 1e-9).floor() as usize + 1
    }

    /// Consecutive ranges of at most `max_points` evaluation times each (at least 1),
    /// oldest first, covering exactly this range's evaluation times.
    pub fn split(&self, max_points: usize) -> Vec<RateRange> {
        let n = self.points();
        let per = max_points.max(1);
        (0..n)
            .step_by(per)
            .map(|first| {
                let last = (first + per).min(n) - 1;
                RateRange {
                    start_seconds: self.start_seconds + first as f64 * self.step_seconds,
                    end_seconds: self.start_seconds + last as f64 * self.step_seconds,
                    step_seconds: self.step_seconds,
                }
            })
            .collect()
    }
}

const BY_POD: &str = "namespace, model_name, pod";
const BY_MODEL: &str = "namespace, model_name";

/// The PromQL of a model's arrival rate, req/s, over `window_s` seconds, label matchers
/// `sel` (without braces; see [`matchers`]): per pod the first candidate name it has
/// (`or` keeps the left side's series), summed per model; completions plus the growth of
/// running and waiting requests, or the completions alone; at least 0.
pub fn arrival_rate_promql(window_s: u64, sel: &str) -> String {
    let w = format!("{window_s}s");
    let per_pod = |s: Scalar, func: &str| {
        let branches: Vec<String> = s
            .candidates()
            .iter()
            .map(|n| format!("sum by ({BY_POD}) ({func}({n}{{{sel}}}[{w}]))"))
            .collect();
        format!("sum by ({BY_MODEL}) ({})", branches.join(" or "))
    };
    let completions = per_pod(Scalar::RequestRate, "rate");
    let growth = format!(
        "{} + {}",
        per_pod(Scalar::RunningGrowth, "deriv"),
        per_pod(Scalar::WaitingGrowth, "deriv")
    );
    format!("clamp_min(({completions} + ({growth})) or {completions}, 0)")
}

/// One series of a range-query result.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// Its points, in the order Prometheus sent them (time order).
    pub points: Vec<RatePoint>,
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// Parse a range-query response (pure). `url` and `query` are for messages (the URL
/// without credentials). A `matrix` result gives its series; NaN and infinities are kept
/// as such; any other result type, a missing field or a value that is not a number is an
/// error naming where.
pub fn parse_range_response(
    url: &str,
    query: &str,
    status: u16,
    body: &str,
) -> Result<Vec<RangeSeries>, CollectorError> {
    let (result_type, result) = parse_api_data(url, query, status, body)?;
    if result_type != "matrix" {
        return Err(CollectorError::Parse {
            url: url.into(),
            location: "data.resultType".into(),
            problem: format!("expected matrix, got {result_type}"),
        });
    }
    let items: Vec<MatrixItem> =
        serde_json::from_value(result).map_err(|e| CollectorError::Parse {
            url: url.into(),
            location: "data.result".into(),
            problem: e.to_string(),
        })?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, it)| {
            let points = it
                .values
                .iter()
                .enumerate()
                .map(|(j, (t, v))| {
                    let rps = parse_value(v).ok_or_else(|| CollectorError::Parse {
                        url: url.into(),
                        location: format!("data.result[{i}].values[{j}]"),
                        problem: format!("`{v}` is not a number"),
                    })?;
                    Ok(RatePoint {
                        at_seconds: *t,
                        rps,
                    })
                })
                .collect::<Result<Vec<_>, CollectorError>>()?;
            Ok(RangeSeries {
                labels: it.metric,
                points,
            })
        })
        .collect()
}

/// The series of one or more range queries (e.g. the pieces of a split range) per
/// (namespace, model_name), each in time order with one point per time (pure). Series
/// without a `model_name` label are skipped.
pub fn rates_by_model(series: impl IntoIterator<Item = RangeSeries>) -> ModelRates {
    let mut out = ModelRates::new();
    for s in series {
        let label = |n: &str| s.labels.get(n).cloned().unwrap_or_default();
        let model = label("model_name");
        if model.is_empty() {
            continue;
        }
        out.entry((label("namespace"), model))
            .or_default()
            .extend(s.points);
    }
    for points in out.values_mut() {
        points.sort_by(|a, b| a.at_seconds.total_cmp(&b.at_seconds));
        points.dedup_by(|a, b| a.at_seconds == b.at_seconds);
    }
    out
}

impl PrometheusSource {
    /// Every model's arrival rate over `range` (the definition of
    /// [`arrival_rate_promql`], over this source's window and namespace/model filters),
    /// with one range query per piece of at most `max_points_per_request` points (use
    /// [`MAX_POINTS_PER_REQUEST`]), run one after the other, each within the configured
    /// timeout and with the same token and CAs as the instant queries. The first failing
    /// piece fails the whole read; errors name the `query_range` URL without credentials.
    pub async fn arrival_rates(
        &self,
        range: RateRange,
        max_points_per_request: usize,
    ) -> Result<ModelRates, CollectorError> {
        let mut endpoint = self.query_url.clone();
        endpoint.set_query(None);
        endpoint.set_path(&format!("{}_range", endpoint.path()));
        let shown = http::without_credentials(&endpoint);
        let sel = matchers(self.cfg.namespace.as_deref(), self.cfg.model.as_deref());
        let window_s = self.window.window_seconds.round().max(1.0) as u64;
        let promql = arrival_rate_promql(window_s, &sel);
        let mut series = Vec::new();
        for piece in range.split(max_points_per_request) {
            let url = reqwest::Url::parse_with_params(
                endpoint.as_str(),
                &[
                    ("query", promql.as_str()),
                    ("start", &format!("{:.3}", piece.start_seconds)),
                    ("end", &format!("{:.3}", piece.end_seconds)),
                    ("step", &format!("{}", piece.step_seconds)),
                ],
            )
            .map_err(|e| CollectorError::Config {
                field: "prometheus URL",
                problem: format!("{shown}: {e}"),
            })?;
            let (status, body) =
                http::get_shown_as(&self.client, &self.cfg.http, url, &shown).await?;
            series.extend(parse_range_response(&shown, &promql, status, &body)?);
        }
        Ok(rates_by_model(series))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://prom:9090/api/v1/query_range";

    #[test]
    fn the_history_range_is_one_point_per_bucket_middle_up_to_now() {
        // 10:00:40 -> the newest middle is 10:00:30.
        let r = RateRange::for_history(36_040.0, 3, 60.0).expect("range");
        assert_eq!(r.end_seconds, 36_030.0);
        assert_eq!(r.start_seconds, 36_030.0 - 120.0);
        assert_eq!(r.points(), 3);
        // 10:00:10: bucket 10:00 has no middle yet; the previous one is the newest.
        let r = RateRange::for_history(36_010.0, 2_882, 60.0).expect("range");
        assert_eq!(r.end_seconds, 35_970.0);
        assert_eq!(r.points(), 2_882);
        assert!(RateRange::for_history(f64::NAN, 3, 60.0).is_none());
        assert!(RateRange::for_history(0.0, 0, 60.0).is_none());
        assert!(RateRange::for_history(0.0, 3, 0.0).is_none());
    }

    #[test]
    fn a_long_range_is_split_without_gaps_or_overlaps() {
        let r = RateRange {
            start_seconds: 30.0,
            end_seconds: 30.0 + 24_999.0 * 60.0,
            step_seconds: 60.0,
        };
        assert_eq!(r.points(), 25_000);
        let pieces = r.split(MAX_POINTS_PER_REQUEST);
        assert_eq!(
            pieces.iter().map(RateRange::points).collect::<Vec<_>>(),
            vec![11_000, 11_000, 3_000]
        );
        assert_eq!(pieces[0].start_seconds, r.start_seconds);
        assert_eq!(pieces[2].end_seconds, r.end_seconds);
        for w in pieces.windows(2) {
            assert_eq!(w[1].start_seconds - w[0].end_seconds, 60.0);
        }
        // Within the limit: one request; a limit of 0 still makes progress.
        assert_eq!(r.split(25_000), vec![r]);
        assert_eq!(r.split(0).len(), 25_000);
    }

    #[test]
    fn the_query_is_the_instant_paths_arrival_rate_per_model() {
        let q = arrival_rate_promql(60, r#"namespace="llm""#);
        for name in Scalar::RequestRate.candidates() {
            assert!(
                q.contains(&format!(
                    "sum by (namespace, model_name, pod) (rate({name}{{namespace=\"llm\"}}[60s]))"
                )),
                "{name}: {q}"
            );
        }
        for name in ["vllm:num_requests_running", "sglang:num_queue_reqs"] {
            assert!(
                q.contains(&format!("deriv({name}{{namespace=\"llm\"}}[60s])")),
                "{q}"
            );
        }
        assert!(q.starts_with("clamp_min(("), "{q}");
        assert!(q.ends_with(", 0)"), "{q}");
        // No filters: empty selectors.
        assert!(arrival_rate_promql(30, "").contains("rate(vllm:request_success_total{}[30s])"));
    }

    const BODY: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"namespace":"llm","model_name":"chat"},"values":[[1000.5,"4.5"],[1060.5,"NaN"],[1120.5,"6"]]},
        {"metric":{"namespace":"llm","model_name":"code"},"values":[[1000.5,"1"]]},
        {"metric":{"namespace":"llm"},"values":[[1000.5,"9"]]}
    ]}}"#;

    #[test]
    fn a_matrix_gives_each_models_series() {
        let series = parse_range_response(URL, "q", 200, BODY).expect("parse");
        assert_eq!(series.len(), 3);
        assert_eq!(
            series[0].points[0],
            RatePoint {
                at_seconds: 1000.5,
                rps: 4.5
            }
        );
        assert!(series[0].points[1].rps.is_nan());
        let rates = rates_by_model(series);
        assert_eq!(rates.len(), 2, "the series without model_name is skipped");
        let chat = &rates[&("llm".to_string(), "chat".to_string())];
        assert_eq!(chat.len(), 3);
        assert_eq!(
            chat[2],
            RatePoint {
                at_seconds: 1120.5,
                rps: 6.0
            }
        );
    }

    #[test]
    fn pieces_of_a_split_range_join_in_time_order() {
        let piece = |t: f64, v: f64| RangeSeries {
            labels: [("namespace", "llm"), ("model_name", "chat")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            points: vec![RatePoint {
                at_seconds: t,
                rps: v,
            }],
        };
        let rates = rates_by_model([piece(120.0, 2.0), piece(60.0, 1.0), piece(120.0, 2.0)]);
        let chat = &rates[&("llm".to_string(), "chat".to_string())];
        assert_eq!(
            chat.iter().map(|p| p.at_seconds).collect::<Vec<_>>(),
            vec![60.0, 120.0]
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = parse_range_response(
            URL,
            "q",
            400,
            r#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries"}"#,
        )
        .expect_err("api error");
        assert_eq!(e.kind(), "query");
        assert!(e.to_string().contains("11,000 points"), "{e}");
        assert!(e.to_string().starts_with(URL), "{e}");

        let e = parse_range_response(URL, "q", 502, "<html>bad gateway</html>").expect_err("html");
        assert_eq!(e.kind(), "status");
        assert!(e.to_string().contains("HTTP 502"), "{e}");

        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        let e = parse_range_response(URL, "q", 200, vector).expect_err("vector");
        assert!(e.to_string().contains("expected matrix, got vector"), "{e}");

        let bad = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}"#;
        let e = parse_range_response(URL, "q", 200, bad).expect_err("bad value");
        assert!(e.to_string().contains("data.result[0].values[0]"), "{e}");

        let shape =
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{}}]}}"#;
        let e = parse_range_response(URL, "q", 200, shape).expect_err("no values");
        assert!(e.to_string().contains("data.result"), "{e}");

        let empty = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(
            parse_range_response(URL, "q", 200, empty).expect("empty"),
            vec![]
        );
    }
}
