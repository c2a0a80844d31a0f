"""Passwords never reach the screen: URL userinfo, password= and sslpassword= parameters."""

from __future__ import annotations

from fraiseql_alembic.engine.backup import Backup
from fraiseql_alembic.secrets import mask_url, password_of, redact


def test_url_passwords_and_key_passphrases_are_masked() -> None:
    assert mask_url("postgresql://app:pw@h/db?sslpassword=KEYPASS&sslmode=require") == (
        "postgresql://app:***@h/db?sslpassword=***&sslmode=require")
    assert mask_url("postgresql://app@h/db?password=abc") == "postgresql://app@h/db?password=***"
    assert redact("connect failed: host=h password='a b' sslpassword=xyz port=5") == (
        "connect failed: host=h password=*** sslpassword=*** port=5")


def test_the_printed_restore_command_shows_no_key_passphrase(tmp_path) -> None:  # type: ignore[no-untyped-def]
    backup = Backup(tmp_path / "b.dump", 1, "app",
                    "postgresql://app@h/postgres?sslpassword=KEYPASS&sslmode=require")
    assert "KEYPASS" not in backup.restore_command("b.dump")


def test_a_password_with_an_unencoded_at_is_masked_whole() -> None:
    url = "postgresql://app:p@ss@db.example.com:5432/app?sslmode=require"
    assert mask_url(url) == "postgresql://app:***@db.example.com:5432/app?sslmode=require"
    assert password_of(url) == "p@ss"
    assert redact(f"cannot reach {url}") == (
        "cannot reach postgresql://app:***@db.example.com:5432/app?sslmode=require")
    # An "@" after the host (in the query) is not part of the password.
    assert mask_url("postgresql://app:pw@h/db?application_name=a@b") == (
        "postgresql://app:***@h/db?application_name=a@b")
    assert mask_url("postgresql://app:a@b@c@[::1]:5432/db") == "postgresql://app:***@[::1]:5432/db"
