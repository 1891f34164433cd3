//! The demand estimator on synthetic loads: what it plans for flat, stepped, backlogged and
//! periodic traffic, and when the forecast turns itself off.

use proptest::prelude::*;
use wvo_demand::{Demand, ForecastStatus, ModelDemand, Observation, Settings};

const CYCLE: f64 = 15.0;
const WINDOW: f64 = 60.0;

/// The collector's view of `rate` at `t`: the mean over the trailing window (no noise).
fn windowed(rate: &dyn Fn(f64) -> f64, t: f64) -> f64 {
    let steps = 60;
    (0..steps)
        .map(|i| rate(t - WINDOW + (i as f64 + 0.5) * WINDOW / steps as f64))
        .sum::<f64>()
        / steps as f64
}

fn observe(t: f64, rate: f64) -> Observation {
    Observation {
        at_seconds: t,
        arrival_rps: rate,
        waiting: Some(0.0),
        kv_usage: Some(0.3),
    }
}

/// Runs the estimator every cycle from 0 to `until` on `rate`, returning (t, demand).
fn run(rate: &dyn Fn(f64) -> f64, until: f64, s: &Settings) -> Vec<(f64, Demand)> {
    let mut m = ModelDemand::default();
    let mut out = Vec::new();
    let mut t = WINDOW;
    while t <= until {
        out.push((t, m.update(&observe(t, windowed(rate, t)), s)));
        t += CYCLE;
    }
    out
}

fn bursts(t: f64) -> f64 {
    // 5 minutes at 50 req/s every 20 minutes from t = 600 s, 10 req/s in between.
    if t >= 600.0 && (t - 600.0).rem_euclid(1200.0) < 300.0 {
        50.0
    } else {
        10.0
    }
}

#[test]
fn a_flat_load_is_planned_as_observed() {
    let s = Settings::default();
    for (_, d) in run(&|_| 20.0, 3600.0, &s) {
        assert!((d.plan_rps - 20.0).abs() < 1e-9, "{d:?}");
        assert_eq!(d.backlog_rps, 0.0);
        assert!(
            matches!(d.forecast, ForecastStatus::NoPeriod(_)),
            "{:?}",
            d.forecast
        );
    }
}

#[test]
fn a_step_is_seen_before_the_window_catches_up_and_falls_slowly() {
    let s = Settings::default();
    let step = |t: f64| if t < 1800.0 { 10.0 } else { 40.0 };
    let out = run(&step, 3600.0, &s);
    let at = |t: f64| {
        &out.iter()
            .find(|(x, _)| (*x - t).abs() < 1e-9)
            .expect("cycle")
            .1
    };
    // 30 s after the step the window reads 25 req/s; the rise is projected ahead.
    let d = at(1830.0);
    assert!((d.observed_rps - 25.0).abs() < 0.5, "{d:?}");
    assert!(d.plan_rps >= 38.0, "{d:?}");
    // Never more than twice what is observed.
    assert!(out
        .iter()
        .all(|(_, d)| d.plan_rps <= 2.0 * d.observed_rps + 1e-9));
    // Once the window is full the plan is the new rate.
    assert!((at(2400.0).plan_rps - 40.0).abs() < 0.01);

    let down = |t: f64| if t < 1800.0 { 40.0 } else { 10.0 };
    let out = run(&down, 3600.0, &s);
    let at = |t: f64| {
        &out.iter()
            .find(|(x, _)| (*x - t).abs() < 1e-9)
            .expect("cycle")
            .1
    };
    // 60 s after the window has fallen to 10, the level is still well above it.
    let d = at(1920.0);
    assert!((d.observed_rps - 10.0).abs() < 1e-6);
    assert!(d.plan_rps > 15.0 && d.plan_rps < 30.0, "{d:?}");
    assert!((at(2400.0).plan_rps - 10.0).abs() < 0.01);
}

