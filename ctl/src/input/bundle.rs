//! Putting several inputs into the one text an ApplyRequest carries.

use super::{InputError, InputFile, looks_like_json, without_bom};

/// The content of one ApplyRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The input names, comma separated.
    pub source: String,
    /// Every input's documents.
    pub content: String,
}

/// Joins the inputs into one YAML stream.
///
/// A single input goes as it is, JSON or YAML. Several inputs are joined with
/// `---` lines; JSON inputs are rewritten as YAML first, since the control
/// plane reads a text that starts like JSON as JSON throughout.
pub fn bundle(inputs: &[InputFile]) -> Result<Bundle, InputError> {
    let names: Vec<&str> = inputs.iter().map(|input| input.name.as_str()).collect();
    let source = names.join(", ");

    if let [input] = inputs {
        return Ok(Bundle {
            source,
            content: input.text.clone(),
        });
    }

    let mut texts = Vec::with_capacity(inputs.len());
    for input in inputs {
        texts.push(as_yaml(input)?);
    }
    Ok(Bundle {
        source,
        content: texts.join("\n---\n"),
    })
}

fn as_yaml(input: &InputFile) -> Result<String, InputError> {
    let text = without_bom(&input.text);
    if !looks_like_json(text) {
        return Ok(text.to_owned());
    }

    let mut documents = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        let value = value.map_err(|source| InputError::Json {
            name: input.name.clone(),
            source,
        })?;
        let yaml = serde_yaml::to_string(&value).map_err(|source| InputError::Yaml {
            name: input.name.clone(),
            source,
        })?;
        documents.push(yaml);
    }
    Ok(documents.join("---\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> InputFile {
        InputFile {
            name: name.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn single_input_goes_unchanged() {
        let json = "{\n\t\"kind\": \"Node\"\n}\n";

        let bundle = bundle(&[file("node.json", json)]).unwrap();

        assert_eq!(
            bundle,
            Bundle {
                source: "node.json".into(),
                content: json.into()
            }
        );
    }

    #[test]
    fn several_inputs_become_one_yaml_stream() {
        let inputs = [
            file("a.yaml", "kind: Node\nmetadata:\n  name: n1\n"),
            file(
                "b.json",
                "{\"kind\": \"Service\", \"metadata\": {\"name\": \"web\"}}",
            ),
        ];

        let bundle = bundle(&inputs).unwrap();

        assert_eq!(bundle.source, "a.yaml, b.json");
        assert_eq!(
            bundle.content,
            "kind: Node\nmetadata:\n  name: n1\n\n---\nkind: Service\nmetadata:\n  name: web\n"
        );
        let documents: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&bundle.content)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect();
        assert_eq!(documents.len(), 2);
    }

    #[test]
    fn json_stream_becomes_separate_documents() {
        let inputs = [
            file("a.json", "{\"a\": 1} {\"b\": 2}"),
            file("c.yaml", "c: 3"),
        ];

        let bundle = bundle(&inputs).unwrap();

        assert_eq!(bundle.content, "a: 1\n---\nb: 2\n\n---\nc: 3");
    }

    #[test]
    fn broken_json_names_its_file() {
        let inputs = [file("bad.json", "{\"a\": "), file("c.yaml", "c: 3")];

        let err = bundle(&inputs).unwrap_err();

        assert_eq!(err.to_string(), "bad.json is not valid JSON");
    }
}
