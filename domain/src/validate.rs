//! Checks on values people type, each failing with the field's name.

use crate::DomainError;

/// A trimmed, lower-cased email address.
pub fn email(field: &'static str, text: &str) -> Result<String, DomainError> {
    let email = text.trim().to_lowercase();
    if email.is_empty() {
        return Err(DomainError::invalid(field, "is required"));
    }
    if email.len() > 254 {
        return Err(DomainError::invalid(field, "is longer than 254 characters"));
    }
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(email)
    } else {
        Err(DomainError::invalid(field, "is not an email address"))
    }
}

/// A password of 8 to 128 characters.
pub fn password(field: &'static str, text: &str) -> Result<(), DomainError> {
    let count = text.chars().count();
    if count < 8 {
        Err(DomainError::invalid(field, "must be at least 8 characters"))
    } else if count > 128 {
        Err(DomainError::invalid(
            field,
            "must be at most 128 characters",
        ))
    } else {
        Ok(())
    }
}

/// A trimmed display name of 1 to `max` characters.
pub fn name(field: &'static str, text: &str, max: usize) -> Result<String, DomainError> {
    let name = text.trim();
    if name.is_empty() {
        Err(DomainError::invalid(field, "is required"))
    } else if name.chars().count() > max {
        Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ))
    } else if name.chars().any(char::is_control) {
        Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ))
    } else {
        Ok(name.to_string())
    }
}

/// Tags as stored: trimmed, without repeats; at most `max_tags`, each 1 to `max_length`
/// characters without control characters. Errors name the `tags` field.
pub fn tags(
    tags: &[String],
    max_tags: usize,
    max_length: usize,
) -> Result<Vec<String>, DomainError> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim();
        if tag.is_empty() {
            return Err(DomainError::invalid("tags", "a tag can't be empty"));
        }
        if tag.chars().count() > max_length {
            return Err(DomainError::invalid(
                "tags",
                format!("a tag is at most {max_length} characters"),
            ));
        }
        if tag.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "tags",
                "a tag can't contain control characters",
            ));
        }
        if !out.iter().any(|t| t == tag) {
            out.push(tag.to_owned());
        }
    }
    if out.len() > max_tags {
        return Err(DomainError::invalid(
            "tags",
            format!("at most {max_tags} tags"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_bad_ones_name_the_field() {
        assert_eq!(
            email("email", "  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            let err = email("email", bad).unwrap_err();
            assert_eq!(err.field(), Some("email"), "{bad}");
        }
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(password("password", "1234567").is_err());
        assert!(password("password", "12345678").is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("name", "  Acme ", 10).unwrap(), "Acme");
        assert!(name("name", "   ", 10).is_err());
        assert!(name("name", "abcdefghijk", 10).is_err());
    }
}