#[test]
fn a_backlog_is_drained_once_new_replicas_serve_capped_and_less_spare_capacity() {
    let mut m = ModelDemand::default();
    let s = Settings {
        horizon_seconds: 100.0,
        ready_capacity_rps: Some(15.0),
        ready_replicas: 1,
        ..Settings::default()
    };
    let obs = |waiting: f64| Observation {
        at_seconds: 0.0,
        arrival_rps: 20.0,
        waiting: Some(waiting),
        kv_usage: Some(0.5),
    };
    // 1000 waiting, drained over the 100 s horizon: +10 req/s.
    let d = m.update(&obs(1000.0), &s);
    assert!((d.backlog_rps - 10.0).abs() < 1e-9, "{d:?}");
    assert!((d.plan_rps - 30.0).abs() < 1e-9);
    // 10,000 waiting: capped at the level (doubling it).
    let mut m = ModelDemand::default();
    let d = m.update(&obs(10_000.0), &s);
    assert!((d.backlog_rps - 20.0).abs() < 1e-9, "{d:?}");
    // Ready capacity of 26 req/s leaves 6 req/s spare to drain it: only 4 more.
    let mut m = ModelDemand::default();
    let d = m.update(
        &obs(1000.0),
        &Settings {
            ready_capacity_rps: Some(26.0),
            ..s
        },
    );
    assert!((d.backlog_rps - 4.0).abs() < 1e-9, "{d:?}");
}

#[test]
fn full_kv_caches_with_a_queue_ask_for_a_step_beyond_the_ready_capacity() {
    let s = Settings {
        ready_capacity_rps: Some(20.0),
        ready_replicas: 2,
        ..Settings::default()
    };
    let obs = |kv: f64, waiting: f64| Observation {
        at_seconds: 0.0,
        arrival_rps: 15.0,
        waiting: Some(waiting),
        kv_usage: Some(kv),
    };
    let d = ModelDemand::default().update(&obs(0.95, 8.0), &s);
    assert_eq!(d.kv_guard_rps, Some(25.0));
    assert!(d.plan_rps >= 25.0);
    // Not full, or nothing waiting: no guard.
    assert_eq!(
        ModelDemand::default()
            .update(&obs(0.5, 8.0), &s)
            .kv_guard_rps,
        None
    );
    assert_eq!(
        ModelDemand::default()
            .update(&obs(0.95, 0.0), &s)
            .kv_guard_rps,
        None
    );
}

#[test]
fn periodic_bursts_are_forecast_and_prescaled_by_the_horizon() {
    let s = Settings {
        horizon_seconds: 105.0,
        ..Settings::default()
    };
    let out = run(&bursts, 7200.0, &s);
    // Early on there is no period yet.
    assert!(out
        .iter()
        .filter(|(t, _)| *t < 1800.0)
        .all(|(_, d)| !matches!(d.forecast, ForecastStatus::Active { .. })));
    // From the fourth burst on (t = 4200 s), the forecast is active and the plan reaches the
    // burst rate before the burst: a replica asked for then is ready when it starts.
    for burst in [4200.0, 5400.0, 6600.0] {
        let (_, before) = out
            .iter()
            .find(|(t, _)| *t >= burst - 90.0)
            .expect("cycle before the burst");
        assert!(
            matches!(before.forecast, ForecastStatus::Active { period_seconds, .. } if (period_seconds - 1200.0).abs() <= 60.0),
            "{:?}",
            before.forecast
        );
        assert!(before.plan_rps >= 49.0, "at {burst}: {before:?}");
        // Between bursts (mid-gap) the plan is back to the base rate, and a quick
        // scale-down is allowed once the burst has passed.
        let (_, mid) = out
            .iter()
            .find(|(t, _)| *t >= burst + 300.0 + 300.0)
            .expect("cycle after the burst");
        assert!(mid.plan_rps <= 11.0, "{mid:?}");
        assert!(mid.scale_down_window_seconds.is_some(), "{mid:?}");
    }
}

#[test]
fn a_period_found_is_trusted_at_once_when_the_history_already_repeats_it() {
    // The period is found once the history holds two of it (just after 2,400 s of
    // history); its checks are replayed on that history, so the third burst (3000 s) is
    // already pre-scaled, not the fourth.
    let s = Settings {
        horizon_seconds: 105.0,
        ..Settings::default()
    };
    let out = run(&bursts, 3100.0, &s);
    let (t, before) = out
        .iter()
        .find(|(t, _)| *t >= 3000.0 - 90.0)
        .expect("cycle before the burst");
    assert!(
        matches!(before.forecast, ForecastStatus::Active { .. }),
        "at {t}: {:?}",
        before.forecast
    );
    assert!(before.plan_rps >= 49.0, "at {t}: {before:?}");
}

