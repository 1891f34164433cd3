//! The continuous-batching engine against hand-computed timelines.

use wvo_api::Profile;
use wvo_perf::batching::{Completion, Engine, EngineConfig, Request};
use wvo_perf::workload::SplitMix64;

fn req(id: u64, arrival_ms: f64, input_tokens: u32, output_tokens: u32) -> Request {
    Request {
        id,
        arrival_ms,
        input_tokens,
        output_tokens,
    }
}

/// alpha 10, beta 1, gamma 5, delta 0.1, at most 2 running.
fn small() -> Profile {
    Profile {
        alpha: 10.0,
        beta: 1.0,
        gamma: 5.0,
        delta: 0.1,
        max_batch_size: 2,
    }
}

fn by_id(done: &[Completion], id: u64) -> Completion {
    *done
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("request {id} did not finish"))
}

#[test]
fn lone_request_prefills_then_decodes_one_token_per_step() {
    let mut e = Engine::new(EngineConfig::new(small())).expect("valid profile");
    e.submit(req(1, 0.0, 10, 3)).expect("valid request");
    assert_eq!(e.next_event_ms(), Some(0.0));
    let first = e.advance_to(6.0);
    // Prefill 5 + 0.1*10 = 6 ms gives the first token.
    assert_eq!(first.first_tokens.len(), 1);
    assert_eq!(first.first_tokens[0].ttft_ms, 6.0);
    // Two decode steps of 10 + 1*1 = 11 ms each.
    assert_eq!(e.next_event_ms(), Some(17.0));
    let rest = e.run_to_idle();
    let c = by_id(&rest.completions, 1);
    assert_eq!(c.finish_ms, 28.0);
    assert_eq!(c.e2e_ms, 28.0);
    assert_eq!(c.queue_ms, 0.0);
    assert_eq!(c.itl_sum_ms, 22.0);
    assert_eq!(c.itl_count, 2);
    assert_eq!(c.mean_itl_ms(), Some(11.0));
    assert_eq!(e.next_event_ms(), None);
}

#[test]
fn three_requests_batch_limit_and_prefill_stalls() {
    // t=0  prefill A (5 + 1) -> 6
    // t=6  admit B (C does not fit the batch of 2): prefill 5 + 2 -> 13
    // t=13 decode A,B (10 + 2) -> 25: B done (2 tokens)
    // t=25 admit C: prefill 5 + 1 -> 31: C done (1 token)
    // t=31 decode A (10 + 1) -> 42: A done
    let mut cfg = EngineConfig::new(small());
    cfg.record_itl = true;
    let mut e = Engine::new(cfg).expect("valid profile");
    e.submit(req(1, 0.0, 10, 3)).expect("valid");
    e.submit(req(2, 1.0, 20, 2)).expect("valid");
    e.submit(req(3, 2.0, 10, 1)).expect("valid");
    let out = e.run_to_idle();
    let (a, b, c) = (
        by_id(&out.completions, 1),
        by_id(&out.completions, 2),
        by_id(&out.completions, 3),
    );
    assert_eq!((a.ttft_ms, a.finish_ms, a.itl_sum_ms), (6.0, 42.0, 36.0));
    assert_eq!(
        (b.queue_ms, b.ttft_ms, b.finish_ms, b.itl_sum_ms),
        (5.0, 12.0, 25.0, 12.0)
    );
    assert_eq!(
        (c.queue_ms, c.ttft_ms, c.e2e_ms, c.itl_count),
        (23.0, 29.0, 29.0, 0)
    );
    // A's gaps include the stall by B's prefill: 6 -> 25 -> 42.
    let a_itl: Vec<f64> = out
        .itl
        .iter()
        .filter(|o| o.id == 1)
        .map(|o| o.itl_ms)
        .collect();
    assert_eq!(a_itl, vec![19.0, 17.0]);
    assert_eq!(out.steps, 5);
    let g = e.gauges();
    assert_eq!(g.prefill_steps_total, 3);
    assert_eq!(g.decode_steps_total, 2);
    assert_eq!(g.prompt_tokens_total, 40);
    assert_eq!(g.generation_tokens_total, 6);
    assert_eq!((g.finished_total, g.running, g.waiting), (3, 0, 0));
}

#[test]
fn arrivals_during_a_step_share_the_next_prefill() {
    let mut profile = small();
    profile.max_batch_size = 3;
    let mut e = Engine::new(EngineConfig::new(profile)).expect("valid profile");
    e.submit(req(1, 0.0, 10, 2)).expect("valid");
    let _ = e.advance_to(3.0); // prefill of A runs 0 -> 6
    e.submit(req(2, 3.0, 10, 1)).expect("valid");
    e.submit(req(3, 4.0, 10, 1)).expect("valid");
    let out = e.run_to_idle();
    // One prefill for both at t=6: 5 + 0.1*(10+10) = 7 -> 13; then A decodes 13 -> 24.
    let (a, b, c) = (
        by_id(&out.completions, 1),
        by_id(&out.completions, 2),
        by_id(&out.completions, 3),
    );
    assert_eq!((b.finish_ms, b.ttft_ms, b.queue_ms), (13.0, 10.0, 3.0));
    assert_eq!((c.finish_ms, c.ttft_ms, c.queue_ms), (13.0, 9.0, 2.0));
    assert_eq!(a.finish_ms, 24.0);
    assert_eq!(e.gauges().prefill_steps_total, 2);
}

