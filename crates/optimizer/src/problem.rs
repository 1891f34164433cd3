//! The normalized optimization problem: flat arrays of accelerator types, models and variants,
//! with capacities already derived from profiles.

use wvo_api::{CatalogProfile, InputError, PlanInput, Profile, ProfileSpec, VariantSpec};
use wvo_perf::{CapacityLimit, CatalogError, Dtype, EstimateOptions, TokenMix};

/// One accelerator type.
#[derive(Clone, Debug)]
pub struct AcceleratorInfo {
    /// Type name.
    pub name: String,
    /// GPUs available.
    pub count: u32,
    /// $ per GPU-hour.
    pub cost_per_gpu: f64,
}

/// One model.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// Model name.
    pub name: String,
    /// Priority tier (higher first).
    pub priority: i32,
    /// Fair-share weight inside the tier.
    pub weight: f64,
    /// Rate to serve (arrival rate with headroom), req/s.
    pub demand: f64,
    /// Minimum replicas over all variants.
    pub min_replicas: u32,
    /// Maximum replicas over all variants (finite: capped by what the inventory can hold).
    pub max_replicas: u32,
    /// Index range of this model's variants in [`Problem::variants`].
    pub variants: std::ops::Range<usize>,
    /// Highest rate the model's own replica bounds (`maxReplicas`) allow, ignoring the
    /// inventory, req/s (infinite when unbounded). Fair share measures satisfaction against
    /// `min(demand, max_coverable)`: a cap the user set counts as met, a GPU shortage does not.
    pub max_coverable: f64,
    /// What the SLO's targets mean (`"mean"`, `"p99"`, ...; [`wvo_api::Slo::semantics`]);
    /// None when the model has no SLO (measured capacities only).
    pub slo: Option<String>,
    /// Variants whose profile cannot meet the SLO at any load (also in
    /// [`Problem::warnings`]).
    pub slo_unreachable: Vec<wvo_api::SloUnreachable>,
}

/// One variant.
#[derive(Clone, Debug)]
pub struct VariantInfo {
    /// Index of the owning model.
    pub model: usize,
    /// Variant name.
    pub name: String,
    /// Index of the accelerator type.
    pub accelerator: usize,
    /// GPUs per replica.
    pub gpus: u32,
    /// Capacity of one replica at the SLO, req/s.
    pub capacity: f64,
    /// Cost of one replica, $ per hour.
    pub price: f64,
    /// Minimum replicas.
    pub min_replicas: u32,
    /// Maximum replicas (finite: capped by `count / gpus` of its accelerator type).
    pub max_replicas: u32,
    /// Replicas running now (0 when not given).
    pub current: u32,
}

/// The whole problem, built from a validated [`PlanInput`].
#[derive(Clone, Debug)]
pub struct Problem {
    /// Accelerator types in input order.
    pub accelerators: Vec<AcceleratorInfo>,
    /// Models in input order.
    pub models: Vec<ModelInfo>,
    /// Variants, grouped by model, in input order.
    pub variants: Vec<VariantInfo>,
    /// Things a person should know about the input.
    pub warnings: Vec<String>,
}

/// Highest coverage (req/s) reachable within the user's replica bounds alone: per-variant
/// `maxReplicas` (`user_max`, None = unbounded) and the model-wide `max_total` (None =
/// unbounded). Infinite when some usable variant is unbounded and so is the model.
fn max_coverable(
    variants: &[VariantInfo],
    user_max: &[Option<u32>],
    max_total: Option<u32>,
) -> f64 {
    let mut covered: f64 = variants
        .iter()
        .map(|v| f64::from(v.min_replicas) * v.capacity)
        .sum();
    let floors: u64 = variants.iter().map(|v| u64::from(v.min_replicas)).sum();
    let mut left = max_total.map(|t| u64::from(t).saturating_sub(floors));
    let mut by_capacity: Vec<(&VariantInfo, Option<u32>)> =
        variants.iter().zip(user_max.iter().copied()).collect();
    by_capacity.sort_by(|a, b| b.0.capacity.total_cmp(&a.0.capacity));
    for (v, max) in by_capacity {
        if v.capacity <= 0.0 || left == Some(0) {
            continue;
        }
        let room = max.map(|m| u64::from(m.saturating_sub(v.min_replicas)));
        let take = match (room, left) {
            (None, None) => return f64::INFINITY,
            (Some(r), None) => r,
            (None, Some(l)) => l,
            (Some(r), Some(l)) => r.min(l),
        };
        covered += take as f64 * v.capacity;
        if let Some(l) = left.as_mut() {
            *l -= take;
        }
    }
    covered
}

