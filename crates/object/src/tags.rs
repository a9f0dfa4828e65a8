//! Object and bucket tags: AWS's limits, checked in one place.

use basalt_meta::Tags;

use crate::ObjectError;

/// At most this many tags on an object.
pub const MAX_OBJECT_TAGS: usize = 10;
/// At most this many tags on a bucket.
pub const MAX_BUCKET_TAGS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

/// Checks a tag set as S3 does: a bounded count, key and value lengths in Unicode characters,
/// non-empty and unique keys, and no key in the reserved `aws:` namespace.
pub fn validate_tags(tags: &Tags, max: usize) -> Result<(), ObjectError> {
    let invalid = |why: String| Err(ObjectError::InvalidTag(why));
    if tags.len() > max {
        return invalid(format!(
            "at most {max} tags are allowed, {} given",
            tags.len()
        ));
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            return invalid(format!(
                "the tag key {key:?} must have 1 to {MAX_KEY_CHARS} characters"
            ));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return invalid(format!(
                "the value of tag {key:?} exceeds {MAX_VALUE_CHARS} characters"
            ));
        }
        if key.starts_with("aws:") {
            return invalid(format!("the tag key {key:?} uses the reserved prefix aws:"));
        }
        if tags[..i].iter().any(|(k, _)| k == key) {
            return invalid(format!(
                "cannot provide multiple tags with the same key {key:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn aws_limits_hold() {
        assert!(validate_tags(&tags(&[("a", "1"), ("b", "")]), 10).is_ok());
        let eleven: Tags = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate_tags(&eleven, MAX_OBJECT_TAGS).is_err());
        assert!(validate_tags(&eleven, MAX_BUCKET_TAGS).is_ok());
        assert!(validate_tags(&tags(&[("a", "1"), ("a", "2")]), 10).is_err());
        assert!(validate_tags(&tags(&[("", "1")]), 10).is_err());
        assert!(validate_tags(&tags(&[("aws:x", "1")]), 10).is_err());
        let long_key = "é".repeat(128);
        assert!(validate_tags(&vec![(long_key.clone(), "v".into())], 10).is_ok());
        assert!(validate_tags(&vec![(format!("{long_key}x"), "v".into())], 10).is_err());
        assert!(validate_tags(&vec![("k".into(), "v".repeat(257))], 10).is_err());
    }
}
