"""The SQL guard: what caller-supplied SQL may do before it reaches the warehouse.

The SQL is parsed with sqlglot's BigQuery dialect and must be exactly one read statement: a `SELECT`, a
`WITH … SELECT`, or a set operation (`UNION`, `INTERSECT`, `EXCEPT`) of those. Everything else — DML, DDL,
scripting, `EXPORT DATA`, `LOAD DATA`, `CALL`, several statements, SQL the parser cannot read — is refused
with a message naming what was found. An admin may lift the read-only rule per request (`allow_writes`);
the single statement and the dataset allow-list still hold.

Every table the statement names, written or read, must be in an allowed dataset: `allowed_datasets`, or the
default dataset alone when that list is empty. A table function (`EXTERNAL_QUERY`, `ML.PREDICT`, …) could
reach past the allow-list, so none is accepted.

The guard fails closed: SQL it cannot classify does not run. It is domain code (no grpc): its refusals are
`InvalidArgumentError`s, which the one mapping turns into 400.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from services.runtime.errors import InvalidArgumentError

MAX_SQL_BYTES: Final = 100 * 1024
"""The longest SQL accepted, in UTF-8 bytes."""

# sqlglot logs a warning (with the SQL in it) when it falls back to an opaque command; the guard refuses
# those anyway, and caller SQL does not belong in the logs.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_READ_ROOTS: Final = (exp.Select, exp.SetOperation, exp.Subquery)
_FIELD: Final = "sql"


@dataclass(frozen=True)
class Inspection:
    """What the guard found in an accepted statement."""

    statement_kind: str
    """e.g. `SELECT`, `INSERT`, `CREATE TABLE AS SELECT`."""
    writes: bool
    """True for anything but a read (only ever true with `allow_writes`)."""
    datasets: frozenset[str]
    """Every dataset the statement touches, as `dataset` or `project.dataset` when another project's."""
    normalized_sql: str
    """The statement regenerated canonically (whitespace, keyword case, comments dropped): for cache keys."""


def inspect(
    sql: str,
    *,
    default_dataset: str | None,
    allowed_datasets: Sequence[str],
    allow_writes: bool = False,
    project: str | None = None,
) -> Inspection:
    """Accepts `sql` or raises `InvalidArgumentError` saying what is wrong and what to send instead.

    `project` is the project queries run in: a table qualified with it counts as unqualified.
    """
    statement = _one_statement(sql)
    kind = statement_kind(statement)
    writes = not isinstance(statement, _READ_ROOTS) or _has_write_inside(statement)
    if writes and not allow_writes:
        raise InvalidArgumentError.for_field(
            _FIELD,
            f"found a {kind} statement; only one read query (SELECT or WITH … SELECT) is accepted",
        )
    datasets = _datasets(statement, default_dataset=default_dataset, project=project)
    allowed = _allowed(allowed_datasets, default_dataset, project)
    refused = sorted(name for name in datasets if name not in allowed)
    if refused:
        listed = ", ".join(sorted(allowed)) or "none (no default dataset is configured)"
        raise InvalidArgumentError.for_field(
            _FIELD,
            f"the query touches dataset(s) {', '.join(refused)}, which are not allowed; allowed: {listed}",
        )
    return Inspection(
        statement_kind=kind,
        writes=writes,
        datasets=frozenset(datasets),
        normalized_sql=statement.sql(dialect="bigquery", comments=False),
    )


def statement_kind(statement: exp.Expr) -> str:
    """A statement's kind as a person names it: `DELETE`, `DROP TABLE`, `EXPORT DATA`, …"""
    if isinstance(statement, exp.Subquery):
        return statement_kind(statement.this)
    if isinstance(statement, _READ_ROOTS):
        return "SELECT"
    if isinstance(statement, (exp.Drop, exp.Alter, exp.Create)):
        return _ddl_kind(statement)
    named = {
        exp.Insert: "INSERT",
        exp.Update: "UPDATE",
        exp.Delete: "DELETE",
        exp.Merge: "MERGE",
        exp.TruncateTable: "TRUNCATE TABLE",
        exp.Export: "EXPORT DATA",
        exp.LoadData: "LOAD DATA",
        exp.Declare: "DECLARE (scripting)",
        exp.Set: "SET (scripting)",
        exp.Grant: "GRANT",
    }
    for kind_class, name in named.items():
        if isinstance(statement, kind_class):
            return name
    if isinstance(statement, exp.Command):
        return f"{str(statement.this).upper()} (a command or script)"
    return type(statement).__name__.upper()


