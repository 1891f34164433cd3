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
    /// numbers (finite, in range), bounds (min <= max, per variant and per model) and the
    /// data each variant needs (a capacity or a profile; an SLO and token mix for a profile).
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
            positive(format!("{at}.weight"), model.weight, "fair-share weight")?;
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
                        positive(format!("{at}.maxRequestsPerSecond"), *rps, "req/s per replica")?
                    }
                    (None, Some(spec)) => {
                        match spec {
                            ProfileSpec::Inline(profile) => {
                                positive(format!("{at}.profile.alpha"), profile.alpha, "ms")?;
                                finite_at_least(format!("{at}.profile.beta"), profile.beta, 0.0, "ms")?;
                                finite_at_least(format!("{at}.profile.gamma"), profile.gamma, 0.0, "ms")?;
                                finite_at_least(format!("{at}.profile.delta"), profile.delta, 0.0, "ms")?;
                                if profile.max_batch_size == 0 {
                                    return Err(InputError::new(
                                        format!("{at}.profile.maxBatchSize"),
                                        "must be at least 1",
                                    ));
                                }
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
                                Some(v) => finite_at_least(
                                    format!("{load_at}.avgInputTokens"),
                                    v,
                                    0.0,
                                    "tokens",
                                )?,
                                None => {
                                    return Err(InputError::new(
                                        format!("{load_at}.avgInputTokens"),
                                        format!("missing: variant \"{}\" gives a profile, which needs the token mix", variant.name),
                                    ))
                                }
                            }
                            match load.avg_output_tokens {
                                Some(v) => finite_at_least(
                                    format!("{load_at}.avgOutputTokens"),
                                    v,
                                    1.0,
                                    "tokens",
                                )?,
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
                Some(load) => finite_at_least(
                    format!("load.{}.arrivalRate", model.name),
                    load.arrival_rate,
                    0.0,
                    "req/s",
                )?,
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
            for variant in variants.keys() {
                if !model.variants.iter().any(|v| &v.name == variant) {
                    return Err(InputError::new(
                        format!("current.{name}.{variant}"),
                        format!("model \"{name}\" has no variant of that name"),
                    ));
                }
            }
        }
        finite_at_least(
            "options.headroom".into(),
            self.options.headroom,
            0.0,
            "fraction",
        )?;
        Ok(())
    }
}
