//! Parsing real dumps and name sets: the figures a single scrape gives.
//!
//! A single dump has no window, so it is read as "increase since the server started over
//! 1 s" (`pod::totals_since_start`): rates equal the counter totals, means and quantiles
//! are over the server's lifetime. Expected numbers are hand-computed from the files.

mod common;

use common::{observe_one, val};
use wvo_collector::names::Flavor;
use wvo_collector::pod;
use wvo_collector::text;

const V0: &str = include_str!("data/vllm-0.5-v0-datadog-fixture.prom");
const SGLANG: &str = include_str!("data/sglang-0.4-docs-production-metrics.prom");

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn vllm_v0_dump_gives_the_right_figures() {
    let expo = text::parse(V0).expect("V0 dump parses");
    assert!(!expo.truncated);
    assert_eq!(
        pod::models_in(&expo).into_iter().collect::<Vec<_>>(),
        vec!["facebook/opt-125m"]
    );
    let pf = pod::totals_since_start("ns", "p0", "facebook/opt-125m", &expo);
    assert_eq!(
        pf.flavors.iter().copied().collect::<Vec<_>>(),
        vec![Flavor::VllmV0]
    );
    let obs = observe_one(pf);
    let m = obs.model("facebook/opt-125m").expect("model");
    let f = &m.variants[0].figures;
    // cache_config_info: num_gpu_blocks=7281, block_size=16 (no model_name label in V0).
    assert_eq!(val(&f.kv_capacity_tokens), 7281.0 * 16.0);
    assert_eq!(
        f.kv_capacity_tokens.metric(),
        Some("vllm:cache_config_info")
    );
    assert_eq!(val(&f.running), 0.0);
    assert_eq!(val(&f.waiting), 0.0);
    assert_eq!(val(&f.kv_usage), 0.0);
    assert_eq!(f.kv_usage.metric(), Some("vllm:gpu_cache_usage_perc"));
    // request_success_total{finished_reason="length"} 1
    assert_eq!(val(&f.arrival_rate_rps), 1.0);
    // request_prompt_tokens sum 5 / count 1; request_generation_tokens 7 / 1
    assert_eq!(val(&f.avg_input_tokens), 5.0);
    assert_eq!(val(&f.avg_output_tokens), 7.0);
    // TTFT: one request, sum 0.31326723098754883, in bucket (0.25, 0.5]
    assert!(close(val(&f.ttft_mean_seconds), 0.31326723098754883));
    assert!(close(val(&f.ttft_p95_seconds), 0.25 + 0.25 * 0.95));
    // TPOT (V0 name for ITL): sum 0.19016313552856445 / 6, all 6 in (0.025, 0.05]
    assert!(close(val(&f.itl_mean_seconds), 0.19016313552856445 / 6.0));
    assert_eq!(
        f.itl_mean_seconds.metric(),
        Some("vllm:time_per_output_token_seconds_sum/vllm:time_per_output_token_seconds_count")
    );
    assert!(close(val(&f.itl_p95_seconds), 0.025 + 0.025 * 5.7 / 6.0));
    assert_eq!(val(&f.preemptions_per_second), 0.0);
    assert_eq!(val(&f.ready_replicas), 1.0);
    assert!(f.pending_replicas.reason().is_some());
    assert!(m.gateway_queue.reason().is_some());
}

