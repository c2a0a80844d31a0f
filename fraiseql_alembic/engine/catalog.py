"""A database's schema read from PostgreSQL's own catalogs, for ``fraiseql migrate drift``.

One query per kind of object (:data:`fraiseql_alembic.project.drift.KINDS`), each
returning rows keyed by a name (``schema.table``, ``schema.table.column``,
``schema.function(argument types)``, ...) with normalised attributes: definitions as
PostgreSQL's ``pg_get_*def`` functions print them under ``search_path = pg_catalog`` (so
every name outside pg_catalog is schema-qualified the same way on both databases), never
an OID, an owner or a grantor (the shadow database's roles are not the live one's).

Left out: PostgreSQL's own schemas (``pg_*``, ``information_schema``), what belongs to an
extension (its functions, types, tables: the extension itself is compared, with its
version), the owner's own privileges, and our bookkeeping tables (:data:`BOOKKEEPING`,
in any schema) with everything that belongs to them.
"""

from __future__ import annotations

from typing import Any

from ..errors import DatabaseError
from ..project.drift import KINDS
from ..secrets import mask_url
from .database import VERSION_TABLE
from .history import PROGRESS_TABLE, SEGMENTS_TABLE
from .history import TABLE as HISTORY_TABLE
from .locking import LEASE_TABLE
from .session import open_dbapi
from .translate import database_error

#: The tables fraiseql-alembic and Alembic keep in a migrated database: never compared.
BOOKKEEPING = frozenset({HISTORY_TABLE, PROGRESS_TABLE, SEGMENTS_TABLE, LEASE_TABLE,
                         VERSION_TABLE})

_OURS = "{n}.nspname !~ '^pg_' AND {n}.nspname <> 'information_schema'"


def _not_extension_member(catalog: str, oid: str) -> str:
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = '{catalog}'::regclass "
            f"AND x.objid = {oid} AND x.deptype = 'e')")


_RELATION = f"{_OURS.format(n='n')} AND {_not_extension_member('pg_class', 'c.oid')}"

