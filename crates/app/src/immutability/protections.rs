//! The last immutability rules read per project, for manifest pushes to decide on
//! without reading them again: a push commits under a guard that names the rules'
//! revision, so a push decided on rules that changed since commits nothing and is
//! decided again on rules read afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::rules::Protection;

/// Projects whose rules are kept at most; past it the cache starts again empty.
const MOST_PROJECTS: usize = 4096;

/// The last rules read per project name.
#[derive(Default)]
pub(crate) struct Protections(Mutex<HashMap<String, Arc<Protection>>>);

impl Protections {
    /// The rules last read for `project`, if any.
    pub(crate) fn get(&self, project: &str) -> Option<Arc<Protection>> {
        self.0.lock().expect("protections").get(project).cloned()
    }

    /// Keeps `protection`, just read, as `project`'s.
    pub(crate) fn store(&self, project: &str, protection: Arc<Protection>) {
        let mut kept = self.0.lock().expect("protections");
        if kept.len() >= MOST_PROJECTS && !kept.contains_key(project) {
            kept.clear();
        }
        kept.insert(project.to_owned(), protection);
    }
}
