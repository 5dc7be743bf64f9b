-- Who may do what in the warehouse (applied by `etl db init`, as an administrator,
-- after the schema, the aggregates, the analytics views and the BI views).
-- docs/warehouse.md "Roles" explains the design; docs/jdbc_setup.md the BI side.
--
-- Three NOLOGIN group roles, one per part; the logins (etl_pipeline,
-- etl_dashboard, etl_bi by default) are created by etl/warehouse/access.py from
-- passwords in the environment and made members:
--   etl_writer        the pipeline. OWNS every object in schemas public and bi
--                     (REFRESH MATERIALIZED VIEW, refresh_continuous_aggregate
--                     and the loader's index rebuilds need the owner), may
--                     create temp staging tables. Not a superuser, cannot
--                     create roles or databases.
--   dashboard_reader  the Flask and Streamlit dashboards: SELECT on exactly the
--                     relations they query (aggregates, analytics views, run
--                     history, quarantine COUNTS); not the quarantine table
--                     (raw_record holds source rows as received), not the facts.
--   bi_reader         Tableau, Power BI, Looker, DBeaver: USAGE on schema bi
--                     only, SELECT on its views. No USAGE on public, so none of
--                     the internals (quarantine, audit, ingest state, staging)
--                     can be named, whatever the grants inside it.
-- Two more for the dashboards' optional parts, granted to a dashboard login by an
-- administrator only where that part is wanted (docs/warehouse.md "Roles"):
--   controls_reader   the controls pages: SELECT on the pipeline's own records,
--                     quarantine's raw records included (sql/grants.sql).
--   etl_uploader      the upload part (DASHBOARD_JOBS=1): the jobs table, and a
--                     job's quarantine, audit rows and scores.
-- Guard rails are privileges, not session settings (which a login can reset for
-- itself): no CREATE on any schema, no TEMP, no large objects, no write grant.
-- Roles are cluster-wide; grants are per database, so this runs in each warehouse.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['etl_writer', 'dashboard_reader', 'bi_reader', 'controls_reader', 'etl_uploader'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- exists (or created concurrently)
        END;
    END LOOP;
END $$;

CREATE SCHEMA IF NOT EXISTS bi;

-- An administrator that is not a superuser (CREATEROLE on a managed server) can
-- only give objects to a role it is a member of.
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT etl_writer TO %I', current_user);
    END IF;
END $$;

-- Nobody gets anything by default (PUBLIC is every role, the BI logins included).
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO etl_writer', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO dashboard_reader, bi_reader, controls_reader, etl_uploader',
                   current_database());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM dashboard_reader, bi_reader, controls_reader, etl_uploader',
                   current_database());
END $$;
REVOKE ALL ON SCHEMA public, bi FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM bi_reader;
GRANT USAGE, CREATE ON SCHEMA public, bi TO etl_writer;
GRANT USAGE ON SCHEMA public TO dashboard_reader, controls_reader, etl_uploader;
REVOKE CREATE ON SCHEMA public, bi FROM dashboard_reader, bi_reader, controls_reader, etl_uploader;
GRANT USAGE ON SCHEMA bi TO bi_reader;

-- Large objects live outside every schema and are created by whoever calls these
-- (even in a read-only transaction): only the owner role may.
-- (Needs a superuser: they belong to the bootstrap superuser.)
DO $$
BEGIN
    REVOKE EXECUTE ON FUNCTION lo_creat(integer), lo_create(oid), lo_from_bytea(oid, bytea),
                               lo_import(text), lo_import(text, oid) FROM PUBLIC;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'large-object creation is still open to every role: run etl db init as a superuser';
END $$;

-- TimescaleDB grants SELECT on its catalog (_timescaledb_*, timescaledb_information,
-- ...) to PUBLIC, so every BI tool would list some 40 extension relations beside
-- the warehouse's. Only the pipeline needs them (etl db status, the loader); the
-- extension's own code reads its catalog without these grants (continuous
-- aggregates still answer the BI login), and its jobs run as their owner.
-- ALTER EXTENSION ... UPDATE can add relations: rerun `etl db init` after one.
DO $$
DECLARE
    s text;
BEGIN
    FOR s IN
        SELECT n.nspname FROM pg_namespace n
          JOIN pg_depend d ON d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e'
          JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'timescaledb'
    LOOP
        EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA %I FROM PUBLIC', s);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO etl_writer', s);
    END LOOP;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'TimescaleDB''s catalog stays listed for every role: run etl db init as a superuser';
END $$;

-- etl_writer owns what init (run by an administrator) created. Owners keep
-- their privileges, so this is also the writer's DML; members inherit it.
-- (TimescaleDB's continuous aggregates are views to PostgreSQL but must be
-- altered as materialized views; the extension passes the owner on to their
-- materialization hypertables, and a hypertable's to its chunks.)
DO $$
DECLARE
    obj record;
    caggs oid[] := '{}';
BEGIN
    IF to_regclass('_timescaledb_catalog.continuous_agg') IS NOT NULL THEN
        EXECUTE $q$SELECT coalesce(array_agg(format('%I.%I', user_view_schema, user_view_name)::regclass::oid), '{}')
                     FROM _timescaledb_catalog.continuous_agg$q$ INTO caggs;
    END IF;
    FOR obj IN
        SELECT c.oid::regclass AS rel,
               CASE WHEN c.oid = ANY (caggs) THEN 'MATERIALIZED VIEW'
                    WHEN c.relkind = 'v' THEN 'VIEW' WHEN c.relkind = 'm' THEN 'MATERIALIZED VIEW'
                    WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('public', 'bi') AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
           AND c.relowner <> 'etl_writer'::regrole
           -- a sequence owned by a column moves with its table
           AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d
                                                 WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
           AND NOT EXISTS (SELECT 1 FROM pg_depend d  -- objects of extensions stay theirs
                            WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO etl_writer', obj.kind, obj.rel);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS fn
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('public', 'bi') AND p.proowner <> 'etl_writer'::regrole
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO etl_writer', obj.fn);
    END LOOP;
END $$;

-- Then sql/grants.sql: what each reader may SELECT.
