-- The session-core-db sessions table, for the default table name "session_core_sessions".
-- Run the section for your database. For another table name or database, print the DDL with:
--     python -m session_core_db --url 'postgresql+psycopg://...' --table my_sessions
-- The store creates this itself on first use unless create_table is false.
--
-- key_hash    SHA-256 of the session key (hex): the key itself is never stored
-- data        the session's contents, JSON text
-- expiry      the session's own expiry setting, JSON text (NULL: the default lifetime)
-- expires_at  Unix time after which the row is dead; indexed for loads and cleanup
-- version     row version for optimistic concurrency, 1 when created
-- user_id     the user the session is bound to (its id as text; indexed, on PostgreSQL and
--             SQLite only where not NULL), NULL when anonymous
-- user_id_int whether the app's user id was an int (so 7 comes back as 7, not "7")
-- created_at  Unix time the row was created (the login, for a user's session)
-- seen_at     Unix time of the last save
-- client      what the app recorded of the device (JSON text), NULL unless it did
--
-- A table made before sessions per user lacks the last five columns: the store adds them at
-- first use unless create_table is false; else run what `session-core db upgrade` prints.

-- PostgreSQL
CREATE TABLE IF NOT EXISTS session_core_sessions (
    key_hash VARCHAR(64) NOT NULL,
    data TEXT NOT NULL,
    expiry TEXT,
    expires_at DOUBLE PRECISION NOT NULL,
    version BIGINT NOT NULL,
    user_id VARCHAR(255),
    user_id_int BOOLEAN,
    created_at DOUBLE PRECISION,
    seen_at DOUBLE PRECISION,
    client TEXT,
    PRIMARY KEY (key_hash)
);
CREATE INDEX IF NOT EXISTS ix_session_core_sessions_expires_at
    ON session_core_sessions (expires_at);
CREATE INDEX IF NOT EXISTS ix_session_core_sessions_user_id
    ON session_core_sessions (user_id) WHERE user_id IS NOT NULL;

-- SQLite
-- CREATE TABLE IF NOT EXISTS session_core_sessions (
--     key_hash VARCHAR(64) NOT NULL,
--     data TEXT NOT NULL,
--     expiry TEXT,
--     expires_at DOUBLE NOT NULL,
--     version BIGINT NOT NULL,
--     user_id VARCHAR(255),
--     user_id_int BOOLEAN,
--     created_at DOUBLE,
--     seen_at DOUBLE,
--     client TEXT,
--     PRIMARY KEY (key_hash)
-- );
-- CREATE INDEX IF NOT EXISTS ix_session_core_sessions_expires_at
--     ON session_core_sessions (expires_at);
-- CREATE INDEX IF NOT EXISTS ix_session_core_sessions_user_id
--     ON session_core_sessions (user_id) WHERE user_id IS NOT NULL;

-- MariaDB (and MySQL 8, which has no CREATE INDEX IF NOT EXISTS: drop those two words there)
-- CREATE TABLE IF NOT EXISTS session_core_sessions (
--     key_hash CHAR(64) CHARACTER SET ascii NOT NULL,
--     data MEDIUMTEXT NOT NULL,
--     expiry TEXT,
--     expires_at DOUBLE NOT NULL,
--     version BIGINT NOT NULL,
--     user_id VARCHAR(255),
--     user_id_int BOOL,
--     created_at DOUBLE,
--     seen_at DOUBLE,
--     client TEXT,
--     PRIMARY KEY (key_hash)
-- ) CHARSET=utf8mb4;
-- CREATE INDEX IF NOT EXISTS ix_session_core_sessions_expires_at
--     ON session_core_sessions (expires_at);
-- CREATE INDEX IF NOT EXISTS ix_session_core_sessions_user_id
--     ON session_core_sessions (user_id);
