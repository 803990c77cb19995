//! The report as one JSON object.

use std::fmt::Write as _;

use super::report::{Report, Step};

impl Report {
    /// The same report as one JSON object.
    pub fn to_json(&self) -> String {
        let s = |v: &str| Json::Str(v.to_owned());
        let opt = |v: &Option<String>| v.as_deref().map_or(Json::Null, s);
        let steps = |steps: &[Step]| {
            Json::Arr(
                steps
                    .iter()
                    .map(|st| {
                        Json::Obj(vec![("status", s(st.status.as_str())), ("text", s(&st.text)), ("fix", opt(&st.fix))])
                    })
                    .collect(),
            )
        };
        let json = Json::Obj(vec![
            ("version", s(env!("CARGO_PKG_VERSION"))),
            ("user", s(&self.user)),
            ("source", s(&self.source)),
            (
                "options",
                Json::Arr(
                    self.options
                        .iter()
                        .map(|o| {
                            Json::Obj(vec![
                                ("key", s(&o.key)),
                                ("value", s(&o.value)),
                                ("from", s(&o.origin.to_string())),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "sections",
                Json::Arr(
                    self.sections
                        .iter()
                        .map(|sec| Json::Obj(vec![("title", s(&sec.title)), ("steps", steps(&sec.steps))]))
                        .collect(),
                ),
            ),
            (
                "search",
                self.search.as_ref().map_or(Json::Null, |q| {
                    Json::Obj(vec![
                        ("base", s(&q.base)),
                        ("scope", s(&q.scope)),
                        ("filter", s(&q.filter)),
                        ("entries", Json::Num(q.entries as i64)),
                        ("dns", Json::Arr(q.dns.iter().map(|d| s(d)).collect())),
                    ])
                }),
            ),
            ("dn", opt(&self.dn)),
            ("canonical_name", opt(&self.canonical)),
            (
                "properties",
                Json::Arr(
                    self.properties
                        .iter()
                        .map(|p| {
                            Json::Obj(vec![
                                ("property", s(&p.property)),
                                ("attribute", s(&p.attribute)),
                                ("formats", Json::Arr(p.formats.iter().map(|f| s(f)).collect())),
                                ("handed_to_libsasl2", Json::Num(p.handed as i64)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "mechanisms",
                Json::Arr(
                    self.mechanisms
                        .iter()
                        .map(|m| {
                            Json::Obj(vec![("name", s(m.name)), ("status", s(m.status.as_str())), ("why", s(&m.why))])
                        })
                        .collect(),
                ),
            ),
            ("password_ok", self.password_ok.map_or(Json::Null, Json::Bool)),
            ("account", opt(&self.account)),
            ("working", Json::Arr(self.working().into_iter().map(s).collect())),
            ("problems", Json::Num(self.problems() as i64)),
            ("result", s(&self.verdict())),
            ("exit_code", Json::Num(i64::from(self.exit_code()))),
        ]);
        let mut out = String::new();
        json.write(&mut out);
        out.push('\n');
        out
    }
}

/// Just enough JSON to write the report.
pub(super) enum Json {
    Null,
    Bool(bool),
    Num(i64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    pub(super) fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Str(s) => write_json_str(out, s),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_str(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

pub(super) fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
