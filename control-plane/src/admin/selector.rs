//! Label selectors as Kubernetes writes them: equality
//! (`app=web,tier!=db`), existence (`team,!legacy`) and sets
//! (`env in (prod, staging),tier notin (db)`).

use std::collections::{BTreeMap, BTreeSet};

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
}

impl Requirement {
    fn key(&self) -> &str {
        match self {
            Self::Equals(key, _)
            | Self::NotEquals(key, _)
            | Self::Exists(key)
            | Self::Absent(key)
            | Self::In(key, _)
            | Self::NotIn(key, _) => key,
        }
    }

    fn holds(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Equals(k, v) => labels.get(k) == Some(v),
            Self::NotEquals(k, v) => labels.get(k) != Some(v),
            Self::Exists(k) => labels.contains_key(k),
            Self::Absent(k) => !labels.contains_key(k),
            Self::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Self::NotIn(k, values) => !labels.get(k).is_some_and(|v| values.contains(v)),
        }
    }
}

/// A parsed selector; every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses a selector; the error names the part that is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_requirements(text)? {
            requirements.push(parse_requirement(part)?);
        }
        Ok(Self(requirements))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|requirement| requirement.holds(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits at the commas that are not inside a set's parentheses.
fn split_requirements(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Err(format!("label selector: unmatched ')' in {text:?}")),
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(text[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(format!("label selector: unclosed '(' in {text:?}"));
    }
    parts.push(text[start..].trim());
    Ok(parts.into_iter().filter(|p| !p.is_empty()).collect())
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let bad = || format!("label selector: {part:?} is not a requirement");
    let requirement = if let Some((left, values)) = part.split_once('(') {
        parse_set(left, values).ok_or_else(bad)?
    } else if let Some((key, value)) = part.split_once("!=") {
        Requirement::NotEquals(key.trim().into(), value.trim().into())
    } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        Requirement::Equals(key.trim().into(), value.trim().into())
    } else if let Some(key) = part.strip_prefix('!') {
        Requirement::Absent(key.trim().into())
    } else {
        Requirement::Exists(part.into())
    };

    let key = requirement.key();
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || "=!()".contains(c)) {
        return Err(bad());
    }
    Ok(requirement)
}

/// `key in (a, b)` or `key notin (a, b)`, split at the opening parenthesis.
fn parse_set(left: &str, values: &str) -> Option<Requirement> {
    let mut words = left.split_whitespace();
    let (key, operator) = (words.next()?, words.next()?);
    let values: BTreeSet<String> = values
        .strip_suffix(')')?
        .split(',')
        .map(|v| v.trim().to_owned())
        .collect();
    if words.next().is_some() || values.iter().any(String::is_empty) {
        return None;
    }

    match operator {
        "in" => Some(Requirement::In(key.into(), values)),
        "notin" => Some(Requirement::NotIn(key.into(), values)),
        _ => None,
    }
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
    fn set_requirements_match_like_kubernetes() {
        let selector = LabelSelector::parse("env in (prod, staging),tier notin (db)").unwrap();

        assert!(selector.matches(&labels(&[("env", "prod")])));
        assert!(selector.matches(&labels(&[("env", "staging"), ("tier", "web")])));
        assert!(!selector.matches(&labels(&[("env", "dev")])));
        assert!(!selector.matches(&labels(&[("tier", "web")])));
        assert!(!selector.matches(&labels(&[("env", "prod"), ("tier", "db")])));
    }

    #[test]
    fn malformed_sets_are_refused() {
        for text in [
            "env in (prod",
            "env in prod)",
            "env among (prod)",
            "env in (prod,)",
            "in (prod)",
        ] {
            assert!(LabelSelector::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn malformed_selector_names_its_part() {
        let error = LabelSelector::parse("app=web,=x").unwrap_err();

        assert!(error.contains("\"=x\""), "{error}");
    }
}
