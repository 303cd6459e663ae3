//! Everything pgkeep knows about talking to PostgreSQL: connection parameters, password files,
//! TLS, catalog queries, identifier quoting and the discovery of client tools.

pub mod catalog;
pub mod ident;
pub mod passfile;
pub mod tools;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio_postgres::config::SslMode as PgSslMode;

use crate::config::Settings;
use crate::model::{Secret, SslMode};

/// Why a connection or query failed, classified for exit codes and messages.
#[derive(Debug, Error)]
pub enum PgError {
    #[error("cannot reach PostgreSQL at {target}: {message}")]
    Unreachable { target: String, message: String },
    #[error("PostgreSQL at {target} refused the login of role \"{user}\": {message}")]
    Auth {
        target: String,
        user: String,
        message: String,
    },
    #[error("database \"{database}\" does not exist on {target}")]
    NoDatabase { target: String, database: String },
    #[error("query failed ({context}): {message}")]
    Query {
        context: String,
        message: String,
        /// The server's SQLSTATE, when the server answered with an error.
        sqlstate: Option<String>,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

impl crate::exit::ExitCode for PgError {
    fn exit_code(&self) -> u8 {
        match self {
            PgError::Unreachable { .. }
            | PgError::Auth { .. }
            | PgError::NoDatabase { .. }
            | PgError::Query { .. }
            | PgError::Tls(_) => crate::exit::CONNECTION,
        }
    }
}

/// The parameters of one connection, shared by our own connections and libpq children.
#[derive(Debug, Clone)]
pub struct ConnParams {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub passfile: Option<PathBuf>,
    pub dbname: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: u64,
}

impl ConnParams {
    pub fn from_settings(s: &Settings, dbname: &str) -> ConnParams {
        ConnParams {
            host: s.host.clone(),
            port: s.port,
            user: s.user.clone(),
            password: s.password.clone(),
            passfile: s.passfile.clone(),
            dbname: dbname.to_string(),
            sslmode: s.sslmode,
            sslrootcert: s.sslrootcert.clone(),
            connect_timeout: s.connect_timeout,
        }
    }

    pub fn with_dbname(&self, dbname: &str) -> ConnParams {
        ConnParams {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    /// `host:port` or the socket path, for messages.
    pub fn target(&self) -> String {
        if self.host.starts_with('/') {
            format!("{}/.s.PGSQL.{}", self.host.trim_end_matches('/'), self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The password to use: the explicit one, else a matching passfile entry.
    pub fn resolve_password(&self) -> Option<Secret> {
        if let Some(p) = &self.password {
            return Some(p.clone());
        }
        let file = self.passfile.as_ref()?;
        let host = if self.host.starts_with('/') {
            "localhost"
        } else {
            &self.host
        };
        passfile::lookup(file, host, self.port, &self.dbname, &self.user)
    }

    /// Open a connection; the connection task runs on the current runtime.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("pgkeep")
            .connect_timeout(Duration::from_secs(self.connect_timeout.max(1)));
        if let Some(p) = self.resolve_password() {
            cfg.password(p.expose());
        }
        // TLS does not apply to Unix sockets.
        let mode = if self.host.starts_with('/') {
            SslMode::Disable
        } else {
            self.sslmode
        };
        cfg.ssl_mode(match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
        // The rustls connector rejects host names that are socket paths even when TLS is off.
        if mode == SslMode::Disable {
            let (client, connection) = cfg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| self.classify(e))?;
            tokio::spawn(connection);
            return Ok(client);
        }
        let tls = tls_connector(mode, self.sslrootcert.as_deref())?;
        let (client, connection) = cfg.connect(tls).await.map_err(|e| self.classify(e))?;
        tokio::spawn(connection);
        Ok(client)
    }

    fn classify(&self, e: tokio_postgres::Error) -> PgError {
        let target = self.target();
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            return match code {
                "3D000" => PgError::NoDatabase {
                    target,
                    database: self.dbname.clone(),
                },
                c if c.starts_with("28") => PgError::Auth {
                    target,
                    user: self.user.clone(),
                    message: db.message().to_string(),
                },
                _ => PgError::Unreachable {
                    target,
                    message: db.message().to_string(),
                },
            };
        }
        let message = error_text(&e);
        if message.contains("password missing") {
            return PgError::Auth {
                target,
                user: self.user.clone(),
                message: "the server asks for a password and none is configured".into(),
            };
        }
        PgError::Unreachable { target, message }
    }
}

/// The most specific text of an error chain, on one line.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ").replace('\n', " ")
}

/// Turn a query error into a `PgError` with context.
pub fn query_error(context: &str, e: tokio_postgres::Error) -> PgError {
    let message = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => error_text(&e),
    };
    PgError::Query {
        context: context.to_string(),
        message,
        sqlstate: e.code().map(|c| c.code().to_string()),
    }
}

fn tls_connector(
    mode: SslMode,
    rootcert: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(e.to_string()))?;
    let verify = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull)
        || (mode == SslMode::Require && rootcert.is_some());
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match rootcert {
            Some(path) => {
                use rustls::pki_types::{CertificateDer, pem::PemObject};
                for cert in CertificateDer::pem_file_iter(path)
                    .map_err(|e| PgError::Tls(format!("{}: {e}", path.display())))?
                {
                    let cert =
                        cert.map_err(|e| PgError::Tls(format!("{}: {e}", path.display())))?;
                    roots
                        .add(cert)
                        .map_err(|e| PgError::Tls(format!("{}: {e}", path.display())))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// libpq's `prefer` and `require` encrypt without verifying the server certificate.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