#[test]
fn sglang_dump_gives_the_right_figures() {
    let expo = text::parse(SGLANG).expect("SGLang dump parses");
    let model = "meta-llama/Llama-3.1-8B-Instruct";
    let pf = pod::totals_since_start("ns", "p0", model, &expo);
    assert_eq!(
        pf.flavors.iter().copied().collect::<Vec<_>>(),
        vec![Flavor::Sglang]
    );
    let obs = observe_one(pf);
    let f = &obs.model(model).expect("model").figures;
    assert_eq!(val(&f.running), 162.0);
    assert_eq!(val(&f.waiting), 2826.0);
    assert_eq!(val(&f.kv_usage), 0.28);
    assert_eq!(f.kv_usage.metric(), Some("sglang:token_usage"));
    // No request counter in 0.4: e2e latency count (11228) stands in.
    assert_eq!(val(&f.arrival_rate_rps), 11228.0);
    assert_eq!(
        f.arrival_rate_rps.metric(),
        Some("sglang:e2e_request_latency_seconds_count")
    );
    assert!(close(val(&f.avg_input_tokens), 8.128902e6 / 11228.0));
    assert!(close(val(&f.avg_output_tokens), 7.557572e6 / 11228.0));
    assert!(close(
        val(&f.ttft_mean_seconds),
        2.3518979474117756e6 / 11008.0
    ));
    // 95% of 11008 lies above the highest finite bucket (30 s): lower bound 30.
    assert_eq!(val(&f.ttft_p95_seconds), 30.0);
    assert!(close(
        val(&f.itl_mean_seconds),
        866964.5791549598 / 7.400757e6
    ));
    let rank = 0.95 * 7.400757e6;
    let p95 = 0.1 + 0.05 * (rank - 4.950195e6) / (7.039435e6 - 4.950195e6);
    assert!(close(val(&f.itl_p95_seconds), p95));
    // SGLang 0.4 exports no KV capacity.
    assert!(f.kv_capacity_tokens.reason().is_some());
}

/// A V1 fragment (names and labels as in vLLM's V1 `PrometheusStatLogger`): two engines
/// (data parallel) in one pod, `_created` samples, new KV and ITL names.
const V1_DP: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 5.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.4
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.9
vllm:gpu_cache_usage_perc{engine="1",model_name="m"} 0.9
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="1000"} 1.0
vllm:cache_config_info{block_size="16",engine="1",num_gpu_blocks="1000"} 1.0
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="m"} 2.0
vllm:num_preemptions_total{engine="1",model_name="m"} 1.0
# TYPE vllm:num_preemptions_created gauge
vllm:num_preemptions_created{engine="0",model_name="m"} 1.75e9
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 10.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 5.0
vllm:request_success_total{engine="1",finished_reason="stop",model_name="m"} 5.0
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.01",model_name="m"} 0.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.025",model_name="m"} 10.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="+Inf",model_name="m"} 10.0
vllm:inter_token_latency_seconds_count{engine="0",model_name="m"} 10.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="m"} 0.2
vllm:inter_token_latency_seconds_created{engine="0",model_name="m"} 1.75e9
vllm:inter_token_latency_seconds_bucket{engine="1",le="0.01",model_name="m"} 10.0
vllm:inter_token_latency_seconds_bucket{engine="1",le="0.025",model_name="m"} 10.0
vllm:inter_token_latency_seconds_bucket{engine="1",le="+Inf",model_name="m"} 10.0
vllm:inter_token_latency_seconds_count{engine="1",model_name="m"} 10.0
vllm:inter_token_latency_seconds_sum{engine="1",model_name="m"} 0.05
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 99.0
vllm:time_per_output_token_seconds_count{engine="0",model_name="m"} 99.0
vllm:time_per_output_token_seconds_sum{engine="0",model_name="m"} 99.0
"#;

#[test]
fn vllm_v1_names_with_engines_are_combined_per_pod() {
    let expo = text::parse(V1_DP).expect("parses");
    assert_eq!(expo.created_dropped, 2);
    let pf = pod::totals_since_start("ns", "p0", "m", &expo);
    assert_eq!(
        pf.flavors.iter().copied().collect::<Vec<_>>(),
        vec![Flavor::VllmV1]
    );
    let obs = observe_one(pf);
    let f = &obs.model("m").expect("model").figures;
    assert_eq!(val(&f.running), 8.0, "engines are summed");
    assert_eq!(val(&f.waiting), 1.0);
    assert!(close(val(&f.kv_usage), 0.3), "engines are averaged");
    assert_eq!(
        f.kv_usage.metric(),
        Some("vllm:kv_cache_usage_perc"),
        "new name preferred"
    );
    assert_eq!(val(&f.kv_capacity_tokens), 32000.0);
    assert_eq!(val(&f.preemptions_per_second), 3.0);
    assert_eq!(val(&f.arrival_rate_rps), 20.0);
    // ITL preferred over the deprecated TPOT; merged over engines: 0.25 s / 20.
    assert!(close(val(&f.itl_mean_seconds), 0.0125));
    assert!(f
        .itl_mean_seconds
        .metric()
        .is_some_and(|m| m.starts_with("vllm:inter_token_latency_seconds")));
    // 20 observations: 10 in (0, 0.01], 10 in (0.01, 0.025]; rank 19 -> 0.01 + 0.015 * 9/10.
    assert!(close(val(&f.itl_p95_seconds), 0.01 + 0.015 * 0.9));
    // No TTFT family at all: unknown, not 0.
    assert!(f
        .ttft_mean_seconds
        .reason()
        .is_some_and(|r| r.contains("not") || r.contains("none")));
}

