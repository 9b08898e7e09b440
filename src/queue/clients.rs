//! Keeping fred's clients alive. Each client runs one command loop that
//! writes every command and reads every answer. A loop can stop for good
//! while Redis is fine: after a Redis Cluster slot moves under load it
//! may end on an error it does not retry, or wait on something that
//! never comes; and a firewall or load balancer that forgets a
//! connection without a reset leaves it open and silent. That client
//! then times out every command while Redis answers, until something
//! starts a new loop. That is done here: the health check pings every
//! pooled client, and one that times out twice in a row while another
//! answers is given a new loop (the old one is aborted, its connections
//! closed); when none answers, a connection opened for the question tells
//! a hung Redis from loops that all stopped. A blocking reader's own
//! client gets a new loop when a read times out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use fred::error::ErrorKind;
use fred::interfaces::ClientLike;
use fred::prelude::Client;
use fred::types::ConnectHandle;
use fred::types::config::Options;
use futures_util::future::join_all;
use tracing::warn;

/// Timeouts in a row before a client counts as stuck: one can be a slow
/// node or a command that took long.
const STRIKES: u8 = 2;

/// How often a throwaway connection may check whether Redis answers
/// while no pooled client does (a hung Redis answers none either).
const FRESH_PROBE_EVERY: Duration = Duration::from_secs(10);

/// The command loops of the pool's clients, in the pool's order.
pub struct Drivers {
    state: Mutex<DriverState>,
}

struct DriverState {
    loops: Vec<ConnectHandle>,
    /// Health-check pings in a row that each client left unanswered.
    strikes: Vec<u8>,
    last_fresh_probe: Option<Instant>,
}

impl Drivers {
    /// Starts a command loop for each client.
    pub fn start(clients: &[Client]) -> Self {
        Self {
            state: Mutex::new(DriverState {
                loops: clients.iter().map(|c| c.connect()).collect(),
                strikes: vec![0; clients.len()],
                last_fresh_probe: None,
            }),
        }
    }

    /// Pings every client; gives a new command loop to each that is stuck.
    /// The first client that answered, or the first failure.
    pub async fn ping_all(
        &self,
        clients: &[Client],
        options: &Options,
    ) -> Result<usize, fred::error::Error> {
        let pings = clients
            .iter()
            .map(|c| async move { c.with_options(options).ping::<String>(None).await });
        let results = join_all(pings).await;
        let answered = results.iter().any(|r| r.is_ok());
        let stuck = match self.decide(&results, answered) {
            Decision::Nothing => Vec::new(),
            Decision::Restart(stuck) => stuck,
            Decision::AskAFreshConnection => match clients.first() {
                Some(any) if fresh_connection_answers(any, options).await => {
                    (0..clients.len()).collect()
                }
                _ => Vec::new(),
            },
        };
        if !stuck.is_empty() {
            warn!(
                clients = stuck.len(),
                of = clients.len(),
                "redis clients stopped answering while redis answers: restarting their connections"
            );
            self.restart(clients, &stuck);
        }
        first_answer(results)
    }

    /// Counts each client's timeouts in a row and picks who is stuck.
    fn decide(&self, results: &[Result<String, fred::error::Error>], answered: bool) -> Decision {
        let Ok(mut state) = self.state.lock() else {
            return Decision::Nothing;
        };
        for (strikes, result) in state.strikes.iter_mut().zip(results) {
            *strikes = match result {
                Err(e) if *e.kind() == ErrorKind::Timeout => strikes.saturating_add(1),
                _ => 0,
            };
        }
        let struck: Vec<usize> = (0..results.len())
            .filter(|&i| state.strikes[i] >= STRIKES)
            .collect();
        if struck.is_empty() {
            return Decision::Nothing;
        }
        if answered {
            return Decision::Restart(struck);
        }
        // No client answers: a hung Redis, or every loop stuck. Only a
        // connection of its own can tell, and not on every tick.
        let due = state
            .last_fresh_probe
            .is_none_or(|at| at.elapsed() >= FRESH_PROBE_EVERY);
        if struck.len() == results.len() && due {
            state.last_fresh_probe = Some(Instant::now());
            Decision::AskAFreshConnection
        } else {
            Decision::Nothing
        }
    }