/// Estimates a catalog profile for a variant: the model from the catalog, the variant's
/// accelerator name as the catalog accelerator, `tp` (default `gpusPerReplica`), the model's
/// token mix for the context length. Errors name the field: unknown model
/// (`profile.catalog`), accelerator not in the catalog (`accelerator`), bad `tp`/`dtype`, or a
/// model that does not fit (`profile`).
pub fn resolve_catalog(
    c: &CatalogProfile,
    vs: &VariantSpec,
    mix: &TokenMix,
    at: &str,
) -> Result<Profile, InputError> {
    let catalog = wvo_perf::Catalog::embedded()
        .map_err(|e| InputError::new(format!("{at}.profile.catalog"), e.to_string()))?;
    let dtype = c
        .dtype
        .as_deref()
        .map(Dtype::parse)
        .transpose()
        .map_err(|e| InputError::new(format!("{at}.profile.dtype"), e.to_string()))?;
    let tp = c.tp.unwrap_or(vs.gpus_per_replica);
    let defaults = EstimateOptions::default();
    let opts = EstimateOptions {
        avg_input_tokens: if mix.avg_input_tokens > 0.0 {
            mix.avg_input_tokens
        } else {
            defaults.avg_input_tokens
        },
        avg_output_tokens: mix.avg_output_tokens.max(1.0),
        ..defaults
    };
    let estimate =
        wvo_perf::estimate_by_name(catalog, &c.catalog, &vs.accelerator, tp, dtype, &opts)
            .map_err(|e| match e {
                CatalogError::UnknownModel { .. } => {
                    InputError::new(format!("{at}.profile.catalog"), e.to_string())
                }
                CatalogError::UnknownAccelerator { .. } => InputError::new(
                    format!("{at}.accelerator"),
                    format!("{e} (a catalog profile needs a catalog accelerator name)"),
                ),
                CatalogError::BadInput { field, .. } => {
                    InputError::new(format!("{at}.profile.{field}"), e.to_string())
                }
                other => InputError::new(format!("{at}.profile"), other.to_string()),
            })?;
    estimate.profile().ok_or_else(|| {
        InputError::new(
            format!("{at}.profile"),
            format!(
                "{} does not fit on {} x{} ({}): {}",
                estimate.model,
                estimate.accelerator,
                estimate.tp,
                estimate.dtype,
                estimate
                    .reason
                    .as_deref()
                    .unwrap_or("no room for the KV cache")
            ),
        )
    })
}

