//! Tenant scoping of the status API's answers: what a caller who may see only some
//! namespaces gets from the read endpoints (pure functions over [`Visible`]).
//!
//! A model belongs to the namespace of its VA (plan model names are `namespace/name`).
//! A scoped caller gets the models, variants, loads, replicas and decisions of its
//! namespaces only; plan totals are recomputed over what it sees (`totalCostPerHour` is the
//! sum of its variants, `lowerBoundCostPerHour` is left out, warnings that name no visible
//! model are dropped); the last cycle error, which may name any VA, is replaced by a
//! generic line. Cluster-level figures stay: the inventory (accelerator types, counts,
//! prices), GPUs used and missing per type, and whether the plan is feasible.

use crate::view::{ControllerView, DecisionRecord, ModelView};
use std::collections::BTreeSet;
use wvo_api::{PlanInput, PlanOutput};

/// The namespaces a caller may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visible {
    /// Every namespace (no authentication, or `get` on VariantAutoscalings cluster-wide).
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

/// The line a scoped caller sees instead of the last cycle's error.
pub const SCOPED_LAST_ERROR: &str =
    "the last control cycle failed; its error is shown to readers of every namespace";

/// Every namespace the view holds a model, a decision or a history series of.
pub fn namespaces(view: &ControllerView) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = view.models.iter().map(|m| m.namespace.clone()).collect();
    out.extend(view.decisions.iter().map(|d| d.namespace.clone()));
    out.extend(view.history.namespaces());
    if let Some(input) = &view.last_input {
        out.extend(
            input
                .models
                .iter()
                .map(|m| model_namespace(&m.name).to_string()),
        );
    }
    out
}

/// The namespace of a plan model name (`namespace/name`); "" when it has none.
pub fn model_namespace(model: &str) -> &str {
    model.split_once('/').map_or("", |(ns, _)| ns)
}

