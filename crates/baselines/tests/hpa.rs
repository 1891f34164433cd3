//! HPA v2 and KEDA on hand-made metric sequences: each test pins one published rule.

use wvo_baselines::{Hpa, HpaConfig, HpaMetric, MetricSource, PodMetrics};

fn running(values: &[f64]) -> Vec<PodMetrics> {
    values
        .iter()
        .map(|&running| PodMetrics {
            ready: true,
            running,
            ..PodMetrics::default()
        })
        .collect()
}

fn waiting(values: &[f64]) -> Vec<PodMetrics> {
    values
        .iter()
        .map(|&waiting| PodMetrics {
            ready: true,
            running: 100.0,
            waiting,
            kv_usage: 0.5,
        })
        .collect()
}

fn starting(n: usize) -> Vec<PodMetrics> {
    vec![PodMetrics::default(); n]
}

/// Config whose raw recommendation shows through at once (no scale-down window).
fn no_down_window(min: u32, max: u32) -> HpaConfig {
    HpaConfig {
        scale_down_stabilization_seconds: 0.0,
        ..HpaConfig::running_requests(min, max)
    }
}

#[test]
fn constructors_carry_the_published_defaults() {
    let hpa = HpaConfig::running_requests(1, 8);
    assert_eq!(hpa.metric, HpaMetric::Running);
    assert_eq!(hpa.target_average_value, 2.0);
    assert_eq!(hpa.tolerance, 0.1);
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (1, 8));
    assert_eq!(hpa.scale_up_stabilization_seconds, 0.0);
    assert_eq!((hpa.scale_up_pods, hpa.scale_up_percent), (4, 100.0));
    assert_eq!(hpa.scale_up_period_seconds, 15.0);
    assert_eq!(hpa.scale_down_stabilization_seconds, 300.0);
    assert_eq!(
        (hpa.scale_down_percent, hpa.scale_down_period_seconds),
        (100.0, 15.0)
    );
    assert_eq!(hpa.sync_period_seconds, 15.0);
    let keda = HpaConfig::keda_queue_depth(1, 8);
    assert_eq!(keda.metric, HpaMetric::Waiting);
    assert_eq!(keda.target_average_value, 5.0);
    assert_eq!(
        HpaConfig {
            metric: HpaMetric::Running,
            target_average_value: 2.0,
            ..keda
        },
        hpa,
        "KEDA runs the same HPA defaults underneath"
    );
    assert!(hpa.validate().is_ok());
}

#[test]
fn tolerance_band_holds_both_ways() {
    // avg 2.2 / 2 = 1.1 and 1.8 / 2 = 0.9: exactly on the edges, inside the band.
    let mut hpa = Hpa::new(no_down_window(1, 20));
    assert_eq!(hpa.sync(0.0, 4, &running(&[2.2; 4])), 4);
    assert_eq!(hpa.sync(15.0, 4, &running(&[1.8; 4])), 4);
    // Just outside: 2.3 / 2 = 1.15 -> ceil(4 * 1.15) = 5; then 5 pods at 1.4 / 2 = 0.7 ->
    // ceil(3.5) = 4.
    assert_eq!(hpa.sync(30.0, 4, &running(&[2.3; 4])), 5);
    assert_eq!(hpa.sync(45.0, 5, &running(&[1.4; 5])), 4);
}

#[test]
fn desired_is_the_ceiling_of_replicas_times_ratio() {
    let mut hpa = Hpa::new(HpaConfig::running_requests(1, 20));
    // 3 pods averaging 3 running: ratio 1.5 -> ceil(4.5) = 5 (within max(3 + 4, 6) = 7).
    assert_eq!(hpa.sync(0.0, 3, &running(&[2.0, 3.0, 4.0])), 5);
    // 5 pods averaging 2.5: ratio 1.25 -> ceil(6.25) = 7.
    assert_eq!(hpa.sync(15.0, 5, &running(&[2.5; 5])), 7);
}