impl Problem {
    /// Builds the problem from a validated input, deriving capacities from profiles
    /// (catalog references are estimated first, see [`resolve_catalog`]).
    pub fn from_input(input: &PlanInput) -> Result<Self, InputError> {
        input.validate()?;
        let accelerators: Vec<AcceleratorInfo> = input
            .inventory
            .iter()
            .map(|a| AcceleratorInfo {
                name: a.name.clone(),
                count: a.count,
                cost_per_gpu: a.cost_per_hour,
            })
            .collect();
        let mut models = Vec::with_capacity(input.models.len());
        let mut variants = Vec::new();
        let mut warnings = Vec::new();
        for (mi, spec) in input.models.iter().enumerate() {
            // validate() guarantees a load entry for every model.
            let load = input
                .load
                .get(&spec.name)
                .copied()
                .unwrap_or(wvo_api::ModelLoad {
                    arrival_rate: 0.0,
                    avg_input_tokens: None,
                    avg_output_tokens: None,
                });
            let first = variants.len();
            let mut user_max = Vec::with_capacity(spec.variants.len());
            let mut slo_unreachable = Vec::new();
            for (vi, vs) in spec.variants.iter().enumerate() {
                let accelerator = accelerators
                    .iter()
                    .position(|a| a.name == vs.accelerator)
                    .ok_or_else(|| {
                        InputError::new(
                            format!("models[{mi}].variants[{vi}].accelerator"),
                            format!("unknown accelerator \"{}\"", vs.accelerator),
                        )
                    })?;
                let capacity = match (vs.max_requests_per_second, &vs.profile, spec.slo) {
                    (Some(rps), _, _) => rps,
                    (None, Some(profile_spec), Some(slo)) => {
                        let mix = TokenMix {
                            avg_input_tokens: load.avg_input_tokens.unwrap_or(0.0),
                            avg_output_tokens: load.avg_output_tokens.unwrap_or(1.0),
                        };
                        let profile = match profile_spec {
                            ProfileSpec::Inline(p) => *p,
                            ProfileSpec::Catalog(c) => resolve_catalog(
                                c,
                                vs,
                                &mix,
                                &format!("models[{mi}].variants[{vi}]"),
                            )?,
                        };
                        let estimate =
                            wvo_perf::replica_capacity_memo(&profile, &slo, &mix).map_err(|e| {
                                InputError::new(
                                    format!("models[{mi}].variants[{vi}].profile"),
                                    e.to_string(),
                                )
                            })?;
                        if estimate.limit == CapacityLimit::SloUnreachable {
                            let marker = wvo_api::SloUnreachable {
                                variant: vs.name.clone(),
                                ttft_ms: slo.ttft_ms,
                                itl_ms: slo.itl_ms,
                            };
                            warnings.push(marker.warning(&spec.name));
                            slo_unreachable.push(marker);
                        }
                        estimate.rps
                    }
                    _ => {
                        return Err(InputError::new(
                            format!("models[{mi}].variants[{vi}]"),
                            "capacity unknown: give maxRequestsPerSecond or a profile with the model's slo",
                        ))
                    }
                };
                user_max.push(vs.max_replicas);
                let inventory_max = accelerators[accelerator].count / vs.gpus_per_replica;
                let max_replicas = vs.max_replicas.unwrap_or(u32::MAX).min(inventory_max);
                if vs.min_replicas > max_replicas {
                    return Err(InputError::new(
                        format!("models[{mi}].variants[{vi}].minReplicas"),
                        format!(
                            "minReplicas {} needs {} {} GPUs but the inventory has {}",
                            vs.min_replicas,
                            u64::from(vs.min_replicas) * u64::from(vs.gpus_per_replica),
                            vs.accelerator,
                            accelerators[accelerator].count
                        ),
                    ));
                }
                variants.push(VariantInfo {
                    model: mi,
                    name: vs.name.clone(),
                    accelerator,
                    gpus: vs.gpus_per_replica,
                    capacity,
                    price: f64::from(vs.gpus_per_replica) * accelerators[accelerator].cost_per_gpu,
                    min_replicas: vs.min_replicas,
                    max_replicas,
                    current: input
                        .current
                        .get(&spec.name)
                        .and_then(|c| c.get(&vs.name))
                        .copied()
                        .unwrap_or(0),
                });
            }
            let range = first..variants.len();
            let sum_max: u64 = variants[range.clone()]
                .iter()
                .map(|v| u64::from(v.max_replicas))
                .sum();
            let max_replicas = spec
                .max_replicas
                .unwrap_or(u32::MAX)
                .min(u32::try_from(sum_max).unwrap_or(u32::MAX));
            if spec.min_replicas > max_replicas {
                return Err(InputError::new(
                    format!("models[{mi}].minReplicas"),
                    format!(
                        "minReplicas {} is more than the variants can hold in the inventory ({max_replicas})",
                        spec.min_replicas
                    ),
                ));
            }
            let demand = load.arrival_rate * (1.0 + input.options.headroom);
            let max_coverable =
                max_coverable(&variants[range.clone()], &user_max, spec.max_replicas);
            if demand > max_coverable * (1.0 + 1e-9) {
                warnings.push(format!(
                    "model \"{}\": demand {:.3} req/s is more than its maxReplicas bounds allow ({:.3} req/s); it is planned at that cap and counts as fully served there",
                    spec.name, demand, max_coverable
                ));
            } else {
                let in_inventory = variants[range.clone()]
                    .iter()
                    .map(|v| f64::from(v.max_replicas) * v.capacity)
                    .sum::<f64>();
                if demand > in_inventory * (1.0 + 1e-9) {
                    let types: Vec<&str> = variants[range.clone()]
                        .iter()
                        .filter(|v| v.capacity > 0.0)
                        .map(|v| accelerators[v.accelerator].name.as_str())
                        .collect();
                    warnings.push(format!(
                        "model \"{}\": demand {:.3} req/s is more than all the GPUs of its types ({}) could serve ({:.3} req/s)",
                        spec.name, demand, types.join(", "), in_inventory
                    ));
                }
            }
            models.push(ModelInfo {
                name: spec.name.clone(),
                priority: spec.priority,
                weight: spec.weight,
                demand,
                min_replicas: spec.min_replicas,
                max_replicas,
                variants: range,
                max_coverable,
                slo: spec.slo.as_ref().map(wvo_api::Slo::semantics),
                slo_unreachable,
            });
        }
        Ok(Self {
            accelerators,
            models,
            variants,
            warnings,
        })
    }

