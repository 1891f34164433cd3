//! Period detection: the lag at which a rate series best matches itself (Pearson
//! correlation of the series with its own shift), over at least two whole periods.

/// A period found in a rate series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detected {
    /// The period, s.
    pub period_seconds: f64,
    /// Correlation of the series with itself shifted by the period, -1..=1.
    pub correlation: f64,
}

/// Least correlation at which a lag counts as a period.
pub const MIN_CORRELATION: f64 = 0.6;

/// Least coefficient of variation (standard deviation over mean) of a series worth a
/// forecast: a flat load has no peaks to anticipate.
pub const MIN_VARIATION: f64 = 0.05;

/// The correlation must first fall below this before a lag can count as a period.
pub const DIP_CORRELATION: f64 = 0.3;

/// A lag whose correlation is within this share of the best one is preferred when it is
/// shorter (multiples of the period correlate as well as the period itself).
const NEAR_BEST: f64 = 0.95;

/// Pearson correlation of `a` and `b` (equal lengths); None when either is constant.
fn correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    if a.len() < 2 || a.len() != b.len() {
        return None;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    let denom = (saa * sbb).sqrt();
    (denom > 0.0 && denom.is_finite()).then(|| sab / denom)
}

/// The period of `series` (values `step_seconds` apart, oldest first) between
/// `min_seconds` and `max_seconds`, when the series holds at least two of them, varies
/// enough ([`MIN_VARIATION`]), first decorrelates ([`DIP_CORRELATION`]) and then repeats
/// well enough ([`MIN_CORRELATION`]). Of the lags that correlate within 5% of the best, the
/// shortest wins, refined to its local maximum; a maximum at the longest lag the series can
/// show (half its length) is not claimed, as the correlation may still rise beyond it.
/// Cost: O(len x lags).
pub fn detect(
    series: &[f64],
    step_seconds: f64,
    min_seconds: f64,
    max_seconds: f64,
) -> Option<Detected> {
    if !(step_seconds > 0.0 && step_seconds.is_finite()) || series.len() < 4 {
        return None;
    }
    let n = series.len() as f64;
    let mean = series.iter().sum::<f64>() / n;
    let var = series.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    if mean.is_nan() || mean <= 0.0 || var.sqrt() / mean < MIN_VARIATION {
        return None;
    }
    let min_lag = ((min_seconds / step_seconds).ceil() as usize).max(2);
    let max_lag = ((max_seconds / step_seconds).floor() as usize).min(series.len() / 2);
    if min_lag > max_lag {
        return None;
    }
    // Lags from 1, to see the correlation dip: a load that only drifts (a step, a trend)
    // correlates with its own short shifts too, but never dips and comes back.
    let scores: Vec<(usize, f64)> = (1..=max_lag)
        .filter_map(|lag| {
            correlation(&series[..series.len() - lag], &series[lag..]).map(|c| (lag, c))
        })
        .collect();
    let dip = scores.iter().position(|s| s.1 < DIP_CORRELATION)?;
    let candidates: Vec<(usize, f64)> = scores[dip..]
        .iter()
        .copied()
        .filter(|s| s.0 >= min_lag)
        .collect();
    let best = candidates
        .iter()
        .map(|s| s.1)
        .fold(f64::NEG_INFINITY, f64::max);
    if best < MIN_CORRELATION {
        return None;
    }
    // The shortest lag near the best, refined to its local maximum.
    let mut i = candidates.iter().position(|s| s.1 >= NEAR_BEST * best)?;
    while i + 1 < candidates.len() && candidates[i + 1].1 > candidates[i].1 {
        i += 1;
    }
    // Still rising at the longest lag the series can show (less than three periods of
    // history): the true period may lie beyond it, so none is claimed yet.
    let series_bound = series.len() / 2 < (max_seconds / step_seconds).floor() as usize;
    if i + 1 == candidates.len() && series_bound {
        return None;
    }
    let (lag, c) = candidates[i];
    Some(Detected {
        period_seconds: lag as f64 * step_seconds,
        correlation: c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bursty(len: usize, period: usize, burst: usize) -> Vec<f64> {
        (0..len)
            .map(|i| if i % period < burst { 50.0 } else { 10.0 })
            .collect()
    }

    #[test]
    fn finds_the_period_of_bursts_not_a_multiple() {
        let s = bursty(120, 20, 5);
        let d = detect(&s, 60.0, 300.0, 86_400.0).expect("periodic");
        assert_eq!(d.period_seconds, 1200.0);
        assert!(d.correlation > 0.99);
    }

    #[test]
    fn finds_a_sine_period_under_noise() {
        let mut x = 0x1234_5678_u64;
        let s: Vec<f64> = (0..300)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let noise = (x % 1000) as f64 / 1000.0 - 0.5;
                30.0 + 20.0 * (i as f64 * std::f64::consts::TAU / 60.0).sin() + 4.0 * noise
            })
            .collect();
        let d = detect(&s, 60.0, 300.0, 86_400.0).expect("periodic");
        assert!((d.period_seconds - 3600.0).abs() <= 120.0, "{d:?}");
    }

    #[test]
    fn a_period_at_the_longest_lag_the_series_shows_waits_for_more_history() {
        let wave = |len: usize| -> Vec<f64> {
            (0..len)
                .map(|i| 30.0 - 20.0 * (i as f64 * std::f64::consts::TAU / 60.0).cos())
                .collect()
        };
        // 1.9 periods: the best lag the series can show is its last one; not a period.
        assert_eq!(detect(&wave(114), 60.0, 300.0, 86_400.0), None);
        // Just past two periods the correlation turns down after the true period.
        let d = detect(&wave(124), 60.0, 300.0, 86_400.0).expect("periodic");
        assert_eq!(d.period_seconds, 3600.0);
    }

    #[test]
    fn no_period_in_a_step_a_flat_load_or_less_than_two_periods() {
        let step: Vec<f64> = (0..200).map(|i| if i < 60 { 10.0 } else { 40.0 }).collect();
        assert_eq!(detect(&step, 60.0, 300.0, 86_400.0), None);
        let flat = vec![20.0; 200];
        assert_eq!(detect(&flat, 60.0, 300.0, 86_400.0), None);
        // One and a half periods of bursts: not enough to call it periodic.
        assert_eq!(detect(&bursty(30, 20, 5), 60.0, 300.0, 86_400.0), None);
        assert_eq!(detect(&[], 60.0, 300.0, 86_400.0), None);
    }
}