#[test]
fn full_kv_cache_preempts_the_newest_and_recomputes() {
    // KV 12 tokens. A (4 in, 4 out) and B (4 in, 3 out) both admitted at t=0 (5 + 5 tokens).
    // Decode 0->10 fills the cache (12). At t=10 two more tokens do not fit: B (6 tokens) is
    // preempted; A decodes 10->20, 20->30 and finishes; B is readmitted at 30 with a prefill
    // of its 4 prompt + 2 generated tokens, which yields its last token.
    let profile = Profile {
        alpha: 10.0,
        beta: 0.0,
        gamma: 0.0,
        delta: 0.0,
        max_batch_size: 4,
    };
    let mut e = Engine::new(EngineConfig {
        profile,
        kv_cache_tokens: Some(12),
        record_itl: false,
    })
    .expect("valid profile");
    e.submit(req(1, 0.0, 4, 4)).expect("valid");
    e.submit(req(2, 0.0, 4, 3)).expect("valid");
    let _ = e.advance_to(0.0);
    assert_eq!(e.gauges().kv_tokens_used, 12);
    assert_eq!(e.gauges().kv_cache_usage, 1.0);
    let _ = e.advance_to(10.0);
    let g = e.gauges();
    assert_eq!(g.preemptions_total, 1);
    assert_eq!((g.running, g.waiting), (1, 1));
    let out = e.run_to_idle();
    let (a, b) = (by_id(&out.completions, 1), by_id(&out.completions, 2));
    assert_eq!(a.finish_ms, 30.0);
    assert_eq!((b.finish_ms, b.ttft_ms, b.preemptions), (30.0, 0.0, 1));
    let g = e.gauges();
    assert_eq!(g.prompt_tokens_total, 4 + 4 + 6);
    assert_eq!(g.generation_tokens_total, 7);
    assert_eq!(g.kv_tokens_used, 0);
}

#[test]
fn requests_that_can_never_fit_the_cache_are_rejected_by_field() {
    let mut e = Engine::new(EngineConfig {
        profile: small(),
        kv_cache_tokens: Some(100),
        record_itl: false,
    })
    .expect("valid profile");
    let err = e.submit(req(1, 0.0, 90, 20)).expect_err("too large");
    assert!(err.to_string().starts_with("input_tokens:"), "{err}");
    let err = e.submit(req(1, 0.0, 1, 0)).expect_err("no output");
    assert!(err.to_string().starts_with("output_tokens:"), "{err}");
    e.submit(req(1, 5.0, 1, 1)).expect("valid");
    let err = e.submit(req(2, 4.0, 1, 1)).expect_err("goes back in time");
    assert!(err.to_string().starts_with("arrival_ms:"), "{err}");
    assert_eq!(e.gauges().submitted_total, 1);
}

fn random_run(seed: u64, chunk_ms: Option<f64>) -> Vec<Completion> {
    let mut e = Engine::new(EngineConfig {
        profile: Profile {
            alpha: 5.0,
            beta: 0.2,
            gamma: 8.0,
            delta: 0.02,
            max_batch_size: 8,
        },
        kv_cache_tokens: Some(3000),
        record_itl: false,
    })
    .expect("valid profile");
    let mut rng = SplitMix64::new(seed);
    let mut t = 0.0;
    let mut done = Vec::new();
    for id in 0..500 {
        t += rng.exp1() * 40.0;
        let input = 1 + (rng.next_u64() % 600) as u32;
        let output = rng.geometric(50.0).min(1000);
        match chunk_ms {
            Some(step) => {
                let mut now = e.gauges().now_ms;
                while now + step < t {
                    now += step;
                    done.extend(e.advance_to(now).completions);
                }
                done.extend(e.advance_to(t).completions);
            }
            None => done.extend(e.advance_to(t).completions),
        }
        e.submit(req(id, t, input, output)).expect("valid");
    }
    done.extend(e.run_to_idle().completions);
    assert!(
        e.gauges().preemptions_total > 0,
        "the run should exercise preemption"
    );
    done
}

#[test]
fn same_seed_same_timeline_regardless_of_how_time_is_advanced() {
    let one = random_run(42, None);
    assert_eq!(one.len(), 500);
    assert_eq!(one, random_run(42, None));
    assert_eq!(one, random_run(42, Some(3.7)));
}
