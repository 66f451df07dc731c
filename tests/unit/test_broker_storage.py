"""The pure parts of the dev broker's store (app/broker_storage.py): where its database is,
and S3's list answer, whose common prefixes Tansu walks topics and partitions by."""

from __future__ import annotations

from datetime import datetime, timezone
from xml.etree import ElementTree

from app.broker_storage import broker_database_url, list_result

AT = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def rows(*keys: str) -> list[dict]:
    return [{"key": k, "etag": f'"{i}"', "size": 10 + i, "modified_at": AT}
            for i, k in enumerate(sorted(keys))]


def test_the_broker_database_sits_beside_the_service_database_on_the_same_server():
    assert broker_database_url("postgresql://u:p@db:5432/distribution") == \
        "postgresql://u:p@db:5432/distribution_broker"
    # the embedded server's URL names its socket directory in the query
    assert broker_database_url("postgresql://postgres:@/postgres?host=/x/postgres") == \
        "postgresql://postgres:@/postgres_broker?host=/x/postgres"


def test_a_listing_with_a_delimiter_rolls_deeper_keys_up_into_common_prefixes():
    found = rows("topics/a/0/w.json", "topics/a/1/w.json", "topics/b/x", "topics/meta.json")
    listed = ElementTree.fromstring(list_result("tansu", "topics/", "/", found))
    assert [e.text for e in listed.iter("Key")] == ["topics/meta.json"]
    assert [e.text for e in listed.findall("CommonPrefixes/Prefix")] == ["topics/a/",
                                                                         "topics/b/"]
    assert listed.findtext("IsTruncated") == "false"


def test_a_listing_without_a_delimiter_gives_every_object_with_its_etag_size_and_time():
    listed = ElementTree.fromstring(list_result("tansu", "t/", None, rows("t/a/b", "t/c")))
    assert [(c.findtext("Key"), c.findtext("ETag"), c.findtext("Size"),
             c.findtext("LastModified")) for c in listed.iter("Contents")] == [
        ("t/a/b", '"0"', "10", "2026-11-29T12:00:00Z"), ("t/c", '"1"', "11",
                                                          "2026-11-29T12:00:00Z")]