#[test]
fn scale_up_is_limited_to_max_of_4_pods_and_100_percent_per_15_s() {
    let mut hpa = Hpa::new(HpaConfig::running_requests(1, 100));
    let mut replicas = 1;
    let mut seen = vec![replicas];
    for step in 0..5 {
        let pods = running(&vec![200.0; replicas as usize]);
        replicas = hpa.sync(15.0 * f64::from(step), replicas, &pods);
        seen.push(replicas);
    }
    // 1 -> max(1 + 4, 2) = 5 -> max(9, 10) = 10 -> 20 -> 40 -> 80.
    assert_eq!(seen, vec![1, 5, 10, 20, 40, 80]);
}

#[test]
fn scale_up_limit_counts_from_the_replicas_at_the_start_of_the_period() {
    // Syncs every 5 s, policy period 15 s: the events of the last 15 s are subtracted.
    let mut hpa = Hpa::new(HpaConfig {
        sync_period_seconds: 5.0,
        ..HpaConfig::running_requests(1, 100)
    });
    let huge = |n: u32| running(&vec![200.0; n as usize]);
    assert_eq!(hpa.sync(0.0, 1, &huge(1)), 5);
    // Period start is still 1 (added 4 at t = 0): no more than 5.
    assert_eq!(hpa.sync(5.0, 5, &huge(5)), 5);
    assert_eq!(hpa.sync(10.0, 5, &huge(5)), 5);
    // At t = 15 the event of t = 0 has left the period: start 5 -> 10.
    assert_eq!(hpa.sync(15.0, 5, &huge(5)), 10);
}

