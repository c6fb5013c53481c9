//! Label selectors as Kubernetes defines them: `matchLabels` and
//! `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`), all of them ANDed;
//! an empty selector matches everything.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// True if `labels` satisfy `selector`. An operator Kubernetes does not define
/// matches nothing (a selector the API server would have refused).
pub fn matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or(&[]);
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// True if `labels` carry every pair of `selector` (a Service's plain selector).
pub fn matches_map(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn expressions_and_labels_are_all_required() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let db = labels(&[("app", "db")]);
        assert!(matches(&LabelSelector::default(), &db), "empty selects all");
        let s = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![expr("tier", "In", &["front", "edge"])]),
        };
        assert!(matches(&s, &web));
        assert!(!matches(&s, &db));
        let not_in = LabelSelector {
            match_expressions: Some(vec![expr("app", "NotIn", &["web"])]),
            ..Default::default()
        };
        assert!(matches(&not_in, &db) && !matches(&not_in, &web));
        assert!(matches(&not_in, &Labels::new()), "NotIn matches a missing key");
        let exists = LabelSelector {
            match_expressions: Some(vec![expr("tier", "Exists", &[]), expr("gone", "DoesNotExist", &[])]),
            ..Default::default()
        };
        assert!(matches(&exists, &web) && !matches(&exists, &db));
        let bogus = LabelSelector {
            match_expressions: Some(vec![expr("app", "Like", &["web"])]),
            ..Default::default()
        };
        assert!(!matches(&bogus, &web), "an unknown operator matches nothing");
    }
}
