//! The topic template: one topic per category (`logs.{category}` by default). Producers fill
//! it in; consumers (the archiver, tailgate) read it backwards to learn a topic's category,
//! so both sides agree by construction.

use scribe_archive::category::MAX_CATEGORY_LEN;
use scribe_archive::Category;

/// The default template: one topic per category.
pub const DEFAULT_TEMPLATE: &str = "logs.{category}";
/// The placeholder a template holds exactly once.
pub const PLACEHOLDER: &str = "{category}";
/// Kafka's longest topic name.
pub const MAX_TOPIC_LEN: usize = 249;

/// Why a template was refused (the text names the template and the problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// A checked topic template: the text before and after `{category}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    before: String,
    after: String,
}

impl Default for TopicTemplate {
    fn default() -> Self {
        TopicTemplate::new(DEFAULT_TEMPLATE).expect("the default template is valid")
    }
}

impl TopicTemplate {
    /// A template holds `{category}` exactly once, and its fixed parts are legal in a topic
    /// name and short enough that every category (at most 200 bytes of `[A-Za-z0-9._-]`,
    /// legal in topic names too) gives a legal topic.
    pub fn new(t: &str) -> Result<TopicTemplate, TemplateError> {
        let Some((before, after)) = t
            .split_once(PLACEHOLDER)
            .filter(|_| t.matches(PLACEHOLDER).count() == 1)
        else {
            return Err(TemplateError(format!(
                "{t:?} must contain {PLACEHOLDER} exactly once"
            )));
        };
        let fixed = format!("{before}{after}");
        if let Some(c) = fixed.chars().find(|c| !is_topic_char(*c)) {
            return Err(TemplateError(format!(
                "{t:?}: {c:?} is not allowed in a topic name ([A-Za-z0-9._-])"
            )));
        }
        let room = MAX_TOPIC_LEN - MAX_CATEGORY_LEN;
        if fixed.len() > room {
            return Err(TemplateError(format!(
                "{t:?}: the text around {PLACEHOLDER} is {} bytes; at most {room} leave room \
                 for the longest category in a {MAX_TOPIC_LEN}-byte topic name",
                fixed.len()
            )));
        }
        Ok(TopicTemplate {
            before: before.to_string(),
            after: after.to_string(),
        })
    }

    /// The topic of a category.
    pub fn topic_of(&self, category: &Category) -> String {
        format!("{}{}{}", self.before, category.as_str(), self.after)
    }

    /// The category a topic holds, by the template read backwards; `None` when the topic
    /// does not fit the template or what it holds is not a category name.
    pub fn category_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let name = topic
            .strip_prefix(self.before.as_str())?
            .strip_suffix(self.after.as_str())?;
        Category::new(name.as_bytes()).ok()?;
        Some(name)
    }

    /// The glob over topic names that matches every topic this template can give
    /// (`logs.*`): consumers' default.
    pub fn glob(&self) -> String {
        format!("{}*{}", self.before, self.after)
    }
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_need_the_placeholder_once_and_legal_short_fixed_parts() {
        let err = |t: &str| TopicTemplate::new(t).unwrap_err().to_string();
        assert!(TopicTemplate::new("logs.{category}").is_ok());
        assert!(TopicTemplate::new("{category}").is_ok());
        assert!(err("logs").contains("exactly once"));
        assert!(err("{category}.{category}").contains("exactly once"));
        assert!(err("logs/{category}").contains("'/' is not allowed"));
        let long = format!("{}{{category}}", "x".repeat(50));
        assert!(err(&long).contains("at most 49"));
    }

    #[test]
    fn both_directions_agree() {
        let t = TopicTemplate::new("logs.{category}.v1").unwrap();
        let cat = Category::new(b"web.access").unwrap();
        assert_eq!(t.topic_of(&cat), "logs.web.access.v1");
        assert_eq!(t.category_of("logs.web.access.v1"), Some("web.access"));
        assert_eq!(t.category_of("logs.web.access"), None);
        assert_eq!(t.category_of("logs..v1"), None, "an empty category");
        assert_eq!(t.category_of("logs....v1"), None, "`..` is not a category");
        assert_eq!(t.glob(), "logs.*.v1");
        assert_eq!(TopicTemplate::default().category_of("logs.db"), Some("db"));
    }
}
