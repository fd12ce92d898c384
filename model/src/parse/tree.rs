//! A generic value tree read from YAML or JSON, refusing duplicate keys.
//!
//! Both formats are read into `serde_json::Value` so that the rest of the
//! parser has one shape to work with. Reading through this wrapper rather than
//! `Value` itself refuses a key given twice in one mapping, which would
//! otherwise silently keep the last value.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A value tree whose mappings have no repeated keys.
pub(crate) struct Tree(pub Value);

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_bool<E: Error>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree(Value::Bool(v)))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree(Value::Number(v.into())))
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree(Value::Number(v.into())))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<Tree, E> {
        let number =
            Number::from_f64(v).ok_or_else(|| E::custom(format!("{v} is not a number")))?;
        Ok(Tree(Value::Number(number)))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree(Value::String(v.to_owned())))
    }

    fn visit_string<E: Error>(self, v: String) -> Result<Tree, E> {
        Ok(Tree(Value::String(v)))
    }

    fn visit_unit<E: Error>(self) -> Result<Tree, E> {
        Ok(Tree(Value::Null))
    }

    fn visit_none<E: Error>(self) -> Result<Tree, E> {
        Ok(Tree(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Tree, D::Error> {
        Tree::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(Tree(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(A::Error::custom(format!("duplicate key {key:?}")));
            }
            let Tree(value) = map.next_value()?;
            fields.insert(key, value);
        }
        Ok(Tree(Value::Object(fields)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_json_keys_are_refused() {
        let err = serde_json::from_str::<Tree>(r#"{"a": 1, "a": 2}"#)
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("duplicate key \"a\""), "{err}");
    }

    #[test]
    fn duplicate_yaml_keys_are_refused_with_a_location() {
        let err = serde_yaml::from_str::<Tree>("a: 1\nb:\n  c: 1\n  c: 2\n")
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "b: duplicate key \"c\" at line 3 column 3");
        assert_eq!(
            err.location().map(|l| l.line()),
            Some(3),
            "the mapping holding the key"
        );
    }

    #[test]
    fn yaml_values_become_json_values() {
        let Tree(value) = serde_yaml::from_str("a: [1, -2, 1.5, true, null, x]\n3: y\n").unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": [1, -2, 1.5, true, null, "x"], "3": "y"})
        );
    }
}
