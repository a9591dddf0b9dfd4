//! PostgreSQL connections: tokio-postgres (rustls for TLS) wrapped as a diesel-async connection.
//!
//! The password goes from the [`PgTarget`] straight into the driver's config; it is never formatted
//! into a connection string. `sslmode` follows libpq: `disable`; `prefer` (TLS if offered, else
//! plain); `require` (TLS, certificate not checked); `verify-ca` and `verify-full` (TLS, certificate
//! checked against the web PKI roots and the host name: this crate treats `verify-ca` as
//! `verify-full`, which is stricter).

use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;
use transform_core::redact;

use crate::error::DbError;
use crate::url::{PgTarget, SslMode};

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens a connection; with `read_only`, every transaction of the session is read-only.
pub async fn connect_postgres(
    target: &PgTarget,
    read_only: bool,
) -> Result<AsyncPgConnection, DbError> {
    let shown = target.redacted();
    let mut config = tokio_postgres::Config::new();
    let host = target
        .host
        .clone()
        .unwrap_or_else(|| "localhost".to_owned());
    if host.starts_with('/') {
        config.host_path(&host);
    } else {
        config.host(&host);
    }
    config.port(target.port.unwrap_or(5432));
    let Some(user) = target.user.as_deref() else {
        return Err(DbError::Url {
            message: format!("no user for {shown}: put it in the URL or set PGUSER"),
        });
    };
    config.user(user);
    if let Some(p) = &target.password {
        config.password(p.expose());
    }
    config.dbname(target.database.as_deref().unwrap_or(user));
    config.application_name("transformed-efd");
    config.connect_timeout(CONNECT_TIMEOUT);
    config.ssl_mode(match target.sslmode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    });
    let tls = MakeRustlsConnect::new(tls_config(target.sslmode));
    let secrets: Vec<&str> = target.password.iter().map(|p| p.expose()).collect();
    let (client, connection) = config
        .connect(tls)
        .await
        .map_err(|e| connect_error(&shown, &e, &secrets))?;
    let mut conn = AsyncPgConnection::try_from_client_and_connection(client, connection)
        .await
        .map_err(|e| DbError::Connect {
            target: shown.clone(),
            message: redact(&e.to_string(), &secrets),
            transient: true,
        })?;
    // Timestamps are naive UTC everywhere; the session must agree whatever the server's default.
    let mut setup = String::from("SET TIME ZONE 'UTC';");
    if read_only {
        setup.push_str(" SET default_transaction_read_only = on;");
    }
    conn.batch_execute(&setup)
        .await
        .map_err(|e| DbError::Connect {
            target: shown.clone(),
            message: redact(&e.to_string(), &secrets),
            transient: true,
        })?;
    Ok(conn)
}

fn connect_error(shown: &str, e: &tokio_postgres::Error, secrets: &[&str]) -> DbError {
    let message = transform_core::error_chain(e);
    // Wrong password, unknown role or database, or no access: retrying will not help.
    let permanent = e.code().is_some_and(|c| {
        let code = c.code();
        code.starts_with("28") || code == "3D000" || code.starts_with("42")
    }) || message.starts_with("invalid configuration")
        // A certificate that fails verification will fail again.
        || message.contains("invalid peer certificate");
    DbError::Connect {
        target: shown.to_owned(),
        message: redact(&message, secrets),
        transient: !permanent,
    }
}

fn tls_config(mode: SslMode) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder_with_protocol_versions(rustls::DEFAULT_VERSIONS)
        });
    match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider)))
            .with_no_client_auth(),
    }
}

/// libpq's `require`/`prefer`: encrypt, but do not check who answers.
#[derive(Debug)]
struct NoCertificateCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
