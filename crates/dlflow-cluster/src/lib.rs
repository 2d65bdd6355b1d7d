//! # dlflow-cluster: the ML cluster
//!
//! A cluster of TensorFlow nodes, one Python child process per node (workers and parameter
//! servers), each running the user's entry `entry(context)` with dlflow's `python/dlflow`
//! package on its path.
//!
//! | piece | what |
//! |---|---|
//! | [`TfClusterConfig`] | how many nodes, what they run, with which Python, properties |
//! | [`Cluster`] | start and register the nodes, hand out the cluster spec, watch them to the end |
//! | [`LocalNodes`] | the nodes one process of a job hosts and feeds ([`Layout`]) |
//! | [`NodeFeed`] | rows into one worker as Arrow IPC, with a backlog count for flow control |
//! | [`protocol`] | the frames on the wire (the Python twin is `python/dlflow/_protocol.py`) |
//!
//! Nodes register with a port for their TF server and get the whole cluster spec back, so
//! `TF_CONFIG` is right without fixed ports, fixed sleeps or ZooKeeper. A node that raises,
//! dies or stops sending heartbeats ends the job with an error that names it; no process
//! outlives the job.

mod config;
mod coordinator;
mod error;
mod feed;
mod local;
mod node;
pub mod protocol;
mod python;

pub use config::{
    CheckpointEvery, NodeEntry, NodeType, OutputHandler, Python, Recovery, TfClusterConfig, TfClusterConfigBuilder, Timeouts,
};
pub use coordinator::{Cluster, ClusterReport, JobIo, NodeEvent, RemoteEvent, random_token};
pub use local::{Layout, LocalNodes, NodeExit, NodeLaunch};
pub use error::{ClusterError, NodeName, Result};
pub use feed::{FeedClosed, NodeFeed};
pub use node::OutputTail;
pub use python::{interpreter, package_root};