#[test]
fn truncated_histogram_is_tolerated_and_reported() {
    // The body is cut inside the histogram: no +Inf bucket, no _count, no final newline.
    let body = "vllm:num_requests_running{model_name=\"m\"} 1\n\
        vllm:time_to_first_token_seconds_sum{model_name=\"m\"} 2.0\n\
        vllm:time_to_first_token_seconds_bucket{le=\"0.1\",model_name=\"m\"} 1\n\
        vllm:time_to_first_token_seconds_bucket{le=\"0.5\",model_name=\"m\"} 4\n\
        vllm:time_to_first_token_seconds_bucket{le=\"1.0\",mod";
    let expo = text::parse(body).expect("truncated body is tolerated");
    assert!(expo.truncated);
    let obs = observe_one(pod::totals_since_start("ns", "p0", "m", &expo));
    let f = &obs.model("m").expect("model").figures;
    assert_eq!(val(&f.running), 1.0);
    let reason = f.ttft_mean_seconds.reason().expect("mean unknown");
    assert!(reason.contains("truncated"), "{reason}");
    let reason = f.ttft_p95_seconds.reason().expect("p95 unknown");
    assert!(reason.contains("truncated"), "{reason}");
    // Other figures are unaffected: running is known, arrival has no counter -> unknown.
    assert!(f.arrival_rate_rps.reason().is_some());
}

#[test]
fn nan_and_inf_are_unknown_not_zero() {
    let body = "vllm:num_requests_running{model_name=\"m\"} NaN\n\
        vllm:num_requests_waiting{model_name=\"m\"} +Inf\n\
        vllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\n";
    let expo = text::parse(body).expect("parses");
    let obs = observe_one(pod::totals_since_start("ns", "p0", "m", &expo));
    let f = &obs.model("m").expect("model").figures;
    assert!(f.running.reason().is_some_and(|r| r.contains("NaN")));
    assert!(f.waiting.reason().is_some_and(|r| r.contains("infinite")));
    assert_eq!(val(&f.kv_usage), 0.5);
}

#[test]
fn sglang_names_current_generation() {
    let body = "sglang:num_running_reqs{model_name=\"m\",tp_rank=\"0\"} 4\n\
        sglang:num_queue_reqs{model_name=\"m\",tp_rank=\"0\"} 2\n\
        sglang:token_usage{model_name=\"m\",tp_rank=\"0\"} 0.5\n\
        sglang:max_total_num_tokens{model_name=\"m\",tp_rank=\"0\"} 50000\n\
        sglang:num_requests_total{model_name=\"m\"} 7\n\
        sglang:num_retracted_requests_total{model_name=\"m\"} 1\n\
        sglang:inter_token_latency_seconds_bucket{le=\"0.1\",model_name=\"m\"} 4\n\
        sglang:inter_token_latency_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 4\n\
        sglang:inter_token_latency_seconds_sum{model_name=\"m\"} 0.2\n\
        sglang:inter_token_latency_seconds_count{model_name=\"m\"} 4\n";
    let expo = text::parse(body).expect("parses");
    let obs = observe_one(pod::totals_since_start("ns", "p0", "m", &expo));
    let f = &obs.model("m").expect("model").figures;
    assert_eq!(val(&f.kv_capacity_tokens), 50000.0);
    assert_eq!(val(&f.arrival_rate_rps), 7.0);
    assert_eq!(
        f.arrival_rate_rps.metric(),
        Some("sglang:num_requests_total")
    );
    assert_eq!(val(&f.preemptions_per_second), 1.0);
    assert!(close(val(&f.itl_mean_seconds), 0.05));
}

