//! Category templates: a followed file's category, literal or made from its name.
//!
//! `{name}` is the file name, `{stem}` the file name without its last extension
//! (`access.log` → `access`), `{dir}` the name of the directory holding it. Characters a
//! category may not contain (anything but `A-Z a-z 0-9 . _ -`) become `_`, so a file called
//! `my app.log` gives `my_app`; the result must still be a valid category (not empty, not
//! `.`/`..`, at most 200 bytes), otherwise the file is not followed and a warning says why.

use std::path::Path;

use scribe_archive::Category;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryTemplate(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error(
        "unknown placeholder {{{0}}} in category template (use {{name}}, {{stem}} or {{dir}})"
    )]
    UnknownPlaceholder(String),
    #[error("unclosed {{ in category template {0:?}")]
    Unclosed(String),
    #[error("category {0:?} (from the file name) is not a valid category")]
    Invalid(String),
}

impl CategoryTemplate {
    /// Checks the placeholders; a template without any is a literal category, checked now.
    pub fn parse(s: &str) -> Result<CategoryTemplate, TemplateError> {
        let t = CategoryTemplate(s.to_string());
        // Render against a harmless name to catch bad placeholders up front.
        let sample = t.expand(Path::new("/d/x.log"))?;
        if !s.contains('{') {
            sample
                .parse::<Category>()
                .map_err(|_| TemplateError::Invalid(sample))?;
        }
        Ok(t)
    }

    /// The category for the file at `path`.
    pub fn render(&self, path: &Path) -> Result<Category, TemplateError> {
        let s = self.expand(path)?;
        s.parse().map_err(|_| TemplateError::Invalid(s))
    }

    fn expand(&self, path: &Path) -> Result<String, TemplateError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = match name.rfind('.') {
            Some(i) if i > 0 => name[..i].to_string(),
            _ => name.clone(),
        };
        let dir = path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut out = String::new();
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(self.0.clone()))?;
            let key = &rest[open + 1..open + close];
            let value = match key {
                "name" => &name,
                "stem" => &stem,
                "dir" => &dir,
                other => return Err(TemplateError::UnknownPlaceholder(other.to_string())),
            };
            out.extend(value.chars().map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            }));
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, p: &str) -> Result<String, TemplateError> {
        CategoryTemplate::parse(t)?
            .render(Path::new(p))
            .map(|c| c.as_str().to_string())
    }

    #[test]
    fn placeholders_come_from_the_file_name() {
        assert_eq!(
            render("apache.{stem}", "/var/log/access.log").unwrap(),
            "apache.access"
        );
        assert_eq!(
            render("{name}", "/var/log/access.log").unwrap(),
            "access.log"
        );
        assert_eq!(
            render("{dir}.{stem}", "/var/log/nginx/error.log").unwrap(),
            "nginx.error"
        );
        assert_eq!(render("x-{stem}", "/tmp/my app.log").unwrap(), "x-my_app");
        assert_eq!(render("fixed", "/any").unwrap(), "fixed");
    }

    #[test]
    fn bad_templates_and_names_are_errors() {
        assert!(matches!(
            CategoryTemplate::parse("{nope}"),
            Err(TemplateError::UnknownPlaceholder(_))
        ));
        assert!(matches!(
            CategoryTemplate::parse("a{stem"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            CategoryTemplate::parse("../x"),
            Err(TemplateError::Invalid(_))
        ));
        // `..` as a whole file name cannot become a category.
        assert!(matches!(
            render("{name}", "/var/log/.."),
            Err(TemplateError::Invalid(_))
        ));
    }
}
