def test_template_is_migrated_and_bootstrapped(db):
    assert db.execute("SELECT version_num FROM alembic_version").fetchone()["version_num"]
    assert db.execute("SELECT value FROM app_settings WHERE key='environment'").fetchone()["value"] == "test"
    assert db.execute("SELECT count(*) AS n FROM pgmq.meta WHERE queue_name='inbound'").fetchone()["n"] == 1
