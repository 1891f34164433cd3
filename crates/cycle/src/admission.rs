//! Admission of one VariantAutoscaling: its spec in plan form, checked against the inventory
//! and the service classes, and the profile each variant's calibration starts from.
//!
//! ```text
//!  VariantAutoscaling ─► to_model_spec (service class, profile fields) ─┐
//!  inventory, service classes ──────────────────────────────────────────┤
//!                          validate as a one-model plan (field: spec.…) ─┤
//!                          resolve each catalog profile (known, fits)   ─┴► Admitted { spec, priors }
//! ```
//!
//! Pure: the controller reads the VA and the inventory and reports the error (condition
//! `Optimized=False InvalidSpec` and an Event); every error names the field to fix.

use kube_core::ResourceExt;
use std::collections::BTreeMap;
use wvo_api::crd::{ServiceClass, VariantAutoscaling};
use wvo_api::{
    AcceleratorType, ModelLoad, ModelSpec, PlanInput, PlanOptions, Profile, ProfileSpec,
};
use wvo_perf::TokenMix;

use crate::DEFAULT_TOKENS;

/// Why a VA is refused; the message (Display) names the field and says what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The spec cannot be put in plan form (e.g. a service class the inventory does not
    /// define, a profile without all its numbers).
    #[error("{0}")]
    Spec(wvo_api::InputError),
    /// The spec in plan form is not a valid plan input with this inventory (e.g. an
    /// accelerator the inventory does not list); the field is under `spec`.
    #[error("{0}")]
    Plan(wvo_api::InputError),
    /// A variant's catalog profile does not resolve (unknown model, an accelerator the
    /// catalog does not know, weights that do not fit); the field is under
    /// `spec.variants[variant]`.
    #[error("{error}")]
    CatalogProfile {
        /// Index of the variant in `spec.variants`.
        variant: usize,
        /// What is wrong.
        error: wvo_api::InputError,
    },
}

impl InputError {
    /// Path of the offending field, e.g. `spec.variants[0].accelerator`.
    pub fn field(&self) -> &str {
        match self {
            Self::Spec(e) | Self::Plan(e) | Self::CatalogProfile { error: e, .. } => &e.field,
        }
    }
}

/// Where the profile calibration starts from came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorSource {
    /// Numbers given in the VA (`profile.alpha`, ...).
    Inline,
    /// Estimated from the catalog for the variant's accelerator (`profile.catalog`).
    Catalog,
}

impl PriorSource {
    /// As written to `status.profiles[].source`: `inline` or `catalog`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inline => "inline",
            Self::Catalog => "catalog",
        }
    }
}

/// The profile a variant's calibration starts from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prior {
    /// The profile (times in ms).
    pub profile: Profile,
    /// Where it came from.
    pub source: PriorSource,
}

/// A VA that may be planned.
#[derive(Clone, Debug, PartialEq)]
pub struct Admitted {
    /// The VA in plan form, named `namespace/name`.
    pub spec: ModelSpec,
    /// Per variant (VA order), the profile calibration starts from; None for a variant
    /// with a measured `maxRequestsPerSecond`.
    pub priors: Vec<Option<Prior>>,
}

/// Checks one VA against the inventory (`inventory`, GPUs per accelerator type) and the
/// service classes: its plan form must be a valid one-model plan input (probed at zero load
/// with [`DEFAULT_TOKENS`]) and each catalog profile must resolve for the default token mix.
pub fn admit(
    va: &VariantAutoscaling,
    inventory: &[AcceleratorType],
    classes: &[ServiceClass],
) -> Result<Admitted, InputError> {
    let name = format!("{}/{}", va.namespace().unwrap_or_default(), va.name_any());
    let spec = va.to_model_spec(&name, classes).map_err(InputError::Spec)?;
    admit_spec(spec, inventory)
}

/// The checks of [`admit`] after the VA is in plan form: `spec` against the inventory (the
/// plan input's validation, fields read as `spec...`) and each catalog profile resolved to
/// its prior. The bench runs this on its scenarios' models, which have no VA object.
pub fn admit_spec(
    spec: wvo_api::ModelSpec,
    inventory: &[AcceleratorType],
) -> Result<Admitted, InputError> {
    let name = spec.name.clone();
    let probe = PlanInput {
        inventory: inventory.to_vec(),
        models: vec![spec.clone()],
        load: [(
            name.clone(),
            ModelLoad {
                arrival_rate: 0.0,
                avg_input_tokens: Some(DEFAULT_TOKENS.0),
                avg_output_tokens: Some(DEFAULT_TOKENS.1),
            },
        )]
        .into(),
        current: BTreeMap::new(),
        options: PlanOptions::default(),
    };
    probe.validate().map_err(|e| InputError::Plan(in_spec(e)))?;
    // A catalog profile must resolve (known model, catalog accelerator, fits); the result is
    // the prior calibration starts from.
    let mix = TokenMix {
        avg_input_tokens: DEFAULT_TOKENS.0,
        avg_output_tokens: DEFAULT_TOKENS.1,
    };
    let mut priors = Vec::with_capacity(spec.variants.len());
    for (i, v) in spec.variants.iter().enumerate() {
        priors.push(match &v.profile {
            Some(ProfileSpec::Inline(p)) => Some(Prior {
                profile: *p,
                source: PriorSource::Inline,
            }),
            Some(ProfileSpec::Catalog(c)) => Some(Prior {
                profile: wvo_optimizer::problem::resolve_catalog(
                    c,
                    v,
                    &mix,
                    &format!("spec.variants[{i}]"),
                )
                .map_err(|error| InputError::CatalogProfile { variant: i, error })?,
                source: PriorSource::Catalog,
            }),
            None => None,
        });
    }
    Ok(Admitted { spec, priors })
}

/// A plan-input error of the one-model probe, with its first `models[0]` (in the message
/// `field: problem`) read as `spec`.
fn in_spec(mut e: wvo_api::InputError) -> wvo_api::InputError {
    const PROBE: &str = "models[0]";
    // `models[0]` holds neither ':' nor ' ', so the first one of `field: problem` lies in
    // the field when the field has one, else in the problem.
    if e.field.contains(PROBE) {
        e.field = e.field.replacen(PROBE, "spec", 1);
    } else {
        e.problem = e.problem.replacen(PROBE, "spec", 1);
    }
    e
}
