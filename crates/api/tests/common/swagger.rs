//! Checks answers of the Harbor API against the schemas of Harbor's swagger
//! (`data/harbor-swagger.json`, converted from Harbor's `swagger.yaml`): every field
//! named by the schema has its type, arrays hold their item type, objects carry no
//! field the schema does not name, and `null` appears only where `x-nullable` allows
//! (Harbor omits empty fields rather than sending `null`).

use serde_json::Value;

/// Harbor's API description.
pub struct Swagger(Value);

impl Swagger {
    /// Loads the description shipped with the tests.
    pub fn load() -> Self {
        Swagger(serde_json::from_str(include_str!("../data/harbor-swagger.json")).unwrap())
    }

    /// The schema of the answer `status` to `method path` (a swagger path template,
    /// e.g. `/projects/{project_name_or_id}`), if the swagger gives one.
    fn response(&self, path: &str, method: &str, status: u16) -> Option<&Value> {
        let responses = &self.0["paths"][path][method]["responses"];
        assert!(!responses.is_null(), "the swagger has no {method} {path}");
        let response = &responses[status.to_string()];
        assert!(
            !response.is_null(),
            "the swagger names no {status} answer for {method} {path}"
        );
        response.get("schema")
    }

    /// Panics unless `body` matches the schema of that answer, and the headers it
    /// declares are present.
    pub fn check(
        &self,
        path: &str,
        method: &str,
        status: u16,
        body: &Value,
        headers: &http::HeaderMap,
    ) {
        let response = &self.0["paths"][path][method]["responses"][status.to_string()];
        if let Some(declared) = response.get("headers").and_then(Value::as_object) {
            for name in declared.keys() {
                if name == "X-Total-Count" {
                    assert!(
                        headers.contains_key("x-total-count"),
                        "{method} {path}: no {name}"
                    );
                }
            }
        }
        let Some(schema) = self.response(path, method, status) else {
            return;
        };
        let mut errors = Vec::new();
        self.validate(schema, body, "$", &mut errors);
        assert!(
            errors.is_empty(),
            "{method} {path} {status}: {errors:#?}\n{body:#}"
        );
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.trim_start_matches("#/definitions/");
                self.resolve(&self.0["definitions"][name])
            }
            None => schema,
        }
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let nullable = schema.get("x-nullable").and_then(Value::as_bool) == Some(true);
        let schema = self.resolve(schema);
        if value.is_null() {
            if !nullable && schema.get("x-nullable").and_then(Value::as_bool) != Some(true) {
                errors.push(format!("{at}: null where the schema does not allow it"));
            }
            return;
        }
        let kind = schema.get("type").and_then(Value::as_str);
        // go-swagger reads an object schema with no properties as "any value"
        // (`interface{}`), which is how Harbor fills `extra_attrs`.
        let free_form = kind == Some("object")
            && schema.get("properties").is_none()
            && schema.get("additionalProperties").is_none();
        if free_form {
            return;
        }
        match kind {
            Some("object") | None
                if schema.get("properties").is_some() || kind == Some("object") =>
            {
                let Some(object) = value.as_object() else {
                    errors.push(format!("{at}: expected an object, got {value}"));
                    return;
                };
                let properties = schema.get("properties").and_then(Value::as_object);
                let additional = schema.get("additionalProperties");
                for (key, v) in object {
                    match properties.and_then(|p| p.get(key)) {
                        Some(s) => self.validate(s, v, &format!("{at}.{key}"), errors),
                        None => match additional {
                            Some(Value::Bool(true)) => {}
                            Some(s @ Value::Object(_)) => {
                                self.validate(s, v, &format!("{at}.{key}"), errors)
                            }
                            _ => errors.push(format!("{at}.{key}: not in the schema")),
                        },
                    }
                }
            }
            Some("array") => match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.validate(&schema["items"], item, &format!("{at}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{at}: expected an array, got {value}")),
            },
            Some("string") => match value.as_str() {
                Some(text) if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
                    if time::OffsetDateTime::parse(
                        text,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .is_err()
                    {
                        errors.push(format!("{at}: {text:?} is not an RFC 3339 time"));
                    }
                }
                Some(_) => {}
                None => errors.push(format!("{at}: expected a string, got {value}")),
            },
            Some(kind @ ("integer" | "number" | "boolean")) => {
                let matches = match kind {
                    "integer" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    _ => value.is_boolean(),
                };
                if !matches {
                    errors.push(format!("{at}: expected {kind}, got {value}"));
                }
            }
            _ => {}
        }
    }
}
