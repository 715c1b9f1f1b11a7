//! The CloudFormation stacks of a switchyard deployment, emitted from the model
//! (`switchyard-model`): the global template and one per region.

pub mod cfn;
mod global;
mod policy;
mod regional;

pub use global::{RECORD_TTL_SECONDS, global_stack};
pub use regional::{DATABASE_NAME, regional_stack};
