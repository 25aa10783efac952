"""The SQL guard: one read statement, on allowed datasets only, and nothing it cannot classify."""

from __future__ import annotations

import pytest

from services.bigquery.sql_guard import MAX_SQL_BYTES, Inspection, inspect
from services.runtime.errors import InvalidArgumentError

DEFAULT = "switchboard_sample"


def check(
    sql: str, *, allowed: tuple[str, ...] = (), allow_writes: bool = False, project: str | None = "proj"
) -> Inspection:
    return inspect(
        sql, default_dataset=DEFAULT, allowed_datasets=allowed, allow_writes=allow_writes, project=project
    )


def refusal(sql: str, **kwargs: object) -> str:
    with pytest.raises(InvalidArgumentError) as caught:
        check(sql, **kwargs)  # type: ignore[arg-type]
    assert caught.value.violations and caught.value.violations[0].field == "sql"
    return caught.value.message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT name, COUNT(*) AS n FROM switchboard_sample.events GROUP BY name",
        "WITH recent AS (SELECT * FROM events WHERE timestamp > @since) SELECT COUNT(*) FROM recent",
        "SELECT 1 UNION ALL SELECT 2",
        "(SELECT 1)",
        "SELECT 1;",
        "SELECT x FROM UNNEST([1, 2, 3]) AS x",
        "SELECT * FROM `proj.switchboard_sample.events` /* ; DROP TABLE x */",
        "SELECT (SELECT MAX(timestamp) FROM switchboard_sample.events) AS latest",
    ],
)
def test_a_single_read_query_is_accepted(sql: str) -> None:
    inspection = check(sql)
    assert inspection.statement_kind == "SELECT"
    assert not inspection.writes
    assert inspection.datasets <= {DEFAULT}


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("DELETE FROM switchboard_sample.events WHERE true", "DELETE"),
        ("DROP TABLE switchboard_sample.events", "DROP TABLE"),
        (
            "CREATE TABLE switchboard_sample.copy AS SELECT * FROM switchboard_sample.events",
            "CREATE TABLE AS SELECT",
        ),
        ("INSERT INTO switchboard_sample.events (name) VALUES ('x')", "INSERT"),
        ("UPDATE switchboard_sample.events SET name = 'x' WHERE true", "UPDATE"),
        ("MERGE switchboard_sample.a USING switchboard_sample.b ON true WHEN MATCHED THEN DELETE", "MERGE"),
        ("TRUNCATE TABLE switchboard_sample.events", "TRUNCATE TABLE"),
        ("EXPORT DATA OPTIONS(uri='gs://bucket/*', format='CSV') AS SELECT 1", "EXPORT DATA"),
        ("DECLARE x INT64", "DECLARE"),
        ("SET x = 1", "SET"),
        ("CALL switchboard_sample.procedure()", "CALL"),
        ("GRANT SELECT ON TABLE switchboard_sample.events TO 'user:a@b.c'", "GRANT"),
    ],
)
def test_anything_but_a_read_is_refused_naming_what_was_found(sql: str, named: str) -> None:
    assert named in refusal(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE switchboard_sample.events",
        "SELECT 1 -- just a comment\n; DROP TABLE switchboard_sample.events",
        "BEGIN SELECT 1; END",
    ],
)
def test_more_than_one_statement_is_refused_even_behind_a_comment(sql: str) -> None:
    message = refusal(sql)
    assert "statements" in message and "exactly one" in message


def test_sql_that_does_not_parse_is_refused_with_where() -> None:
    assert "line 1, column 7" in refusal("SELEC 1")
    assert "does not parse" in refusal("SELECT 'unterminated")


def test_other_datasets_are_refused_by_name_however_they_are_written() -> None:
    assert "secret" in refusal("SELECT * FROM secret.salaries")
    assert "secret" in refusal("SELECT * FROM `proj.secret.salaries`")
    assert "other-proj.switchboard_sample" in refusal("SELECT * FROM `other-proj.switchboard_sample.events`")
    assert "secret" in refusal("SELECT * FROM switchboard_sample.events JOIN secret.t USING (user_id)")
    assert "secret" in refusal("SELECT (SELECT COUNT(*) FROM secret.t)")
    assert "region-us" in refusal("SELECT * FROM `region-us`.INFORMATION_SCHEMA.JOBS")


def test_the_allow_list_replaces_the_default_dataset() -> None:
    assert check("SELECT * FROM sales.orders", allowed=("sales",)).datasets == {"sales"}
    assert check("SELECT * FROM sales.orders", allowed=("proj.sales",)).datasets == {"sales"}
    assert DEFAULT in refusal("SELECT * FROM switchboard_sample.events", allowed=("sales",))


def test_table_functions_are_refused() -> None:
    assert "EXTERNAL_QUERY" in refusal("SELECT * FROM EXTERNAL_QUERY('connection', 'SELECT 1')")


def test_an_unqualified_table_needs_a_default_dataset() -> None:
    with pytest.raises(InvalidArgumentError, match="names no dataset"):
        inspect("SELECT * FROM events", default_dataset=None, allowed_datasets=("sales",))


def test_an_admin_may_write_but_only_one_statement_on_allowed_datasets() -> None:
    inspection = check("DELETE FROM switchboard_sample.events WHERE name = 'x'", allow_writes=True)
    assert inspection.writes and inspection.statement_kind == "DELETE"
    assert "secret" in refusal("DROP TABLE secret.t", allow_writes=True)
    assert "exactly one" in refusal(
        "SELECT 1; DELETE FROM switchboard_sample.events WHERE true", allow_writes=True
    )


def test_the_normalised_form_ignores_layout_and_comments_but_not_meaning() -> None:
    one = check("select name  from switchboard_sample.events -- hi\n where user_id = @u")
    two = check("SELECT name FROM switchboard_sample.events /* x */ WHERE user_id = @u")
    other = check("SELECT name FROM switchboard_sample.events WHERE user_id = @v")
    assert one.normalized_sql == two.normalized_sql != other.normalized_sql


def test_size_and_emptiness_are_bounded() -> None:
    assert "over the limit" in refusal("SELECT '" + "x" * MAX_SQL_BYTES + "'")
    assert "empty" in refusal("   ")
    assert "no statement" in refusal(";")


def test_a_stored_function_counts_as_its_dataset_and_builtins_as_none() -> None:
    """A persistent function runs with the querying identity's rights and can read any table it may: a
    function of another dataset or project is as far out of bounds as that dataset's tables."""
    assert "other" in refusal("SELECT other.f(1)")
    assert "evil-proj.x" in refusal("SELECT `evil-proj.x.f`()")
    assert "other" in refusal("SELECT name FROM switchboard_sample.events WHERE `other.f`(name) > 0")
    assert "other" in refusal("SELECT SAFE.other.f(1)")
    assert "not a dataset" in refusal("SELECT a.b.c.f(1)")
    assert check("SELECT switchboard_sample.f(1)").datasets == {DEFAULT}
    assert check("SELECT proj.switchboard_sample.f(1)").datasets == {DEFAULT}
    for builtin in ("NET.HOST('https://a.b/c')", "SAFE.DIVIDE(1, 0)", "KEYS.NEW_KEYSET('AEAD_AES_GCM_256')"):
        assert check(f"SELECT {builtin}").datasets == frozenset()
    assert check("SELECT HLL_COUNT.MERGE(user_id) FROM switchboard_sample.events").datasets == {DEFAULT}
