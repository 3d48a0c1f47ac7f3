-- Long work in progress (src/store/progress.rs): a proof of work at high difficulty, a
-- first sync of a large mailbox. `run` writes a row once the work has taken a while and
-- removes it when done; `status` shows the rows. Routing data and counts only.
CREATE TABLE progress (
    account    TEXT NOT NULL,
    task       TEXT NOT NULL,
    done       INTEGER NOT NULL,
    total      INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, task)
);