# Each query's first column is the name, the second the bookkeeping table it belongs to
# (or NULL), the rest the attributes under their column names.
_QUERIES: dict[str, str] = {
    "schema": f"""
SELECT n.nspname, NULL FROM pg_namespace n
WHERE {_OURS.format(n='n')} AND {_not_extension_member('pg_namespace', 'n.oid')}""",
    "extension": """
SELECT e.extname, NULL, n.nspname AS schema, e.extversion AS version
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace""",
    "type": f"""
SELECT n.nspname || '.' || t.typname, NULL,
  CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'c' THEN 'composite' WHEN 'd' THEN 'domain'
    WHEN 'r' THEN 'range' WHEN 'b' THEN 'base' ELSE t.typtype::text END AS type,
  CASE t.typtype
    WHEN 'e' THEN (SELECT string_agg(quote_literal(e.enumlabel), ', '
                                     ORDER BY e.enumsortorder)
                   FROM pg_enum e WHERE e.enumtypid = t.oid)
    WHEN 'c' THEN (SELECT string_agg(quote_ident(a.attname) || ' '
                                     || format_type(a.atttypid, a.atttypmod), ', '
                                     ORDER BY a.attnum)
                   FROM pg_attribute a
                   WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
    WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod)
    WHEN 'r' THEN (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r
                   WHERE r.rngtypid = t.oid)
  END AS definition,
  CASE WHEN t.typtype = 'd' THEN t.typnotnull END AS not_null,
  t.typdefault AS default
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE {_OURS.format(n='n')} AND {_not_extension_member('pg_type', 't.oid')}
  AND t.typtype <> 'm'
  AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
  AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)""",
    "sequence": f"""
SELECT n.nspname || '.' || c.relname, coalesce(oc.relname, c.relname),
  format_type(s.seqtypid, NULL) AS type, s.seqstart AS start, s.seqincrement AS increment,
  s.seqmin AS minimum, s.seqmax AS maximum, s.seqcache AS cache, s.seqcycle AS cycle,
  on_.nspname || '.' || oc.relname || '.' || oa.attname AS owned_by
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
LEFT JOIN pg_class oc ON oc.oid = d.refobjid
LEFT JOIN pg_namespace on_ ON on_.oid = oc.relnamespace
LEFT JOIN pg_attribute oa ON oa.attrelid = d.refobjid AND oa.attnum = d.refobjsubid
WHERE {_RELATION}""",
    "table": f"""
SELECT n.nspname || '.' || c.relname, c.relname,
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
    ELSE 'foreign table' END AS type,
  c.relpersistence = 'u' AS unlogged,
  c.relrowsecurity AS row_level_security, c.relforcerowsecurity AS force_row_level_security,
  CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
  CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
  (SELECT string_agg(pn.nspname || '.' || pc.relname, ', ' ORDER BY i.inhseqno)
   FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
   JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid) AS inherits,
  array_to_string(c.reloptions, ', ') AS options
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f') AND {_RELATION}""",
    "column": f"""
SELECT n.nspname || '.' || c.relname || '.' || a.attname, c.relname,
  format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
  CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END AS default,
  CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END AS identity,
  CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END AS generated,
  CASE WHEN a.attcollation <> t.typcollation THEN co.collname END AS collation,
  row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f') AND {_RELATION}""",
    "constraint": f"""
SELECT n.nspname || '.' || coalesce(c.relname, t.typname) || '.' || con.conname, c.relname,
  CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
    WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check' WHEN 'x' THEN 'exclusion'
    WHEN 't' THEN 'trigger' ELSE con.contype::text END AS type,
  pg_get_constraintdef(con.oid) AS definition, con.convalidated AS validated
FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
LEFT JOIN pg_class c ON c.oid = con.conrelid
LEFT JOIN pg_type t ON t.oid = con.contypid
WHERE {_OURS.format(n='n')} AND (c.oid IS NOT NULL OR t.oid IS NOT NULL)
  AND (c.oid IS NULL OR {_not_extension_member('pg_class', 'c.oid')})
  AND (t.oid IS NULL OR {_not_extension_member('pg_type', 't.oid')})""",
    "index": f"""
SELECT n.nspname || '.' || ic.relname, c.relname,
  n.nspname || '.' || c.relname AS table, pg_get_indexdef(i.indexrelid) AS definition,
  i.indisvalid AS valid, i.indisclustered AS clustered
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE {_RELATION}""",
    "view": f"""
SELECT n.nspname || '.' || c.relname, NULL, pg_get_viewdef(c.oid) AS definition,
  array_to_string(c.reloptions, ', ') AS options
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'v' AND {_RELATION}""",
    "materialized view": f"""
SELECT n.nspname || '.' || c.relname, NULL, pg_get_viewdef(c.oid) AS definition,
  array_to_string(c.reloptions, ', ') AS options
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'm' AND {_RELATION}""",
    "function": f"""
SELECT n.nspname || '.' || p.proname || '(' || oidvectortypes(p.proargtypes)
  || ')', NULL,
  CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure'
    WHEN 'a' THEN 'aggregate' ELSE 'window function' END AS type,
  CASE p.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE'
    ELSE 'VOLATILE' END AS volatility,
  CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END AS definition,
  pg_get_function_result(p.oid) AS result
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE {_OURS.format(n='n')} AND {_not_extension_member('pg_proc', 'p.oid')}""",
    "trigger": f"""
SELECT n.nspname || '.' || c.relname || '.' || tg.tgname, c.relname,
  pg_get_triggerdef(tg.oid) AS definition,
  CASE tg.tgenabled WHEN 'O' THEN 'enabled' WHEN 'D' THEN 'disabled'
    WHEN 'R' THEN 'replica' ELSE 'always' END AS enabled
FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT tg.tgisinternal AND {_RELATION}""",
    "policy": f"""
SELECT n.nspname || '.' || c.relname || '.' || p.polname, c.relname,
  CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
    WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command,
  p.polpermissive AS permissive,
  (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END, ', '
                     ORDER BY 1) FROM unnest(p.polroles) r) AS roles,
  pg_get_expr(p.polqual, p.polrelid) AS using,
  pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_RELATION}""",
    # who may do what beyond the owner, per object: grantee: PRIVILEGE, ... (* = grantable)
    "grant": f"""
WITH objects(on_, name, table_, acl, owner) AS (
  SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view'
      WHEN 'm' THEN 'materialized view' ELSE 'table' END,
    n.nspname || '.' || c.relname, c.relname,
    coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                  c.relowner)), c.relowner
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND {_RELATION}
  UNION ALL
  SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname, c.relname, a.attacl,
    c.relowner
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND {_RELATION}
  UNION ALL
  SELECT 'schema', n.nspname, NULL, coalesce(n.nspacl, acldefault('n', n.nspowner)),
    n.nspowner
  FROM pg_namespace n
  WHERE {_OURS.format(n='n')} AND {_not_extension_member('pg_namespace', 'n.oid')}
  UNION ALL
  SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
    n.nspname || '.' || p.proname || '(' || oidvectortypes(p.proargtypes) || ')',
    NULL, coalesce(p.proacl, acldefault('f', p.proowner)), p.proowner
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE {_OURS.format(n='n')} AND {_not_extension_member('pg_proc', 'p.oid')}
), granted AS (
  SELECT o.on_, o.name, o.table_,
    CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee)::text END AS who,
    g.privilege_type || CASE WHEN g.is_grantable THEN '*' ELSE '' END AS what
  FROM objects o, aclexplode(o.acl) g WHERE g.grantee <> o.owner
)
SELECT name, table_, on_ AS on,
  string_agg(who || ': ' || privileges, '; ' ORDER BY who) AS privileges
FROM (SELECT on_, name, table_, who, string_agg(what, ', ' ORDER BY what) AS privileges
      FROM granted GROUP BY on_, name, table_, who) per_grantee
GROUP BY on_, name, table_""",
    "comment": """
SELECT o.identity, CASE WHEN d.classoid = 'pg_class'::regclass
    THEN (SELECT relname FROM pg_class WHERE oid = d.objoid) END,
  o.type AS on, d.description AS comment
FROM pg_description d, pg_identify_object(d.classoid, d.objoid, d.objsubid) o
WHERE (o.schema IS NULL OR (o.schema !~ '^pg_' AND o.schema <> 'information_schema'))
  AND (d.objoid >= 16384 OR d.classoid = 'pg_namespace'::regclass)  -- not initdb's
  AND o.type NOT IN ('extension', 'language')
  AND d.classoid <> 'pg_description'::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = d.classoid
                  AND x.objid = d.objoid AND x.deptype = 'e')
  AND (d.classoid <> 'pg_namespace'::regclass OR NOT (o.identity ~ '^pg_'
       OR o.identity = 'information_schema'))
  AND (d.classoid <> 'pg_class'::regclass OR EXISTS (
       SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.oid = d.objoid AND {relation}))""".replace("{relation}", _RELATION),
}
assert set(_QUERIES) == set(KINDS)

Catalog = dict[str, dict[str, dict[str, Any]]]


def read_catalog(url: str) -> Catalog:
    """Every object of the database at ``url`` by kind and name (see the module's
    docstring), read in one read-only transaction."""
    connection = open_dbapi(url, application_name="fraiseql-migrate drift")
    try:
        connection.set_session(readonly=True)
        with connection, connection.cursor() as cursor:
            cursor.execute("SET LOCAL search_path = pg_catalog")
            catalog: Catalog = {}
            for kind in KINDS:
                cursor.execute(_QUERIES[kind])
                columns = [column.name for column in cursor.description or ()][2:]
                catalog[kind] = {
                    str(row[0]): dict(zip(columns, row[2:], strict=True))
                    for row in cursor.fetchall() if row[1] not in BOOKKEEPING
                }
        return catalog
    except Exception as err:
        wrapped = database_error(err)
        if wrapped is None:
            raise
        raise DatabaseError(
            f"Cannot read the schema of {mask_url(url)}: {wrapped.message}"
        ) from err
    finally:
        connection.close()