def _ddl_kind(statement: exp.Expr) -> str:
    verb = (
        "DROP"
        if isinstance(statement, exp.Drop)
        else "ALTER"
        if isinstance(statement, exp.Alter)
        else "CREATE"
    )
    kind = str(statement.args.get("kind") or "").upper()
    as_select = " AS SELECT" if verb == "CREATE" and isinstance(statement.expression, exp.Query) else ""
    return " ".join(part for part in (verb, kind) if part) + as_select


def _one_statement(sql: str) -> exp.Expr:
    if not sql.strip():
        raise InvalidArgumentError.for_field(_FIELD, "is empty; send one SELECT statement")
    size = len(sql.encode())
    if size > MAX_SQL_BYTES:
        raise InvalidArgumentError.for_field(
            _FIELD, f"is {size} bytes, over the limit of {MAX_SQL_BYTES}; send a shorter query"
        )
    try:
        parsed = sqlglot.parse(sql, read="bigquery")
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        what = first.get("description", "a syntax error") if first else "a syntax error"
        raise InvalidArgumentError.for_field(
            _FIELD, f"does not parse as BigQuery SQL: {what}{where}; only one SELECT statement is accepted"
        ) from None
    except SqlglotError as error:
        raise InvalidArgumentError.for_field(
            _FIELD, f"does not parse as BigQuery SQL ({type(error).__name__}); check quotes and brackets"
        ) from None
    statements = [statement for statement in parsed if statement is not None]
    if not statements:
        raise InvalidArgumentError.for_field(_FIELD, "holds no statement; send one SELECT statement")
    if len(statements) > 1:
        kinds = ", ".join(statement_kind(statement) for statement in statements)
        raise InvalidArgumentError.for_field(
            _FIELD, f"holds {len(statements)} statements ({kinds}); send exactly one"
        )
    return statements[0]


_WRITE_NODES: Final = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Export,
    exp.LoadData,
    exp.Command,
    exp.Declare,
    exp.Set,
    exp.Grant,
)


def _has_write_inside(statement: exp.Expr) -> bool:
    return any(isinstance(node, _WRITE_NODES) for node in statement.walk())


# BigQuery's own function namespaces (`NET.HOST`, `HLL_COUNT.MERGE`, `SAFE.` …). Any other qualifier of a
# function is a dataset (`ds.f`, `project.ds.f`): a stored function runs with the querying identity's
# rights and can read tables, so its dataset must be allowed like a table's.
_BUILTIN_NAMESPACES: Final = frozenset(
    {"SAFE", "NET", "HLL_COUNT", "KLL_QUANTILES", "AEAD", "KEYS", "ML", "AI", "OBJ"}
)


def _function_datasets(statement: exp.Expr) -> Iterator[list[str]]:
    """The qualifier of every dataset-qualified function call, as its parts (`["p", "ds"]`)."""
    for node in statement.walk():
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            parts = node.this.sql(dialect="bigquery").replace("`", "").split(".")
        elif isinstance(node, exp.Anonymous) and "." in str(node.name):
            parts = str(node.name).replace("`", "").split(".")[:-1]
        else:
            continue
        if parts and parts[0].upper() == "SAFE":
            parts = parts[1:]
        if parts and not (len(parts) == 1 and parts[0].upper() in _BUILTIN_NAMESPACES):
            yield parts


def _datasets(statement: exp.Expr, *, default_dataset: str | None, project: str | None) -> set[str]:
    cte_names = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
    datasets: set[str] = set()
    for parts in _function_datasets(statement):
        if len(parts) > 2:
            raise InvalidArgumentError.for_field(
                _FIELD, f"calls a function of {'.'.join(parts)[:80]}, which is not a dataset"
            )
        qualifier, dataset = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
        datasets.add(f"{qualifier}.{dataset}" if qualifier and qualifier != project else dataset)
    for table in statement.find_all(exp.Table):
        if not table.name:
            function = table.this.sql(dialect="bigquery") if table.this else "a table function"
            raise InvalidArgumentError.for_field(
                _FIELD, f"calls the table function {function[:80]}; table functions are not allowed"
            )
        if not table.db:
            if table.name in cte_names:
                continue
            if default_dataset is None:
                raise InvalidArgumentError.for_field(
                    _FIELD,
                    f"table {table.name} names no dataset and none is configured; write dataset.{table.name}",
                )
            datasets.add(default_dataset)
            continue
        if table.catalog and table.catalog != project:
            datasets.add(f"{table.catalog}.{table.db}")
        else:
            datasets.add(table.db)
    return datasets


def _allowed(allowed_datasets: Iterable[str], default_dataset: str | None, project: str | None) -> set[str]:
    allowed = {name.strip() for name in allowed_datasets if name.strip()}
    if project:  # `our-project.ds` is the same dataset as `ds`
        allowed = {name.removeprefix(f"{project}.") for name in allowed}
    if not allowed and default_dataset:
        allowed = {default_dataset}
    return allowed
