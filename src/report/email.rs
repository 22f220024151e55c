//! The report as an email and its delivery by SMTP (lettre over tokio, TLS by rustls): a
//! `multipart/alternative` of the Markdown text and a `multipart/related` HTML page whose chart
//! is an inline PNG part (`Content-ID: <chart>`), which mail clients show without fetching
//! anything.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{DigestConfig, SmtpSecurity, PASSWORD_ENV};
use super::data::Report;
use super::html::{self, ChartSrc};
use super::{chart, text};

/// The Content-ID of the chart's image part.
pub const CHART_CID: &str = "chart";

/// Why the digest could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("the digest is off: set digest.to (and digest.from) in the config")]
    Off,
    #[error("digest.username is set but {PASSWORD_ENV} is not: export the SMTP password there")]
    NoPassword,
    #[error("invalid address {address:?} ({key}): {reason}")]
    Address {
        key: &'static str,
        address: String,
        reason: String,
    },
    #[error("digest.ca_file {path:?}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("building the email: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP server {server}: {source}{hint}")]
    Smtp {
        server: String,
        source: lettre::transport::smtp::Error,
        /// What to check, for the failures a setting explains (empty otherwise).
        hint: String,
    },
}

/// The subject line of `r`'s email.
pub fn subject(r: &Report) -> String {
    format!(
        "gema report: {} – {}",
        r.show_time(r.since),
        r.show_time(r.until)
    )
}

fn mailbox(key: &'static str, address: &str) -> Result<Mailbox, EmailError> {
    address.parse().map_err(|e| EmailError::Address {
        key,
        address: address.into(),
        reason: format!("{e}"),
    })
}

/// `r` as an email from `config.from` to `config.to`.
pub fn message(config: &DigestConfig, r: &Report) -> Result<Message, EmailError> {
    let mut b = Message::builder()
        .from(mailbox("digest.from", &config.from)?)
        .subject(subject(r));
    for to in &config.to {
        b = b.to(mailbox("digest.to", to)?);
    }
    let chart = chart::draw(&r.chart);
    let page = html::page(r, &chart, &ChartSrc::Cid(CHART_CID.into()));
    let image = Attachment::new_inline(CHART_CID.into()).body(
        chart.png,
        ContentType::parse("image/png").expect("a valid type"),
    );
    Ok(b.multipart(
        MultiPart::alternative()
            .singlepart(SinglePart::plain(text::markdown(r)))
            .multipart(
                MultiPart::related()
                    .singlepart(SinglePart::html(page))
                    .singlepart(image),
            ),
    )?)
}

/// `source` from the server `config` names, with a hint where a setting explains it: the login
/// refused (SMTP 535), or the server's certificate not trusted.
fn smtp_error(config: &DigestConfig, source: lettre::transport::smtp::Error) -> EmailError {
    let text = source.to_string();
    let hint = if source.status().is_some_and(|c| c.to_string() == "535") {
        format!(
            " (the login as {:?} was refused: check digest.username and {PASSWORD_ENV})",
            config.username
        )
    } else if text.contains("certificate") {
        if config.ca_file.is_empty() {
            " (the server's certificate is not trusted: if a private CA signed it, set \
             digest.ca_file to that CA's PEM file; check digest.host matches the certificate)"
                .to_string()
        } else {
            format!(
                " (the server's certificate is not trusted by the built-in roots nor by \
                 digest.ca_file {:?}; check digest.host matches the certificate)",
                config.ca_file
            )
        }
    } else {
        String::new()
    };
    EmailError::Smtp {
        server: format!("{}:{}", config.host, config.port),
        source,
        hint,
    }
}

/// The SMTP transport `config` names, with the password from `password` (the value of
/// `GEMA_SMTP_PASSWORD`) when `config.username` is set.
pub fn transport(
    config: &DigestConfig,
    password: Option<String>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, EmailError> {
    let smtp_err = |source| smtp_error(config, source);
    // The built-in roots, plus the private CA of `ca_file` when set.
    let tls = |host: &str| -> Result<TlsParameters, EmailError> {
        let mut params = TlsParameters::builder(host.to_string());
        if let Some(pem) = config
            .ca_certificates()
            .map_err(|reason| EmailError::CaFile {
                path: config.ca_file.clone(),
                reason,
            })?
        {
            let cert = Certificate::from_pem(&pem).map_err(|e| EmailError::CaFile {
                path: config.ca_file.clone(),
                reason: e.to_string(),
            })?;
            params = params.add_root_certificate(cert);
        }
        params.build_rustls().map_err(smtp_err)
    };
    let builder = match config.security {
        SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .tls(Tls::Wrapper(tls(&config.host)?)),
        SmtpSecurity::Starttls => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
                .tls(Tls::Required(tls(&config.host)?))
        }
        SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
    };
    let mut builder = builder
        .port(config.port)
        .timeout(Some(Duration::from_secs(config.timeout_s)));
    if !config.username.is_empty() {
        let password = password
            .filter(|p| !p.is_empty())
            .ok_or(EmailError::NoPassword)?;
        builder = builder.credentials(Credentials::new(config.username.clone(), password));
    }
    Ok(builder.build())
}

/// Sends `r` as `config` says, reading the password from `GEMA_SMTP_PASSWORD`.
pub async fn send(config: &DigestConfig, r: &Report) -> Result<(), EmailError> {
    if !config.enabled() {
        return Err(EmailError::Off);
    }
    let transport = transport(config, std::env::var(PASSWORD_ENV).ok())?;
    let message = message(config, r)?;
    transport
        .send(message)
        .await
        .map_err(|source| smtp_error(config, source))?;
    Ok(())
}
