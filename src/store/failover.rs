//! Several ClickHouse URLs for one store: the replicas of a one-shard cluster, each holding
//! every row. Requests go to the replica that last answered; when it cannot be connected to,
//! the next one in the list is tried, so a replica that stops does not stop gema (without a
//! load balancer in front of them).
//!
//! The switch happens where a connection is opened (a connection refused or timed out), below
//! the ClickHouse client: every query and insert is unchanged. A request already sent on a
//! connection to a replica that dies fails as it would with one URL, and is retried as any
//! failed request is (the sinks from their committed offsets); its retry connects to the next.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// The URLs of `[clickhouse] url`: one, or several separated by commas.
pub fn urls(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// How long a connection attempt to one replica may take before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// TCP keep-alive and the client's idle-connection timeout, as the ClickHouse client's own
/// default (the server closes idle connections after 3 s).
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens each connection to the first of `replicas` that accepts it, starting with the one
/// that accepted the last.
#[derive(Clone)]
pub struct FailoverConnector {
    inner: HttpConnector,
    replicas: Arc<[Uri]>,
    preferred: Arc<AtomicUsize>,
}

/// `urls` as replicas: each `http://host:port`, at least one. Fails with the URL that is not.
pub fn replicas(urls: &[&str]) -> Result<Vec<Uri>, String> {
    if urls.is_empty() {
        return Err("no URL".into());
    }
    urls.iter()
        .map(|u| {
            let uri: Uri = u.parse().map_err(|e| format!("{u}: {e}"))?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return Err(format!(
                    "{u}: several URLs must each be http://host:port (this build speaks plain HTTP)"
                ));
            }
            Ok(uri)
        })
        .collect()
}

impl FailoverConnector {
    /// `replicas`: see [`replicas`]. Fails with the URL that is not one.
    pub fn new(urls: &[&str]) -> Result<FailoverConnector, String> {
        let replicas = replicas(urls)?;
        let mut inner = HttpConnector::new();
        inner.set_keepalive(Some(TCP_KEEPALIVE));
        inner.set_connect_timeout(Some(CONNECT_TIMEOUT));
        Ok(FailoverConnector {
            inner,
            replicas: replicas.into(),
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A ClickHouse client whose connections this connector opens (its URL still to be set:
    /// the first replica's, which names the requests, not where they go).
    pub fn clickhouse_client(self) -> clickhouse::Client {
        clickhouse::Client::with_http_client(
            HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .build(self),
        )
    }

    /// The replica connections go to now.
    pub fn current(&self) -> &Uri {
        &self.replicas[self.preferred.load(Ordering::Relaxed) % self.replicas.len()]
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for FailoverConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    /// The request's own host is the first URL's; the connection goes to a replica that
    /// accepts it.
    fn call(&mut self, _requested: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let n = this.replicas.len();
            let start = this.preferred.load(Ordering::Relaxed) % n;
            let mut errors = Vec::new();
            for k in 0..n {
                let i = (start + k) % n;
                let replica = &this.replicas[i];
                match this.inner.clone().oneshot(replica.clone()).await {
                    Ok(io) => {
                        // Said once when connections opened together all move on.
                        if i != start
                            && this
                                .preferred
                                .compare_exchange(start, i, Ordering::Relaxed, Ordering::Relaxed)
                                .is_ok()
                        {
                            tracing::warn!(from = %this.replicas[start], to = %replica, "ClickHouse replica unreachable; switched to the next");
                        }
                        return Ok(io);
                    }
                    Err(e) => errors.push(format!("{replica}: {e}")),
                }
            }
            Err(format!(
                "no ClickHouse replica accepts a connection ({})",
                errors.join("; ")
            )
            .into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_on_commas() {
        assert_eq!(urls("http://a:1"), ["http://a:1"]);
        assert_eq!(
            urls("http://a:1, http://b:2,"),
            ["http://a:1", "http://b:2"]
        );
    }

    #[test]
    fn replicas_must_be_plain_http_urls() {
        assert!(
            FailoverConnector::new(&["http://127.0.0.1:8123", "http://127.0.0.1:8124"]).is_ok()
        );
        let e = FailoverConnector::new(&["http://a:1", "https://b:2"])
            .err()
            .unwrap();
        assert!(e.starts_with("https://b:2:"), "{e}");
        assert!(FailoverConnector::new(&["not a url"]).is_err());
    }

    #[tokio::test]
    async fn a_connection_goes_to_the_first_replica_that_accepts_it_and_stays() {
        // One port that refuses (bound, then closed) and one that listens.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = format!("http://{}", listener.local_addr().unwrap());
        let c = FailoverConnector::new(&[&dead, &live]).unwrap();
        let accept = tokio::spawn(async move {
            for _ in 0..2 {
                listener.accept().await.unwrap();
            }
        });
        c.clone().oneshot(dead.parse().unwrap()).await.unwrap();
        assert_eq!(c.current().to_string(), format!("{live}/"));
        // The next connection starts with the replica that answered.
        c.clone().oneshot(dead.parse().unwrap()).await.unwrap();
        accept.await.unwrap();
        // None answers: the error names each.
        let only_dead = FailoverConnector::new(&[&dead]).unwrap();
        let e = only_dead
            .oneshot(dead.parse().unwrap())
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains(&dead), "{e}");
    }
}
