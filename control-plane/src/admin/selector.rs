//! Label selectors in the Kubernetes equality form:
//! `app=web,tier!=db,team,!legacy`.

use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// A parsed selector; every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses a selector; the error names the part that is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            requirements.push(parse_requirement(part)?);
        }
        Ok(Self(requirements))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|requirement| match requirement {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let requirement = if let Some((key, value)) = part.split_once("!=") {
        Requirement::NotEquals(key.trim().into(), value.trim().into())
    } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        Requirement::Equals(key.trim().into(), value.trim().into())
    } else if let Some(key) = part.strip_prefix('!') {
        Requirement::Absent(key.trim().into())
    } else {
        Requirement::Exists(part.into())
    };

    let (Requirement::Equals(key, _)
    | Requirement::NotEquals(key, _)
    | Requirement::Exists(key)
    | Requirement::Absent(key)) = &requirement;
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || "=!".contains(c)) {
        return Err(format!("label selector: {part:?} is not a requirement"));
    }
    Ok(requirement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_requirement_must_hold() {
        let selector = LabelSelector::parse("app=web, tier!=db,team,!legacy").unwrap();

        assert!(selector.matches(&labels(&[("app", "web"), ("team", "a")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("team", "a"), ("tier", "db")])));
        assert!(!selector.matches(&labels(&[("app", "web")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("team", "a"), ("legacy", "")])));
    }

    #[test]
    fn malformed_selector_names_its_part() {
        let error = LabelSelector::parse("app=web,=x").unwrap_err();

        assert!(error.contains("\"=x\""), "{error}");
    }
}
