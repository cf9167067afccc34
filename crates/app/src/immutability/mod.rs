//! Tag immutability: Harbor's rules (`rules`) and the registry's writes they govern
//! (`writes`): a push may not move an immutable tag to another manifest, and neither a
//! delete by tag nor one by digest may remove one.

mod protections;
mod rules;
mod writes;

pub(crate) use protections::Protections;

pub use rules::{
    ACTION, InvalidRule, MAX_RULES, ProtectingRule, Protection, RuleDefinition, SelectorSpec,
    TEMPLATE,
};
pub use writes::{ImmutableTag, Refused};
