//! The model and accelerator catalog (`models/*.yaml`, embedded in the binary).
//!
//! ```text
//!  models/accelerators.yaml ─┐ include_str! ─► Catalog::embedded() ─► accelerator("H100")
//!  models/models.yaml ───────┘                                     └► model("llama-3.1-8b" | HF id)
//! ```
//!
//! Every figure carries its public source in the YAML; uncertain figures say so in `note`.
//! The files are data: [`Catalog::validate`] checks schema, units (finite, positive, in a
//! plausible range) and duplicates, and a test runs it on the embedded copy.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// The embedded accelerator file (`models/accelerators.yaml`).
pub const ACCELERATORS_YAML: &str = include_str!("../../../models/accelerators.yaml");
/// The embedded model file (`models/models.yaml`).
pub const MODELS_YAML: &str = include_str!("../../../models/models.yaml");

/// Errors of the catalog and the estimator; each names the field or the name at fault.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CatalogError {
    /// A catalog file does not parse.
    #[error("{file}: {message}")]
    Parse {
        /// Which file.
        file: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A catalog entry has a bad field.
    #[error("{file}: {field}: {problem}")]
    BadEntry {
        /// Which file.
        file: &'static str,
        /// Path of the field, e.g. `accelerators[3].memoryGiB`.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// No model of that name or Hugging Face id.
    #[error("unknown model \"{name}\"; the catalog has: {known}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// Comma-separated catalog names.
        known: String,
    },
    /// No accelerator of that name.
    #[error("unknown accelerator \"{name}\"; the catalog has: {known}")]
    UnknownAccelerator {
        /// The name asked for.
        name: String,
        /// Comma-separated catalog names.
        known: String,
    },
    /// An estimator input is not usable.
    #[error("{field}: {problem}")]
    BadInput {
        /// Which input.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// GPU-to-GPU link of an accelerator type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interconnect {
    /// Link technology, e.g. `NVLink4`, `PCIe5`.
    pub kind: String,
    /// Vendor per-GPU bandwidth, both directions together, GB/s.
    #[serde(rename = "bandwidthGBs")]
    pub bandwidth_gbs: f64,
    /// Assumed small-message all-reduce latency, µs (an assumption, not a vendor figure).
    pub allreduce_latency_us: f64,
}

/// One accelerator (GPU) type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Accelerator {
    /// Catalog name, e.g. `H100`; the name `wvo plan` variants use.
    pub name: String,
    /// Product name.
    pub product: String,
    /// Memory per GPU, GiB.
    #[serde(rename = "memoryGiB")]
    pub memory_gib: f64,
    /// Peak memory bandwidth per GPU, GB/s.
    #[serde(rename = "memoryBandwidthGBs")]
    pub memory_bandwidth_gbs: f64,
    /// Dense BF16/FP16 tensor peak per GPU, TFLOP/s.
    pub bf16_tflops: f64,
    /// Dense FP8 tensor peak per GPU, TFLOP/s; `None` without FP8 tensor cores.
    pub fp8_tflops: Option<f64>,
    /// GPU-to-GPU link.
    pub interconnect: Interconnect,
    /// Typical on-demand price, $ per GPU-hour.
    pub cost_per_hour: f64,
    /// Public sources of the figures (URLs).
    pub sources: Vec<String>,
    /// Provenance and uncertainty of the figures.
    #[serde(default)]
    pub note: String,
}

/// One model architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelArch {
    /// Catalog name, e.g. `llama-3.1-8b`.
    pub name: String,
    /// Hugging Face repository id, e.g. `meta-llama/Llama-3.1-8B-Instruct`.
    pub hf_id: String,
    /// Total parameters, billions.
    #[serde(rename = "paramsB")]
    pub params_b: f64,
    /// Parameters used per token, billions (mixture of experts); `None` = dense (`params_b`).
    #[serde(default, rename = "activeParamsB")]
    pub active_params_b: Option<f64>,
    /// Transformer layers.
    pub layers: u32,
    /// Hidden (model) width.
    pub hidden_size: u32,
    /// Query heads.
    pub attention_heads: u32,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: u32,
    /// Dimension of one head.
    pub head_dim: u32,
    /// Vocabulary size, tokens.
    pub vocab_size: u32,
    /// Whether input embeddings and the LM head share weights.
    pub tied_embeddings: bool,
    /// Experts per MoE layer (mixture of experts only).
    #[serde(default)]
    pub experts: Option<u32>,
    /// Experts used per token (mixture of experts only).
    #[serde(default)]
    pub experts_per_token: Option<u32>,
    /// Dtype of the published checkpoint: `bf16`, `fp16`, `fp8` or `mxfp4`.
    pub default_dtype: String,
    /// Public source of the architecture (the config.json URL).
    pub source: String,
    /// Provenance and caveats.
    #[serde(default)]
    pub note: String,
}

