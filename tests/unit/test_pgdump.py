"""pg_dump output handling: TOC entries, loader phases, filters, large objects (no server needed)."""

from __future__ import annotations

from ybrewind.ysql import pgdump
from ybrewind.ysql.catalog import Filters
from ybrewind.ysql.ddl import PHASE_FOREIGN_KEYS, PHASE_INDEXES, PHASE_REFRESH, PHASE_TABLE_EXTRAS
from ybrewind.ysql.dump import large_object_statements

POST = """--
-- PostgreSQL database dump
--

\\restrict abc

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: postgres
--

CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS $$
--
-- Name: fake; Type: INDEX; Schema: public; Owner: postgres
--
SELECT 1;
$$;

SET default_tablespace = fast;

--
-- Name: "T.1" t_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
--

ALTER TABLE ONLY public."T.1"
    ADD CONSTRAINT t_pkey PRIMARY KEY (id);

--
-- Name: CONSTRAINT t_pkey ON public."T.1"; Type: COMMENT; Schema: public; Owner: postgres
--

COMMENT ON CONSTRAINT t_pkey ON public."T.1" IS 'k';

SET default_tablespace = '';

--
-- Name: i; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX i ON ONLY public.p USING btree (a);

--
-- Name: i1; Type: INDEX ATTACH; Schema: public; Owner: postgres
--

ALTER INDEX public.i ATTACH PARTITION public.i1;

--
-- Name: p1 trg; Type: TRIGGER; Schema: public; Owner: postgres
--

ALTER TABLE public.p1 DISABLE TRIGGER trg;

--
-- Name: ybrewind_ddl_end; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER ybrewind_ddl_end ON ddl_command_end EXECUTE FUNCTION ybrewind.log_ddl();

--
-- Name: mv; Type: MATERIALIZED VIEW DATA; Schema: public; Owner: postgres
--

REFRESH MATERIALIZED VIEW public.mv;

--
-- PostgreSQL database dump complete
--

\\unrestrict abc
"""


def test_entries_come_from_headers_outside_statements() -> None:
    preamble, entries = pgdump.parse(POST)
    assert preamble == ["SET statement_timeout = 0", "SELECT pg_catalog.set_config('search_path', '', false)"]
    assert [e.type for e in entries] == [
        "FUNCTION", "CONSTRAINT", "COMMENT", "INDEX", "INDEX ATTACH", "TRIGGER", "EVENT TRIGGER",
        "MATERIALIZED VIEW DATA",
    ]
    assert "Name: fake" in entries[0].statements[0]  # the header-like comment stays in the function body
    # a tablespace setting printed before a header belongs to the entry after it
    assert entries[1].statements[0] == "SET default_tablespace = fast"


def test_post_data_phases_and_groups() -> None:
    preamble, entries = pgdump.parse(POST)
    out = pgdump.post_data_statements(preamble, entries[1:])
    by_sql = {p.sql: p for p in out}
    pk = by_sql["ALTER TABLE ONLY public.\"T.1\"\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id)"]
    assert (pk.phase, pk.group) == (PHASE_INDEXES, 'public."T.1"')
    comment = by_sql["COMMENT ON CONSTRAINT t_pkey ON public.\"T.1\" IS 'k'"]
    assert (comment.phase, comment.group) == (PHASE_INDEXES, 'public."T.1"')
    assert by_sql["CREATE INDEX i ON ONLY public.p USING btree (a)"].group == "public.p"
    assert by_sql["ALTER INDEX public.i ATTACH PARTITION public.i1"].phase == PHASE_FOREIGN_KEYS
    trigger = by_sql["ALTER TABLE public.p1 DISABLE TRIGGER trg"]
    assert (trigger.phase, trigger.group) == (PHASE_TABLE_EXTRAS, "")  # one ordered stream, after its parent's
    assert by_sql["REFRESH MATERIALIZED VIEW public.mv"].phase == PHASE_REFRESH
    assert not any("ybrewind_ddl_end" in p.sql for p in out)  # the archiver's own event trigger
    # the entry's tablespace is set, then reset so it does not leak into the group's next entry
    group = [p.sql for p in out if p.group == 'public."T.1"']
    assert group[0] == "SET default_tablespace = fast" and group[2] == "SET default_tablespace = ''"
    assert [p.phase for p in out] == sorted(p.phase for p in out)
    assert [p.sql for p in out if p.phase == 0] == preamble


def test_data_only_keeps_refreshes() -> None:
    preamble, entries = pgdump.parse(POST)
    out = pgdump.post_data_statements(preamble, entries, data_only=True)
    assert [p.sql for p in out if p.phase] == ["REFRESH MATERIALIZED VIEW public.mv"]


def test_filters_keep_their_meaning() -> None:
    args = pgdump.filter_args(Filters(schemas=["Sales*"], exclude_schemas=['a"b'], tables=["t?", "s.X*"],
                                      exclude_tables=["a.b.c"]))
    assert args == ['--schema="Sales"*', '--exclude-schema="a""b"', '--table=*."t"?', '--table="s"."X"*',
                    '--exclude-table="a"."b.c"']


def test_large_objects_become_lo_put() -> None:
    entries = [pgdump.Entry("BLOBS", "BLOBS", "-", "", [
        "BEGIN", "SELECT pg_catalog.lo_open('16531', 131072)", "SELECT pg_catalog.lowrite(0, '\\x6869')",
        "SELECT pg_catalog.lowrite(0, '\\x21')", "SELECT pg_catalog.lo_close(0)", "COMMIT",
    ])]
    assert large_object_statements(entries) == [
        "SELECT pg_catalog.lo_put('16531', 0, '\\x6869')",
        "SELECT pg_catalog.lo_put('16531', 2, '\\x21')",
    ]
