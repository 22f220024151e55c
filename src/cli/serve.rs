//! `gema serve`: the HTTP API, live alert feed and dashboard (see `gema::server`).

use gema::config::Config;
use gema::pipeline::{self, Stage};
use gema::server::auth::Token;
use gema::server::ServeOptions;

/// Environment variable holding the API bearer token.
pub const TOKEN_ENV: &str = "GEMA_API_TOKEN";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `server.listen`, default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// Serve without any authentication. Only for a trusted loopback development setup: anyone
    /// who can reach the port reads every mention and can change alert status.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Also run these pipeline stages in this process, so /metrics shows their counters
    /// (comma separated: enrich, sink, trends, router). Default: none.
    #[arg(long, value_delimiter = ',', value_parser = ["enrich", "sink", "trends", "router"])]
    pub stages: Vec<String>,
    /// Also run the config's `[[sources]]` connectors in this process (each on its own task;
    /// `gema sources` and /api/sources show their state).
    #[arg(long)]
    pub sources: bool,
}

/// A token usable as a bearer credential and a cookie value: 16 to 256 visible ASCII characters
/// other than `;`, `,`, `"` and `\`.
fn check_token(t: &str) -> anyhow::Result<()> {
    let ok = (16..=256).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'));
    anyhow::ensure!(
        ok,
        "{TOKEN_ENV} must be 16 to 256 visible ASCII characters without ; , \" or \\ \
         (e.g. `openssl rand -hex 32`)"
    );
    Ok(())
}

pub async fn run(config: &Config, args: &ServeArgs) -> anyhow::Result<()> {
    let mut server = config.server.clone();
    if let Some(l) = &args.listen {
        server.listen = l.clone();
    }
    let token = match std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
        Some(t) => {
            check_token(&t)?;
            Some(Token::new(&t))
        }
        None if args.insecure_no_auth => {
            tracing::warn!("Serving WITHOUT authentication (--insecure-no-auth)");
            None
        }
        None => anyhow::bail!(
            "{TOKEN_ENV} is not set: set it to a secret token (e.g. `export {TOKEN_ENV}=$(openssl \
             rand -hex 32)`), or pass --insecure-no-auth for a trusted local setup"
        ),
    };
    let opts = ServeOptions {
        server,
        token,
        stages: Stage::named(&args.stages),
        kafka: true,
        sources: args.sources,
    };
    let running = gema::server::start(config, opts).await?;
    pipeline::cancel_on_signal(running.shutdown.clone());
    eprintln!(
        "gema serve: http://{}/ (open /?token=<{TOKEN_ENV}> once in a browser)",
        running.addr
    );
    running.task.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_be_cookie_safe_and_long_enough() {
        assert!(check_token("0123456789abcdef").is_ok());
        assert!(check_token("short").is_err());
        assert!(check_token("0123456789abcdef;x").is_err());
        assert!(check_token("0123456789 abcdef").is_err());
    }
}