impl ModelArch {
    /// Parameters used per token, billions.
    pub fn active_params(&self) -> f64 {
        self.active_params_b.unwrap_or(self.params_b)
    }

    /// Embedding and LM-head parameters, billions (kept 16-bit in quantized checkpoints).
    pub fn embedding_params(&self) -> f64 {
        let one = f64::from(self.vocab_size) * f64::from(self.hidden_size) / 1e9;
        if self.tied_embeddings {
            one
        } else {
            2.0 * one
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceleratorFile {
    accelerators: Vec<Accelerator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    models: Vec<ModelArch>,
}

/// The catalog: accelerator types and model architectures.
#[derive(Clone, Debug, PartialEq)]
pub struct Catalog {
    /// Accelerator types, in file order.
    pub accelerators: Vec<Accelerator>,
    /// Model architectures, in file order.
    pub models: Vec<ModelArch>,
}

/// Dtypes a checkpoint may have in the catalog.
pub const CATALOG_DTYPES: [&str; 4] = ["bf16", "fp16", "fp8", "mxfp4"];

fn range(
    file: &'static str,
    field: String,
    value: f64,
    min: f64,
    max: f64,
    unit: &str,
) -> Result<(), CatalogError> {
    if value.is_finite() && value >= min && value <= max {
        Ok(())
    } else {
        Err(CatalogError::BadEntry {
            file,
            field,
            problem: format!("must be a number in [{min}, {max}] {unit}, got {value}"),
        })
    }
}

fn nonzero(file: &'static str, field: String, value: u32) -> Result<(), CatalogError> {
    if value == 0 {
        Err(CatalogError::BadEntry {
            file,
            field,
            problem: "must be at least 1".into(),
        })
    } else {
        Ok(())
    }
}

impl Catalog {
    /// Parses and validates the two catalog files.
    pub fn parse(accelerators_yaml: &str, models_yaml: &str) -> Result<Self, CatalogError> {
        let a: AcceleratorFile =
            serde_norway::from_str(accelerators_yaml).map_err(|e| CatalogError::Parse {
                file: "accelerators.yaml",
                message: e.to_string(),
            })?;
        let m: ModelFile =
            serde_norway::from_str(models_yaml).map_err(|e| CatalogError::Parse {
                file: "models.yaml",
                message: e.to_string(),
            })?;
        let catalog = Catalog {
            accelerators: a.accelerators,
            models: m.models,
        };
        catalog.validate()?;
        Ok(catalog)
    }

    /// The catalog embedded in the binary (parsed once). Fails only if the embedded files are
    /// broken, which a test rules out.
    pub fn embedded() -> Result<&'static Catalog, CatalogError> {
        static CATALOG: OnceLock<Result<Catalog, CatalogError>> = OnceLock::new();
        CATALOG
            .get_or_init(|| Catalog::parse(ACCELERATORS_YAML, MODELS_YAML))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Checks every entry: names unique (models also by HF id, case-insensitive), numbers
    /// finite, positive and in a plausible range for their unit, a source for every entry.
    pub fn validate(&self) -> Result<(), CatalogError> {
        const AF: &str = "accelerators.yaml";
        const MF: &str = "models.yaml";
        if self.accelerators.is_empty() {
            return Err(CatalogError::BadEntry {
                file: AF,
                field: "accelerators".into(),
                problem: "must list at least one accelerator".into(),
            });
        }
        let mut names = BTreeSet::new();
        for (i, a) in self.accelerators.iter().enumerate() {
            let at = |f: &str| format!("accelerators[{i}].{f}");
            if a.name.trim().is_empty() || !names.insert(a.name.to_ascii_lowercase()) {
                return Err(CatalogError::BadEntry {
                    file: AF,
                    field: at("name"),
                    problem: format!("empty or duplicate name \"{}\"", a.name),
                });
            }
            range(AF, at("memoryGiB"), a.memory_gib, 1.0, 1024.0, "GiB")?;
            range(
                AF,
                at("memoryBandwidthGBs"),
                a.memory_bandwidth_gbs,
                50.0,
                50_000.0,
                "GB/s",
            )?;
            range(
                AF,
                at("bf16Tflops"),
                a.bf16_tflops,
                1.0,
                50_000.0,
                "TFLOP/s",
            )?;
            if let Some(fp8) = a.fp8_tflops {
                range(
                    AF,
                    at("fp8Tflops"),
                    fp8,
                    a.bf16_tflops,
                    100_000.0,
                    "TFLOP/s",
                )?;
            }
            range(
                AF,
                at("interconnect.bandwidthGBs"),
                a.interconnect.bandwidth_gbs,
                1.0,
                100_000.0,
                "GB/s",
            )?;
            range(
                AF,
                at("interconnect.allreduceLatencyUs"),
                a.interconnect.allreduce_latency_us,
                0.1,
                1000.0,
                "µs",
            )?;
            range(
                AF,
                at("costPerHour"),
                a.cost_per_hour,
                0.01,
                1000.0,
                "$/GPU-hour",
            )?;
            if a.sources.is_empty() || a.sources.iter().any(|s| !s.starts_with("https://")) {
                return Err(CatalogError::BadEntry {
                    file: AF,
                    field: at("sources"),
                    problem: "needs at least one https:// source".into(),
                });
            }
        }
        if self.models.is_empty() {
            return Err(CatalogError::BadEntry {
                file: MF,
                field: "models".into(),
                problem: "must list at least one model".into(),
            });
        }
        let mut names = BTreeSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let at = |f: &str| format!("models[{i}].{f}");
            for (field, value) in [("name", &m.name), ("hfId", &m.hf_id)] {
                if value.trim().is_empty() || !names.insert(value.to_ascii_lowercase()) {
                    return Err(CatalogError::BadEntry {
                        file: MF,
                        field: at(field),
                        problem: format!("empty or duplicate name \"{value}\""),
                    });
                }
            }
            if !m.hf_id.contains('/') {
                return Err(CatalogError::BadEntry {
                    file: MF,
                    field: at("hfId"),
                    problem: format!("\"{}\" is not an owner/name repository id", m.hf_id),
                });
            }
            range(MF, at("paramsB"), m.params_b, 0.01, 10_000.0, "billion")?;
            if let Some(active) = m.active_params_b {
                range(MF, at("activeParamsB"), active, 0.01, m.params_b, "billion")?;
            }
            nonzero(MF, at("layers"), m.layers)?;
            nonzero(MF, at("hiddenSize"), m.hidden_size)?;
            nonzero(MF, at("attentionHeads"), m.attention_heads)?;
            nonzero(MF, at("kvHeads"), m.kv_heads)?;
            nonzero(MF, at("headDim"), m.head_dim)?;
            nonzero(MF, at("vocabSize"), m.vocab_size)?;
            if m.kv_heads > m.attention_heads || !m.attention_heads.is_multiple_of(m.kv_heads) {
                return Err(CatalogError::BadEntry {
                    file: MF,
                    field: at("kvHeads"),
                    problem: format!(
                        "{} KV heads must divide {} attention heads",
                        m.kv_heads, m.attention_heads
                    ),
                });
            }
            match (m.experts, m.experts_per_token, m.active_params_b) {
                (None, None, None) => {}
                (Some(e), Some(k), Some(_)) if k >= 1 && k <= e => {}
                _ => {
                    return Err(CatalogError::BadEntry {
                        file: MF,
                        field: at("experts"),
                        problem: "a mixture of experts needs experts, expertsPerToken (<= experts) and activeParamsB together".into(),
                    })
                }
            }
            // The weights must be more than the embeddings alone.
            if m.embedding_params() >= m.params_b {
                return Err(CatalogError::BadEntry {
                    file: MF,
                    field: at("paramsB"),
                    problem: format!(
                        "{} billion is not more than the embeddings ({:.2} billion)",
                        m.params_b,
                        m.embedding_params()
                    ),
                });
            }
            if !CATALOG_DTYPES.contains(&m.default_dtype.as_str()) {
                return Err(CatalogError::BadEntry {
                    file: MF,
                    field: at("defaultDtype"),
                    problem: format!(
                        "\"{}\" is not one of {}",
                        m.default_dtype,
                        CATALOG_DTYPES.join(", ")
                    ),
                });
            }
            if !m.source.starts_with("https://") {
                return Err(CatalogError::BadEntry {
                    file: MF,
                    field: at("source"),
                    problem: "needs an https:// source".into(),
                });
            }
        }
        Ok(())
    }

    /// The accelerator of that name (exact, then case-insensitive).
    pub fn accelerator(&self, name: &str) -> Result<&Accelerator, CatalogError> {
        self.accelerators
            .iter()
            .find(|a| a.name == name)
            .or_else(|| {
                self.accelerators
                    .iter()
                    .find(|a| a.name.eq_ignore_ascii_case(name))
            })
            .ok_or_else(|| CatalogError::UnknownAccelerator {
                name: name.to_string(),
                known: self.accelerator_names().join(", "),
            })
    }

    /// The model with that catalog name or Hugging Face id (case-insensitive).
    pub fn model(&self, name: &str) -> Result<&ModelArch, CatalogError> {
        self.models
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name) || m.hf_id.eq_ignore_ascii_case(name))
            .ok_or_else(|| CatalogError::UnknownModel {
                name: name.to_string(),
                known: self.model_names().join(", "),
            })
    }

    /// Accelerator names in file order.
    pub fn accelerator_names(&self) -> Vec<&str> {
        self.accelerators.iter().map(|a| a.name.as_str()).collect()
    }

    /// Model catalog names in file order.
    pub fn model_names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }
}
