//! Seeded synthetic planning problems for benchmarks and tests: a mixed fleet of accelerator
//! types, models with 1–4 variants each, and loads that make some types binding.

use std::collections::BTreeMap;
use wvo_api::{AcceleratorType, ModelLoad, ModelSpec, PlanInput, PlanOptions, VariantSpec};
// The project's one seeded generator, so instances are the same on every machine.
use wvo_perf::workload::SplitMix64;

/// Accelerator types of the synthetic fleet: name, $/GPU-hour, relative speed.
const FLEET: [(&str, f64, f64); 8] = [
    ("H100", 4.10, 1.00),
    ("H200", 5.00, 1.25),
    ("B200", 7.50, 1.90),
    ("A100-80G", 2.60, 0.55),
    ("A100-40G", 2.00, 0.45),
    ("L40S", 1.30, 0.33),
    ("L4", 0.70, 0.12),
    ("MI300X", 3.80, 1.05),
];

/// A synthetic problem with `models` models; `tightness` scales the inventory (1.0 is about
/// what the cheapest placement would want of the popular types, so some bind; below 1 is
/// scarce).
pub fn instance(models: usize, seed: u64, tightness: f64) -> PlanInput {
    let mut rng = SplitMix64::new(seed);
    let mut specs = Vec::with_capacity(models);
    let mut load = BTreeMap::new();
    let mut want = [0.0f64; FLEET.len()];
    for m in 0..models {
        let size = rng.unit_half_open(); // bigger models need more GPUs and serve less per replica
        let gpus = if size < 0.6 {
            1
        } else if size < 0.9 {
            2
        } else {
            4
        };
        let base_rps = 2.0 + 30.0 * rng.unit_half_open() / f64::from(gpus);
        let n_variants = rng.range(1, 4) as usize;
        let variants = random_variants(&mut rng, FLEET.len(), n_variants, gpus, base_rps);
        let rate = (0.5 + 60.0 * rng.unit_half_open().powi(2) * rng.unit_half_open()).round();
        // What the cheapest variant alone would need, to size the inventory.
        let (best_t, best_n) = variants
            .iter()
            .map(|v| {
                let t = FLEET.iter().position(|f| f.0 == v.accelerator).unwrap_or(0);
                let rps = v.max_requests_per_second.unwrap_or(1.0);
                let n = (rate / rps).ceil();
                (t, n, n * FLEET[t].1 * f64::from(v.gpus_per_replica))
            })
            .min_by(|a, b| a.2.total_cmp(&b.2))
            .map(|(t, n, _)| (t, n))
            .unwrap_or((0, 0.0));
        want[best_t] += best_n * f64::from(gpus);
        let name = format!("model-{m:05}");
        load.insert(
            name.clone(),
            ModelLoad {
                arrival_rate: rate,
                avg_input_tokens: Some(512.0),
                avg_output_tokens: Some(256.0),
            },
        );
        specs.push(ModelSpec {
            name,
            model_id: None,
            priority: if rng.unit_half_open() < 0.3 { 100 } else { 0 },
            weight: 1.0,
            slo: None,
            min_replicas: 0,
            max_replicas: None,
            variants,
        });
    }
    let inventory = FLEET
        .iter()
        .enumerate()
        .map(|(t, (name, cost, _))| AcceleratorType {
            name: name.to_string(),
            // Cheap popular types get ~tightness of what they'd want: those bind.
            count: ((want[t] * tightness * if t % 2 == 0 { 0.8 } else { 3.0 }).ceil() as u32)
                .max(8),
            cost_per_hour: *cost,
        })
        .collect();
    PlanInput {
        inventory,
        models: specs,
        load,
        current: BTreeMap::new(),
        options: PlanOptions::default(),
    }
}

