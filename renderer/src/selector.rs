//! Label selectors: `matchLabels` and `matchExpressions` (`In`, `NotIn`, `Exists`,
//! `DoesNotExist`), all requirements ANDed; an empty selector matches everything.

use std::collections::BTreeMap;

use crate::policy::LabelSelector;

/// Labels of a pod or namespace.
pub type Labels = BTreeMap<String, String>;

/// A checked label selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    reqs: Vec<Req>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Req {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// The selector that matches every label set.
    pub fn everything() -> Selector {
        Selector { reqs: Vec::new() }
    }

    /// Checks a Kubernetes selector: `In`/`NotIn` need values, `Exists`/`DoesNotExist` take
    /// none, keys are not empty.
    pub fn compile(s: &LabelSelector) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        for (k, v) in s.match_labels.iter().flatten() {
            if k.is_empty() {
                return Err("empty label key in matchLabels".into());
            }
            reqs.push(Req::In(k.clone(), vec![v.clone()]));
        }
        for e in s.match_expressions.iter().flatten() {
            if e.key.is_empty() {
                return Err("empty label key in matchExpressions".into());
            }
            let values = e.values.clone().unwrap_or_default();
            let req = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "operator {} on key {:?} needs values",
                        e.operator, e.key
                    ))
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "operator {} on key {:?} takes no values",
                        e.operator, e.key
                    ))
                }
                "In" => Req::In(e.key.clone(), values),
                "NotIn" => Req::NotIn(e.key.clone(), values),
                "Exists" => Req::Exists(e.key.clone()),
                "DoesNotExist" => Req::DoesNotExist(e.key.clone()),
                other => return Err(format!("unknown operator {other:?} on key {:?}", e.key)),
            };
            reqs.push(req);
        }
        Ok(Selector { reqs })
    }

    /// True when the selector has no requirement.
    pub fn is_everything(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether `labels` satisfy every requirement. `NotIn` holds when the key is absent, as in
    /// Kubernetes.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.reqs.iter().all(|r| match r {
            Req::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Req::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Req::Exists(k) => labels.contains_key(k),
            Req::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(yaml: &str) -> Result<Selector, String> {
        Selector::compile(&serde_yaml::from_str(yaml).unwrap())
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_selects_everything() {
        let s = sel("{}").unwrap();
        assert!(s.is_everything());
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let s = sel("matchLabels: {app: web}\nmatchExpressions: [{key: tier, operator: In, values: [a, b]}]")
            .unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "db"), ("tier", "b")])));
    }

    #[test]
    fn operators() {
        let not_in =
            sel("matchExpressions: [{key: env, operator: NotIn, values: [prod]}]").unwrap();
        assert!(not_in.matches(&labels(&[])));
        assert!(not_in.matches(&labels(&[("env", "dev")])));
        assert!(!not_in.matches(&labels(&[("env", "prod")])));
        let exists = sel("matchExpressions: [{key: env, operator: Exists}]").unwrap();
        assert!(exists.matches(&labels(&[("env", "")])));
        assert!(!exists.matches(&labels(&[("x", "y")])));
        let dne = sel("matchExpressions: [{key: env, operator: DoesNotExist}]").unwrap();
        assert!(!dne.matches(&labels(&[("env", "")])));
        assert!(dne.matches(&labels(&[("x", "y")])));
    }

    #[test]
    fn invalid_selectors() {
        assert!(sel("matchExpressions: [{key: a, operator: In}]").is_err());
        assert!(sel("matchExpressions: [{key: a, operator: NotIn, values: []}]").is_err());
        assert!(sel("matchExpressions: [{key: a, operator: Exists, values: [x]}]").is_err());
        assert!(sel("matchExpressions: [{key: a, operator: Gt, values: ['1']}]").is_err());
        assert!(sel("matchExpressions: [{key: '', operator: Exists}]").is_err());
    }
}
