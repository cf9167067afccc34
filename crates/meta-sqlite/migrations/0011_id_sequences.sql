-- Ids of users, projects and robots are never reused: without this, a deleted row's id
-- went to the next row created, which inherited what named that id (audit entries,
-- grants, sessions).
CREATE TABLE id_sequences (
    name TEXT    PRIMARY KEY,
    last INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO id_sequences (name, last) SELECT 'users', coalesce(max(id), 0) FROM users;
INSERT INTO id_sequences (name, last) SELECT 'projects', coalesce(max(id), 0) FROM projects;
INSERT INTO id_sequences (name, last) SELECT 'robots', coalesce(max(id), 0) FROM robots;
