//! Validation of a [`PlanInput`]: every problem names the field and what to do about it.

use crate::plan::*;
use std::collections::BTreeSet;

/// A bad field in the plan input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InputError {
    /// Path of the offending field, e.g. `models[0].variants[1].accelerator`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl InputError {
    /// An error at `field` saying `problem`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Highest accepted `inventory[].costPerHour`, $ per GPU-hour (lowest: 0).
pub const MAX_COST_PER_HOUR: f64 = 1e6;
/// Most GPUs accepted in one `inventory[].count`, GPUs.
pub const MAX_GPU_COUNT: u32 = 1_000_000;
/// Most GPUs accepted in a variant's `gpusPerReplica`, GPUs (fewest: 1).
pub const MAX_GPUS_PER_REPLICA: u32 = 1024;
/// Lowest accepted `maxRequestsPerSecond` of a variant, req/s per replica.
pub const MIN_REQUESTS_PER_SECOND: f64 = 1e-6;
/// Highest accepted `maxRequestsPerSecond` of a variant, req/s per replica.
pub const MAX_REQUESTS_PER_SECOND: f64 = 1e9;
/// Highest accepted `load.<model>.arrivalRate`, req/s (lowest: 0).
pub const MAX_ARRIVAL_RATE: f64 = 1e9;
/// Highest accepted `options.headroom`, a fraction of demand (100 plans for 101 times the
/// demand; lowest: 0).
pub const MAX_HEADROOM: f64 = 100.0;
/// Lowest accepted fair-share `weight` of a model (no unit).
pub const MIN_WEIGHT: f64 = 1e-6;
/// Highest accepted fair-share `weight` of a model (no unit).
pub const MAX_WEIGHT: f64 = 1e6;
/// Highest accepted `options.timeLimitSeconds`, s (it must be more than 0).
pub const MAX_TIME_LIMIT_SECONDS: f64 = 3600.0;
/// Highest accepted SLO target (`slo.ttftMs`, `slo.itlMs`), ms (they must be more than 0).
pub const MAX_SLO_MS: f64 = 1e7;
/// Highest accepted inline profile coefficient (`alpha`, `beta`, `gamma`, `delta`), ms
/// (`alpha` must be more than 0, the others at least 0).
pub const MAX_PROFILE_MS: f64 = 1e6;
/// Highest accepted `avgInputTokens` and `avgOutputTokens`, tokens per request.
pub const MAX_TOKENS: f64 = 1e7;
/// Fewest accepted `avgOutputTokens`, tokens per request.
pub const MIN_OUTPUT_TOKENS: f64 = 1.0;
/// Most replicas accepted in any `minReplicas`, `maxReplicas` or `current` count, replicas.
pub const MAX_REPLICAS: u32 = 1_000_000;

/// Lowest accepted `priority` of a model (the default tier).
pub const MIN_PRIORITY: i32 = 0;
/// Highest accepted `priority` of a model. Tiers are compared, not summed, so the range only
/// bounds what a VA may claim; 1000 leaves room for tiers between the usual 0, 10, 100.
pub const MAX_PRIORITY: i32 = 1000;
/// Most requests one replica may run at once (`profile.maxBatchSize`; fewest: 1); the
/// batching model caps its batch there too.
pub const MAX_BATCH_SIZE: u32 = 1 << 16;

/// Lowest SLO `percentile` (exclusive), percent: below the median a percentile target says
/// less than the mean does.
pub const MIN_SLO_PERCENTILE: f64 = 50.0;
/// Highest SLO `percentile`, percent: beyond it a few requests decide a whole replica count.
pub const MAX_SLO_PERCENTILE: f64 = 99.9;

/// A number for a message: plain when short (`1000000`, `0.5`), else in exponent form
/// (`1e308`, `1e-6`), so a hostile value does not print as hundreds of digits.
pub fn short_number(v: f64) -> String {
    num(v)
}

fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-3..1e7).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

fn with_unit(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    }
}

