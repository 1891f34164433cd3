//! A process-wide memo of [`replica_capacity`] over token mixes rounded to three
//! significant digits.
//!
//! A percentile capacity costs 0.3-0.5 ms (a search over the rate, each step a sum over
//! the TTFT and ITL tails); a plan needs one per variant, every cycle. The observed token
//! mix moves by a few percent from cycle to cycle, so the memo keys on the mix rounded to
//! three significant digits (at most 0.5% off, well inside the planner's headroom): the
//! result is a pure function of the rounded inputs, whatever was asked before. Bounded:
//! the memo is emptied when it holds [`MEMO_CAPACITY`] entries.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use wvo_api::{Profile, Slo};

use crate::{replica_capacity, CapacityEstimate, PerfError, TokenMix};

/// Most entries the memo holds before it is emptied.
pub const MEMO_CAPACITY: usize = 8192;

/// The exact bits of every input that shapes a capacity.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct MemoKey {
    profile: [u64; 4],
    max_batch_size: u32,
    slo: [u64; 3],
    mix: [u64; 2],
}

static MEMO: LazyLock<Mutex<HashMap<MemoKey, CapacityEstimate>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// `x` rounded to three significant digits (0 and non-finite values unchanged). Integers
/// below 1,000 are kept exactly.
pub fn three_significant_digits(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let exponent = x.abs().log10().floor() as i32 - 2;
    let unit = 10f64.powi(exponent);
    let rounded = (x / unit).round() * unit;
    // Undo the binary error of `unit` for integers (512 stays exactly 512).
    if exponent >= 0 {
        rounded.round()
    } else {
        rounded
    }
}

/// [`replica_capacity`] at `mix` rounded to three significant digits, memoized for the
/// process. Errors are not memoized.
pub fn replica_capacity_memo(
    profile: &Profile,
    slo: &Slo,
    mix: &TokenMix,
) -> Result<CapacityEstimate, PerfError> {
    let rounded = TokenMix {
        avg_input_tokens: three_significant_digits(mix.avg_input_tokens),
        avg_output_tokens: three_significant_digits(mix.avg_output_tokens),
    };
    let key = MemoKey {
        profile: [
            profile.alpha.to_bits(),
            profile.beta.to_bits(),
            profile.gamma.to_bits(),
            profile.delta.to_bits(),
        ],
        max_batch_size: profile.max_batch_size,
        slo: [
            slo.ttft_ms.to_bits(),
            slo.itl_ms.to_bits(),
            slo.percentile.map_or(u64::MAX, f64::to_bits),
        ],
        mix: [
            rounded.avg_input_tokens.to_bits(),
            rounded.avg_output_tokens.to_bits(),
        ],
    };
    // A poisoned lock only means another thread panicked mid-insert of a plain map.
    if let Some(hit) = MEMO
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&key)
    {
        return Ok(*hit);
    }
    let estimate = replica_capacity(profile, slo, &rounded)?;
    let mut memo = MEMO.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if memo.len() >= MEMO_CAPACITY {
        memo.clear();
    }
    memo.insert(key, estimate);
    Ok(estimate)
}
