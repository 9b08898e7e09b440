//! A source's way to its destination: the connections, the in-flight cap,
//! the signing key, and the queue of acknowledgements.

use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

use super::pool::Connections;
use crate::source::Source;
use crate::verify::standard_webhooks;

pub struct Route {
    pub source: Arc<Source>,
    /// Keep-alive connections to the destination.
    pub connections: Connections,
    /// `max_in_flight` slots.
    pub in_flight: Arc<Semaphore>,
    /// With `signing_secret`: the key hookd signs deliveries with.
    pub signing_key: Option<ring::hmac::Key>,
    /// Delivered entries waiting to be acknowledged in a batch.
    pub acks: mpsc::UnboundedSender<String>,
}

impl Route {
    /// The route and the receiving end of its acknowledgements.
    pub fn new(
        source: Arc<Source>,
        connector: HttpsConnector<HttpConnector>,
        connection_tasks: TaskTracker,
    ) -> (Self, mpsc::UnboundedReceiver<String>) {
        let destination = &source.destination;
        let signing_key = (!destination.signing_secret.is_empty())
            .then(|| standard_webhooks::signing_key(destination.signing_secret.expose()));
        let (acks, pending) = mpsc::unbounded_channel();
        let route = Self {
            connections: Connections::new(
                connector,
                destination.url.uri().clone(),
                connection_tasks,
            ),
            in_flight: Arc::new(Semaphore::new(destination.max_in_flight)),
            signing_key,
            acks,
            source,
        };
        (route, pending)
    }
}
