import pytest

from app.store.dburl import parse_database_url, pooler_problem


def test_url_encoded_password_and_sslmode_are_parsed_by_libpq_rules():
    target = parse_database_url(
        "postgresql://postgres:h%40%40_rP%21y%3F%23%2F%3A@db.example.com:5432/postgres?sslmode=require"
    )
    assert (target.host, target.port, target.dbname, target.user, target.sslmode) == (
        "db.example.com",
        5432,
        "postgres",
        "postgres",
        "require",
    )
    assert "h@@" not in target.describe()


def test_key_value_dsn_and_unix_socket_uri_work():
    assert parse_database_url("host=/run/pg dbname=julia user=me password='a b@c'").host == "/run/pg"
    assert parse_database_url("postgresql://me@/julia?host=/var/run/pg").host == "/var/run/pg"


@pytest.mark.parametrize(
    ("url", "role", "refused"),
    [
        ("postgresql://u:p@aws-0-us-east-1.pooler.example.com:6543/postgres", "worker", True),
        ("postgresql://u:p@aws-0-us-east-1.pooler.example.com:6543/postgres", "scheduler", True),
        ("postgresql://u:p@aws-0-us-east-1.pooler.example.com:6543/postgres", "api", False),
        ("postgresql://u:p@aws-0-us-east-1.pooler.example.com:5432/postgres", "worker", False),
        ("postgresql://u:p@db.example.com:5432/postgres", "worker", False),
    ],
)
def test_transaction_pooler_is_refused_where_it_would_break(url, role, refused):
    assert (pooler_problem(url, role) is not None) is refused


def test_garbage_url_is_a_clear_error_without_echoing_it():
    with pytest.raises(ValueError, match="not a valid PostgreSQL connection string") as info:
        parse_database_url("postgresql://u:secret@host:notaport/db x=")
    assert "secret" not in str(info.value)
