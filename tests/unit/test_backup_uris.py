"""Backups without a database: the password taken out of the URL, the maintenance URI, default paths and sizes."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from fraiseql_alembic.cli.render import human_size
from fraiseql_alembic.engine.backup import (
    client_major,
    default_path,
    maintenance_uri,
    split_password,
)


def test_split_password_keeps_every_other_parameter() -> None:
    connection = split_password(
        "postgresql://app:s%40cret@db.example.com:6432/app_prod?sslmode=verify-full"
        "&sslrootcert=%2Fetc%2Fca.pem&application_name=deploy")
    assert connection.password == "s@cret"
    assert connection.uri == ("postgresql://app@db.example.com:6432/app_prod?sslmode=verify-full"
                              "&sslrootcert=%2Fetc%2Fca.pem&application_name=deploy")
    assert connection.dbname == "app_prod"

    in_query = split_password("postgresql:///?host=/run/pg&dbname=app&password=pw&user=u")
    assert in_query.password == "pw"
    assert in_query.uri == "postgresql:///?host=%2Frun%2Fpg&dbname=app&user=u"
    assert in_query.dbname == "app"
    assert split_password("postgresql://h1,h2/app").password is None


def test_default_path_and_sizes(tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 10, 15, 0, tzinfo=timezone.utc)
    assert default_path("app", now, tmp_path) == tmp_path / "backups/app-20261124T101500Z.dump"
    assert default_path("we/ird db", now, tmp_path).name == "we_ird_db-20261124T101500Z.dump"
    assert default_path("", now, tmp_path).name == "database-20261124T101500Z.dump"
    assert [human_size(n) for n in (512, 12_345, 12_300_000, 4_500_000_000)] == [
        "512 B", "12.3 kB", "12.3 MB", "4.5 GB"]
    assert client_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)") == 15
    assert client_major("pg_dump (PostgreSQL) 17devel") == 17
    assert client_major("command not found") is None


def test_maintenance_uri_names_the_postgres_database_and_keeps_the_rest() -> None:
    assert maintenance_uri("postgresql://app@db:5432/app?sslmode=require") == (
        "postgresql://app@db:5432/postgres?sslmode=require")
    assert maintenance_uri("postgresql://app@db/?dbname=app&sslmode=verify-full") == (
        "postgresql://app@db/postgres?sslmode=verify-full")


def test_split_password_takes_the_key_passphrase_out_too() -> None:
    connection = split_password("postgresql://app:pw@h/db?sslmode=require&sslpassword=K%26Y"
                                "&sslkey=%2Fk.pem")
    assert connection.password == "pw"
    assert connection.secrets == (("sslpassword", "K&Y"),)
    assert connection.uri == "postgresql://app@h/db?sslmode=require&sslkey=%2Fk.pem"
