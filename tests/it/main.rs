//! Integration tests: the real `hookd` binary against private
//! `redis-server` processes and a real HTTP sink.

mod admin;
mod browser;
mod chaos;
mod cli;
mod delivery;
mod ingest;
mod load;
mod packaging;
mod shutdown;
mod support;