    fn restart(&self, clients: &[Client], which: &[usize]) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        for &i in which {
            if let (Some(client), Some(old)) = (clients.get(i), state.loops.get(i)) {
                old.abort();
                let fresh = client.connect();
                state.loops[i] = fresh;
                state.strikes[i] = 0;
            }
        }
    }
}

enum Decision {
    Nothing,
    Restart(Vec<usize>),
    AskAFreshConnection,
}

/// The first client that answered, or the first failure.
fn first_answer(
    results: Vec<Result<String, fred::error::Error>>,
) -> Result<usize, fred::error::Error> {
    let mut failure = None;
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(_) => return Ok(i),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    Err(failure.unwrap_or_else(|| fred::error::Error::new(ErrorKind::Config, "no redis clients")))
}

/// Whether a new connection, made for this question alone, gets an
/// answer to PING in time.
async fn fresh_connection_answers(like: &Client, options: &Options) -> bool {
    let fresh = like.clone_new();
    let driver = fresh.connect();
    let limit = options.timeout.unwrap_or(Duration::from_secs(1));
    let answered = tokio::time::timeout(limit, async {
        fresh.wait_for_connect().await?;
        fresh.ping::<String>(None).await
    })
    .await
    .is_ok_and(|r| r.is_ok());
    driver.abort();
    answered
}

/// A client of its own for blocking reads, so a BLOCK never stalls
/// commands queued behind it. Its command loop ends with it.
pub struct DedicatedClient {
    client: Client,
    driver: ConnectHandle,
}

impl DedicatedClient {
    pub(super) fn new(like: &Client) -> Self {
        let client = like.clone_new();
        let driver = client.connect();
        Self { client, driver }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A new command loop: a blocking read that timed out (the BLOCK is
    /// far shorter than the command timeout) means this one stopped.
    pub fn restart(&mut self) {
        self.driver.abort();
        self.driver = self.client.connect();
    }
}

impl Drop for DedicatedClient {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

#[cfg(test)]
mod tests {
    use fred::error::Error;

    use super::*;

    fn drivers(clients: usize) -> Drivers {
        Drivers {
            state: Mutex::new(DriverState {
                loops: Vec::new(),
                strikes: vec![0; clients],
                last_fresh_probe: None,
            }),
        }
    }

    fn answered() -> Result<String, Error> {
        Ok("PONG".to_owned())
    }

    fn timed_out() -> Result<String, Error> {
        Err(Error::new(ErrorKind::Timeout, "Request timed out."))
    }

    fn refused() -> Result<String, Error> {
        Err(Error::new(ErrorKind::IO, "Connection refused"))
    }

    fn decided(drivers: &Drivers, results: &[Result<String, Error>]) -> Option<Vec<usize>> {
        match drivers.decide(results, results.iter().any(|r| r.is_ok())) {
            Decision::Nothing => None,
            Decision::Restart(stuck) => Some(stuck),
            Decision::AskAFreshConnection => Some(Vec::new()),
        }
    }

    #[test]
    fn a_client_that_times_out_twice_while_another_answers_is_restarted() {
        let d = drivers(3);
        let round = [answered(), timed_out(), answered()];
        assert_eq!(decided(&d, &round), None, "one timeout can be a slow node");
        assert_eq!(decided(&d, &round), Some(vec![1]));
    }

    #[test]
    fn an_answer_between_timeouts_starts_the_count_again() {
        let d = drivers(2);
        assert_eq!(decided(&d, &[answered(), timed_out()]), None);
        assert_eq!(decided(&d, &[answered(), answered()]), None);
        assert_eq!(decided(&d, &[answered(), timed_out()]), None);
    }

    #[test]
    fn a_redis_that_refuses_connections_restarts_nothing() {
        let d = drivers(2);
        for _ in 0..5 {
            assert_eq!(decided(&d, &[refused(), refused()]), None);
        }
    }

    #[test]
    fn when_no_client_answers_a_fresh_connection_is_asked_now_and_then() {
        let d = drivers(2);
        assert_eq!(decided(&d, &[timed_out(), timed_out()]), None);
        // Empty: ask a fresh connection.
        assert_eq!(decided(&d, &[timed_out(), timed_out()]), Some(Vec::new()));
        // Not again within FRESH_PROBE_EVERY: a hung Redis is not asked
        // on every tick.
        assert_eq!(decided(&d, &[timed_out(), timed_out()]), None);
    }
}