/// `value` in `[min, max]`; the message states the accepted range.
fn between(field: String, value: f64, min: f64, max: f64, unit: &str) -> Result<(), InputError> {
    if !(value >= min && value <= max) {
        return Err(InputError::new(
            field,
            format!(
                "must be between {} and {}{} (got {})",
                num(min),
                num(max),
                with_unit(unit),
                num(value)
            ),
        ));
    }
    Ok(())
}

/// `value` in `(min, max]`; the message states the accepted range.
fn above_up_to(
    field: String,
    value: f64,
    min: f64,
    max: f64,
    unit: &str,
) -> Result<(), InputError> {
    if !(value > min && value <= max) {
        return Err(InputError::new(
            field,
            format!(
                "must be greater than {} and at most {}{} (got {})",
                num(min),
                num(max),
                with_unit(unit),
                num(value)
            ),
        ));
    }
    Ok(())
}

/// A count in `[min, max]`; the message states the accepted range.
fn count_between(
    field: String,
    value: u32,
    min: u32,
    max: u32,
    unit: &str,
) -> Result<(), InputError> {
    if !(min..=max).contains(&value) {
        return Err(InputError::new(
            field,
            format!(
                "must be between {min} and {max}{} (got {value})",
                with_unit(unit)
            ),
        ));
    }
    Ok(())
}

fn finite_at_least(field: String, value: f64, min: f64, what: &str) -> Result<(), InputError> {
    if !value.is_finite() || value < min {
        return Err(InputError::new(
            field,
            format!("must be a finite number >= {min} ({what}), got {value}"),
        ));
    }
    Ok(())
}

fn positive(field: String, value: f64, what: &str) -> Result<(), InputError> {
    if !value.is_finite() || value <= 0.0 {
        return Err(InputError::new(
            field,
            format!("must be a finite number > 0 ({what}), got {value}"),
        ));
    }
    Ok(())
}