impl Visible {
    /// Whether models of `namespace` are visible.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(namespace),
        }
    }

    /// Whether every namespace is visible.
    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }

    /// Whether the plan model `model` (`namespace/name`) is visible.
    pub fn model(&self, model: &str) -> bool {
        self.contains(model_namespace(model))
    }

    /// The visible models.
    pub fn models<'a>(&self, models: &'a [ModelView]) -> Vec<&'a ModelView> {
        models
            .iter()
            .filter(|m| self.contains(&m.namespace))
            .collect()
    }

    /// The visible decisions, in their order.
    pub fn decisions<'a>(
        &self,
        decisions: impl IntoIterator<Item = &'a DecisionRecord>,
    ) -> Vec<&'a DecisionRecord> {
        decisions
            .into_iter()
            .filter(|d| self.contains(&d.namespace))
            .collect()
    }

    /// The plan input with only the visible models, their loads and replicas (inventory and
    /// options kept).
    pub fn input(&self, mut input: PlanInput) -> PlanInput {
        if self.is_all() {
            return input;
        }
        input.models.retain(|m| self.model(&m.name));
        input.load.retain(|m, _| self.model(m));
        input.current.retain(|m, _| self.model(m));
        input
    }

    /// The plan with only the visible models and variants, its cost recomputed over them.
    pub fn plan(&self, mut plan: PlanOutput) -> PlanOutput {
        if self.is_all() {
            return plan;
        }
        plan.variants.retain(|v| self.model(&v.model));
        plan.models.retain(|m| self.model(&m.model));
        plan.total_cost_per_hour = plan.variants.iter().map(|v| v.cost_per_hour).sum();
        plan.lower_bound_cost_per_hour = None;
        let names: Vec<String> = plan
            .models
            .iter()
            .map(|m| format!("\"{}\"", m.model))
            .collect();
        plan.warnings
            .retain(|w| names.iter().any(|n| w.contains(n.as_str())));
        plan
    }

    /// A what-if answer without the models of the `live` namespaces (those the view holds)
    /// this caller may not see; models the caller named in other namespaces stay. Cost
    /// recomputed as in [`Visible::plan`] when anything was removed.
    pub fn whatif(&self, plan: PlanOutput, live: &BTreeSet<String>) -> PlanOutput {
        let hidden = |model: &str| {
            let ns = model_namespace(model);
            live.contains(ns) && !self.contains(ns)
        };
        if self.is_all() || !plan.models.iter().any(|m| hidden(&m.model)) {
            return plan;
        }
        let mut plan = plan;
        plan.variants.retain(|v| !hidden(&v.model));
        plan.models.retain(|m| !hidden(&m.model));
        plan.total_cost_per_hour = plan.variants.iter().map(|v| v.cost_per_hour).sum();
        plan.lower_bound_cost_per_hour = None;
        let names: Vec<String> = plan
            .models
            .iter()
            .map(|m| format!("\"{}\"", m.model))
            .collect();
        plan.warnings
            .retain(|w| names.iter().any(|n| w.contains(n.as_str())));
        plan
    }

    /// The last cycle error as this caller may see it.
    pub fn last_error(&self, last_error: Option<String>) -> Option<String> {
        match self {
            Self::All => last_error,
            Self::Only(_) => last_error.map(|_| SCOPED_LAST_ERROR.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wvo_api::{ModelPlan, VariantPlan};

    fn plan_of(models: &[&str]) -> PlanOutput {
        PlanOutput {
            feasible: true,
            total_cost_per_hour: 0.0,
            lower_bound_cost_per_hour: None,
            solve_millis: 1.0,
            solver: "milp".into(),
            variants: models
                .iter()
                .map(|m| VariantPlan {
                    model: m.to_string(),
                    variant: "v".into(),
                    accelerator: "H100".into(),
                    replicas: 1,
                    gpus: 1,
                    cost_per_hour: 1.0,
                    capacity_rps: 1.0,
                })
                .collect(),
            models: models
                .iter()
                .map(|m| ModelPlan {
                    model: m.to_string(),
                    demand_rps: 1.0,
                    served_rps: 1.0,
                    satisfaction: 1.0,
                    slo: None,
                    slo_unreachable: Vec::new(),
                })
                .collect(),
            accelerators: Vec::new(),
            shortfall: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn only(ns: &[&str]) -> Visible {
        Visible::Only(ns.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_scoped_plan_keeps_its_namespaces_and_recomputes_the_cost() {
        let variant = |model: &str, cost: f64| VariantPlan {
            model: model.into(),
            variant: "v".into(),
            accelerator: "H100".into(),
            replicas: 1,
            gpus: 1,
            cost_per_hour: cost,
            capacity_rps: 1.0,
        };
        let model = |name: &str| ModelPlan {
            model: name.into(),
            demand_rps: 1.0,
            served_rps: 1.0,
            satisfaction: 1.0,
            slo: None,
            slo_unreachable: Vec::new(),
        };
        let plan = PlanOutput {
            feasible: true,
            total_cost_per_hour: 7.0,
            lower_bound_cost_per_hour: Some(6.0),
            solve_millis: 1.0,
            solver: "milp".into(),
            variants: vec![variant("a/x", 3.0), variant("b/y", 4.0)],
            models: vec![model("a/x"), model("b/y")],
            accelerators: Vec::new(),
            shortfall: Vec::new(),
            warnings: vec![
                "model \"a/x\" variant \"v\": slow".into(),
                "model \"b/y\" variant \"v\": slow".into(),
            ],
        };
        assert_eq!(Visible::All.plan(plan.clone()), plan);
        let a = only(&["a"]).plan(plan);
        assert_eq!(a.variants.len(), 1);
        assert_eq!(a.models.len(), 1);
        assert_eq!(a.total_cost_per_hour, 3.0);
        assert_eq!(a.lower_bound_cost_per_hour, None);
        assert_eq!(
            a.warnings,
            vec!["model \"a/x\" variant \"v\": slow".to_string()]
        );
        assert_eq!(
            only(&[]).last_error(Some("b/y broke".into())).as_deref(),
            Some(SCOPED_LAST_ERROR)
        );
        assert_eq!(model_namespace("plain"), "");
        // A what-if hides the live namespaces the caller may not see, nothing else.
        let live: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut own = plan_of(&["a/x", "b/y", "mine/z"]);
        own = only(&["a"]).whatif(own, &live);
        let names: Vec<&str> = own.models.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(names, vec!["a/x", "mine/z"]);
        assert_eq!(own.variants.len(), 2);
        assert!(!only(&["a"]).model("plain"));
    }
}