#[test]
fn a_rise_the_forecast_predicted_is_not_projected_beyond_it() {
    // Without a forecast a burst's rise is projected over the window's lag (up to 2x); once
    // the forecast predicts the burst, the plan during the burst is the burst rate, not more.
    let s = Settings {
        horizon_seconds: 105.0,
        ..Settings::default()
    };
    let out = run(&bursts, 7200.0, &s);
    let peak_in = |from: f64| {
        out.iter()
            .filter(|(t, _)| *t >= from && *t < from + 300.0)
            .map(|(_, d)| d.plan_rps)
            .fold(0.0, f64::max)
    };
    // The first burst (no period yet): the rise is projected past the burst rate.
    assert!(peak_in(600.0) > 55.0, "{}", peak_in(600.0));
    // Forecast bursts: the burst rate and no more.
    for burst in [5400.0, 6600.0] {
        let peak = peak_in(burst);
        assert!((49.0..=50.5).contains(&peak), "at {burst}: {peak}");
    }
}

#[test]
fn a_configured_period_is_used_and_a_forecast_that_misses_is_switched_off() {
    let s = Settings {
        forecast: wvo_demand::ForecastSettings {
            period_seconds: Some(1200.0),
            ..Default::default()
        },
        ..Settings::default()
    };
    // Bursts until 4800 s, then the load goes flat at 30 req/s: the forecast of bursts
    // misses, and soon it is no longer used; the burst it would have predicted at 5400 s is
    // not planned for.
    let changed = |t: f64| if t < 4800.0 { bursts(t) } else { 30.0 };
    let out = run(&changed, 9000.0, &s);
    let active = |t0: f64, t1: f64| {
        out.iter()
            .filter(|(t, _)| *t >= t0 && *t < t1)
            .filter(|(_, d)| matches!(d.forecast, ForecastStatus::Active { .. }))
            .count()
    };
    assert!(active(3600.0, 4800.0) > 0);
    assert_eq!(active(5100.0, 6000.0), 0);
    for (t, d) in out.iter().filter(|(t, _)| (5100.0..6000.0).contains(t)) {
        assert!(d.plan_rps < 31.0, "at {t}: {d:?}");
    }
    // Two periods after the change the flat load predicts itself: the forecast is back, and
    // it forecasts the flat load.
    let last = &out.last().expect("cycles").1;
    assert!(
        matches!(last.forecast, ForecastStatus::Active { forecast_rps, .. } if (forecast_rps - 30.0).abs() < 1e-6),
        "{last:?}"
    );
    assert!((last.plan_rps - 30.0).abs() < 1e-6, "{last:?}");
}

/// Runs `m` every cycle from `from` to `until` on `rate`, returning (t, demand).
fn run_on(
    m: &mut ModelDemand,
    rate: &dyn Fn(f64) -> f64,
    from: f64,
    until: f64,
    s: &Settings,
) -> Vec<(f64, Demand)> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= until {
        out.push((t, m.update(&observe(t, windowed(rate, t)), s)));
        t += CYCLE;
    }
    out
}

#[test]
fn a_restored_history_is_forecast_from_at_once_when_it_repeats() {
    let s = Settings {
        horizon_seconds: 105.0,
        ..Settings::default()
    };
    // One estimator learns the bursts until 3 min before the burst at 4200 s.
    let mut first = ModelDemand::default();
    run_on(&mut first, &bursts, WINDOW, 4020.0, &s);
    // A fresh one with only the history (a new leader) forecasts that burst from its
    // first cycle on: the period is found in the history and the checks rebuilt from it.
    let mut second = ModelDemand::default();
    second.restore_history(first.history().clone());
    let out = run_on(&mut second, &bursts, 4035.0, 4200.0, &s);
    for (t, d) in &out {
        assert!(
            matches!(d.forecast, ForecastStatus::Active { .. }),
            "at {t}: {:?}",
            d.forecast
        );
    }
    let (_, before) = out
        .iter()
        .find(|(t, _)| *t >= 4200.0 - 90.0)
        .expect("cycle before the burst");
    assert!(before.plan_rps >= 49.0, "{before:?}");
    // Without the history it does not.
    let mut fresh = ModelDemand::default();
    let out = run_on(&mut fresh, &bursts, 4035.0, 4200.0, &s);
    assert!(out
        .iter()
        .all(|(_, d)| !matches!(d.forecast, ForecastStatus::Active { .. })));
}

