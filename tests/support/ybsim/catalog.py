"""The YugabyteDB catalog surface the emulator installs into every upstream database.

Installed once per database on its first connection through the endpoint, into ``pg_catalog`` (so
it is found with any search_path and never dumped as a user object), with
``allow_system_table_mods`` for the tables. Every table is UNLOGGED: PostgreSQL does not publish
unlogged tables, so the emulator's bookkeeping never shows up in a logical replication stream.
Behaviour and sources are listed in README.md (table "What is emulated").
"""

from __future__ import annotations

VERSION_STRING = (
    "PostgreSQL 15.12-YB-2025.1.0.0-b0 on x86_64-pc-linux-gnu, compiled by clang version 17.0.6, 64-bit"
)
SERVER_VERSION = "15.12-YB-2025.1.0.0-b0"
MARKER = "yb_sim_relprops"
INSTALL_VERSION = "11"

# Placeholders {version} {install_version} are filled with str.format: braces in SQL are doubled.
INSTALL_SQL = """
SET allow_system_table_mods = on;
SET client_min_messages = warning;

CREATE UNLOGGED TABLE IF NOT EXISTS pg_catalog.yb_sim_relprops (
    relid oid PRIMARY KEY,
    num_tablets int NOT NULL,
    num_hash_key_columns int NOT NULL,
    split_clause text,
    is_colocated boolean NOT NULL,
    tablegroup_oid oid,
    colocation_id oid,
    replident "char" NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE SEQUENCE IF NOT EXISTS pg_catalog.yb_sim_tablegroup_oid START 900000;
CREATE UNLOGGED TABLE IF NOT EXISTS pg_catalog.pg_yb_tablegroup (
    oid oid PRIMARY KEY DEFAULT pg_catalog.nextval('pg_catalog.yb_sim_tablegroup_oid')::oid,
    grpname name NOT NULL UNIQUE,
    grpowner oid NOT NULL,
    grptablespace oid,
    grpacl aclitem[],
    grpoptions text[]
);

CREATE UNLOGGED TABLE IF NOT EXISTS pg_catalog.yb_sim_slot (
    slot_name name PRIMARY KEY,
    created_at timestamptz NOT NULL,
    snapshot_ht numeric NOT NULL
);
CREATE UNLOGGED TABLE IF NOT EXISTS pg_catalog.yb_sim_slot_identity (
    slot_name name NOT NULL,
    relid oid NOT NULL,
    replident "char" NOT NULL,
    PRIMARY KEY (slot_name, relid)
);
DROP TABLE IF EXISTS pg_catalog.yb_sim_lsn;
CREATE UNLOGGED TABLE pg_catalog.yb_sim_lsn (
    slot_name name NOT NULL,
    vend pg_lsn NOT NULL,
    uend pg_lsn NOT NULL,
    PRIMARY KEY (slot_name, uend)
);

CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_version() RETURNS text LANGUAGE sql IMMUTABLE
AS $f$ SELECT {version} $f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_is_database_colocated() RETURNS boolean LANGUAGE sql STABLE
AS $f$ SELECT coalesce(pg_catalog.current_setting('yb_sim.colocated', true), 'false')::boolean $f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_table_properties(rel oid)
RETURNS TABLE (num_tablets bigint, num_hash_key_columns bigint, is_colocated boolean,
               tablegroup_oid oid, colocation_id oid)
LANGUAGE sql STABLE AS $f$
    SELECT coalesce(p.num_tablets, 1)::bigint, coalesce(p.num_hash_key_columns, 0)::bigint,
           coalesce(p.is_colocated, false), p.tablegroup_oid, p.colocation_id
    FROM (SELECT rel) r LEFT JOIN pg_catalog.yb_sim_relprops p ON p.relid = r.rel
$f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_get_range_split_clause(rel oid) RETURNS text LANGUAGE sql STABLE
AS $f$
    SELECT CASE WHEN p.relid IS NULL OR p.num_hash_key_columns > 0 OR p.is_colocated THEN NULL
                ELSE coalesce(p.split_clause, '') END
    FROM (SELECT rel) r LEFT JOIN pg_catalog.yb_sim_relprops p ON p.relid = r.rel
$f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_servers()
RETURNS TABLE (host text, port bigint, num_connections integer, node_type text, cloud text, region text,
               zone text, public_ip text, uuid text)
LANGUAGE sql STABLE AS $f$
    SELECT h, pg_catalog.current_setting('yb_sim.flag_port')::bigint, 0, 'primary', 'cloud1', 'datacenter1',
           'rack1', h, 'ybsim0000000000000000000000000000'
    FROM pg_catalog.current_setting('yb_sim.flag_host') h
$f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_raise(message text, code text, hint text) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
    RAISE EXCEPTION USING MESSAGE = message, ERRCODE = code, HINT = coalesce(hint, '');
END $f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_unsupported(name text) RETURNS text LANGUAGE plpgsql
AS $f$ BEGIN RAISE EXCEPTION '% is not supported in YugabyteDB', name USING ERRCODE = '0A000'; END $f$;
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_unsupported_lsn(name text) RETURNS pg_lsn LANGUAGE plpgsql
AS $f$ BEGIN PERFORM pg_catalog.yb_sim_unsupported(name); RETURN NULL; END $f$;
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_unsupported_bigint(name text) RETURNS bigint LANGUAGE plpgsql
AS $f$ BEGIN PERFORM pg_catalog.yb_sim_unsupported(name); RETURN NULL; END $f$;
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_unsupported_changes(name text)
RETURNS TABLE (lsn pg_lsn, xid xid, data text) LANGUAGE plpgsql
AS $f$ BEGIN PERFORM pg_catalog.yb_sim_unsupported(name); END $f$;

-- The replica identity YugabyteDB reports ('c' = CHANGE, its default), kept beside the upstream's.
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_relreplident(rel oid, upstream "char") RETURNS "char"
LANGUAGE sql STABLE AS $f$
    SELECT coalesce((SELECT replident FROM pg_catalog.yb_sim_relprops WHERE relid = rel), upstream)
$f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_identity_code(name text) RETURNS "char" LANGUAGE sql IMMUTABLE
AS $f$ SELECT CASE upper(name) WHEN 'FULL' THEN 'f' WHEN 'DEFAULT' THEN 'd' WHEN 'NOTHING' THEN 'n'
                   WHEN 'CHANGE' THEN 'c' END::"char" $f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_default_tablegroup() RETURNS oid LANGUAGE plpgsql AS $f$
DECLARE g oid;
BEGIN
    SELECT oid INTO g FROM pg_catalog.pg_yb_tablegroup WHERE grpname = 'default';
    IF g IS NULL THEN
        INSERT INTO pg_catalog.pg_yb_tablegroup (grpname, grpowner)
        VALUES ('default', (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'postgres'))
        RETURNING oid INTO g;
    END IF;
    RETURN g;
END $f$;

-- Record what YugabyteDB would know about a table just created: sharding, tablets, colocation,
-- replica identity. ords: one of HASH/ASC/DESC/DEFAULT per primary key column, or NULL for an
-- inline PRIMARY KEY (all DEFAULT).
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_note_table(
    tbl text, ords text[], tablets integer, split text, tgname text, colocation boolean)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET allow_system_table_mods = on AS $f$
DECLARE
    rel oid := tbl::regclass;
    tg oid;
    coloc boolean;
    pk oid;
    nkeys integer;
    resolved text[] := '{{}}';
    opts text[] := '{{}}';
    ident "char";
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.yb_sim_relprops WHERE relid = rel) THEN
        RETURN;  -- CREATE TABLE IF NOT EXISTS on an existing table
    END IF;
    IF tgname IS NOT NULL THEN
        SELECT oid INTO tg FROM pg_catalog.pg_yb_tablegroup WHERE grpname = tgname;
    END IF;
    coloc := tg IS NOT NULL OR (pg_catalog.yb_is_database_colocated() AND coalesce(colocation, true));
    IF coloc AND tg IS NULL THEN
        tg := pg_catalog.yb_sim_default_tablegroup();
    END IF;
    SELECT i.indexrelid, i.indnkeyatts INTO pk, nkeys FROM pg_catalog.pg_index i
    WHERE i.indrelid = rel AND i.indisprimary;
    IF pk IS NOT NULL THEN
        IF ords IS NULL THEN
            ords := array_fill('DEFAULT'::text, ARRAY[nkeys]);
        END IF;
        FOR n IN 1 .. nkeys LOOP
            resolved := resolved || CASE
                WHEN ords[n] IS NULL OR ords[n] = 'DEFAULT' THEN
                    CASE WHEN n = 1 AND NOT coloc THEN 'HASH' ELSE 'ASC' END
                ELSE ords[n] END;
            opts := opts || CASE resolved[n] WHEN 'HASH' THEN '4' WHEN 'DESC' THEN '3' ELSE '0' END;
        END LOOP;
        -- The key index was created empty a moment ago, so its sort order may still change.
        UPDATE pg_catalog.pg_index SET indoption = array_to_string(opts, ' ')::int2vector WHERE indexrelid = pk;
    END IF;
    ident := coalesce(pg_catalog.yb_sim_identity_code(
        pg_catalog.current_setting('yb_sim.yb_default_replica_identity', true)),
        pg_catalog.yb_sim_identity_code(pg_catalog.current_setting('yb_sim.flag_default_replica_identity', true)),
        'c');
    IF ident = 'f' THEN
        UPDATE pg_catalog.pg_class SET relreplident = 'f' WHERE oid = rel;
    END IF;
    INSERT INTO pg_catalog.yb_sim_relprops
        (relid, num_tablets, num_hash_key_columns, split_clause, is_colocated, tablegroup_oid, colocation_id, replident)
    VALUES (rel, CASE WHEN coloc THEN 1 ELSE coalesce(tablets, 1) END,
            (SELECT count(*) FROM unnest(resolved) o WHERE o = 'HASH'),
            CASE WHEN coloc THEN NULL ELSE split END, coloc, tg,
            CASE WHEN coloc THEN rel END, ident);
END $f$;

-- The same for an index (named, or the newest index of the table).
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_note_index(
    tbl text, idxname text, ords text[], tablets integer, split text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET allow_system_table_mods = on AS $f$
DECLARE
    rel oid := tbl::regclass;
    idx oid;
    nkeys integer;
    old int2[];
    coloc boolean;
    tg oid;
    resolved text[] := '{{}}';
    opts text[] := '{{}}';
BEGIN
    SELECT i.indexrelid, i.indnkeyatts, i.indoption::int2[] INTO idx, nkeys, old FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = rel AND (idxname IS NULL OR c.relname = idxname)
    ORDER BY i.indexrelid DESC LIMIT 1;
    IF idx IS NULL OR EXISTS (SELECT 1 FROM pg_catalog.yb_sim_relprops WHERE relid = idx) THEN
        RETURN;
    END IF;
    SELECT p.is_colocated, p.tablegroup_oid INTO coloc, tg FROM pg_catalog.yb_sim_relprops p WHERE p.relid = rel;
    coloc := coalesce(coloc, false);
    FOR n IN 1 .. nkeys LOOP
        resolved := resolved || CASE
            WHEN ords[n] IS NULL OR ords[n] = 'DEFAULT' THEN
                CASE WHEN n = 1 AND NOT coloc THEN 'HASH' ELSE 'ASC' END
            ELSE ords[n] END;
        -- HASH is an extra flag bit; the ASC/DESC bits the upstream index was built with stay.
        opts := opts || ((coalesce(old[n - 1], 0) & 3) | CASE WHEN resolved[n] = 'HASH' THEN 4 ELSE 0 END)::text;
    END LOOP;
    UPDATE pg_catalog.pg_index SET indoption = array_to_string(opts, ' ')::int2vector WHERE indexrelid = idx;
    INSERT INTO pg_catalog.yb_sim_relprops
        (relid, num_tablets, num_hash_key_columns, split_clause, is_colocated, tablegroup_oid, colocation_id, replident)
    VALUES (idx, CASE WHEN coloc THEN 1 ELSE coalesce(tablets, 1) END,
            (SELECT count(*) FROM unnest(resolved) o WHERE o = 'HASH'),
            CASE WHEN coloc THEN NULL ELSE split END, coloc, tg, CASE WHEN coloc THEN idx END, 'n');
END $f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_set_identity(tbl text, ident text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET allow_system_table_mods = on AS $f$
DECLARE rel oid := tbl::regclass;
BEGIN
    INSERT INTO pg_catalog.yb_sim_relprops
        (relid, num_tablets, num_hash_key_columns, is_colocated, replident)
    VALUES (rel, 1, 0, false, pg_catalog.yb_sim_identity_code(ident))
    ON CONFLICT (relid) DO UPDATE SET replident = excluded.replident;
END $f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_create_tablegroup(tgname text, owner text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $f$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_yb_tablegroup WHERE grpname = tgname) THEN
        RAISE EXCEPTION 'tablegroup "%" already exists', tgname USING ERRCODE = '42710';
    END IF;
    INSERT INTO pg_catalog.pg_yb_tablegroup (grpname, grpowner)
    VALUES (tgname, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = coalesce(owner, session_user)));
END $f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_check_tablegroup(tgname text) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_yb_tablegroup WHERE grpname = tgname) THEN
        RAISE EXCEPTION 'tablegroup "%" does not exist', tgname USING ERRCODE = '42704';
    END IF;
END $f$;

CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_drop_tablegroup(tgname text, if_exists boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $f$
DECLARE g oid;
BEGIN
    SELECT oid INTO g FROM pg_catalog.pg_yb_tablegroup WHERE grpname = tgname;
    IF g IS NULL THEN
        IF if_exists THEN RETURN; END IF;
        RAISE EXCEPTION 'tablegroup "%" does not exist', tgname USING ERRCODE = '42704';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.yb_sim_relprops p JOIN pg_catalog.pg_class c ON c.oid = p.relid
               WHERE p.tablegroup_oid = g) THEN
        RAISE EXCEPTION 'tablegroup "%" is not empty', tgname USING ERRCODE = '2BP01';
    END IF;
    DELETE FROM pg_catalog.pg_yb_tablegroup WHERE oid = g;
END $f$;

-- pg_get_indexdef as YugabyteDB prints it: USING lsm, a HASH column group, explicit ASC.
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_get_indexdef(idx oid, col integer, pretty boolean) RETURNS text
LANGUAGE plpgsql STABLE AS $f$
DECLARE
    def text;
    am name;
    nkeys integer;
    opts int2[];
    start integer;
    depth integer := 0;
    pos integer;
    ch text;
    quoted boolean := false;
    hashed text[] := '{{}}';
    keys text[] := '{{}}';
    k text;
BEGIN
    IF col <> 0 THEN
        RETURN pg_catalog.pg_get_indexdef(idx, col, pretty);
    END IF;
    def := pg_catalog.pg_get_indexdef(idx, 0, pretty);
    SELECT a.amname, i.indnkeyatts, i.indoption::int2[] INTO am, nkeys, opts
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
    JOIN pg_catalog.pg_am a ON a.oid = c.relam WHERE i.indexrelid = idx;
    IF am IS DISTINCT FROM 'btree' OR def IS NULL THEN
        RETURN def;
    END IF;
    start := strpos(def, ' USING btree (');
    IF start = 0 THEN
        RETURN def;
    END IF;
    start := start + length(' USING btree (');
    pos := start;
    -- find the parenthesis closing the key list (skipping quoted names and literals)
    WHILE pos <= length(def) LOOP
        ch := substr(def, pos, 1);
        IF quoted THEN
            IF ch = '"' OR ch = '''' THEN quoted := false; END IF;
        ELSIF ch = '"' OR ch = '''' THEN quoted := true;
        ELSIF ch = '(' THEN depth := depth + 1;
        ELSIF ch = ')' THEN
            EXIT WHEN depth = 0;
            depth := depth - 1;
        END IF;
        pos := pos + 1;
    END LOOP;
    FOR n IN 1 .. nkeys LOOP
        k := pg_catalog.pg_get_indexdef(idx, n, true);
        IF opts[n - 1] & 4 = 4 THEN
            hashed := hashed || k;
        ELSIF opts[n - 1] & 1 = 1 THEN
            keys := keys || (k || ' DESC' || CASE WHEN opts[n - 1] & 2 = 2 THEN '' ELSE ' NULLS LAST' END);
        ELSE
            keys := keys || (k || ' ASC' || CASE WHEN opts[n - 1] & 2 = 2 THEN ' NULLS FIRST' ELSE '' END);
        END IF;
    END LOOP;
    IF array_length(hashed, 1) = 1 THEN
        keys := (hashed[1] || ' HASH') || keys;
    ELSIF array_length(hashed, 1) > 1 THEN
        keys := ('(' || array_to_string(hashed, ', ') || ') HASH') || keys;
    END IF;
    RETURN replace(substr(def, 1, start - 1), ' USING btree (', ' USING lsm (')
        || array_to_string(keys, ', ') || substr(def, pos);
END $f$;
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_get_indexdef(idx oid) RETURNS text LANGUAGE sql STABLE
AS $f$ SELECT pg_catalog.yb_sim_get_indexdef(idx, 0, false) $f$;

-- current_setting() of YugabyteDB parameters: kept as yb_sim.<name> placeholders (the endpoint
-- sets YugabyteDB's defaults at connection start and renames them in SET/SHOW).
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_current_setting(name text, missing_ok boolean DEFAULT false)
RETURNS text LANGUAGE sql STABLE AS $f$
    SELECT CASE WHEN name LIKE 'yb\\_%' THEN pg_catalog.current_setting('yb_sim.' || name, missing_ok)
                ELSE pg_catalog.current_setting(name, missing_ok) END
$f$;

-- LSNs are per-slot counters on YugabyteDB: translate the upstream's WAL positions.
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_virtual_lsn(slot name, upstream pg_lsn) RETURNS pg_lsn
LANGUAGE sql STABLE AS $f$
    SELECT CASE WHEN upstream IS NULL THEN NULL
                ELSE coalesce((SELECT max(vend) FROM pg_catalog.yb_sim_lsn WHERE slot_name = slot AND uend <= upstream),
                              '0/0'::pg_lsn) END
$f$;

DROP VIEW IF EXISTS pg_catalog.yb_sim_replication_slots;
CREATE VIEW pg_catalog.yb_sim_replication_slots AS
    SELECT s.slot_name, s.plugin, s.slot_type, s.datoid, s.database, s.temporary, s.active, s.active_pid,
           s.xmin, s.catalog_xmin,
           CASE WHEN s.database = current_database() THEN pg_catalog.yb_sim_virtual_lsn(s.slot_name, s.restart_lsn)
                ELSE s.restart_lsn END AS restart_lsn,
           CASE WHEN s.database = current_database()
                THEN pg_catalog.yb_sim_virtual_lsn(s.slot_name, s.confirmed_flush_lsn)
                ELSE s.confirmed_flush_lsn END AS confirmed_flush_lsn,
           pg_catalog.md5(s.slot_name) AS yb_stream_id, y.snapshot_ht::int8 AS yb_restart_commit_ht
    FROM pg_catalog.pg_replication_slots s LEFT JOIN pg_catalog.yb_sim_slot y ON y.slot_name = s.slot_name;

-- TRUNCATE of a table a CDC stream holds (sqlrewrite._truncate says where YugabyteDB does this).
CREATE OR REPLACE FUNCTION pg_catalog.yb_sim_check_truncate(names text[]) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE
    n text;
    rel regclass;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE database = pg_catalog.current_database()) THEN
        RETURN;
    END IF;
    FOREACH n IN ARRAY names LOOP
        rel := pg_catalog.to_regclass(n);
        IF rel IS NOT NULL
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = rel AND c.relpersistence = 'p')
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = rel AND i.indisprimary) THEN
            RAISE EXCEPTION 'cannot truncate table % while it is part of a CDC stream', rel
                USING ERRCODE = '0A000', HINT = 'yb-master flag enable_truncate_cdcsdk_table is false';
        END IF;
    END LOOP;
END $f$;

-- Catalog data every role may read, as YugabyteDB's catalog functions are; pg_replication_slots
-- (served by the view) is readable by every role, as every pg_catalog relation is after PostgreSQL's
-- initdb (setup_privileges); YugabyteDB's copy of initdb.c was not checked.
GRANT SELECT ON pg_catalog.yb_sim_relprops, pg_catalog.pg_yb_tablegroup, pg_catalog.yb_sim_slot,
    pg_catalog.yb_sim_slot_identity, pg_catalog.yb_sim_lsn, pg_catalog.yb_sim_replication_slots TO PUBLIC;
COMMENT ON TABLE pg_catalog.yb_sim_relprops IS 'ybsim {install_version}';
"""


def install_sql() -> str:
    from psycopg import sql

    return INSTALL_SQL.format(
        version=sql.Literal(VERSION_STRING).as_string(None),
        install_version=INSTALL_VERSION,
    )