/// `count` variants of `gpus` GPUs per replica on distinct types among the first `types` of
/// [`FLEET`], each serving about `base_rps` req/s scaled by its type's speed (±20%).
fn random_variants(
    rng: &mut SplitMix64,
    types: usize,
    count: usize,
    gpus: u32,
    base_rps: f64,
) -> Vec<VariantSpec> {
    let mut used = vec![false; types];
    let mut variants = Vec::with_capacity(count);
    for _ in 0..count {
        let mut t = rng.range(0, types as u64 - 1) as usize;
        while used[t] {
            t = (t + 1) % types;
        }
        used[t] = true;
        let (name, _, speed) = FLEET[t];
        let jitter = 0.8 + 0.4 * rng.unit_half_open();
        variants.push(VariantSpec {
            name: format!("{}-tp{gpus}", name.to_lowercase()),
            accelerator: name.to_string(),
            gpus_per_replica: gpus,
            min_replicas: 0,
            max_replicas: None,
            max_requests_per_second: Some((base_rps * speed * jitter * 1000.0).round() / 1000.0),
            profile: None,
        });
    }
    variants
}

/// A seeded scarce instance like a platform team's mixed fleet under pressure: `models`
/// models on `types` accelerator types (3 to 8), three priority tiers (1000, 100, 0), 1–3
/// variants per model with 1, 2 or 4 GPUs per replica, weights 1–3, and an inventory of
/// about `scarcity` (e.g. 0.5) of the GPUs the cheapest placement of all demand would want.
pub fn scarce_instance(models: usize, types: usize, seed: u64, scarcity: f64) -> PlanInput {
    let types = types.clamp(3, FLEET.len());
    let mut rng = SplitMix64::new(seed ^ 0x5ca2_ce00);
    let mut specs = Vec::with_capacity(models);
    let mut load = BTreeMap::new();
    let mut want = vec![0.0f64; types];
    for m in 0..models {
        let size = rng.unit_half_open();
        let gpus = if size < 0.55 {
            1
        } else if size < 0.85 {
            2
        } else {
            4
        };
        let base_rps = 1.0 + 12.0 * rng.unit_half_open() / f64::from(gpus);
        let n_variants = (rng.range(1, 3) as usize).min(types);
        let variants = random_variants(&mut rng, types, n_variants, gpus, base_rps);
        let rate = (1.0 + 40.0 * rng.unit_half_open().powi(2)).round();
        if let Some((t, gpus_needed)) = variants
            .iter()
            .map(|v| {
                let t = FLEET.iter().position(|f| f.0 == v.accelerator).unwrap_or(0);
                let rps = v.max_requests_per_second.unwrap_or(1.0);
                let n = (rate / rps).ceil() * f64::from(v.gpus_per_replica);
                (t, n, n * FLEET[t].1)
            })
            .min_by(|a, b| a.2.total_cmp(&b.2))
            .map(|(t, n, _)| (t, n))
        {
            want[t] += gpus_needed;
        }
        let tier = rng.unit_half_open();
        let name = format!("model-{m:05}");
        load.insert(
            name.clone(),
            ModelLoad {
                arrival_rate: rate,
                avg_input_tokens: Some(512.0),
                avg_output_tokens: Some(256.0),
            },
        );
        specs.push(ModelSpec {
            name,
            model_id: None,
            priority: if tier < 0.2 {
                1000
            } else if tier < 0.5 {
                100
            } else {
                0
            },
            weight: f64::from(rng.range(1, 3) as u32),
            slo: None,
            min_replicas: 0,
            max_replicas: None,
            variants,
        });
    }
    let total: f64 = want.iter().sum();
    let inventory = FLEET[..types]
        .iter()
        .enumerate()
        .map(|(t, (name, cost, _))| AcceleratorType {
            name: name.to_string(),
            // Spread the scarce total over every type, a little more where it is wanted.
            count: ((0.5 * want[t] + 0.5 * total / types as f64) * scarcity).round() as u32,
            cost_per_hour: *cost,
        })
        .collect();
    PlanInput {
        inventory,
        models: specs,
        load,
        current: BTreeMap::new(),
        options: PlanOptions::default(),
    }
}
