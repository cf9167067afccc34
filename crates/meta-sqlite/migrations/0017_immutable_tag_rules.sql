-- Tag immutability rules (Harbor's immutable_tag_rule): a project's rule is its
-- definition, Harbor's rule JSON as given, unique within the project, and a switch.
-- AUTOINCREMENT keeps a deleted rule's id from being given again.
CREATE TABLE immutable_tag_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    definition TEXT    NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (project_id, definition)
);
-- Moved by every change to a project's rules: a write that an immutability decision
-- allowed checks, in its transaction, that the rules are still those it was decided on.
ALTER TABLE projects ADD COLUMN immutable_rules_revision INTEGER NOT NULL DEFAULT 0;