#[test]
fn scale_down_waits_for_the_window_and_takes_its_highest_recommendation() {
    let mut hpa = Hpa::new(HpaConfig::running_requests(1, 20));
    // t = 0: 10 pods at target (ratio 1) -> recommendation 10.
    assert_eq!(hpa.sync(0.0, 10, &running(&[2.0; 10])), 10);
    // Then load falls: 0.4 per pod -> raw recommendation ceil(0.2 * 10) = 2 every sync,
    // except one sync at t = 150 with 1.2 per pod -> ceil(0.6 * 10) = 6.
    let mut t = 15.0;
    while t < 300.0 {
        let per_pod = if t == 150.0 { 1.2 } else { 0.4 };
        assert_eq!(
            hpa.sync(t, 10, &running(&[per_pod; 10])),
            10,
            "held at t = {t}"
        );
        t += 15.0;
    }
    // t = 300: the recommendation of t = 0 is 300 s old and leaves the window; the highest
    // remaining one is the 6 of t = 150.
    assert_eq!(hpa.sync(300.0, 10, &running(&[0.4; 10])), 6);
    // The same 4 running requests on 6 pods: raw recommendation ceil(6 * 0.666 / 2) = 2; the 6
    // of t = 150 holds until t = 450.
    let six = running(&[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    let mut t = 315.0;
    while t < 450.0 {
        assert_eq!(hpa.sync(t, 6, &six), 6, "held by the window max at t = {t}");
        t += 15.0;
    }
    assert_eq!(hpa.sync(450.0, 6, &six), 2);
}

#[test]
fn scale_down_percent_policy_limits_each_period() {
    let mut hpa = Hpa::new(HpaConfig {
        scale_down_percent: 50.0,
        scale_down_stabilization_seconds: 0.0,
        ..HpaConfig::running_requests(1, 20)
    });
    // Idle load would go straight to the minimum; 50 % per 15 s halves instead (truncated).
    assert_eq!(hpa.sync(0.0, 9, &running(&[0.1; 9])), 4);
    assert_eq!(hpa.sync(15.0, 4, &running(&[0.1; 4])), 2);
    assert_eq!(hpa.sync(30.0, 2, &running(&[0.1; 2])), 1);
}

#[test]
fn min_and_max_clamp() {
    let mut hpa = Hpa::new(no_down_window(2, 6));
    // Outside the bounds: brought back at once, whatever the metric.
    assert_eq!(hpa.sync(0.0, 9, &running(&[0.0; 9])), 6);
    assert_eq!(hpa.sync(15.0, 1, &running(&[100.0])), 2);
    // Huge load is capped at max, no load floored at min.
    assert_eq!(hpa.sync(30.0, 4, &running(&[100.0; 4])), 6);
    assert_eq!(hpa.sync(45.0, 6, &running(&[0.0; 6])), 2);
}

#[test]
fn zero_replicas_disable_the_hpa_like_the_controller() {
    let mut hpa = Hpa::new(HpaConfig::running_requests(1, 6));
    assert_eq!(hpa.sync(0.0, 0, &[]), 0);
    assert!(
        hpa.last_reason().contains("disabled"),
        "{}",
        hpa.last_reason()
    );
}

#[test]
fn missing_metrics_count_as_zero_on_a_scale_up() {
    let mut hpa = Hpa::new(no_down_window(1, 20));
    let mut pods = running(&[4.0; 3]);
    pods.push(PodMetrics {
        ready: true,
        running: f64::NAN,
        ..PodMetrics::default()
    });
    // Reporting pods: ratio 2. Missing pod at 0: 12 / 4 = 3 -> ratio 1.5 -> ceil(6) = 6
    // (ignoring the missing pod would give ceil(4 * 2) = 8).
    assert_eq!(hpa.sync(0.0, 4, &pods), 6);
}

#[test]
fn missing_metrics_count_as_the_target_on_a_scale_down() {
    let mut hpa = Hpa::new(no_down_window(1, 20));
    let mut pods = running(&[1.0; 3]);
    pods.push(PodMetrics {
        ready: true,
        running: f64::NAN,
        ..PodMetrics::default()
    });
    // Reporting pods: ratio 0.5. Missing pod at the target 2: 5 / 4 = 1.25 -> ratio 0.625 ->
    // ceil(2.5) = 3 (without the correction: ceil(3 * 0.5) = 2).
    assert_eq!(hpa.sync(0.0, 4, &pods), 3);
}

#[test]
fn missing_metrics_that_reverse_the_direction_stop_the_scale() {
    let mut hpa = Hpa::new(no_down_window(1, 20));
    let mut pods = running(&[3.0; 2]);
    pods.extend(
        [PodMetrics {
            ready: true,
            running: f64::NAN,
            ..PodMetrics::default()
        }; 2],
    );
    // Reporting pods: ratio 1.5 (up). With 2 missing pods at 0: 6 / 4 = 1.5 / 2 = 0.75 (down):
    // direction reversed -> no change (a naive ready-only count would scale down to 3).
    assert_eq!(hpa.sync(0.0, 4, &pods), 4);
}

#[test]
fn not_ready_pods_count_as_zero_on_a_scale_up() {
    let mut hpa = Hpa::new(no_down_window(1, 20));
    let mut pods = running(&[8.0; 2]);
    pods.extend(starting(3));
    // Ready pods: ratio 4. Starting pods at 0: 16 / 5 = 3.2 -> ratio 1.6 -> ceil(8) = 8
    // (ceil(5 * 4) = 20 would be rate-limited to max(5 + 4, 10) = 10).
    assert_eq!(hpa.sync(0.0, 5, &pods), 8);
    let mut pods = running(&[2.4; 2]);
    pods.extend(starting(2));
    // Ready pods: ratio 1.2 (up). With the starting pods at 0: 0.6 (down) -> no change.
    assert_eq!(hpa.sync(15.0, 4, &pods), 4);
}

#[test]
fn not_ready_pods_are_ignored_on_a_scale_down() {
    let mut hpa = Hpa::new(no_down_window(1, 20));
    let mut pods = running(&[0.5; 2]);
    pods.extend(starting(2));
    // Ready pods: ratio 0.25 -> ceil(0.25 * 2) = 1 (starting pods do not hold the count up).
    assert_eq!(hpa.sync(0.0, 4, &pods), 1);
}

#[test]
fn no_reporting_pod_means_no_change() {
    let mut hpa = Hpa::new(no_down_window(1, 20));
    assert_eq!(hpa.sync(0.0, 3, &starting(3)), 3);
    assert!(
        hpa.last_reason().contains("no ready pod"),
        "{}",
        hpa.last_reason()
    );
}

#[test]
fn a_sync_sooner_than_the_sync_period_is_not_evaluated() {
    let mut hpa = Hpa::new(HpaConfig::running_requests(1, 20));
    let busy = running(&[4.0; 2]);
    assert_eq!(hpa.sync(0.0, 2, &busy), 4);
    // 10 s later: not a sync yet, nothing recorded.
    assert_eq!(hpa.sync(10.0, 4, &running(&[8.0; 4])), 4);
    assert_eq!(hpa.next_sync_seconds(), Some(15.0));
    // A clock that drifts a hair below 15 s still syncs.
    assert_eq!(hpa.sync(15.0 - 1e-9, 4, &running(&[8.0; 4])), 8);
}

#[test]
fn keda_scales_on_waiting_requests_and_ignores_running() {
    let mut keda = Hpa::new(HpaConfig::keda_queue_depth(1, 20));
    // 2 pods with 10 waiting each: ratio 2 -> 4 (the 100 running requests do not matter).
    assert_eq!(keda.sync(0.0, 2, &waiting(&[10.0; 2])), 4);
    // An HPA on running requests sees 100 per pod: ratio 50 -> rate-limited to max(6, 4) = 6.
    let mut hpa = Hpa::new(HpaConfig::running_requests(1, 20));
    assert_eq!(hpa.sync(0.0, 2, &waiting(&[10.0; 2])), 6);
    // An empty queue is a scale-down signal for KEDA (after its 300 s window).
    assert_eq!(keda.sync(15.0, 4, &waiting(&[0.0; 4])), 4);
    assert_eq!(keda.sync(300.0, 4, &waiting(&[0.0; 4])), 1);
}

#[test]
fn keda_external_average_value_divides_by_all_pods() {
    let config = HpaConfig {
        scale_down_stabilization_seconds: 0.0,
        ..HpaConfig::keda_queue_depth(1, 20)
    };
    let mut pods = waiting(&[6.0; 2]);
    pods.extend(starting(2));
    // External AverageValue: sum 12 over 4 pods, target 5 -> ratio 0.6 -> ceil(12 / 5) = 3.
    let mut external = Hpa::with_source(config.clone(), MetricSource::ExternalAverageValue);
    assert_eq!(external.sync(0.0, 4, &pods), 3);
    // As a Pods metric: ready ratio 1.2 (up), starting pods at 0 reverse it -> no change.
    let mut per_pod = Hpa::new(config);
    assert_eq!(per_pod.sync(0.0, 4, &pods), 4);
    // With every pod reporting the two agree: ceil(sum / target).
    let all = waiting(&[9.0; 4]);
    assert_eq!(external.sync(15.0, 4, &all), 8);
    assert_eq!(per_pod.sync(15.0, 4, &all), 8);
}

#[test]
fn invalid_config_names_the_field() {
    let bad = HpaConfig {
        target_average_value: 0.0,
        ..HpaConfig::running_requests(1, 4)
    };
    let message = bad
        .validate()
        .map_err(|e| e.to_string())
        .err()
        .unwrap_or_default();
    assert!(message.contains("target_average_value"), "{message}");
    let bad = HpaConfig::running_requests(5, 4);
    let message = bad
        .validate()
        .map_err(|e| e.to_string())
        .err()
        .unwrap_or_default();
    assert!(message.contains("min_replicas"), "{message}");
    // An invalid target never scales on the metric.
    let mut hpa = Hpa::new(HpaConfig {
        target_average_value: 0.0,
        ..HpaConfig::running_requests(1, 4)
    });
    assert_eq!(hpa.sync(0.0, 2, &running(&[50.0; 2])), 2);
}

#[test]
fn absurd_samples_do_not_overflow() {
    let mut hpa = Hpa::new(HpaConfig::running_requests(1, 50));
    // 1e300 running requests per pod: capped, scales to the policy limit instead of panicking.
    assert_eq!(hpa.sync(0.0, 3, &running(&[1e300; 3])), 7);
}
