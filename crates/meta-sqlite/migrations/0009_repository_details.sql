-- What Harbor shows of a repository: its description and how often it was pulled.
ALTER TABLE repositories ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE repositories ADD COLUMN pull_count INTEGER NOT NULL DEFAULT 0;
