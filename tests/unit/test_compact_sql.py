"""The hot statements are sent compacted: comments and layout go, literals stay as written."""

from sqlalchemy.dialects import postgresql

from shared.store import attempts, claims, events
from shared.store.dialect import compact

# psycopg keeps its conversion of a statement's placeholders only up to this many bytes.
PSYCOPG_CACHED_BYTES = 4096


def test_literals_stay_as_written_and_comments_go():
    sql = """
        SELECT 'two  spaces -- not a comment', x  -- a comment, it's not SQL
             , ( y )  =  'it''s  (kept)'
    """
    assert compact(sql) == "SELECT 'two  spaces -- not a comment',x,(y)='it''s  (kept)'"


def test_the_hot_statements_fit_psycopgs_cache():
    # Written out, the publish statement is half as long again; compacted, psycopg converts
    # each of them once per process instead of on every execution.
    for statement in (events._PG_PUBLISH, claims._PG_CLAIM, attempts._PG_RECORD):
        sql = str(statement.statement.compile(dialect=postgresql.psycopg.dialect()))
        assert len(compact(sql).encode()) <= PSYCOPG_CACHED_BYTES
