//! The chain reduces to textbook queues when batching does not slow decoding.

use wvo_api::Profile;
use wvo_perf::{predict, saturation_rps, TokenMix};

/// Decode-only replica: `beta = gamma = delta = 0`, so each request needs
/// `(out - 1) * alpha` ms of service on one of `servers` slots.
fn decode_only(alpha: f64, servers: u32) -> Profile {
    Profile {
        alpha,
        beta: 0.0,
        gamma: 0.0,
        delta: 0.0,
        max_batch_size: servers,
    }
}

const MIX: TokenMix = TokenMix {
    avg_input_tokens: 100.0,
    avg_output_tokens: 101.0,
};

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

#[test]
fn batch_of_one_is_mm1() {
    let alpha = 10.0; // service 100 tokens * 10 ms = 1 s, mu = 1 req/s
    let mu = 1.0;
    for rho in [0.1, 0.5, 0.8, 0.95] {
        let lam = rho * mu;
        let p = predict(&decode_only(alpha, 1), &MIX, lam).expect("valid input");
        let l = p.mean_batch + p.mean_waiting;
        assert!(close(l, rho / (1.0 - rho), 1e-9), "L at rho {rho}: {l}");
        assert!(close(p.mean_waiting, rho * rho / (1.0 - rho), 1e-9));
        let wq_ms = rho / (mu - lam) * 1000.0;
        assert!(
            close(p.queue_wait_ms, wq_ms, 1e-9),
            "Wq {} vs {wq_ms}",
            p.queue_wait_ms
        );
        // A decoding request sees only itself: ITL = alpha exactly.
        assert!(close(p.itl_ms, alpha, 1e-9));
        // TTFT = Wq + residual of the decode step in progress (busy w.p. rho, half a step).
        assert!(close(p.ttft_ms, wq_ms + rho * alpha / 2.0, 1e-9));
        assert!(close(p.utilization, rho, 1e-9));
    }
    assert!(close(
        saturation_rps(&decode_only(alpha, 1), &MIX).expect("valid"),
        mu,
        1e-9
    ));
}

/// Erlang C probability of waiting for `c` servers at offered load `a` (erlangs).
fn erlang_c(c: u32, a: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..c {
        term *= a / f64::from(k);
        sum += term;
    }
    let last = term * a / f64::from(c) * f64::from(c) / (f64::from(c) - a);
    last / (sum + last)
}

#[test]
fn batch_of_c_without_slowdown_is_mmc() {
    let alpha = 5.0; // service 0.5 s per request per slot: mu = 2 req/s per slot
    let mu = 2.0;
    for c in [2u32, 4, 8, 32] {
        for rho in [0.3, 0.7, 0.9] {
            let lam = rho * f64::from(c) * mu;
            let a = lam / mu;
            let p = predict(&decode_only(alpha, c), &MIX, lam).expect("valid input");
            let wq_ms = erlang_c(c, a) / (f64::from(c) * mu - lam) * 1000.0;
            assert!(
                close(p.queue_wait_ms, wq_ms, 1e-9),
                "c {c} rho {rho}: Wq {} vs Erlang C {wq_ms}",
                p.queue_wait_ms
            );
            // Busy slots = offered load.
            assert!(close(p.mean_batch, a, 1e-9), "busy {} vs {a}", p.mean_batch);
        }
    }
}

#[test]
fn overload_is_unstable_not_an_error() {
    let p = predict(&decode_only(10.0, 1), &MIX, 1.5).expect("valid input");
    assert!(!p.stable);
    assert!(p.ttft_ms.is_infinite() && p.itl_ms.is_infinite());
    assert!(p.utilization > 1.0);
}
