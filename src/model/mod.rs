//! Domain types: the values pgkeep's layers pass each other (formats, schedules, policies,
//! secrets), defined once below every layer that uses them, so the configuration only parses
//! into them and depends on nothing above it.

pub mod schedule;
