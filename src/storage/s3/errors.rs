//! Classifying `object_store` errors into the store's error kinds. object_store 0.14 keeps its
//! retry error private, so the S3 `<Code>` and HTTP status are read from the error's text; the
//! typed variants (NotFound, PermissionDenied, ...) come first.

use object_store::Error;

use crate::storage::store::{ErrorKind, StorageError};

/// The S3 error code (`<Code>...</Code>`) of a failed response, if the text carries one.
fn s3_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + 6;
    let end = text[start..].find("</Code>")? + start;
    Some(&text[start..end])
}

/// The HTTP status of a failed response ("status code: 403 Forbidden").
fn status(text: &str) -> Option<u16> {
    let i = text.find("status code: ")? + 13;
    text.get(i..i + 3)?.parse().ok()
}

pub fn kind(e: &Error) -> ErrorKind {
    let text = e.to_string();
    match (e, s3_code(&text)) {
        (_, Some("QuotaExceeded" | "XMinioAdminBucketQuotaExceeded")) => ErrorKind::NoSpace,
        _ if status(&text) == Some(507) => ErrorKind::NoSpace,
        (_, Some("NoSuchBucket" | "NoSuchKey" | "NoSuchUpload")) => ErrorKind::NotFound,
        (
            _,
            Some(
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "ExpiredToken"
                | "InvalidToken",
            ),
        ) => ErrorKind::Permission,
        (Error::NotFound { .. }, _) => ErrorKind::NotFound,
        (Error::PermissionDenied { .. } | Error::Unauthenticated { .. }, _) => {
            ErrorKind::Permission
        }
        _ if status(&text) == Some(403) => ErrorKind::Permission,
        _ => ErrorKind::Other,
    }
}

/// `action` failed on `what` (an `s3://` address).
pub fn storage(action: &str, what: &str, e: &Error) -> StorageError {
    let kind = kind(e);
    let text = e.to_string();
    let reason = match (kind, s3_code(&text)) {
        (_, Some(code)) => code.to_string(),
        (ErrorKind::NotFound, None) => "not found".to_string(),
        // A HEAD refused has no body to name the cause.
        (ErrorKind::Permission, None) => {
            "access denied (HTTP 403: wrong credentials, or no permission)".to_string()
        }
        // The full text: one line.
        _ => text.replace('\n', " "),
    };
    StorageError::Backend {
        kind,
        message: format!("{action} {what}: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_read_from_the_text() {
        let t = "Error performing PUT http://x/b/k in 1ms - Server returned non-2XX status code: 403 Forbidden: <Error><Code>InvalidAccessKeyId</Code></Error>";
        assert_eq!(s3_code(t), Some("InvalidAccessKeyId"));
        assert_eq!(status(t), Some(403));
        let g = Error::Generic {
            store: "S3",
            source: t.into(),
        };
        assert_eq!(kind(&g), ErrorKind::Permission);
        let q = Error::Generic {
            store: "S3",
            source: "status code: 507 Insufficient Storage".into(),
        };
        assert_eq!(kind(&q), ErrorKind::NoSpace);
        let nb = Error::Generic {
            store: "S3",
            source: "<Code>NoSuchBucket</Code>".into(),
        };
        assert_eq!(kind(&nb), ErrorKind::NotFound);
    }
}
