//! Category templates: `syslog.{app_name}`, literal text with `{field}` placeholders, rendered
//! into a legal category name (`scribe_archive::category`: one vocabulary for every binary).
//!
//! Rendering maps every character outside `[A-Za-z0-9._-]` to `_` and gives up (so the caller
//! uses its fallback) when a placeholder's field is absent or empty, or when the result is not
//! a category (empty, `.`/`..`, longer than `MAX_CATEGORY_LEN`).

use scribe_archive::category::{is_category_byte, MAX_CATEGORY_LEN};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template {0:?}: unclosed `{{`")]
    Unclosed(String),
    #[error("template {template:?}: unknown field {{{field}}} (known: {known})")]
    UnknownField {
        template: String,
        field: String,
        known: String,
    },
    #[error("template {0:?}: literal text must be category characters (A-Z a-z 0-9 . _ -)")]
    BadLiteral(String),
    #[error("template is empty")]
    Empty,
}

/// The fields a syslog template may name.
pub const SYSLOG_FIELDS: &[&str] = &[
    "app_name", "hostname", "facility", "severity", "msgid", "procid",
];

impl Template {
    /// Parses `text`, whose placeholders must be among `known`.
    pub fn parse(text: &str, known: &[&str]) -> Result<Template, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let close = rest
                        .find('}')
                        .ok_or_else(|| TemplateError::Unclosed(text.into()))?;
                    let field = &rest[1..close];
                    if !known.contains(&field) {
                        return Err(TemplateError::UnknownField {
                            template: text.into(),
                            field: field.into(),
                            known: known.join(", "),
                        });
                    }
                    parts.push(Part::Field(field.into()));
                    rest = &rest[close + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let lit = &rest[..end];
                    if !lit.bytes().all(is_category_byte) {
                        return Err(TemplateError::BadLiteral(text.into()));
                    }
                    parts.push(Part::Literal(lit.into()));
                    rest = &rest[end..];
                }
            }
        }
        Ok(Template {
            text: text.into(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template has no placeholder (renders the same for every message).
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The category for the fields `lookup` gives, or `None` when a field is missing or the
    /// result is no category.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Field(f) => {
                    let v = lookup(f).filter(|v| !v.is_empty())?;
                    for c in v.chars() {
                        if out.len() > MAX_CATEGORY_LEN {
                            return None;
                        }
                        out.push(if c.is_ascii() && is_category_byte(c as u8) {
                            c
                        } else {
                            '_'
                        });
                    }
                }
            }
        }
        let ok = !out.is_empty() && out.len() <= MAX_CATEGORY_LEN && out != "." && out != "..";
        ok.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_falls_back() {
        let t = Template::parse("syslog.{app_name}", SYSLOG_FIELDS).unwrap();
        assert_eq!(t.render(|_| Some("sshd")).as_deref(), Some("syslog.sshd"));
        assert_eq!(
            t.render(|_| Some("my app/é")).as_deref(),
            Some("syslog.my_app__")
        );
        assert_eq!(t.render(|_| None), None);
        assert_eq!(t.render(|_| Some("")), None);
        let long = "a".repeat(300);
        assert_eq!(t.render(|_| Some(long.as_str())), None);
        let bare = Template::parse("{app_name}", SYSLOG_FIELDS).unwrap();
        assert_eq!(bare.render(|_| Some("..")), None);
        assert!(Template::parse("syslog.unparsed", SYSLOG_FIELDS)
            .unwrap()
            .is_constant());
    }

    #[test]
    fn bad_templates() {
        assert!(matches!(
            Template::parse("x.{nope}", SYSLOG_FIELDS),
            Err(TemplateError::UnknownField { .. })
        ));
        assert!(matches!(
            Template::parse("x.{app_name", SYSLOG_FIELDS),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            Template::parse("x/{app_name}", SYSLOG_FIELDS),
            Err(TemplateError::BadLiteral(_))
        ));
        assert!(matches!(
            Template::parse("", SYSLOG_FIELDS),
            Err(TemplateError::Empty)
        ));
    }
}
