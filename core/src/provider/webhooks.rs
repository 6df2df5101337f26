//! What a provider's webhooks need before the provider counts as installed: the CA that
//! cert-manager injects (`cert-manager.io/inject-ca-from`) in every webhook configuration
//! and CRD conversion webhook, and a ready endpoint behind every webhook Service. Until
//! then the apiserver refuses (or cannot convert) the very objects the move brings.

use serde_json::Value;

/// The annotation asking cert-manager's cainjector for a CA bundle.
pub const INJECT_CA_ANNOTATION: &str = "cert-manager.io/inject-ca-from";

/// The webhook client configurations of an object: every webhook of a
/// Validating/MutatingWebhookConfiguration, or a CRD's conversion webhook.
fn client_configs(object: &Value) -> Vec<&Value> {
    match object.get("kind").and_then(Value::as_str) {
        Some("ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration") => object
            .get("webhooks")
            .and_then(Value::as_array)
            .map(|hooks| hooks.iter().filter_map(|h| h.get("clientConfig")).collect())
            .unwrap_or_default(),
        Some("CustomResourceDefinition") => object
            .pointer("/spec/conversion/webhook/clientConfig")
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The Services (`namespace`, `name`) an object's webhooks call.
pub fn webhook_services(object: &Value) -> Vec<(String, String)> {
    let mut services: Vec<(String, String)> = Vec::new();
    for config in client_configs(object) {
        let Some(service) = config.get("service") else {
            continue;
        };
        let field = |key: &str| service.get(key).and_then(Value::as_str).unwrap_or("");
        let found = (field("namespace").to_string(), field("name").to_string());
        if !found.1.is_empty() && !services.contains(&found) {
            services.push(found);
        }
    }
    services
}

/// Why an object's injected CA is not there yet; `None` when it asks for none or has it.
pub fn missing_ca(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(INJECT_CA_ANNOTATION))?;
    let configs = client_configs(object);
    let empty = configs
        .iter()
        .filter(|c| {
            c.get("caBundle")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        })
        .count();
    (empty > 0).then(|| {
        format!(
            "{empty} of {} webhook client configurations have no CA bundle yet (cert-manager's cainjector fills them in)",
            configs.len()
        )
    })
}

/// Whether an Endpoints object has an address ready to serve.
pub fn endpoints_ready(endpoints: &Value) -> bool {
    endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .is_some_and(|subsets| {
            subsets.iter().any(|s| {
                s.get("addresses")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            })
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn webhook_configuration(ca: &str) -> Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {
                "name": "capi-validating-webhook-configuration",
                "annotations": { INJECT_CA_ANNOTATION: "capi-system/capi-serving-cert" },
            },
            "webhooks": [
                { "name": "a", "clientConfig": { "caBundle": ca, "service": { "namespace": "capi-system", "name": "capi-webhook-service" } } },
                { "name": "b", "clientConfig": { "service": { "namespace": "capi-system", "name": "capi-webhook-service" } } },
            ],
        })
    }

    #[test]
    fn webhook_services_are_listed_once() {
        assert_eq!(
            webhook_services(&webhook_configuration("")),
            vec![("capi-system".into(), "capi-webhook-service".into())]
        );
        let crd = json!({
            "kind": "CustomResourceDefinition",
            "spec": { "conversion": { "strategy": "Webhook", "webhook": { "clientConfig": { "service": { "namespace": "capv-system", "name": "capv-webhook-service" } } } } },
        });
        assert_eq!(
            webhook_services(&crd),
            vec![("capv-system".into(), "capv-webhook-service".into())]
        );
        assert!(webhook_services(&json!({ "kind": "Deployment" })).is_empty());
    }

    #[test]
    fn a_ca_asked_for_is_waited_for_in_every_webhook() {
        let reason = missing_ca(&webhook_configuration("")).unwrap();
        assert!(reason.starts_with("2 of 2 webhook"), "{reason}");
        let mut partly = webhook_configuration("Q0E=");
        assert!(missing_ca(&partly).unwrap().starts_with("1 of 2"));
        partly["webhooks"][1]["clientConfig"]["caBundle"] = json!("Q0E=");
        assert_eq!(missing_ca(&partly), None);
        let mut not_asked = webhook_configuration("");
        not_asked["metadata"]["annotations"] = json!({});
        assert_eq!(missing_ca(&not_asked), None);
    }

    #[test]
    fn endpoints_are_ready_with_one_ready_address() {
        assert!(!endpoints_ready(&json!({})));
        assert!(!endpoints_ready(
            &json!({ "subsets": [{ "notReadyAddresses": [{ "ip": "10.0.0.1" }] }] })
        ));
        assert!(endpoints_ready(
            &json!({ "subsets": [{ "addresses": [{ "ip": "10.0.0.1" }] }] })
        ));
    }
}
