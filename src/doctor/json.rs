//! The report as one JSON object (`ldapbind-check --json`), through serde: the report model's
//! fields (report.rs derives `Serialize`) between the version and what is derived from them.

use serde::Serialize;

use super::report::Report;

/// The object `--json` writes, keys in this order.
#[derive(Serialize)]
struct Json<'a> {
    version: &'static str,
    #[serde(flatten)]
    report: &'a Report,
    working: Vec<&'static str>,
    problems: usize,
    result: String,
    exit_code: i32,
}

impl Report {
    /// The same report as one line of JSON, then a newline.
    pub fn write_json(&self, mut out: impl std::io::Write) -> std::io::Result<()> {
        let json = Json {
            version: env!("CARGO_PKG_VERSION"),
            report: self,
            working: self.working(),
            problems: self.problems(),
            result: self.verdict(),
            exit_code: self.exit_code(),
        };
        serde_json::to_writer(&mut out, &json)?;
        out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::{MechRow, MechStatus, OptionRow, Origin, Section, Step};
    use super::*;

    /// Quotes, backslash, control characters, non-ASCII and U+2028 in every kind of field.
    const ODD: &str = "a\"b\\c\nd\u{1}\t\u{7f} é日本\u{2028}";

    fn report() -> Report {
        Report {
            user: ODD.to_owned(),
            source: format!("-o only {ODD}"),
            options: vec![OptionRow {
                key: "ldapdb_filter".into(),
                value: ODD.into(),
                origin: Origin::File { path: format!("/x{ODD}.conf"), line: 3, key: "sasl_ldapdb_filter".into() },
            }],
            sections: vec![Section { title: "options".into(), steps: vec![Step::problem(ODD, ODD)] }],
            search: None,
            dn: Some(ODD.into()),
            canonical: None,
            properties: Vec::new(),
            mechanisms: vec![MechRow { name: "PLAIN", status: MechStatus::Works, why: ODD.into() }],
            password_ok: Some(false),
            account: None,
        }
    }

    #[test]
    fn any_text_comes_back_unchanged() {
        let r = report();
        let mut out = Vec::new();
        r.write_json(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["user"], ODD);
        assert_eq!(v["source"], format!("-o only {ODD}"));
        assert_eq!(v["options"][0]["value"], ODD);
        assert_eq!(v["options"][0]["from"], format!("/x{ODD}.conf:3 sasl_ldapdb_filter"));
        assert_eq!(v["sections"][0]["steps"][0]["status"], "problem");
        assert_eq!(v["sections"][0]["steps"][0]["text"], ODD);
        assert_eq!(v["sections"][0]["steps"][0]["fix"], ODD);
        assert_eq!(v["dn"], ODD);
        assert_eq!(v["canonical_name"], serde_json::Value::Null);
        assert_eq!(v["mechanisms"][0], serde_json::json!({"name": "PLAIN", "status": "works", "why": ODD}));
        assert_eq!(v["working"], serde_json::json!(["PLAIN"]));
        assert_eq!(v["password_ok"], false);
        assert_eq!((v["problems"].as_u64(), v["exit_code"].as_i64()), (Some(1), Some(1)));
        assert_eq!(v["result"], r.verdict());
        // Characters JSON must escape (below U+0020) never stand raw in the output.
        assert!(!text.trim_end().chars().any(|c| u32::from(c) < 0x20), "{text}");
    }
}
