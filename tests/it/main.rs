//! Integration tests: the real `hookd` binary against private
//! `redis-server` processes and a real HTTP sink.

mod admin;
mod browser;
mod chaos;
mod cli;
mod connections;
mod delivery;
mod events;
mod failover;
mod headers;
mod ingest;
mod load;
mod packaging;
mod providers;
mod refusals;
mod retention;
mod routes;
mod shutdown;
mod spool;
mod storm;
mod structure;
mod support;
mod upgrade;
