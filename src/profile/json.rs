//! A tiny JSON writer for `--json` output (no serde): values are built as a
//! tree and rendered with two-space indentation. Non-finite numbers become `null`.

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Int(i64),
    Str(String),
    Arr(Vec<Json>),
    /// Keys in the order given.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An object from `(key, value)` pairs.
    pub fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    /// A string.
    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }
    /// A number, or `null` for `None`.
    pub fn opt(v: Option<f64>) -> Json {
        v.map_or(Json::Null, Json::Num)
    }

    /// The value as JSON text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s.push('\n');
        s
    }

    fn write(&self, s: &mut String, depth: usize) {
        let pad = |s: &mut String, d: usize| s.extend(std::iter::repeat_n("  ", d));
        match self {
            Json::Null => s.push_str("null"),
            Json::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            Json::Num(x) if x.is_finite() => {
                // Six significant digits are plenty for timings; keep integers short.
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    s.push_str(&format!("{x:.1}"));
                } else {
                    s.push_str(&format!("{x:.6e}"));
                }
            }
            Json::Num(_) => s.push_str("null"),
            Json::Int(i) => s.push_str(&i.to_string()),
            Json::Str(t) => escape(s, t),
            Json::Arr(v) if v.is_empty() => s.push_str("[]"),
            Json::Arr(v) => {
                s.push_str("[\n");
                for (i, x) in v.iter().enumerate() {
                    pad(s, depth + 1);
                    x.write(s, depth + 1);
                    s.push_str(if i + 1 < v.len() { ",\n" } else { "\n" });
                }
                pad(s, depth);
                s.push(']');
            }
            Json::Obj(v) if v.is_empty() => s.push_str("{}"),
            Json::Obj(v) => {
                s.push_str("{\n");
                for (i, (k, x)) in v.iter().enumerate() {
                    pad(s, depth + 1);
                    escape(s, k);
                    s.push_str(": ");
                    x.write(s, depth + 1);
                    s.push_str(if i + 1 < v.len() { ",\n" } else { "\n" });
                }
                pad(s, depth);
                s.push('}');
            }
        }
    }
}

fn escape(s: &mut String, t: &str) {
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_json() {
        let j = Json::obj([
            ("a", Json::Int(1)),
            (
                "b",
                Json::Arr(vec![Json::Num(1.5), Json::Num(f64::NAN), Json::Null]),
            ),
            ("c", Json::str("q\"\\\n")),
            ("d", Json::Obj(vec![])),
            ("e", Json::Bool(true)),
        ]);
        let s = j.render();
        assert!(s.contains("\"a\": 1,"), "{s}");
        assert!(s.contains("1.500000e0") && s.contains("null"), "{s}");
        assert!(s.contains(r#""q\"\\\n""#), "{s}");
    }
}
