//! `pgkeep run`: the long-running process of the backup pod.

pub mod schedule;
