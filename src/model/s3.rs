//! How an `s3://BUCKET/PREFIX` location is reached, as configured (the `s3_*` keys): a plain
//! value the configuration fills and the S3 store consumes, so that the store never reads the
//! environment. Secrets are [`Secret`]s and never print.

use std::path::PathBuf;
use std::time::Duration;

use super::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// `None`: AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// `None`: path-style with a custom endpoint, virtual-hosted on AWS.
    pub path_style: Option<bool>,
    pub allow_http: bool,
    /// PEM bundle of extra root certificates.
    pub ca_file: Option<PathBuf>,
    pub web_identity_token_file: Option<PathBuf>,
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub sts_endpoint: Option<String>,
    pub max_retries: u32,
    pub retry_timeout: Duration,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}
