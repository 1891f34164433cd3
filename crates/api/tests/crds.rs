//! The checked-in CRD YAML is what the Rust types generate.
#![cfg(feature = "crd")]

#[test]
fn checked_in_crds_match_the_rust_types() {
    let generated = wvo_api::crd::crd_yaml().expect("serialize CRD");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crds/variantautoscaling.yaml"
    );
    if std::env::var_os("WVO_UPDATE_CRDS").is_some() {
        std::fs::write(path, &generated).expect("write crds/");
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "crds/variantautoscaling.yaml is stale: run `WVO_UPDATE_CRDS=1 cargo test -p wvo-api --features crd --test crds` (or `wvo crds > crds/variantautoscaling.yaml`)"
    );
}

#[test]
fn crd_has_status_printer_columns_short_name_and_validation() {
    let yaml = wvo_api::crd::crd_yaml().expect("serialize CRD");
    for needle in [
        "group: wvo.dev",
        "- va",
        "status: {}",
        "name: Model",
        "name: Desired",
        "name: Cost/h",
        "name: Optimized",
        "x-kubernetes-validations",
        "minReplicas must be <= maxReplicas",
        "x-kubernetes-list-type: map",
    ] {
        assert!(yaml.contains(needle), "CRD lacks {needle:?}");
    }
}

#[test]
fn inventory_config_rejects_bad_content_naming_the_field() {
    use wvo_api::crd::InventoryConfig;
    let ok = InventoryConfig::parse(
        "accelerators:\n- {name: H100, count: 16, costPerHour: 4.1}\n- {name: L40S, discover: true, costPerHour: 1.3, nodeSelector: {nvidia.com/gpu.product: NVIDIA-L40S}}\nserviceClasses:\n- {name: premium, priority: 100, ttftMs: 500, itlMs: 50}\n",
    )
    .expect("valid");
    assert_eq!(ok.accelerators.len(), 2);
    let cases = [
        ("accelerators:\n- {name: H100, count: 16, costPerHour: -1}\n", "accelerators[0].costPerHour"),
        ("accelerators:\n- {name: H100, costPerHour: 1}\n", "accelerators[0].count"),
        ("accelerators:\n- {name: H100, count: 1, costPerHour: 1}\n- {name: H100, count: 1, costPerHour: 1}\n", "accelerators[1].name"),
        ("accelerators:\n- {name: H100, discover: true, costPerHour: 1}\n", "accelerators[0].nodeSelector"),
        ("accelerators:\n- {name: H100, count: 1, costPerHour: 1, colour: red}\n", "unknown field `colour`"),
        ("accelerators: []\nserviceClasses:\n- {name: a, ttftMs: 0, itlMs: 5}\n", "serviceClasses[0].ttftMs"),
        ("accelerators: []\nserviceClasses:\n- {name: a, priority: 1001, ttftMs: 5, itlMs: 5}\n", "serviceClasses[0].priority"),
    ];
    for (text, field) in cases {
        let err = InventoryConfig::parse(text).expect_err(text).to_string();
        assert!(err.contains(field), "{err} should name {field}");
    }
}

#[test]
fn startup_and_forecast_fields_default_and_reject_bad_values_naming_the_field() {
    use wvo_api::crd::VariantAutoscaling;
    let va = |extra: &str| -> VariantAutoscaling {
        serde_norway::from_str(&format!(
            "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: m, namespace: llm}}\nspec:\n  modelID: m\n  variants:\n  - {{name: a, scaleTargetRef: {{name: a}}, accelerator: H100, maxRequestsPerSecond: 10}}\n{extra}"
        ))
        .expect("VA yaml")
    };
    // Absent: learned start-up, forecast on with a detected period.
    let plain = va("");
    assert_eq!(plain.spec.startup_seconds, None);
    assert_eq!(plain.spec.forecast, None);
    assert!(plain.to_model_spec("llm/m", &[]).is_ok());
    // `forecast: {}` means enabled.
    let f = va("  forecast: {}\n").spec.forecast.expect("forecast");
    assert!(f.enabled);
    assert_eq!(f.period_seconds, None);
    let set = va("  startupSeconds: 300\n  forecast: {enabled: false, periodSeconds: 3600}\n");
    assert_eq!(set.spec.startup_seconds, Some(300.0));
    let f = set.spec.forecast.expect("forecast");
    assert!(!f.enabled);
    assert_eq!(f.period_seconds, Some(3600.0));
    assert!(set.to_model_spec("llm/m", &[]).is_ok());
    for (extra, field) in [
        ("  startupSeconds: -1\n", "spec.startupSeconds"),
        ("  startupSeconds: 100000\n", "spec.startupSeconds"),
        (
            "  forecast: {periodSeconds: 10}\n",
            "spec.forecast.periodSeconds",
        ),
        (
            "  forecast: {periodSeconds: 200000}\n",
            "spec.forecast.periodSeconds",
        ),
    ] {
        let err = va(extra)
            .to_model_spec("llm/m", &[])
            .expect_err(extra)
            .to_string();
        assert!(err.contains(field), "{err} should name {field}");
    }
}

#[test]
fn scale_to_zero_is_off_by_default_and_bad_values_name_the_field() {
    use wvo_api::crd::VariantAutoscaling;
    let va = |extra: &str| -> VariantAutoscaling {
        serde_norway::from_str(&format!(
            "apiVersion: wvo.dev/v1alpha1\nkind: VariantAutoscaling\nmetadata: {{name: m, namespace: llm}}\nspec:\n  modelID: m\n  variants:\n  - {{name: a, scaleTargetRef: {{name: a}}, accelerator: H100, maxRequestsPerSecond: 10}}\n{extra}"
        ))
        .expect("VA yaml")
    };
    assert_eq!(va("").spec.scale_to_zero, None);
    let set = va("  scaleToZero: {idleSeconds: 900, wakeQuery: 'sum(my_queue{model=\"m\"})'}\n");
    let z = set.spec.scale_to_zero.clone().expect("scaleToZero");
    assert_eq!(z.idle_seconds, 900);
    assert_eq!(z.wake_query.as_deref(), Some("sum(my_queue{model=\"m\"})"));
    assert!(set.to_model_spec("llm/m", &[]).is_ok());
    for (extra, field) in [
        (
            "  scaleToZero: {idleSeconds: 5}\n",
            "spec.scaleToZero.idleSeconds",
        ),
        (
            "  scaleToZero: {idleSeconds: 700000}\n",
            "spec.scaleToZero.idleSeconds",
        ),
        (
            "  scaleToZero: {idleSeconds: 60, wakeQuery: ' '}\n",
            "spec.scaleToZero.wakeQuery",
        ),
    ] {
        let err = va(extra)
            .to_model_spec("llm/m", &[])
            .expect_err(extra)
            .to_string();
        assert!(err.contains(field), "{err} should name {field}");
    }
}

#[test]
fn clip_chars_cuts_long_status_strings_at_a_character_boundary() {
    use wvo_api::crd::clip_chars;
    assert_eq!(clip_chars("short", 10), "short");
    assert_eq!(clip_chars("exactly", 7), "exactly");
    let cut = clip_chars("ééééééééé", 4);
    assert_eq!(cut, "ééé…");
    assert_eq!(cut.chars().count(), 4);
    assert_eq!(clip_chars("abc", 0), "");
}
