//! The user search filter template, option `ldapdb_filter` (written `sasl_ldapdb_filter`).
//!
//! The template is parsed once at config time into literal text and placeholders, and checked
//! to be an RFC 4515 filter; rendering substitutes RFC 4515-escaped values only, so no user name
//! can change the filter's structure (`x)(uid=*` stays a value).

use std::fmt;

use crate::config::Message;

/// How admins spell the option in imapd.conf.
pub const OPTION: &str = "sasl_ldapdb_filter";
/// Used when `sasl_ldapdb_filter` is not set: a user may log in with a uid or a mail address.
pub const DEFAULT_FILTER: &str = "(|(uid=%u)(mail=%u))";

/// Longest template accepted, in bytes. A user filter is a few dozen bytes; the bound keeps a
/// pasted blob out of every search and every log line.
pub const MAX_TEMPLATE_BYTES: usize = 4096;
/// Deepest nesting of parentheses accepted (the default filter has 2). ldap3's filter parser
/// recurses once per level: 50,000 levels overflowed the host's stack inside `sasl_server_init`.
pub const MAX_NESTING: usize = 32;

/// Values substituted when checking a template at config time.
const SAMPLE_USER: &str = "jdoe@example.com";
const SAMPLE_REALM: &str = "example.com";

/// RFC 4515 assertion-value escaping: `*` `(` `)` `\` and NUL become `\2a` `\28` `\29` `\5c`
/// `\00` (lower-case hex, as ldap3's `ldap_escape`). Other text, including UTF-8, is kept.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `%u`: the name as given.
    User,
    /// `%U`: the part before the last `@`, or the whole name.
    UserLocal,
    /// `%d`: the part after the last `@`, else the realm.
    Domain,
    /// `%r`: the SASL realm.
    Realm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Value(Token),
}

/// A parsed `sasl_ldapdb_filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterTemplate {
    template: String,
    parts: Vec<Part>,
}

/// Why `sasl_ldapdb_filter` was rejected; `Display` is one line with the cause and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    Empty,
    UnknownToken { template: String, token: String },
    TrailingPercent { template: String },
    TooLong { len: usize },
    TooDeep { depth: usize },
    NotParenthesized { template: String },
    Unbalanced { template: String, opens: usize, closes: usize, fix: String },
    Syntax { template: String, sample: String },
    NoUser { template: String },
}

impl FilterError {
    /// What is wrong and the fix.
    pub fn message(&self) -> Message {
        match self {
            FilterError::Empty => Message::new(
                format!("{OPTION} is empty"),
                format!("remove the line for the default `{DEFAULT_FILTER}` or write a filter with %u"),
            ),
            FilterError::UnknownToken { template, token } => Message::new(
                format!("{OPTION}: unknown placeholder `{token}` in `{template}`"),
                "use %u (name as given), %U (part before @), %d (domain or realm), %r (realm) or %% (a \
                 literal %)",
            ),
            FilterError::TrailingPercent { template } => Message::new(
                format!("{OPTION}: `{template}` ends with a lone `%`"),
                "write %% for a literal percent sign or a placeholder such as %u",
            ),
            FilterError::TooLong { len } => Message::new(
                format!("{OPTION} is {len} bytes long, more than the {MAX_TEMPLATE_BYTES} ldapbind accepts"),
                format!("a user filter is short, e.g. `{DEFAULT_FILTER}`"),
            ),
            FilterError::TooDeep { depth } => Message::new(
                format!("{OPTION}: parentheses are nested {depth} deep, more than the {MAX_NESTING} ldapbind accepts"),
                "write a flat filter, e.g. `(&(objectClass=person)(|(uid=%u)(mail=%u)))`",
            ),
            FilterError::NotParenthesized { template } => Message::new(
                format!("{OPTION}: `{template}` must be enclosed in parentheses (RFC 4515)"),
                format!("write `({template})`"),
            ),
            FilterError::Unbalanced { template, opens, closes, fix } => {
                Message::new(format!("{OPTION}: `{template}` has {opens} `(` but {closes} `)`"), fix.clone())
            }
            FilterError::Syntax { template, sample } => Message::new(
                format!("{OPTION}: `{template}` is not a valid LDAP filter (RFC 4515; checked as `{sample}`)"),
                format!("check parentheses and operators, e.g. `{DEFAULT_FILTER}` (no spaces between `)(`)"),
            ),
            FilterError::NoUser { template } => Message::new(
                format!(
                    "{OPTION}: `{template}` does not contain %u or %U, so every login would find the same \
                     entries"
                ),
                format!("put the user name in it, e.g. `{DEFAULT_FILTER}`"),
            ),
        }
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message().fmt(f)
    }
}

