//! Why Redis cannot be reached. A failed PING only says that it failed;
//! fred reports each failed connection attempt (refused, a wrong
//! password, a TLS handshake) on its error channels, and that is what an
//! operator needs to read.

use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::EventInterface;
use fred::prelude::Server;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;

use super::{Queue, QueueError};

/// What the pool's connections reported since the last look.
pub struct ConnectionErrors {
    receivers: Vec<Receiver<(FredError, Option<Server>)>>,
}

impl ConnectionErrors {
    /// The latest error reported since the last call, if any.
    pub fn latest(&mut self) -> Option<String> {
        let mut latest = None;
        for receiver in &mut self.receivers {
            loop {
                match receiver.try_recv() {
                    Ok((error, _)) => latest = Some(in_words(&error)),
                    Err(TryRecvError::Lagged(_)) => continue,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
        }
        latest
    }
}

impl Queue {
    /// Subscribes to every pooled connection's errors: what they report
    /// from now on.
    pub fn connection_errors(&self) -> ConnectionErrors {
        ConnectionErrors {
            receivers: self.pool.clients().iter().map(|c| c.error_rx()).collect(),
        }
    }

    /// A PING within the health-check timeout on every pooled client,
    /// then a script: every state move hookd makes is one, so a Redis
    /// whose ACL user may PING but not run scripts, or not on keys under
    /// `redis.key_prefix`, takes no event and counts as unusable
    /// (`health.lua`).
    pub async fn check(&self) -> Result<(), Unusable> {
        let options = fred::types::config::Options {
            fail_fast: true,
            // fred counts following a cluster redirection as another
            // attempt: with one, the script fails whenever the probe
            // key's slot is being moved, and Redis would be called away
            // for every source. Nothing here writes, so a resend is
            // harmless too.
            max_attempts: Some(3),
            timeout: Some(self.ping_timeout),
            ..Default::default()
        };
        // Every pooled client, not one: a client whose command loop
        // stopped is found (and restarted) here.
        let clients = self.pool.clients();
        let answering = match self.drivers.ping_all(clients, &options).await {
            Ok(answering) => &clients[answering],
            Err(e) => {
                return Err(Unusable::Unreachable(format!(
                    "PING failed: {}",
                    in_words(&e)
                )));
            }
        };
        let script = &self.scripts.health;
        let keys = vec![self.probe_key.as_str().into()];
        match self
            .eval_values(
                answering,
                "health check",
                script,
                keys,
                Vec::new(),
                Some(&options),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_connection() => Err(Unusable::Unreachable(e.to_string())),
            // Redis answered, and not with "not now": waiting changes
            // nothing (NOPERM, or scripting renamed away).
            Err(QueueError::Redis { source, .. }) => Err(Unusable::Refused(in_words(&source))),
            Err(other) => Err(Unusable::Refused(other.to_string())),
        }
    }
}

/// Why the health check found Redis unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// No answer in time, or an answer that says Redis cannot serve now
    /// (refused, a wrong password, loading, a failing disk).
    Unreachable(String),
    /// Redis answers but will not run what hookd runs (its ACL user lacks
    /// scripting or the keys, or scripting was renamed away): nothing is
    /// stored until an operator changes that.
    Refused(String),
}

impl Unusable {
    /// Why, in Redis's or the connection's words.
    pub fn reason(&self) -> &str {
        match self {
            Self::Unreachable(why) | Self::Refused(why) => why,
        }
    }
}

/// What follows "redis" in a sentence: a refusal is not an outage, and
/// waiting for one to end waits for an operator.
impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "cannot be reached: {why}"),
            Self::Refused(why) => write!(f, "refuses hookd's commands: {why}"),
        }
    }
}

/// A connection error as an operator reads it. fred keeps an I/O error as
/// its `Debug` text (`Os { code: 111, kind: ConnectionRefused, message:
/// "Connection refused" }`); this gives std's own words for it instead
/// (`Connection refused (os error 111)`), an error reply as Redis said
/// it, and every other error as fred says it.
pub(crate) fn in_words(error: &FredError) -> String {
    match error.kind() {
        ErrorKind::IO => io_words(error.details()).unwrap_or_else(|| error.to_string()),
        // An error reply Redis gave (MISCONF, NOPERM, ...): its own words
        // say it all; fred's "Unknown Error: " in front says nothing.
        ErrorKind::Unknown if !error.details().is_empty() => error.details().to_owned(),
        _ => error.to_string(),
    }
}

/// Reads back std's `Debug` of an `io::Error`: `Os { .. }`, `Custom { kind,
/// error }`, `Kind(..)`, or a `SimpleMessage`'s `Error { kind, message }`.
fn io_words(debug: &str) -> Option<String> {
    if let Some(rest) = debug.strip_prefix("Os {") {
        let code = between(rest, "code: ", ",")?;
        let message = between(rest, "message: \"", "\"")?;
        return Some(format!("{message} (os error {code})"));
    }
    if let Some(kind) = debug
        .strip_prefix("Kind(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return Some(spaced(kind));
    }
    for (prefix, field) in [("Custom {", "error: "), ("Error {", "message: ")] {
        if let Some(rest) = debug.strip_prefix(prefix) {
            let start = rest.find(field)? + field.len();
            let inner = rest[start..].strip_suffix(" }")?;
            let text = inner
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(inner);
            return Some(text.to_owned());
        }
    }
    None
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}

/// `TimedOut` → `timed out`.
fn spaced(kind: &str) -> String {
    let mut words = String::with_capacity(kind.len() + 4);
    for (i, c) in kind.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
        }
        words.extend(c.to_lowercase());
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worded(error: std::io::Error) -> String {
        in_words(&FredError::from(error))
    }

    #[test]
    fn io_errors_read_as_std_says_them() {
        let refused = std::io::Error::from_raw_os_error(111);
        assert_eq!(worded(refused), "Connection refused (os error 111)");
        let custom = std::io::Error::other("tls handshake eof");
        assert_eq!(worded(custom), "tls handshake eof");
        let bare = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(worded(bare), "timed out");
    }

    #[test]
    fn other_errors_keep_freds_words() {
        let auth = FredError::new(ErrorKind::Auth, "WRONGPASS invalid username-password pair");
        assert_eq!(
            in_words(&auth),
            "Authentication Error: WRONGPASS invalid username-password pair"
        );
        let misconf = FredError::new(ErrorKind::Unknown, "MISCONF Redis is configured to save");
        assert_eq!(in_words(&misconf), "MISCONF Redis is configured to save");
        // An I/O text it cannot read is kept as it came.
        let odd = FredError::new(ErrorKind::IO, "something new");
        assert_eq!(in_words(&odd), "IO Error: something new");
    }
}
