//! What the streaming connectors share: an HTTP client without a whole-request timeout (a
//! stream is one long answer), opening a stream with its status sorted into a [`Failure`], a
//! body read line by line that fails when the server goes quiet ([`Body`], [`Lines`]), and the
//! ids sent lately ([`RecentIds`]) so a backfill that overlaps the stream repeats nothing, and
//! server-sent events read from those lines ([`Sse`]).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use super::http::Failure;

/// The longest line a stream may send (a tweet or a status is a few KiB); a longer one ends
/// the connection.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// A client for long-lived streams: 20 s to connect, no limit on the whole answer (the
/// stall timeout of [`Body`] watches it instead), a `gema/<version> (<name>)` user agent.
pub fn client(name: &str) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .user_agent(format!("gema/{} ({name})", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `req` and returns the open stream of a 2xx answer; any other status is a failure of
/// its kind (see [`Failure::from_status`]), named by `what`.
pub async fn open(req: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response, Failure> {
    let resp = req
        .send()
        .await
        .map_err(|e| Failure::transient(format!("{what}: connecting: {}", e.without_url())))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Failure::from_status(status, resp.headers()).within(what));
    }
    Ok(resp)
}

/// An open stream's body, read line by line.
pub struct Body {
    resp: reqwest::Response,
    lines: Lines,
    stall: Duration,
    what: String,
}

impl Body {
    /// The body of `resp` (named `what` in failures); no bytes at all for `stall` is a stall.
    pub fn new(resp: reqwest::Response, stall: Duration, what: &str) -> Body {
        Body {
            resp,
            lines: Lines::default(),
            stall,
            what: what.to_string(),
        }
    }

    /// The next line (see [`Lines`]); a body that ends, breaks or stalls is a transient failure
    /// (a stream is never meant to end).
    pub async fn line(&mut self) -> Result<Vec<u8>, Failure> {
        loop {
            if let Some(line) = self.lines.next_line() {
                return Ok(line);
            }
            let chunk = match tokio::time::timeout(self.stall, self.resp.chunk()).await {
                Err(_) => {
                    return Err(Failure::transient(format!(
                        "{}: no data or keep-alive for {} s; the stream stalled",
                        self.what,
                        self.stall.as_secs_f32()
                    )))
                }
                Ok(Err(e)) => {
                    return Err(Failure::transient(format!(
                        "{}: the stream broke: {e}",
                        self.what
                    )))
                }
                Ok(Ok(None)) => {
                    return Err(Failure::transient(format!(
                        "{}: the server ended the stream",
                        self.what
                    )))
                }
                Ok(Ok(Some(bytes))) => bytes,
            };
            self.lines.push(&chunk).map_err(|f| f.within(&self.what))?;
        }
    }
}

/// Lines cut out of a byte stream: ended by `\n`, `\r\n` or a lone `\r` (as server-sent events
/// allow), the terminator removed.
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Adds the next chunk; a line growing past [`MAX_LINE_BYTES`] is a transient failure.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        self.buf.extend_from_slice(chunk);
        let unfinished = self
            .buf
            .iter()
            .rposition(|&b| b == b'\n' || b == b'\r')
            .map_or(self.buf.len(), |i| self.buf.len() - i - 1);
        if unfinished > MAX_LINE_BYTES {
            self.buf.clear();
            return Err(Failure::transient(format!(
                "a line of more than {MAX_LINE_BYTES} bytes; reconnecting"
            )));
        }
        Ok(())
    }

    /// The next whole line, if one has arrived.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        let end = self.buf.iter().position(|&b| b == b'\n' || b == b'\r')?;
        let term = match (self.buf[end], self.buf.get(end + 1)) {
            // A `\r` at the end of what arrived may be the first half of `\r\n`: wait.
            (b'\r', None) => return None,
            (b'\r', Some(b'\n')) => 2,
            _ => 1,
        };
        let line = self.buf[..end].to_vec();
        self.buf.drain(..end + term);
        Some(line)
    }
}

/// The last `capacity` ids sent, to skip one that arrives again (a backfill overlapping the
/// stream, a post heard through two follows).
#[derive(Debug)]
pub struct RecentIds {
    order: VecDeque<String>,
    set: HashSet<String>,
    capacity: usize,
}

impl RecentIds {
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Remembers `id`, forgetting the oldest past the capacity.
    pub fn insert(&mut self, id: &str) {
        if !self.set.insert(id.to_string()) {
            return;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// One server-sent event: its type (`message` when the server named none) and its data (the
/// `data:` lines joined by `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Server-sent events read line by line, as the HTML standard's event-stream parser does:
/// `event:` and `data:` fields (one optional space after the colon; several `data:` lines
/// make one multi-line value), comment lines starting with `:` (heartbeats) ignored, other
/// fields (`id:`, `retry:`) ignored, a blank line ending the event. An event without data is
/// not dispatched.
#[derive(Debug, Default)]
pub struct Sse {
    event: String,
    data: String,
    has_data: bool,
}

impl Sse {
    /// Takes one line (without its terminator); the event a blank line completes.
    pub fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            if !std::mem::take(&mut self.has_data) {
                return None;
            }
            return Some(SseEvent {
                event: if event.is_empty() {
                    "message".into()
                } else {
                    event
                },
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field.trim_start_matches('\u{feff}') {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(lines: &mut Lines) -> Vec<String> {
        std::iter::from_fn(|| lines.next_line())
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_end_at_any_terminator_even_split_across_chunks() {
        let mut l = Lines::default();
        l.push(b"a\r\nb\nc\r").unwrap();
        assert_eq!(all(&mut l), ["a", "b"]);
        l.push(b"\nd\re").unwrap();
        assert_eq!(all(&mut l), ["c", "d"]);
        l.push(b"f\r\n\r\n").unwrap();
        assert_eq!(all(&mut l), ["ef", ""]);
        assert!(l.push(&vec![b'x'; MAX_LINE_BYTES + 1]).is_err());
    }

    #[test]
    fn server_sent_events_join_data_lines_and_skip_comments() {
        let mut sse = Sse::default();
        let text = ":thump\nevent: update\ndata: {\"a\":\ndata:1}\n\n:thump\n\n\
                    data: plain\nid: 7\nretry: 10\n\nevent: delete\n\nevent:delete\ndata:9\n\n";
        let events: Vec<SseEvent> = text.split('\n').filter_map(|l| sse.line(l)).collect();
        let ev = |event: &str, data: &str| SseEvent {
            event: event.into(),
            data: data.into(),
        };
        assert_eq!(
            events,
            [
                ev("update", "{\"a\":\n1}"),
                ev("message", "plain"),
                ev("delete", "9")
            ]
        );
    }

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut r = RecentIds::new(2);
        r.insert("1");
        r.insert("2");
        r.insert("2");
        assert!(r.contains("1") && r.contains("2"));
        r.insert("3");
        assert!(!r.contains("1") && r.contains("2") && r.contains("3"));
    }
}
