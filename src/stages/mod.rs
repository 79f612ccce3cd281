//! The six stages, one module each, in the order they run.
use crate::engine::Stage;

pub mod controller;
pub mod nats;
pub mod prerequisites;
pub mod self_management;
pub mod state_backend;
pub mod webhooks;

pub const NAMES: [&str; 6] = ["prerequisites", "state-backend", "nats", "webhooks", "controller", "self-management"];

pub fn all() -> Vec<Box<dyn Stage>> {
    vec![
        Box::new(prerequisites::Prerequisites),
        Box::new(state_backend::StateBackend),
        Box::new(nats::Nats),
        Box::new(webhooks::Webhooks),
        Box::new(controller::Controller),
        Box::new(self_management::SelfManagement),
    ]
}
