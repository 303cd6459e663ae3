//! Where an `s3://BUCKET/PREFIX` store is and how to reach it: resolved once from the usual AWS
//! variables with `PGKEEP_S3_*` overrides, then fed explicitly into `AmazonS3Builder::new()`
//! (never `from_env`), so that nothing else is picked up and the secret is never printed.

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey as K};
use object_store::{BackoffConfig, Certificate, ClientOptions, RetryConfig};

use crate::storage::store::{ErrorKind, StorageError};

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    session_token: Option<Secret>,
    pub path_style: bool,
    pub allow_http: bool,
    web_identity_token_file: Option<String>,
    role_arn: Option<String>,
    role_session_name: Option<String>,
    sts_endpoint: Option<String>,
    ca_file: Option<String>,
    max_retries: usize,
    retry_timeout: Duration,
    request_timeout: Duration,
    connect_timeout: Duration,
}

fn bad(message: String) -> StorageError {
    StorageError::Backend {
        kind: ErrorKind::Other,
        message,
    }
}

/// The first of `names` that is set and not blank.
fn first(get: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| get(n).filter(|v| !v.trim().is_empty()))
}

fn boolean(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: bool,
) -> Result<bool, StorageError> {
    match first(get, &[name]).as_deref().map(str::trim) {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(o) => Err(bad(format!("{name}={o:?}: expected true or false"))),
    }
}

fn number(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<u64, StorageError> {
    match first(get, &[name]) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| bad(format!("{name}={v:?}: expected a whole number"))),
    }
}

/// Whether `location` names an S3 store.
pub fn is_s3(location: &str) -> bool {
    location.starts_with("s3://")
}