    /// Distinct priority tiers, highest first.
    pub fn tiers(&self) -> Vec<i32> {
        let mut tiers: Vec<i32> = self.models.iter().map(|m| m.priority).collect();
        tiers.sort_unstable_by(|a, b| b.cmp(a));
        tiers.dedup();
        tiers
    }

    /// The max-min service level plan `x` gives `members` (DESIGN.md's fair share): the
    /// largest `t` with `coverage_m >= min(1, t * weight_m) * cap_target_m` for each of them;
    /// `max(1/weight)` over the members when all are fully served.
    pub fn tier_level(&self, members: &[usize], x: &[u32]) -> f64 {
        let t_full = members
            .iter()
            .map(|&m| 1.0 / self.models[m].weight)
            .fold(0.0, f64::max);
        members
            .iter()
            .filter_map(|&m| {
                let (cover, cap) = (self.coverage(m, x), self.cap_target(m));
                (!meets(cover, cap)).then(|| cover / (self.models[m].weight * cap))
            })
            .fold(t_full, f64::min)
    }

    /// GPUs of each accelerator type used by replica counts `x` (one entry per variant).
    pub fn usage(&self, x: &[u32]) -> Vec<u64> {
        let mut used = vec![0u64; self.accelerators.len()];
        for (v, &n) in self.variants.iter().zip(x) {
            used[v.accelerator] += u64::from(n) * u64::from(v.gpus);
        }
        used
    }

    /// Cost of replica counts `x`, $ per hour.
    pub fn cost(&self, x: &[u32]) -> f64 {
        self.variants
            .iter()
            .zip(x)
            .map(|(v, &n)| v.price * f64::from(n))
            .sum()
    }

    /// Capacity planned for model `m` by replica counts `x`, req/s.
    pub fn coverage(&self, m: usize, x: &[u32]) -> f64 {
        self.variants[self.models[m].variants.clone()]
            .iter()
            .zip(&x[self.models[m].variants.clone()])
            .map(|(v, &n)| v.capacity * f64::from(n))
            .sum()
    }

    /// What fair share asks model `m` to cover at full satisfaction: its demand, capped only
    /// by its own `maxReplicas` bounds (never by the inventory), req/s.
    pub fn cap_target(&self, m: usize) -> f64 {
        self.models[m].demand.min(self.models[m].max_coverable)
    }

    /// Rate the plan serves for model `m`: `min(demand, coverage)`, req/s.
    pub fn served(&self, m: usize, x: &[u32]) -> f64 {
        self.coverage(m, x).min(self.models[m].demand)
    }

    /// Replica changes of `x` from the current replicas.
    pub fn changes(&self, x: &[u32]) -> u64 {
        self.variants
            .iter()
            .zip(x)
            .map(|(v, &n)| u64::from(n.abs_diff(v.current)))
            .sum()
    }
}

/// Relative tolerance used when comparing costs.
pub const TOLERANCE: f64 = 1e-9;

/// Relative tolerance used when comparing rates (covers the MILP solver's feasibility
/// tolerance).
pub const RATE_TOLERANCE: f64 = 1e-7;

/// True when `covered` meets `target` up to the relative rate tolerance.
pub fn meets(covered: f64, target: f64) -> bool {
    covered >= target - RATE_TOLERANCE * target.abs().max(1.0)
}