impl std::error::Error for FilterError {}

impl FilterTemplate {
    /// Parse and check a template: placeholders known, at least one of `%u`/`%U`, and the
    /// template with sample values substituted parses as an RFC 4515 filter.
    pub fn parse(template: &str) -> Result<Self, FilterError> {
        let trimmed = template.trim();
        if trimmed.is_empty() {
            return Err(FilterError::Empty);
        }
        if trimmed.len() > MAX_TEMPLATE_BYTES {
            return Err(FilterError::TooLong { len: trimmed.len() });
        }
        // Before anything recurses. Values cannot hold a bare parenthesis (RFC 4515 writes
        // them `\28` `\29`), so every `(` and `)` is structure.
        let (mut depth, mut deepest, mut opens, mut closes) = (0usize, 0usize, 0usize, 0usize);
        for b in trimmed.bytes() {
            match b {
                b'(' => {
                    opens += 1;
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b')' => {
                    closes += 1;
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
        }
        if deepest > MAX_NESTING {
            return Err(FilterError::TooDeep { depth: deepest });
        }
        let template = trimmed.to_string();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let token = match chars.next() {
                None => return Err(FilterError::TrailingPercent { template }),
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some('u') => Token::User,
                Some('U') => Token::UserLocal,
                Some('d') => Token::Domain,
                Some('r') => Token::Realm,
                Some(other) => {
                    return Err(FilterError::UnknownToken { token: format!("%{other}"), template });
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Value(token));
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if !parts.iter().any(|p| matches!(p, Part::Value(Token::User | Token::UserLocal))) {
            return Err(FilterError::NoUser { template });
        }
        if opens != closes {
            // `(uid=%u` gets `(uid=%u)`: the missing parentheses added where that makes a
            // filter, else the rule.
            let fixed = match opens > closes {
                true => format!("{template}{}", ")".repeat(opens - closes)),
                false => format!("{}{template}", "(".repeat(closes - opens)),
            };
            let fix = match FilterTemplate::parse(&fixed) {
                Ok(_) => format!("write `{fixed}`"),
                Err(_) => format!("every `(` needs its `)`, e.g. `{DEFAULT_FILTER}`"),
            };
            return Err(FilterError::Unbalanced { template, opens, closes, fix });
        }
        // ldap3 accepts a bare `uid=%u`; RFC 4515 and anything that combines filters do not.
        if !(template.starts_with('(') && template.ends_with(')')) {
            return Err(FilterError::NotParenthesized { template });
        }
        let parsed = FilterTemplate { template, parts };
        let sample = parsed.render(SAMPLE_USER, Some(SAMPLE_REALM));
        if ldap3::parse_filter(&sample).is_err() {
            return Err(FilterError::Syntax { template: parsed.template, sample });
        }
        Ok(parsed)
    }

    /// The filter for one login. Every substituted value is escaped with [`escape_value`];
    /// a missing realm makes `%r` (and `%d` without `@` in the name) empty.
    pub fn render(&self, user: &str, realm: Option<&str>) -> String {
        let (local, domain) = match user.rsplit_once('@') {
            Some((l, d)) => (l, Some(d)),
            None => (user, None),
        };
        let mut out = String::with_capacity(self.template.len() + 2 * user.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Value(token) => {
                    let value = match token {
                        Token::User => user,
                        Token::UserLocal => local,
                        Token::Domain => domain.or(realm).unwrap_or(""),
                        Token::Realm => realm.unwrap_or(""),
                    };
                    out.push_str(&escape_value(value));
                }
            }
        }
        out
    }

    /// The template as configured (trimmed).
    pub fn as_str(&self) -> &str {
        &self.template
    }
}

impl Default for FilterTemplate {
    fn default() -> Self {
        FilterTemplate {
            template: DEFAULT_FILTER.to_string(),
            parts: vec![
                Part::Literal("(|(uid=".into()),
                Part::Value(Token::User),
                Part::Literal(")(mail=".into()),
                Part::Value(Token::User),
                Part::Literal("))".into()),
            ],
        }
    }
}

impl fmt::Display for FilterTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn default() -> FilterTemplate {
        FilterTemplate::parse(DEFAULT_FILTER).unwrap()
    }

    #[test]
    fn default_impl_matches_parsed_default() {
        assert_eq!(FilterTemplate::default(), default());
        assert_eq!(default().as_str(), DEFAULT_FILTER);
        assert_eq!(default().to_string(), DEFAULT_FILTER);
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_value("plain"), "plain");
        assert_eq!(escape_value("*"), "\\2a");
        assert_eq!(escape_value("x)(uid=*"), "x\\29\\28uid=\\2a");
        assert_eq!(escape_value("a\\b"), "a\\5cb");
        assert_eq!(escape_value("a\0b"), "a\\00b");
        assert_eq!(escape_value("a+b'c"), "a+b'c");
        assert_eq!(escape_value("jörg@exämple.org ✓"), "jörg@exämple.org ✓");
        // Consistent with ldap3's own escaper.
        for s in ["*", "x)(uid=*", "\\", "\0", "+", "'", "ü(", ""] {
            assert_eq!(escape_value(s), ldap3::ldap_escape(s), "{s:?}");
        }
    }

    #[test]
    fn render_default() {
        let f = default();
        assert_eq!(f.render("jdoe", None), "(|(uid=jdoe)(mail=jdoe))");
        assert_eq!(f.render("jdoe@example.com", Some("x")), "(|(uid=jdoe@example.com)(mail=jdoe@example.com))");
        assert_eq!(f.render("*", None), "(|(uid=\\2a)(mail=\\2a))");
        assert_eq!(f.render("x)(uid=*", None), "(|(uid=x\\29\\28uid=\\2a)(mail=x\\29\\28uid=\\2a))");
        assert_eq!(f.render("a\\b", None), "(|(uid=a\\5cb)(mail=a\\5cb))");
        assert_eq!(f.render("a\0", None), "(|(uid=a\\00)(mail=a\\00))");
        assert_eq!(f.render("o'neil+x", None), "(|(uid=o'neil+x)(mail=o'neil+x))");
        assert_eq!(f.render("jörg", None), "(|(uid=jörg)(mail=jörg))");
        for user in ["*", "x)(uid=*", "\\", "\0", "+", "'", "jörg", ""] {
            assert!(ldap3::parse_filter(f.render(user, None)).is_ok(), "{user:?}");
        }
    }

    #[test]
    fn all_tokens() {
        let f = FilterTemplate::parse("(&(uid=%U)(dom=%d)(realm=%r)(pct=100%%)(u=%u))").unwrap();
        assert_eq!(
            f.render("jdoe@mail.example.com", Some("EXAMPLE")),
            "(&(uid=jdoe)(dom=mail.example.com)(realm=EXAMPLE)(pct=100%)(u=jdoe@mail.example.com))"
        );
        // %d falls back to the realm; both empty without a realm.
        assert_eq!(f.render("jdoe", Some("EXAMPLE")), "(&(uid=jdoe)(dom=EXAMPLE)(realm=EXAMPLE)(pct=100%)(u=jdoe))");
        assert_eq!(f.render("jdoe", None), "(&(uid=jdoe)(dom=)(realm=)(pct=100%)(u=jdoe))");
        // The last '@' splits; substituted parts are escaped too.
        assert_eq!(
            f.render("a@b*@c(", Some("R*")),
            "(&(uid=a@b\\2a)(dom=c\\28)(realm=R\\2a)(pct=100%)(u=a@b\\2a@c\\28))"
        );
    }

    #[test]
    fn percent_u_only_or_local_part_only() {
        assert!(FilterTemplate::parse("(uid=%u)").is_ok());
        assert!(FilterTemplate::parse("(uid=%U)").is_ok());
        assert!(FilterTemplate::parse("  (uid=%U)\n").is_ok());
        assert_eq!(FilterTemplate::parse(" (uid=%U) ").unwrap().as_str(), "(uid=%U)");
    }

    #[test]
    fn errors() {
        assert_eq!(FilterTemplate::parse(""), Err(FilterError::Empty));
        assert_eq!(FilterTemplate::parse("  "), Err(FilterError::Empty));
        assert_eq!(
            FilterTemplate::parse("(uid=%x)").unwrap_err().to_string(),
            "sasl_ldapdb_filter: unknown placeholder `%x` in `(uid=%x)`; use %u (name as given), \
             %U (part before @), %d (domain or realm), %r (realm) or %% (a literal %)"
        );
        assert!(matches!(FilterTemplate::parse("(uid=%u)(x=%"), Err(FilterError::TrailingPercent { .. })));
        assert_eq!(
            FilterTemplate::parse("(objectClass=person)").unwrap_err().to_string(),
            "sasl_ldapdb_filter: `(objectClass=person)` does not contain %u or %U, so every login \
             would find the same entries; put the user name in it, e.g. `(|(uid=%u)(mail=%u))`"
        );
        assert!(matches!(FilterTemplate::parse("(realm=%r)(dom=%d)"), Err(FilterError::NoUser { .. })));
        assert!(matches!(FilterTemplate::parse("(uid=100%%u)"), Err(FilterError::NoUser { .. })));
        assert_eq!(
            FilterTemplate::parse("uid=%u").unwrap_err().to_string(),
            "sasl_ldapdb_filter: `uid=%u` must be enclosed in parentheses (RFC 4515); write `(uid=%u)`"
        );
        for bad in ["(|(uid=%u) (mail=%u))", "(uid=%u)(mail=%u)", "(=%u)", "(uid~%u)"] {
            let e = FilterTemplate::parse(bad).unwrap_err();
            assert!(matches!(e, FilterError::Syntax { .. }), "{bad}: {e:?}");
            assert!(e.to_string().starts_with("sasl_ldapdb_filter: "), "{e}");
        }
    }

    #[test]
    fn unbalanced_parentheses_get_the_filter_that_closes_them() {
        for (bad, want) in [
            ("(uid=%u", "`(uid=%u` has 1 `(` but 0 `)`; write `(uid=%u)`"),
            ("(|(uid=%u)(mail=%u)", "`(|(uid=%u)(mail=%u)` has 3 `(` but 2 `)`; write `(|(uid=%u)(mail=%u))`"),
            ("uid=%u)", "`uid=%u)` has 0 `(` but 1 `)`; write `(uid=%u)`"),
            ("((uid=%u)", "`((uid=%u)` has 2 `(` but 1 `)`; every `(` needs its `)`, e.g. `(|(uid=%u)(mail=%u))`"),
            ("(uid=%u))", "`(uid=%u))` has 1 `(` but 2 `)`; every `(` needs its `)`, e.g. `(|(uid=%u)(mail=%u))`"),
            (
                "(&(uid=%u)()",
                "`(&(uid=%u)()` has 3 `(` but 2 `)`; every `(` needs its `)`, e.g. `(|(uid=%u)(mail=%u))`",
            ),
        ] {
            let e = FilterTemplate::parse(bad).unwrap_err();
            assert!(matches!(e, FilterError::Unbalanced { .. }), "{bad}: {e:?}");
            assert_eq!(e.to_string(), format!("sasl_ldapdb_filter: {want}"), "{bad}");
        }
        // Never the advice to write `((uid=%u)` (it used to say "enclose it in parentheses").
        assert!(!FilterTemplate::parse("(uid=%u").unwrap_err().to_string().contains("((uid"));
    }

    #[test]
    fn size_and_nesting_are_bounded_before_parsing() {
        // The adversarial template: 50,000 levels (150 KB; the report had 200 KB); it overflowed the stack in ldap3.
        let huge = format!("{}(uid=%u){}", "(&".repeat(50_000), ")".repeat(50_000));
        let e = FilterTemplate::parse(&huge).unwrap_err();
        assert_eq!(e, FilterError::TooLong { len: huge.len() });
        assert_eq!(
            e.to_string(),
            format!(
                "sasl_ldapdb_filter is {} bytes long, more than the 4096 ldapbind accepts; a user filter is \
                 short, e.g. `(|(uid=%u)(mail=%u))`",
                huge.len()
            )
        );
        // Deep within the size bound: refused by its depth, before ldap3 recurses.
        let deep = |n: usize| format!("{}(uid=%u){}", "(&".repeat(n), ")".repeat(n));
        assert!(FilterTemplate::parse(&deep(MAX_NESTING - 1)).is_ok());
        let e = FilterTemplate::parse(&deep(MAX_NESTING)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sasl_ldapdb_filter: parentheses are nested 33 deep, more than the 32 ldapbind accepts; write a flat \
             filter, e.g. `(&(objectClass=person)(|(uid=%u)(mail=%u)))`"
        );
        let e = FilterTemplate::parse(&deep(1300)).unwrap_err();
        assert_eq!(e, FilterError::TooDeep { depth: 1301 });
        // Unbalanced and deep: still the depth, and no message quotes a long template.
        assert_eq!(FilterTemplate::parse(&"(".repeat(4000)).unwrap_err(), FilterError::TooDeep { depth: 4000 });
        let longest = format!("(uid=%u{})", "x".repeat(MAX_TEMPLATE_BYTES - 8));
        assert!(FilterTemplate::parse(&longest).is_ok());
        assert!(FilterTemplate::parse(&format!("{longest} ")).is_ok(), "trimmed first");
        assert!(matches!(FilterTemplate::parse(&format!("(x{longest})")), Err(FilterError::TooLong { .. })));
    }

    /// RFC 4515 assertion-value unescaper: `\XX` → byte; everything else literal.
    fn unescape(v: &str) -> Vec<u8> {
        let b = v.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    proptest! {
        #[test]
        fn rendered_default_parses_and_values_round_trip(user in "\\PC*|[*()\\\\\0a@]{0,12}") {
            let rendered = default().render(&user, Some("REALM"));
            prop_assert!(ldap3::parse_filter(&rendered).is_ok(), "{}", rendered);
            let inner = rendered
                .strip_prefix("(|(uid=")
                .and_then(|r| r.strip_suffix("))"))
                .unwrap();
            let (uid, mail) = inner.split_once(")(mail=").unwrap();
            prop_assert_eq!(uid, mail);
            prop_assert!(!uid.contains(['(', ')', '*', '\0']));
            prop_assert_eq!(unescape(uid), user.as_bytes().to_vec());
        }

        #[test]
        fn arbitrary_templates_never_panic(t in "\\PC{0,40}|[(|&!)=%uUdrx*a-c]{0,30}") {
            if let Ok(f) = FilterTemplate::parse(&t) {
                let _ = f.render("x)(uid=*", None);
            }
        }
    }
}