impl S3Settings {
    /// `url` is `s3://BUCKET/PREFIX`; each `PGKEEP_S3_*` variable overrides its `AWS_*`
    /// counterpart. `get` looks a variable up (the process environment, or a map in tests).
    pub fn resolve(
        url: &str,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<S3Settings, StorageError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad(format!("{url}: an S3 location starts with s3://")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad(format!("{url}: no bucket name (s3://BUCKET/PREFIX)")));
        }
        let endpoint = first(
            get,
            &[
                "PGKEEP_S3_ENDPOINT",
                "AWS_ENDPOINT_URL_S3",
                "AWS_ENDPOINT_URL",
            ],
        );
        let allow_http = boolean(get, "PGKEEP_S3_ALLOW_HTTP", false)?;
        if let Some(e) = &endpoint {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return Err(bad(format!(
                    "S3 endpoint {e:?} must start with https:// or http://"
                )));
            }
            if e.starts_with("http://") && !allow_http {
                return Err(bad(format!(
                    "S3 endpoint {e} is plain HTTP: set PGKEEP_S3_ALLOW_HTTP=true to allow it"
                )));
            }
        }
        Ok(S3Settings {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            region: first(
                get,
                &["PGKEEP_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"],
            )
            .unwrap_or_else(|| "us-east-1".into()),
            access_key_id: first(get, &["PGKEEP_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"]),
            secret_access_key: first(
                get,
                &["PGKEEP_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"],
            )
            .map(Secret),
            session_token: first(get, &["PGKEEP_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"])
                .map(Secret),
            // Path-style by default with a custom endpoint (S3-compatible servers).
            path_style: boolean(get, "PGKEEP_S3_PATH_STYLE", endpoint.is_some())?,
            allow_http,
            web_identity_token_file: first(get, &["AWS_WEB_IDENTITY_TOKEN_FILE"]),
            role_arn: first(get, &["AWS_ROLE_ARN"]),
            role_session_name: first(get, &["AWS_ROLE_SESSION_NAME"]),
            sts_endpoint: first(get, &["PGKEEP_S3_STS_ENDPOINT", "AWS_ENDPOINT_URL_STS"]),
            ca_file: first(get, &["PGKEEP_S3_CA_FILE", "AWS_CA_BUNDLE"]),
            max_retries: number(get, "PGKEEP_S3_MAX_RETRIES", 40)? as usize,
            retry_timeout: Duration::from_secs(number(get, "PGKEEP_S3_RETRY_TIMEOUT", 120)?),
            request_timeout: Duration::from_secs(number(get, "PGKEEP_S3_REQUEST_TIMEOUT", 300)?),
            connect_timeout: Duration::from_secs(number(get, "PGKEEP_S3_CONNECT_TIMEOUT", 5)?),
            endpoint,
        })
    }

    /// `s3://BUCKET/PREFIX`, for messages.
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn client(&self) -> Result<ClientOptions, StorageError> {
        let mut client = ClientOptions::new()
            .with_allow_http(self.allow_http)
            .with_timeout(self.request_timeout)
            .with_connect_timeout(self.connect_timeout);
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| bad(format!("cannot read PGKEEP_S3_CA_FILE {ca}: {e}")))?;
            let certs = Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(format!("PGKEEP_S3_CA_FILE {ca}: {e}")))?;
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
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_client_options(self.client()?)
            .with_retry(retry)
            .with_virtual_hosted_style_request(!self.path_style)
            // One DELETE per key: DeleteObjects needs checksum headers many servers lack.
            .with_disable_bulk_delete(true);
        if let Some(e) = &self.endpoint {
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
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => {
                let b = b.with_access_key_id(id).with_secret_access_key(&secret.0);
                Ok(match &self.session_token {
                    Some(t) => b.with_token(&t.0),
                    None => b,
                })
            }
            (None, None) => match (&self.web_identity_token_file, &self.role_arn) {
                (Some(f), Some(arn)) => {
                    let mut b = b
                        .with_config(K::WebIdentityTokenFile, f)
                        .with_config(K::RoleArn, arn);
                    if let Some(n) = &self.role_session_name {
                        b = b.with_config(K::RoleSessionName, n);
                    }
                    if let Some(sts) = &self.sts_endpoint {
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
    use std::collections::HashMap;

    fn resolve(url: &str, vars: &[(&str, &str)]) -> Result<S3Settings, StorageError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        S3Settings::resolve(url, &|k| map.get(k).cloned())
    }

    #[test]
    fn pgkeep_variables_override_aws_ones() {
        let s = resolve(
            "s3://b/some/prefix/",
            &[
                ("AWS_ENDPOINT_URL", "https://aws.example"),
                ("PGKEEP_S3_ENDPOINT", "https://s3.example"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "aws-id"),
                ("PGKEEP_S3_ACCESS_KEY_ID", "pgkeep-id"),
                ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
            ],
        )
        .unwrap();
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("b", "some/prefix"));
        assert_eq!(s.endpoint.as_deref(), Some("https://s3.example"));
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.access_key_id.as_deref(), Some("pgkeep-id"));
        assert!(s.path_style, "path style with a custom endpoint");
        assert!(
            !format!("{s:?}").contains("s3cr3t-value"),
            "the secret never prints"
        );
        let aws = resolve("s3://b", &[]).unwrap();
        assert!(!aws.path_style);
        assert_eq!(aws.region, "us-east-1");
    }

    #[test]
    fn bad_settings_are_refused_in_one_line() {
        let e = resolve("s3://b/p", &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")]).unwrap_err();
        assert!(e.to_string().contains("PGKEEP_S3_ALLOW_HTTP=true"), "{e}");
        assert!(resolve("s3:///p", &[]).is_err());
        assert!(resolve("s3://b", &[("PGKEEP_S3_ALLOW_HTTP", "maybe")]).is_err());
        let none = resolve("s3://b", &[]).unwrap().build().unwrap_err();
        assert_eq!(none.kind(), ErrorKind::Permission);
        assert!(none.to_string().contains("no S3 credentials"), "{none}");
        let half = resolve("s3://b", &[("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")])
            .unwrap()
            .build()
            .unwrap_err();
        assert!(!half.to_string().contains("s3cr3t-value"));
    }
}
