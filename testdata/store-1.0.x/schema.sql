-- The database schema of the 1.0.1/1.0.2 gateway, as spec/SEED-1.0.x.md §5.6 describes it:
-- sqlx's migration table (`PRAGMA user_version` stays 0), then the gateway's one migration
-- (20210921120000_create_initial_tables). Tests build 1.0.x stores from this file and fill
-- every table, to check that a real 1.0.x gateway's store upgrades.
CREATE TABLE _sqlx_migrations
(
    version        BIGINT PRIMARY KEY,
    description    TEXT    NOT NULL,
    installed_on   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success        BOOLEAN NOT NULL,
    checksum       BLOB    NOT NULL,
    execution_time BIGINT  NOT NULL
);

CREATE TABLE shared_keys
(
    client_address_bs58                      TEXT NOT NULL PRIMARY KEY UNIQUE,
    derived_aes128_ctr_blake3_hmac_keys_bs58 TEXT NOT NULL
);

CREATE TABLE message_store
(
    id                  INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    client_address_bs58 TEXT    NOT NULL,
    content             BLOB    NOT NULL
);

CREATE TABLE available_bandwidth
(
    client_address_bs58 TEXT    NOT NULL PRIMARY KEY UNIQUE,
    available           INTEGER NOT NULL
);

CREATE INDEX `message_store_index` ON `message_store` (`client_address_bs58`, `content`);

INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
VALUES (20210921120000, 'create initial tables', 1, x'00', 1000000);