#[test]
fn rates_come_from_two_scrapes_and_survive_a_restart() {
    let a = text::parse(
        "vllm:num_requests_running{model_name=\"m\"} 1\nvllm:request_success_total{model_name=\"m\",finished_reason=\"stop\"} 100\nvllm:prompt_tokens_total{model_name=\"m\"} 1000\n",
    )
    .expect("parses");
    let b = text::parse(
        "vllm:num_requests_running{model_name=\"m\"} 1\nvllm:request_success_total{model_name=\"m\",finished_reason=\"stop\"} 120\nvllm:request_success_total{model_name=\"m\",finished_reason=\"length\"} 10\nvllm:prompt_tokens_total{model_name=\"m\"} 50\n",
    )
    .expect("parses");
    let pf = pod::from_scrapes("ns", "p", "m", Some((&a, 10.0)), &b, 1.0);
    let obs = observe_one(pf);
    let f = &obs.model("m").expect("model").figures;
    // (120-100) + 10 (new series) over 10 s
    assert_eq!(val(&f.arrival_rate_rps), 3.0);
    // the prompt counter went down (restart): counted from 0 -> 50 tokens / 30 requests
    assert!(close(val(&f.avg_input_tokens), 50.0 / 30.0));
    // a single scrape: rates unknown with the reason
    let one = observe_one(pod::from_scrapes("ns", "p", "m", None, &b, 1.0));
    let f1 = &one.model("m").expect("model").figures;
    assert!(f1
        .arrival_rate_rps
        .reason()
        .is_some_and(|r| r.contains("two scrapes")));
    assert_eq!(val(&f1.running), 1.0);
}

#[test]
fn in_flight_growth_comes_from_two_scrapes_of_the_gauges() {
    let a = text::parse(
        "vllm:num_requests_running{model_name=\"m\"} 10\nvllm:num_requests_waiting{model_name=\"m\"} 0\nvllm:request_success_total{model_name=\"m\"} 100\n",
    )
    .expect("parses");
    // 5 s later: 20 requests completed, the batch grew by 6 and 4 are waiting.
    let b = text::parse(
        "vllm:num_requests_running{model_name=\"m\"} 16\nvllm:num_requests_waiting{model_name=\"m\"} 4\nvllm:request_success_total{model_name=\"m\"} 120\n",
    )
    .expect("parses");
    let obs = observe_one(pod::from_scrapes("ns", "p", "m", Some((&a, 5.0)), &b, 1.0));
    let f = &obs.model("m").expect("model").figures;
    assert_eq!(val(&f.arrival_rate_rps), 4.0);
    // (6 + 4) more requests in the server over 5 s: 2 req/s arrived beyond completions.
    assert!(close(val(&f.in_flight_growth_rps), 2.0));
    assert_eq!(
        f.in_flight_growth_rps.metric(),
        Some("vllm:num_requests_running,vllm:num_requests_waiting")
    );
    // A draining backlog is a negative growth.
    let back = observe_one(pod::from_scrapes("ns", "p", "m", Some((&b, 5.0)), &a, 1.0));
    let fb = &back.model("m").expect("model").figures;
    assert!(close(val(&fb.in_flight_growth_rps), -2.0));
    // One scrape, or a gauge the previous scrape lacked: unknown with the reason.
    let one = observe_one(pod::from_scrapes("ns", "p", "m", None, &b, 1.0));
    let f1 = &one.model("m").expect("model").figures;
    assert!(f1
        .in_flight_growth_rps
        .reason()
        .is_some_and(|r| r.contains("two scrapes")));
    let no_waiting =
        text::parse("vllm:num_requests_running{model_name=\"m\"} 10\n").expect("parses");
    let late = observe_one(pod::from_scrapes(
        "ns",
        "p",
        "m",
        Some((&no_waiting, 5.0)),
        &b,
        1.0,
    ));
    let fl = &late.model("m").expect("model").figures;
    assert!(fl
        .in_flight_growth_rps
        .reason()
        .is_some_and(|r| r.contains("vllm:num_requests_waiting not in the previous scrape")));
}

#[test]
fn stale_pod_makes_group_unknown() {
    let b = text::parse("vllm:num_requests_running{model_name=\"m\"} 1\n").expect("parses");
    let pf = pod::from_scrapes("ns", "p", "m", None, &b, 500.0);
    let obs = observe_one(pf);
    let f = &obs.model("m").expect("model").figures;
    assert!(f.running.reason().is_some_and(|r| r.contains("stale")));
    assert_eq!(val(&f.ready_replicas), 0.0);
}
