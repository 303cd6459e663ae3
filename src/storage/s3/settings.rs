//! Where an `s3://BUCKET/PREFIX` store is and how to reach it: the URL split into bucket and
//! prefix, the configured [`S3Options`] checked, then fed explicitly into
//! `AmazonS3Builder::new()` (never `from_env`), so that nothing else is picked up and the secret
//! is never printed.

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey as K};
use object_store::{BackoffConfig, Certificate, ClientOptions, RetryConfig};

use crate::model::S3Options;
use crate::storage::store::{ErrorKind, StorageError};

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// Path-style addressing (`ENDPOINT/BUCKET/KEY`), as S3-compatible servers want.
    pub path_style: bool,
    o: S3Options,
}

fn bad(message: String) -> StorageError {
    StorageError::Backend {
        kind: ErrorKind::Other,
        message,
    }
}

/// Whether `location` names an S3 store.
pub fn is_s3(location: &str) -> bool {
    location.starts_with("s3://")
}

impl S3Settings {
    /// `url` is `s3://BUCKET/PREFIX`; `o` says how to reach it.
    pub fn resolve(url: &str, o: &S3Options) -> Result<S3Settings, StorageError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad(format!("{url}: an S3 location starts with s3://")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad(format!("{url}: no bucket name (s3://BUCKET/PREFIX)")));
        }
        if let Some(e) = &o.endpoint {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return Err(bad(format!(
                    "S3 endpoint {e:?} must start with https:// or http://"
                )));
            }
            if e.starts_with("http://") && !o.allow_http {
                return Err(bad(format!(
                    "S3 endpoint {e} is plain HTTP: set PGKEEP_S3_ALLOW_HTTP=true to allow it"
                )));
            }
        }
        Ok(S3Settings {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            path_style: o.path_style.unwrap_or(o.endpoint.is_some()),
            o: o.clone(),
        })
    }

    /// `s3://BUCKET/PREFIX`, for messages.
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn client(&self) -> Result<ClientOptions, StorageError> {
        let mut client = ClientOptions::new()
            .with_allow_http(self.o.allow_http)
            .with_timeout(self.o.request_timeout)
            .with_connect_timeout(self.o.connect_timeout);
        if let Some(path) = &self.o.ca_file {
            let ca = path.display();
            let pem = std::fs::read(path)
                .map_err(|e| bad(format!("cannot read s3_ca_file {ca}: {e}")))?;
            let certs = Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(format!("s3_ca_file {ca}: {e}")))?;
            for c in certs {
                client = client.with_root_certificate(c);
            }
        }
        Ok(client)
    }

    /// The client, everything passed explicitly. The builder is never printed: its `Debug`
    /// shows the secret key.
    pub fn build(&self) -> Result<AmazonS3, StorageError> {
        // reqwest is built without a bundled provider: ring is the process default.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: self.o.max_retries as usize,
            retry_timeout: self.o.retry_timeout,
        };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.o.region)
            .with_client_options(self.client()?)
            .with_retry(retry)
            .with_virtual_hosted_style_request(!self.path_style)
            // One DELETE per key: DeleteObjects needs checksum headers many servers lack.
            .with_disable_bulk_delete(true);
        if let Some(e) = &self.o.endpoint {
            let e = match (self.path_style, e.split_once("://")) {
                (false, Some((scheme, host))) => format!("{scheme}://{}.{host}", self.bucket),
                _ => e.clone(),
            };
            b = b.with_endpoint(e);
        }
        b = self.credentials(b)?;
        b.build()
            .map_err(|e| bad(format!("{}: {e}", self.describe())))
    }

    fn credentials(&self, b: AmazonS3Builder) -> Result<AmazonS3Builder, StorageError> {
        let perm = |message: &str| StorageError::Backend {
            kind: ErrorKind::Permission,
            message: format!("{}: {message}", self.describe()),
        };
        let o = &self.o;
        match (&o.access_key_id, &o.secret_access_key) {
            (Some(id), Some(secret)) => {
                let b = b
                    .with_access_key_id(id)
                    .with_secret_access_key(secret.expose());
                Ok(match &o.session_token {
                    Some(t) => b.with_token(t.expose()),
                    None => b,
                })
            }
            (None, None) => match (&o.web_identity_token_file, &o.role_arn) {
                (Some(f), Some(arn)) => {
                    let mut b = b
                        .with_config(K::WebIdentityTokenFile, f.display().to_string())
                        .with_config(K::RoleArn, arn);
                    if let Some(n) = &o.role_session_name {
                        b = b.with_config(K::RoleSessionName, n);
                    }
                    if let Some(sts) = &o.sts_endpoint {
                        b = b.with_config(K::StsEndpoint, sts);
                    }
                    Ok(b)
                }
                // Refused here: object_store would silently try the EC2 metadata endpoint.
                _ => Err(perm(
                    "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN",
                )),
            },
            (Some(_), None) => Err(perm(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            )),
            (None, Some(_)) => Err(perm(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Secret;
    use std::time::Duration;

    fn opts() -> S3Options {
        S3Options {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: None,
            allow_http: false,
            ca_file: None,
            web_identity_token_file: None,
            role_arn: None,
            role_session_name: None,
            sts_endpoint: None,
            max_retries: 1,
            retry_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_url_is_split_and_path_style_follows_the_endpoint() {
        let mut o = opts();
        o.endpoint = Some("https://s3.example".into());
        o.secret_access_key = Some(Secret::new("s3cr3t-value"));
        let s = S3Settings::resolve("s3://b/some/prefix/", &o).unwrap();
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("b", "some/prefix"));
        assert!(s.path_style, "path style with a custom endpoint");
        assert!(
            !format!("{s:?}").contains("s3cr3t-value"),
            "the secret never prints"
        );
        let aws = S3Settings::resolve("s3://b", &opts()).unwrap();
        assert!(!aws.path_style);
        assert_eq!(aws.describe(), "s3://b/");
    }

    #[test]
    fn bad_settings_are_refused_in_one_line() {
        let mut o = opts();
        o.endpoint = Some("http://127.0.0.1:9".into());
        let e = S3Settings::resolve("s3://b/p", &o).unwrap_err();
        assert!(e.to_string().contains("PGKEEP_S3_ALLOW_HTTP=true"), "{e}");
        assert!(S3Settings::resolve("s3:///p", &opts()).is_err());
        let none = S3Settings::resolve("s3://b", &opts())
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(none.kind(), ErrorKind::Permission);
        assert!(none.to_string().contains("no S3 credentials"), "{none}");
        let mut half = opts();
        half.secret_access_key = Some(Secret::new("s3cr3t-value"));
        let half = S3Settings::resolve("s3://b", &half)
            .unwrap()
            .build()
            .unwrap_err();
        assert!(!half.to_string().contains("s3cr3t-value"));
    }
}