#[test]
fn a_restored_history_that_does_not_repeat_is_not_trusted() {
    // A history of a flat load with one burst: a configured period has nothing to repeat, so
    // the rebuilt checks miss and the forecast is not used.
    let s = Settings {
        forecast: wvo_demand::ForecastSettings {
            period_seconds: Some(1200.0),
            ..Default::default()
        },
        ..Settings::default()
    };
    let once = |t: f64| {
        if (2000.0..2300.0).contains(&t) {
            50.0
        } else {
            10.0
        }
    };
    let mut first = ModelDemand::default();
    run_on(&mut first, &once, WINDOW, 3000.0, &s);
    let mut second = ModelDemand::default();
    second.restore_history(first.history().clone());
    let out = run_on(&mut second, &|_| 10.0, 3015.0, 3100.0, &s);
    assert!(
        out.iter()
            .all(|(_, d)| matches!(d.forecast, ForecastStatus::Untrusted { .. })),
        "{:?}",
        out.last()
    );
}

proptest! {
    /// Whatever the observations, the plan is finite and never below what is observed now.
    #[test]
    fn never_below_the_observed_rate(
        rates in proptest::collection::vec(0.0..1e4f64, 1..200),
        waiting in proptest::collection::vec(proptest::option::of(-10.0..1e5f64), 200),
        kv in proptest::collection::vec(proptest::option::of(0.0..1.0f64), 200),
        capacity in proptest::option::of(0.0..1e4f64),
    ) {
        let mut m = ModelDemand::default();
        let s = Settings { ready_capacity_rps: capacity, ready_replicas: 2, ..Settings::default() };
        for (i, &r) in rates.iter().enumerate() {
            let d = m.update(&Observation {
                at_seconds: i as f64 * CYCLE,
                arrival_rps: r,
                waiting: waiting[i],
                kv_usage: kv[i],
            }, &s);
            prop_assert!(d.plan_rps.is_finite());
            prop_assert!(d.plan_rps >= r - 1e-9, "{d:?}");
            prop_assert!(d.backlog_rps >= 0.0);
        }
    }
}

#[test]
fn an_idle_models_silences_do_not_make_a_wrong_period_trusted() {
    // Idle but for one 5-minute burst of 30 req/s an hour, at a different minute of every
    // hour; the configured period (3600 s) predicts each burst where the last one was. Its
    // predicted silences hit (most of the hour), but every check with load misses: never
    // trusted.
    let s = Settings {
        horizon_seconds: 105.0,
        forecast: wvo_demand::ForecastSettings {
            period_seconds: Some(3600.0),
            ..Default::default()
        },
        ..Settings::default()
    };
    let starts = [600.0, 2400.0 + 3600.0, 1200.0 + 7200.0, 3000.0 + 10800.0];
    let irregular = |t: f64| {
        if starts.iter().any(|s| (*s..s + 300.0).contains(&t)) {
            30.0
        } else {
            0.0
        }
    };
    let out = run(&irregular, 14400.0, &s);
    for (t, d) in out.iter().filter(|(t, _)| *t >= 7200.0) {
        assert!(
            !matches!(d.forecast, ForecastStatus::Active { .. }),
            "at {t}: {:?}",
            d.forecast
        );
    }
    // The same silences with the bursts at the same minute of every hour: trusted.
    let periodic = |t: f64| {
        if (t - 600.0).rem_euclid(3600.0) < 300.0 && t >= 600.0 {
            30.0
        } else {
            0.0
        }
    };
    let out = run(&periodic, 14400.0, &s);
    assert!(out
        .iter()
        .any(|(t, d)| *t >= 7200.0 && matches!(d.forecast, ForecastStatus::Active { .. })));
}

#[test]
fn no_quick_scale_down_while_the_forecast_of_now_misses() {
    // Trusted bursts every 20 minutes; then a burst where the forecast predicts the base
    // load: while it lasts, the forecast's quick scale-down is not offered.
    let s = Settings {
        horizon_seconds: 105.0,
        ..Settings::default()
    };
    let extra = |t: f64| {
        if (6300.0..6600.0).contains(&t) {
            50.0
        } else {
            bursts(t)
        }
    };
    let out = run(&extra, 6600.0, &s);
    let (_, before) = out
        .iter()
        .find(|(t, _)| *t >= 6200.0)
        .expect("cycle before the unforecast burst");
    assert!(
        matches!(before.forecast, ForecastStatus::Active { .. }),
        "{before:?}"
    );
    for (t, d) in out.iter().filter(|(t, _)| (6390.0..6600.0).contains(t)) {
        assert_eq!(d.scale_down_window_seconds, None, "at {t}: {d:?}");
    }
}
