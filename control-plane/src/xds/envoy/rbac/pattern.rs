//! The text patterns that policies write: `*` for any value, `x*` for a
//! prefix, `*x` for a suffix, anything else exactly.

use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};

/// A classified pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern<'a> {
    Any,
    Exact(&'a str),
    Prefix(&'a str),
    Suffix(&'a str),
}

impl<'a> Pattern<'a> {
    pub fn parse(text: &'a str) -> Self {
        if text == "*" {
            return Pattern::Any;
        }
        match (text.strip_suffix('*'), text.strip_prefix('*')) {
            (Some(prefix), _) => Pattern::Prefix(prefix),
            (None, Some(suffix)) => Pattern::Suffix(suffix),
            (None, None) => Pattern::Exact(text),
        }
    }

    /// The string matcher; `None` for [`Pattern::Any`], which needs none.
    pub fn matcher(self) -> Option<StringMatcher> {
        use string_matcher::MatchPattern;

        let pattern = match self {
            Pattern::Any => return None,
            Pattern::Exact(text) => MatchPattern::Exact(text.to_owned()),
            Pattern::Prefix(text) => MatchPattern::Prefix(text.to_owned()),
            Pattern::Suffix(text) => MatchPattern::Suffix(text.to_owned()),
        };
        Some(matching(pattern))
    }
}

/// A string matcher from its pattern.
pub fn matching(pattern: string_matcher::MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ..StringMatcher::default()
    }
}

/// A whole-string RE2 regular expression.
pub fn regex(regex: String) -> StringMatcher {
    matching(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
        regex,
        ..RegexMatcher::default()
    }))
}

/// `text` with RE2's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_classify_by_their_stars() {
        assert_eq!(Pattern::parse("*"), Pattern::Any);
        assert_eq!(
            Pattern::parse("spiffe://td/ns/a/*"),
            Pattern::Prefix("spiffe://td/ns/a/")
        );
        assert_eq!(Pattern::parse("*.json"), Pattern::Suffix(".json"));
        assert_eq!(Pattern::parse("GET"), Pattern::Exact("GET"));
        assert_eq!(Pattern::Any.matcher(), None);
    }

    #[test]
    fn escape_quotes_regex_syntax() {
        assert_eq!(escape("a.b-c(d)"), r"a\.b-c\(d\)");
    }
}
