//! The emulated vLLM server: in-process core and HTTP.

use std::sync::Arc;
use std::time::Duration;
use wvo_api::Profile;
use wvo_sim::model_server::{MetricsFlavor, ModelServer, Replica, ReplicaConfig, ServerConfig};

fn profile() -> Profile {
    Profile {
        alpha: 10.0,
        beta: 0.5,
        gamma: 20.0,
        delta: 0.05,
        max_batch_size: 64,
    }
}

#[test]
fn replica_in_process_serves_and_exports_v1_names() {
    let mut r = Replica::new(ReplicaConfig::new("m", profile()), 1.7e9).expect("replica");
    for i in 0..10 {
        r.submit(f64::from(i) * 100.0, 100, 20).expect("submit");
    }
    let done = r.advance_to(1e7);
    assert_eq!(done.len(), 10);
    let s = r.served();
    assert_eq!(
        (s.finished, s.prompt_tokens, s.generation_tokens),
        (10, 1000, 200)
    );
    let t = r.metrics_text();
    for needle in [
        "vllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"m\"} 10.0",
        "vllm:request_prompt_tokens_sum{engine=\"0\",model_name=\"m\"} 1000.0",
        "vllm:request_generation_tokens_count{engine=\"0\",model_name=\"m\"} 10.0",
        "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"2560.0\",model_name=\"m\"} 10.0",
        "vllm:inter_token_latency_seconds_count{engine=\"0\",model_name=\"m\"} 190.0",
        "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.0",
        "vllm:cache_config_info{block_size=\"16\",",
        "num_gpu_blocks=\"7281\"",
        "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 0.0",
        "# TYPE vllm:num_preemptions_total counter",
        "vllm:num_preemptions_created{engine=\"0\",model_name=\"m\"}",
    ] {
        assert!(t.contains(needle), "missing `{needle}` in\n{t}");
    }
    assert!(!t.contains("gpu_cache_usage_perc"));
    assert!(!t.contains("time_per_output_token"));
}

#[test]
fn replica_v0_and_sglang_name_sets() {
    let mut cfg = ReplicaConfig::new("m", profile());
    cfg.flavor = MetricsFlavor::VllmV0;
    let mut r = Replica::new(cfg.clone(), 0.0).expect("replica");
    r.submit(0.0, 10, 5).expect("submit");
    r.advance_to(1e6);
    let t = r.metrics_text();
    assert!(
        t.contains("vllm:gpu_cache_usage_perc{model_name=\"m\"}"),
        "{t}"
    );
    assert!(t.contains("vllm:time_per_output_token_seconds_count{model_name=\"m\"} 4.0"));
    assert!(!t.contains("engine="));
    assert!(!t.contains("_created"));
    assert!(!t.contains("kv_cache_usage_perc"));

    cfg.flavor = MetricsFlavor::Sglang;
    let mut r = Replica::new(cfg, 0.0).expect("replica");
    r.submit(0.0, 10, 5).expect("submit");
    r.advance_to(1e6);
    let t = r.metrics_text();
    for needle in [
        "sglang:num_running_reqs{model_name=\"m\"} 0.0",
        "sglang:num_queue_reqs{model_name=\"m\"}",
        "sglang:token_usage{model_name=\"m\"}",
        "sglang:num_requests_total{model_name=\"m\"} 1.0",
        "sglang:max_total_num_tokens{model_name=\"m\"} 116496.0",
        "sglang:inter_token_latency_seconds_count{model_name=\"m\"} 4.0",
    ] {
        assert!(t.contains(needle), "missing `{needle}` in\n{t}");
    }
    assert!(!t.contains("vllm:"));
}

#[test]
fn kv_limit_queues_and_preempts() {
    let mut cfg = ReplicaConfig::new("m", profile());
    cfg.num_gpu_blocks = 20; // 320 tokens
    let mut r = Replica::new(cfg, 0.0).expect("replica");
    for _ in 0..6 {
        r.submit(0.0, 100, 50).expect("fits alone");
    }
    r.advance_to(200.0);
    let t = r.metrics_text();
    assert!(
        t.contains("vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 4.0")
            || t.contains("vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0"),
        "KV cache of 320 tokens holds 2-3 requests: {t}"
    );
    assert!(
        r.submit(1000.0, 400, 1).is_err(),
        "request larger than the cache"
    );
    r.advance_to(1e7);
    assert_eq!(r.served().finished, 6);
}

#[tokio::test]
async fn http_completions_and_metrics() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = ModelServer::start(ServerConfig {
        replica: ReplicaConfig::new("m", profile()),
        speed: 20.0,
    })
    .await
    .expect("server starts");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let resp = client
        .post(format!("{}/v1/completions", server.url()))
        .json(&serde_json::json!({"model": "m", "prompt": "a b c d", "max_tokens": 8}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["usage"]["prompt_tokens"], 4);
    assert_eq!(body["usage"]["completion_tokens"], 8);
    assert_eq!(body["choices"][0]["finish_reason"], "length");

    let resp = client
        .post(format!("{}/v1/completions", server.url()))
        .json(&serde_json::json!({"prompt_tokens": 300, "max_tokens": 2}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let resp = client
        .post(format!("{}/v1/completions", server.url()))
        .json(&serde_json::json!({"model": "other", "prompt": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 404);
    let resp = client
        .post(format!("{}/v1/completions", server.url()))
        .body("not json")
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_client_error());

    // In-process submission on the same server.
    let c = server.submit(50, 3).await.expect("completes");
    assert_eq!(c.output_tokens, 3);

    let text = client
        .get(server.metrics_url())
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(text.contains(
        "vllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"m\"} 3.0"
    ));
    assert!(text.contains("vllm:request_prompt_tokens_sum{engine=\"0\",model_name=\"m\"} 354.0"));
    let s = server.served();
    assert_eq!(
        (s.finished, s.prompt_tokens, s.generation_tokens),
        (3, 354, 13)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_load_offers_its_mix_and_logs_every_completion() {
    use wvo_sim::model_server::paced::{finished_between, paced_load, FinishedLog};
    let server = Arc::new(
        ModelServer::start(ServerConfig {
            replica: ReplicaConfig::new("m", profile()),
            speed: 1.0,
        })
        .await
        .expect("server"),
    );
    let log = FinishedLog::default();
    let from = std::time::Instant::now();
    let load = paced_load(
        server.clone(),
        50.0,
        10,
        vec![(100, 4), (200, 8)],
        log.clone(),
    );
    tokio::time::timeout(Duration::from_secs(20), load)
        .await
        .expect("10 requests finish within 20 s")
        .expect("load task");
    let done = finished_between(&log, from, std::time::Instant::now());
    assert_eq!(done.len(), 10);
    for (input, output) in [(100, 4), (200, 8)] {
        let n = done
            .iter()
            .filter(|f| f.input_tokens == input && f.output_tokens == output)
            .count();
        assert_eq!(n, 5, "requests of {input}/{output} tokens");
    }
    assert_eq!(server.served().finished, 10);
    // Nothing offered without a mix or with a rate that is not positive.
    for (rps, mix) in [
        (50.0, vec![]),
        (0.0, vec![(1, 1)]),
        (f64::NAN, vec![(1, 1)]),
    ] {
        let empty = FinishedLog::default();
        paced_load(server.clone(), rps, 5, mix, empty.clone())
            .await
            .expect("load task");
        assert!(empty.lock().map(|l| l.is_empty()).unwrap_or(false));
    }
}