impl PlanInput {
    /// Checks the input and returns the first problem found.
    ///
    /// Checks names (unique, known accelerators, known models in `load` and `current`),
    /// numbers (finite, in the accepted range of this module's `MIN_*`/`MAX_*` constants, so
    /// that no cost or rate computed from them overflows), bounds (min <= max, per variant
    /// and per model) and the data each variant needs (a capacity or a profile; an SLO and
    /// token mix for a profile). A number out of range is refused with a message naming the
    /// field and the accepted range.
    pub fn validate(&self) -> Result<(), InputError> {
        let mut accelerators = BTreeSet::new();
        for (i, acc) in self.inventory.iter().enumerate() {
            let at = format!("inventory[{i}]");
            if acc.name.trim().is_empty() {
                return Err(InputError::new(format!("{at}.name"), "must not be empty"));
            }
            if !accelerators.insert(acc.name.as_str()) {
                return Err(InputError::new(
                    format!("{at}.name"),
                    format!(
                        "duplicate accelerator type \"{}\"; list each type once",
                        acc.name
                    ),
                ));
            }
            finite_at_least(
                format!("{at}.costPerHour"),
                acc.cost_per_hour,
                0.0,
                "$ per GPU-hour",
            )?;
            between(
                format!("{at}.costPerHour"),
                acc.cost_per_hour,
                0.0,
                MAX_COST_PER_HOUR,
                "$/h",
            )?;
            count_between(format!("{at}.count"), acc.count, 0, MAX_GPU_COUNT, "GPUs")?;
        }
        let known_accelerators = || accelerators.iter().copied().collect::<Vec<_>>().join(", ");

        let mut model_names = BTreeSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let at = format!("models[{i}]");
            if model.name.trim().is_empty() {
                return Err(InputError::new(format!("{at}.name"), "must not be empty"));
            }
            if !model_names.insert(model.name.as_str()) {
                return Err(InputError::new(
                    format!("{at}.name"),
                    format!(
                        "duplicate model name \"{}\"; model names must be unique",
                        model.name
                    ),
                ));
            }
            if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&model.priority) {
                return Err(InputError::new(
                    format!("{at}.priority"),
                    format!(
                        "must be between {MIN_PRIORITY} and {MAX_PRIORITY} (got {})",
                        model.priority
                    ),
                ));
            }
            positive(format!("{at}.weight"), model.weight, "fair-share weight")?;
            between(
                format!("{at}.weight"),
                model.weight,
                MIN_WEIGHT,
                MAX_WEIGHT,
                "(fair-share weight)",
            )?;
            count_between(
                format!("{at}.minReplicas"),
                model.min_replicas,
                0,
                MAX_REPLICAS,
                "replicas",
            )?;
            if let Some(max) = model.max_replicas {
                count_between(
                    format!("{at}.maxReplicas"),
                    max,
                    0,
                    MAX_REPLICAS,
                    "replicas",
                )?;
            }
            if let Some(max) = model.max_replicas {
                if model.min_replicas > max {
                    return Err(InputError::new(
                        format!("{at}.minReplicas"),
                        format!(
                            "minReplicas {} is greater than maxReplicas {max}",
                            model.min_replicas
                        ),
                    ));
                }
            }
            if model.variants.is_empty() {
                return Err(InputError::new(
                    format!("{at}.variants"),
                    "a model needs at least one variant",
                ));
            }
            if let Some(slo) = &model.slo {
                positive(format!("{at}.slo.ttftMs"), slo.ttft_ms, "ms")?;
                positive(format!("{at}.slo.itlMs"), slo.itl_ms, "ms")?;
                above_up_to(
                    format!("{at}.slo.ttftMs"),
                    slo.ttft_ms,
                    0.0,
                    MAX_SLO_MS,
                    "ms",
                )?;
                above_up_to(format!("{at}.slo.itlMs"), slo.itl_ms, 0.0, MAX_SLO_MS, "ms")?;
                if let Some(p) = slo.percentile {
                    above_up_to(
                        format!("{at}.slo.percentile"),
                        p,
                        MIN_SLO_PERCENTILE,
                        MAX_SLO_PERCENTILE,
                        "%",
                    )?;
                }
            }
            let load = self.load.get(&model.name);
            let mut variant_names = BTreeSet::new();
            let mut sum_min: u64 = 0;
            let mut sum_max: Option<u64> = Some(0);
            for (j, variant) in model.variants.iter().enumerate() {
                let at = format!("{at}.variants[{j}]");
                if variant.name.trim().is_empty() {
                    return Err(InputError::new(format!("{at}.name"), "must not be empty"));
                }
                if !variant_names.insert(variant.name.as_str()) {
                    return Err(InputError::new(
                        format!("{at}.name"),
                        format!(
                            "duplicate variant name \"{}\" in model \"{}\"",
                            variant.name, model.name
                        ),
                    ));
                }
                if !accelerators.contains(variant.accelerator.as_str()) {
                    return Err(InputError::new(
                        format!("{at}.accelerator"),
                        format!(
                            "unknown accelerator \"{}\"; the inventory has: {}",
                            variant.accelerator,
                            known_accelerators()
                        ),
                    ));
                }
                if variant.gpus_per_replica == 0 {
                    return Err(InputError::new(
                        format!("{at}.gpusPerReplica"),
                        "must be at least 1",
                    ));
                }
                count_between(
                    format!("{at}.gpusPerReplica"),
                    variant.gpus_per_replica,
                    1,
                    MAX_GPUS_PER_REPLICA,
                    "GPUs",
                )?;
                count_between(
                    format!("{at}.minReplicas"),
                    variant.min_replicas,
                    0,
                    MAX_REPLICAS,
                    "replicas",
                )?;
                if let Some(max) = variant.max_replicas {
                    count_between(
                        format!("{at}.maxReplicas"),
                        max,
                        0,
                        MAX_REPLICAS,
                        "replicas",
                    )?;
                }
                if let Some(max) = variant.max_replicas {
                    if variant.min_replicas > max {
                        return Err(InputError::new(
                            format!("{at}.minReplicas"),
                            format!(
                                "minReplicas {} is greater than maxReplicas {max}",
                                variant.min_replicas
                            ),
                        ));
                    }
                }
                sum_min += u64::from(variant.min_replicas);
                sum_max = match (sum_max, variant.max_replicas) {
                    (Some(s), Some(m)) => Some(s + u64::from(m)),
                    _ => None,
                };
                match (&variant.max_requests_per_second, &variant.profile) {
                    (Some(_), Some(_)) => {
                        return Err(InputError::new(
                            at,
                            "give either maxRequestsPerSecond or profile, not both",
                        ))
                    }
                    (None, None) => {
                        return Err(InputError::new(
                            at,
                            "capacity unknown: give maxRequestsPerSecond (req/s per replica at the SLO) or a profile",
                        ))
                    }
                    (Some(rps), None) => {
                        positive(format!("{at}.maxRequestsPerSecond"), *rps, "req/s per replica")?;
                        between(
                            format!("{at}.maxRequestsPerSecond"),
                            *rps,
                            MIN_REQUESTS_PER_SECOND,
                            MAX_REQUESTS_PER_SECOND,
                            "req/s per replica",
                        )?;
                    }
                    (None, Some(spec)) => {
                        match spec {
                            ProfileSpec::Inline(profile) => {
                                positive(format!("{at}.profile.alpha"), profile.alpha, "ms")?;
                                finite_at_least(format!("{at}.profile.beta"), profile.beta, 0.0, "ms")?;
                                finite_at_least(format!("{at}.profile.gamma"), profile.gamma, 0.0, "ms")?;
                                finite_at_least(format!("{at}.profile.delta"), profile.delta, 0.0, "ms")?;
                                above_up_to(format!("{at}.profile.alpha"), profile.alpha, 0.0, MAX_PROFILE_MS, "ms")?;
                                between(format!("{at}.profile.beta"), profile.beta, 0.0, MAX_PROFILE_MS, "ms")?;
                                between(format!("{at}.profile.gamma"), profile.gamma, 0.0, MAX_PROFILE_MS, "ms")?;
                                between(format!("{at}.profile.delta"), profile.delta, 0.0, MAX_PROFILE_MS, "ms")?;
                                count_between(
                                    format!("{at}.profile.maxBatchSize"),
                                    profile.max_batch_size,
                                    1,
                                    MAX_BATCH_SIZE,
                                    "requests",
                                )?;
                            }
                            ProfileSpec::Catalog(c) => {
                                if c.catalog.trim().is_empty() {
                                    return Err(InputError::new(
                                        format!("{at}.profile.catalog"),
                                        "must name a catalog model (see `wvo profile --list`)",
                                    ));
                                }
                                if let Some(tp) = c.tp {
                                    if tp == 0 || tp > variant.gpus_per_replica {
                                        return Err(InputError::new(
                                            format!("{at}.profile.tp"),
                                            format!(
                                                "must be between 1 and gpusPerReplica ({}), got {tp}",
                                                variant.gpus_per_replica
                                            ),
                                        ));
                                    }
                                }
                            }
                        }
                        if model.slo.is_none() {
                            return Err(InputError::new(
                                format!("models[{i}].slo"),
                                format!(
                                    "missing: variant \"{}\" gives a profile, so the model needs slo: {{ttftMs, itlMs}}",
                                    variant.name
                                ),
                            ));
                        }
                        if let Some(load) = load {
                            let load_at = format!("load.{}", model.name);
                            match load.avg_input_tokens {
                                Some(v) => {
                                    finite_at_least(
                                        format!("{load_at}.avgInputTokens"),
                                        v,
                                        0.0,
                                        "tokens",
                                    )?;
                                    between(
                                        format!("{load_at}.avgInputTokens"),
                                        v,
                                        0.0,
                                        MAX_TOKENS,
                                        "tokens",
                                    )?;
                                }
                                None => {
                                    return Err(InputError::new(
                                        format!("{load_at}.avgInputTokens"),
                                        format!("missing: variant \"{}\" gives a profile, which needs the token mix", variant.name),
                                    ))
                                }
                            }
                            match load.avg_output_tokens {
                                Some(v) => {
                                    finite_at_least(
                                        format!("{load_at}.avgOutputTokens"),
                                        v,
                                        MIN_OUTPUT_TOKENS,
                                        "tokens",
                                    )?;
                                    between(
                                        format!("{load_at}.avgOutputTokens"),
                                        v,
                                        MIN_OUTPUT_TOKENS,
                                        MAX_TOKENS,
                                        "tokens",
                                    )?;
                                }
                                None => {
                                    return Err(InputError::new(
                                        format!("{load_at}.avgOutputTokens"),
                                        format!("missing: variant \"{}\" gives a profile, which needs the token mix", variant.name),
                                    ))
                                }
                            }
                        }
                    }
                }
            }
            if let Some(max) = model.max_replicas {
                if sum_min > u64::from(max) {
                    return Err(InputError::new(
                        format!("{at}.maxReplicas"),
                        format!("maxReplicas {max} is below the sum of the variants' minReplicas ({sum_min})"),
                    ));
                }
            }
            if let Some(sum_max) = sum_max {
                if u64::from(model.min_replicas) > sum_max {
                    return Err(InputError::new(
                        format!("{at}.minReplicas"),
                        format!(
                            "minReplicas {} is above the sum of the variants' maxReplicas ({sum_max})",
                            model.min_replicas
                        ),
                    ));
                }
            }
            match load {
                None => {
                    return Err(InputError::new(
                        format!("load.{}", model.name),
                        "missing: every model needs a load entry (arrivalRate 0 for an idle model)",
                    ))
                }
                Some(load) => {
                    finite_at_least(
                        format!("load.{}.arrivalRate", model.name),
                        load.arrival_rate,
                        0.0,
                        "req/s",
                    )?;
                    between(
                        format!("load.{}.arrivalRate", model.name),
                        load.arrival_rate,
                        0.0,
                        MAX_ARRIVAL_RATE,
                        "req/s",
                    )?;
                }
            }
        }
        for name in self.load.keys() {
            if !model_names.contains(name.as_str()) {
                return Err(InputError::new(
                    format!("load.{name}"),
                    "no model of that name; remove it or fix the name",
                ));
            }
        }
        for (name, variants) in &self.current {
            let Some(model) = self.models.iter().find(|m| &m.name == name) else {
                return Err(InputError::new(
                    format!("current.{name}"),
                    "no model of that name; remove it or fix the name",
                ));
            };
            for (variant, &replicas) in variants {
                if !model.variants.iter().any(|v| &v.name == variant) {
                    return Err(InputError::new(
                        format!("current.{name}.{variant}"),
                        format!("model \"{name}\" has no variant of that name"),
                    ));
                }
                count_between(
                    format!("current.{name}.{variant}"),
                    replicas,
                    0,
                    MAX_REPLICAS,
                    "replicas",
                )?;
            }
        }
        finite_at_least(
            "options.headroom".into(),
            self.options.headroom,
            0.0,
            "fraction",
        )?;
        between(
            "options.headroom".into(),
            self.options.headroom,
            0.0,
            MAX_HEADROOM,
            "(fraction of demand)",
        )?;
        if let Some(limit) = self.options.time_limit_seconds {
            above_up_to(
                "options.timeLimitSeconds".into(),
                limit,
                0.0,
                MAX_TIME_LIMIT_SECONDS,
                "s",
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid input with every checked number present: one capacity variant, one inline
    /// profile variant, an SLO, a token mix, current replicas and a time limit.
    fn base() -> PlanInput {
        PlanInput {
            inventory: vec![AcceleratorType {
                name: "T".into(),
                count: 8,
                cost_per_hour: 1.0,
            }],
            models: vec![ModelSpec {
                name: "m".into(),
                model_id: None,
                priority: 0,
                weight: 1.0,
                slo: Some(Slo {
                    ttft_ms: 500.0,
                    itl_ms: 50.0,
                    percentile: None,
                }),
                min_replicas: 0,
                max_replicas: Some(10),
                variants: vec![
                    VariantSpec {
                        name: "cap".into(),
                        accelerator: "T".into(),
                        gpus_per_replica: 1,
                        min_replicas: 0,
                        max_replicas: Some(4),
                        max_requests_per_second: Some(10.0),
                        profile: None,
                    },
                    VariantSpec {
                        name: "prof".into(),
                        accelerator: "T".into(),
                        gpus_per_replica: 1,
                        min_replicas: 0,
                        max_replicas: None,
                        max_requests_per_second: None,
                        profile: Some(
                            Profile {
                                alpha: 6.0,
                                beta: 0.05,
                                gamma: 15.0,
                                delta: 0.01,
                                max_batch_size: 256,
                            }
                            .into(),
                        ),
                    },
                ],
            }],
            load: [(
                "m".to_string(),
                ModelLoad {
                    arrival_rate: 5.0,
                    avg_input_tokens: Some(512.0),
                    avg_output_tokens: Some(256.0),
                },
            )]
            .into(),
            current: [("m".to_string(), [("cap".to_string(), 1)].into())].into(),
            options: PlanOptions {
                time_limit_seconds: Some(10.0),
                ..PlanOptions::default()
            },
        }
    }

    fn inline(i: &mut PlanInput) -> &mut Profile {
        match i.models[0].variants[1].profile.as_mut() {
            Some(ProfileSpec::Inline(p)) => p,
            _ => unreachable!("base() has an inline profile"),
        }
    }

    fn load(i: &mut PlanInput) -> &mut ModelLoad {
        i.load.get_mut("m").expect("base() has load.m")
    }

    /// Every value in `inside` passes; every value in `outside` is refused at `field` with a
    /// message containing `range`.
    fn bounds<T: Copy + std::fmt::Debug>(
        field: &str,
        inside: &[T],
        outside: &[T],
        range: &str,
        set: impl Fn(&mut PlanInput, T),
    ) {
        base().validate().expect("base() is valid");
        for &v in inside {
            let mut i = base();
            set(&mut i, v);
            assert_eq!(i.validate(), Ok(()), "{field} = {v:?} should pass");
        }
        for &v in outside {
            let mut i = base();
            set(&mut i, v);
            let e = i
                .validate()
                .expect_err(&format!("{field} = {v:?} should fail"));
            assert_eq!(e.field, field, "{field} = {v:?}: {e}");
            assert!(
                e.problem.contains(range),
                "{field} = {v:?}: {e} should state the range {range:?}"
            );
        }
    }

    #[test]
    fn cost_per_hour_range() {
        bounds(
            "inventory[0].costPerHour",
            &[0.0, MAX_COST_PER_HOUR],
            &[MAX_COST_PER_HOUR + 0.01, 1e308],
            "between 0 and 1000000 $/h",
            |i, v| i.inventory[0].cost_per_hour = v,
        );
        let mut i = base();
        i.inventory[0].cost_per_hour = 1e308;
        assert_eq!(
            i.validate().map_err(|e| e.to_string()),
            Err("inventory[0].costPerHour: must be between 0 and 1000000 $/h (got 1e308)".into())
        );
    }

    #[test]
    fn priority_range() {
        bounds(
            "models[0].priority",
            &[MIN_PRIORITY, 100, MAX_PRIORITY],
            &[MIN_PRIORITY - 1, MAX_PRIORITY + 1, i32::MIN, i32::MAX],
            "between 0 and 1000",
            |i, v| i.models[0].priority = v,
        );
    }

    #[test]
    fn max_batch_size_range() {
        bounds(
            "models[0].variants[1].profile.maxBatchSize",
            &[1, MAX_BATCH_SIZE],
            &[0, MAX_BATCH_SIZE + 1, u32::MAX],
            "between 1 and 65536 requests",
            |i, v| inline(i).max_batch_size = v,
        );
    }

    #[test]
    fn gpu_count_range() {
        bounds(
            "inventory[0].count",
            &[0, MAX_GPU_COUNT],
            &[MAX_GPU_COUNT + 1, u32::MAX],
            "between 0 and 1000000 GPUs",
            |i, v| i.inventory[0].count = v,
        );
    }

    #[test]
    fn gpus_per_replica_range() {
        bounds(
            "models[0].variants[0].gpusPerReplica",
            &[1, MAX_GPUS_PER_REPLICA],
            &[MAX_GPUS_PER_REPLICA + 1, u32::MAX],
            "between 1 and 1024 GPUs",
            |i, v| i.models[0].variants[0].gpus_per_replica = v,
        );
    }

    #[test]
    fn max_requests_per_second_range() {
        bounds(
            "models[0].variants[0].maxRequestsPerSecond",
            &[MIN_REQUESTS_PER_SECOND, MAX_REQUESTS_PER_SECOND],
            &[9e-7, MAX_REQUESTS_PER_SECOND + 1.0, 1e308],
            "between 1e-6 and 1e9 req/s per replica",
            |i, v| i.models[0].variants[0].max_requests_per_second = Some(v),
        );
    }

    #[test]
    fn arrival_rate_range() {
        bounds(
            "load.m.arrivalRate",
            &[0.0, MAX_ARRIVAL_RATE],
            &[MAX_ARRIVAL_RATE + 1.0, 1e308],
            "between 0 and 1e9 req/s",
            |i, v| load(i).arrival_rate = v,
        );
    }

    #[test]
    fn headroom_range() {
        bounds(
            "options.headroom",
            &[0.0, MAX_HEADROOM],
            &[MAX_HEADROOM + 0.001, 1e308],
            "between 0 and 100",
            |i, v| i.options.headroom = v,
        );
    }

    #[test]
    fn weight_range() {
        bounds(
            "models[0].weight",
            &[MIN_WEIGHT, MAX_WEIGHT],
            &[9e-7, MAX_WEIGHT + 0.01],
            "between 1e-6 and 1000000",
            |i, v| i.models[0].weight = v,
        );
    }

    #[test]
    fn time_limit_range() {
        bounds(
            "options.timeLimitSeconds",
            &[1e-9, MAX_TIME_LIMIT_SECONDS],
            &[
                0.0,
                -1.0,
                MAX_TIME_LIMIT_SECONDS + 0.001,
                f64::NAN,
                f64::INFINITY,
            ],
            "greater than 0 and at most 3600 s",
            |i, v| i.options.time_limit_seconds = Some(v),
        );
        let mut i = base();
        i.options.time_limit_seconds = None;
        assert_eq!(i.validate(), Ok(()));
    }

    #[test]
    fn slo_range() {
        bounds(
            "models[0].slo.ttftMs",
            &[1e-9, MAX_SLO_MS],
            &[MAX_SLO_MS + 1.0, 1e308],
            "greater than 0 and at most 1e7 ms",
            |i, v| {
                if let Some(slo) = i.models[0].slo.as_mut() {
                    slo.ttft_ms = v;
                }
            },
        );
        bounds(
            "models[0].slo.itlMs",
            &[1e-9, MAX_SLO_MS],
            &[MAX_SLO_MS + 1.0, 1e308],
            "greater than 0 and at most 1e7 ms",
            |i, v| {
                if let Some(slo) = i.models[0].slo.as_mut() {
                    slo.itl_ms = v;
                }
            },
        );
        bounds(
            "models[0].slo.percentile",
            &[50.000001, 90.0, 99.0, MAX_SLO_PERCENTILE],
            &[50.0, 10.0, 99.95, 100.0, f64::NAN],
            "greater than 50 and at most 99.9 %",
            |i, v| {
                if let Some(slo) = i.models[0].slo.as_mut() {
                    slo.percentile = Some(v);
                }
            },
        );
    }

    #[test]
    fn profile_coefficient_ranges() {
        let at = "models[0].variants[1].profile";
        bounds(
            &format!("{at}.alpha"),
            &[1e-9, MAX_PROFILE_MS],
            &[MAX_PROFILE_MS + 0.01, 1e308],
            "greater than 0 and at most 1000000 ms",
            |i, v| inline(i).alpha = v,
        );
        type Setter = fn(&mut PlanInput, f64);
        let others: [(&str, Setter); 3] = [
            ("beta", |i, v| inline(i).beta = v),
            ("gamma", |i, v| inline(i).gamma = v),
            ("delta", |i, v| inline(i).delta = v),
        ];
        for (coefficient, set) in others {
            bounds(
                &format!("{at}.{coefficient}"),
                &[0.0, MAX_PROFILE_MS],
                &[MAX_PROFILE_MS + 0.01, 1e308],
                "between 0 and 1000000 ms",
                set,
            );
        }
    }

    #[test]
    fn token_mix_ranges() {
        bounds(
            "load.m.avgInputTokens",
            &[0.0, MAX_TOKENS],
            &[MAX_TOKENS + 1.0, 1e308],
            "between 0 and 1e7 tokens",
            |i, v| load(i).avg_input_tokens = Some(v),
        );
        bounds(
            "load.m.avgOutputTokens",
            &[MIN_OUTPUT_TOKENS, MAX_TOKENS],
            &[MAX_TOKENS + 1.0, 1e308],
            "between 1 and 1e7 tokens",
            |i, v| load(i).avg_output_tokens = Some(v),
        );
    }

    #[test]
    fn replica_count_ranges() {
        let range = "between 0 and 1000000 replicas";
        bounds(
            "models[0].minReplicas",
            &[0, 4],
            &[MAX_REPLICAS + 1, u32::MAX],
            range,
            |i, v| i.models[0].min_replicas = v,
        );
        bounds(
            "models[0].maxReplicas",
            &[0, MAX_REPLICAS],
            &[MAX_REPLICAS + 1, u32::MAX],
            range,
            |i, v| i.models[0].max_replicas = Some(v),
        );
        bounds(
            "models[0].variants[0].maxReplicas",
            &[0, MAX_REPLICAS],
            &[MAX_REPLICAS + 1, u32::MAX],
            range,
            |i, v| i.models[0].variants[0].max_replicas = Some(v),
        );
        bounds(
            "models[0].variants[1].minReplicas",
            &[0, MAX_REPLICAS],
            &[MAX_REPLICAS + 1, u32::MAX],
            range,
            |i, v| {
                i.models[0].max_replicas = None;
                i.models[0].variants[1].min_replicas = v;
            },
        );
        bounds(
            "current.m.cap",
            &[0, MAX_REPLICAS],
            &[MAX_REPLICAS + 1, u32::MAX],
            range,
            |i, v| {
                i.current
                    .insert("m".into(), [("cap".to_string(), v)].into());
            },
        );
    }

    #[test]
    fn model_replica_bounds_at_the_limit() {
        // The model-wide bounds at the limit, with room for them in the variants' bounds.
        let mut i = base();
        i.models[0].variants[0].max_replicas = None;
        i.models[0].min_replicas = MAX_REPLICAS;
        i.models[0].max_replicas = Some(MAX_REPLICAS);
        assert_eq!(i.validate(), Ok(()));
        i.models[0].min_replicas = MAX_REPLICAS + 1;
        let e = i.validate().expect_err("above the limit");
        assert_eq!(e.field, "models[0].minReplicas", "{e}");
    }

    #[test]
    fn below_the_lower_bound_keeps_the_old_messages() {
        let mut i = base();
        i.inventory[0].cost_per_hour = -1.0;
        let e = i.validate().expect_err("negative cost");
        assert_eq!(e.field, "inventory[0].costPerHour");
        assert!(e.problem.contains("must be a finite number >= 0"), "{e}");
        let mut i = base();
        i.models[0].variants[0].gpus_per_replica = 0;
        let e = i.validate().expect_err("zero GPUs");
        assert_eq!(
            e.to_string(),
            "models[0].variants[0].gpusPerReplica: must be at least 1"
        );
    }

    #[test]
    fn numbers_in_messages_stay_short() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(1e6), "1000000");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(1e7), "1e7");
        assert_eq!(num(1e308), "1e308");
        assert_eq!(num(-1e308), "-1e308");
        assert_eq!(num(1e-6), "1e-6");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(f64::INFINITY), "inf");
    }
}
