//! Tag retention: Harbor's policies (`policy`), what one keeps and deletes of a
//! repository (`evaluate`) and the table a task logs (`report`), all pure; the
//! executions run as jobs of the queue (`crate::jobs::TagRetention`) and the API's use
//! cases are `crate::manage::Retentions`.

mod evaluate;
mod policy;
mod report;

pub use evaluate::{Candidate, Verdict};
pub use policy::{
    ACTION_RETAIN, ALGORITHM_OR, ArtifactSelector, CompiledPolicy, CompiledRule, InvalidPolicy,
    KIND_LABEL, MAX_RULES, PolicyDefinition, REPOSITORY_SCOPE, RuleSpec, SCOPE_PROJECT,
    SETTING_CRON, SETTING_NEXT, ScopeSpec, SelectorSpec, TRIGGER_SCHEDULE, Template, TriggerSpec,
};
pub use report::{Line, Mark, log_time, table};
