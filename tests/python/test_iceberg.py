"""The Iceberg REST catalog served under ``/_iceberg`` on the S3 port, driven by pyiceberg.

One warehouse per bucket (``warehouse=<bucket>``, prefix ``<bucket>``). pyiceberg authenticates
with SigV4 (service ``s3tables``) or with an OAuth2 bearer token from
``/_iceberg/v1/oauth/tokens``, writes data files and manifests itself through its PyArrow FileIO
to the same S3 endpoint, and the server writes the table metadata files under the table's
location. Raw HTTP requests check the error bodies of the REST spec
(``{"error": {"message", "type", "code"}}``) and commit requirements pyiceberg would not send.

With BASALT_TEST_CLUSTER every catalog client, raw request and boto3 client may land on another
node; the catalog is strongly consistent, so nothing here waits for anything to appear.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
import uuid

import pyarrow as pa
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    ForbiddenError,
    NamespaceAlreadyExistsError,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
    NoSuchTableError,
    OAuthError,
    RESTError,
    TableAlreadyExistsError,
    UnauthorizedError,
)
from pyiceberg.types import DoubleType

from helpers import doc, make_user

SERVICE = "s3tables"
METADATA_FILE = re.compile(r"^\d{5}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.metadata\.json$")
# Table property read by pyiceberg's Transaction.commit_transaction: with 0 it does not refresh
# and retry an append itself after a 409, so the CommitFailedException reaches the caller.
NO_RETRIES = {"commit.retry.num-retries": "0"}

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


# ---------------------------------------------------------------------------------------------
# helpers


def _keys(user, basalt):
    """(access key, secret) of a make_user() triple, or root's."""
    if user is None:
        return basalt.access_key, basalt.secret_key
    return user[1], user[2]


def catalog_for(basalt, bucket, auth="sigv4", user=None, *, file_io=True, **extra):
    """A pyiceberg RestCatalog for `bucket`'s warehouse, as `user` (default root).

    auth: "sigv4" (SigV4, service s3tables), "bearer" (OAuth2 client credentials against the
    token endpoint) or "none" (no credentials for the catalog at all). With file_io=False no
    s3.* property is passed, so the FileIO gets its endpoint from the config overrides (the
    S3 keys still have to be given: the catalog vends none). `extra` adds or, with None,
    removes properties.
    """
    endpoint = basalt.endpoint  # one node for the whole client
    access, secret = _keys(user, basalt)
    props = {
        "type": "rest",
        "uri": f"{endpoint}/_iceberg",
        "warehouse": bucket,
        "s3.access-key-id": access,
        "s3.secret-access-key": secret,
    }
    if file_io:
        props.update({
            "s3.endpoint": endpoint,
            "s3.region": basalt.region,
            "s3.path-style-access": "true",
        })
    if auth == "sigv4":
        props.update({
            "rest.sigv4-enabled": "true",
            "rest.signing-region": basalt.region,
            "rest.signing-name": SERVICE,
            # What pyiceberg's SigV4Adapter hands boto3 (without them boto3 would fall back to
            # the AWS_* variables conftest exports, i.e. root's keys).
            "client.access-key-id": access,
            "client.secret-access-key": secret,
            "client.region": basalt.region,
        })
    elif auth == "bearer":
        props.update({
            "credential": f"{access}:{secret}",
            "oauth2-server-uri": f"{endpoint}/_iceberg/v1/oauth/tokens",
        })
    else:
        assert auth == "none", auth
    for k, v in extra.items():
        if v is None:
            props.pop(k, None)
        else:
            props[k] = v
    return load_catalog(f"basalt-{uuid.uuid4().hex[:8]}", **props)


_RAW = requests.Session()
_RAW.trust_env = False  # loopback, never through a proxy


def signed_request(basalt, method, path, *, body=None, params=None, user=None, service=SERVICE,
                   token=None, sign=True, secret=None):
    """A raw request to `<endpoint>/_iceberg/<path>` (path already percent-encoded).

    Signed with SigV4 for `service` as `user` (default root), or with `token` as a bearer token,
    or with no Authorization header at all (sign=False). `body` is bytes, or JSON-encoded.
    """
    url = f"{basalt.endpoint}/_iceberg/{path.lstrip('/')}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    elif sign:
        access, real_secret = _keys(user, basalt)
        req = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(Credentials(access, secret or real_secret), service, basalt.region).add_auth(req)
        headers = dict(req.headers)
    return _RAW.request(method, url, data=data, headers=headers, timeout=60)


def fetch_token(basalt, access, secret):
    """The token endpoint's response to a client_credentials grant (as pyiceberg sends it)."""
    return _RAW.post(
        f"{basalt.endpoint}/_iceberg/v1/oauth/tokens",
        data={"grant_type": "client_credentials", "client_id": access, "client_secret": secret,
              "scope": "catalog"},
        timeout=60,
    )


def assert_iceberg_error(resp, status, error_type):
    """`resp` is an Iceberg REST error: HTTP `status`, body {"error": {message, type, code}}."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    err = body["error"]
    assert err["type"] == error_type, body
    assert err["code"] == status, body
    assert isinstance(err["message"], str) and err["message"], body


def table_path(prefix, namespace, table):
    """The REST path of a table (namespace levels joined by the 0x1F separator)."""
    ns = "%1F".join(urllib.parse.quote(level, safe="") for level in namespace)
    return f"v1/{prefix}/namespaces/{ns}/tables/{urllib.parse.quote(table, safe='')}"


def keys_under(s3, bucket, prefix):
    """Every object key in `bucket` under `prefix` (sorted)."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


DEFAULT_LOCATION = re.compile(r"sales/orders-[0-9a-f]{32}")


def key_of(bucket, location):
    """The object key of an s3://<bucket>/... location."""
    assert location.startswith(f"s3://{bucket}/"), location
    return location.removeprefix(f"s3://{bucket}/")


def arrow(rows, schema=SCHEMA):
    """A pyarrow table from (id, name[, ...]) tuples."""
    return pa.table({f.name: [r[i] for r in rows] for i, f in enumerate(schema)}, schema=schema)


def rows_of(scan):
    """A scan's rows as sorted tuples (by id)."""
    return sorted(tuple(r.values()) for r in scan.to_arrow().to_pylist())


def assert_metadata_file(s3, bucket, table, location):
    """The table's metadata location is an NNNNN-<uuid>.metadata.json object under its
    <location>/metadata/."""
    assert table.metadata_location.startswith(f"{location}/metadata/"), table.metadata_location
    assert METADATA_FILE.match(table.metadata_location.rsplit("/", 1)[1]), table.metadata_location
    head = s3.head_object(Bucket=bucket, Key=key_of(bucket, table.metadata_location))
    assert head["ContentLength"] > 0


# ---------------------------------------------------------------------------------------------
# config and warehouses


def test_config_names_the_warehouse_prefix_and_the_s3_endpoint(basalt, bucket):
    resp = signed_request(basalt, "GET", "v1/config", params={"warehouse": bucket})
    assert resp.status_code == 200, resp.text
    config = resp.json()
    overrides = config["overrides"]
    assert overrides["prefix"] == bucket
    assert overrides["s3.path-style-access"] == "true"
    assert overrides["s3.region"] == basalt.region
    assert overrides["s3.endpoint"] in basalt.endpoints, overrides
    # pyiceberg merges defaults and overrides into dicts of strings: neither may be null.
    assert isinstance(config.get("defaults", {}), dict)
    assert all(isinstance(v, str) for v in {**config.get("defaults", {}), **overrides}.values())
    if config.get("endpoints") is not None:
        # pyiceberg then refuses every endpoint not listed: the ones this suite uses must be.
        used = {f"{m} /v1/{{prefix}}/{p}" for m, p in [
            ("GET", "namespaces"), ("POST", "namespaces"), ("GET", "namespaces/{namespace}"),
            ("DELETE", "namespaces/{namespace}"), ("POST", "namespaces/{namespace}/properties"),
            ("GET", "namespaces/{namespace}/tables"), ("POST", "namespaces/{namespace}/tables"),
            ("GET", "namespaces/{namespace}/tables/{table}"),
            ("POST", "namespaces/{namespace}/tables/{table}"),
            ("DELETE", "namespaces/{namespace}/tables/{table}"),
            ("POST", "namespaces/{namespace}/register"), ("POST", "tables/rename"),
        ]}
        assert used <= set(config["endpoints"]), sorted(used - set(config["endpoints"]))

    # The catalog client itself takes the prefix from the overrides.
    catalog = catalog_for(basalt, bucket)
    assert catalog.properties["prefix"] == bucket
    assert catalog.list_namespaces() == []


def test_an_unknown_bucket_is_no_warehouse(basalt, s3, bucket):
    missing = f"{bucket}-missing"
    resp = signed_request(basalt, "GET", "v1/config", params={"warehouse": missing})
    assert resp.status_code == 404, resp.text
    err = resp.json()["error"]
    assert err["code"] == 404 and err["type"].startswith("NoSuchWarehouse"), err
    with pytest.raises(RESTError, match="NoSuchWarehouse"):
        catalog_for(basalt, missing)
    # Nothing was created on the way.
    assert missing not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


# ---------------------------------------------------------------------------------------------
# namespaces


def test_namespaces_lifecycle(basalt, bucket):
    catalog = catalog_for(basalt, bucket)
    assert catalog.list_namespaces() == []

    catalog.create_namespace("analytics", {"owner": "alice", "team": "data"})
    catalog.create_namespace("other")
    catalog.create_namespace(("analytics", "daily"), {"cadence": "24h"})

    other = catalog_for(basalt, bucket)  # another client (another node in a cluster)
    assert sorted(other.list_namespaces()) == [("analytics",), ("other",)]
    assert other.list_namespaces("analytics") == [("analytics", "daily")]
    assert other.list_namespaces(("analytics", "daily")) == []
    assert other.namespace_exists("analytics")
    assert other.namespace_exists(("analytics", "daily"))
    assert not other.namespace_exists("nope")

    props = other.load_namespace_properties("analytics")
    assert {"owner": "alice", "team": "data"}.items() <= props.items(), props
    assert other.load_namespace_properties(("analytics", "daily"))["cadence"] == "24h"

    # Creating twice is refused and leaves the first one as it was.
    with pytest.raises(NamespaceAlreadyExistsError):
        catalog.create_namespace("analytics", {"owner": "mallory"})
    assert other.load_namespace_properties("analytics")["owner"] == "alice"

    summary = other.update_namespace_properties(
        "analytics", removals={"team", "no-such-key"}, updates={"owner": "bob", "tier": "gold"},
    )
    assert sorted(summary.updated) == ["owner", "tier"]
    assert summary.removed == ["team"]
    assert summary.missing == ["no-such-key"]
    props = catalog.load_namespace_properties("analytics")
    assert {"owner": "bob", "tier": "gold"}.items() <= props.items(), props
    assert "team" not in props

    # A missing namespace.
    with pytest.raises(NoSuchNamespaceError):
        catalog.load_namespace_properties("nope")
    with pytest.raises(NoSuchNamespaceError):
        catalog.update_namespace_properties("nope", updates={"a": "b"})
    with pytest.raises(NoSuchNamespaceError):
        catalog.drop_namespace("nope")
    with pytest.raises(NoSuchNamespaceError):
        catalog.list_tables("nope")

    # A namespace with a table in it is not dropped.
    catalog.create_table(("other", "t"), schema=SCHEMA)
    with pytest.raises(NamespaceNotEmptyError):
        other.drop_namespace("other")
    assert catalog.namespace_exists("other")
    assert catalog.list_tables("other") == [("other", "t")]

    # An empty one is.
    catalog.drop_namespace(("analytics", "daily"))
    assert other.list_namespaces("analytics") == []
    with pytest.raises(NoSuchNamespaceError):
        other.load_namespace_properties(("analytics", "daily"))
    catalog.drop_table(("other", "t"))
    other.drop_namespace("other")
    assert sorted(catalog.list_namespaces()) == [("analytics",)]


def test_warehouses_are_separate(basalt, bucket_factory):
    first, second = bucket_factory(), bucket_factory()
    catalog_for(basalt, first).create_namespace("shared_name")
    assert catalog_for(basalt, second).list_namespaces() == []
    catalog_for(basalt, second).create_namespace("shared_name")  # no clash across warehouses
    assert catalog_for(basalt, first).list_namespaces() == [("shared_name",)]


# ---------------------------------------------------------------------------------------------
# tables: data round trips


def test_create_append_overwrite_and_filtered_scan(basalt, s3, bucket):
    catalog = catalog_for(basalt, bucket)
    catalog.create_namespace("sales")
    table = catalog.create_table(("sales", "orders"), schema=SCHEMA)
    # The default location is the table's own prefix, <namespace>/<name>-<uuid hex>: a table
    # later made under a renamed table's old name never shares (or purges) its files.
    location = table.location()
    assert DEFAULT_LOCATION.fullmatch(location.removeprefix(f"s3://{bucket}/")), location
    assert location.endswith(table.metadata.table_uuid.hex), location
    assert table.current_snapshot() is None
    assert_metadata_file(s3, bucket, table, location)
    created_at = table.metadata_location

    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table(("sales", "orders"), schema=SCHEMA)
    with pytest.raises(NoSuchNamespaceError):
        catalog.create_table(("nope", "orders"), schema=SCHEMA)
    assert catalog.load_table(("sales", "orders")).metadata_location == created_at

    first = [(1, "ann"), (2, "bob"), (3, "cy"), (4, "dee")]
    second = [(5, "eve"), (6, "fay"), (7, "gus"), (8, "hal")]
    table.append(arrow(first))
    table.append(arrow(second))
    assert table.metadata_location != created_at
    assert_metadata_file(s3, bucket, table, location)
    # Every commit wrote a new metadata file; the earlier ones are still there.
    prefix = key_of(bucket, location)
    metadata_keys = keys_under(s3, bucket, f"{prefix}/metadata/")
    metadata_files = [k for k in metadata_keys if k.endswith(".metadata.json")]
    assert key_of(bucket, created_at) in metadata_files
    assert len(metadata_files) == 3, metadata_files
    # pyiceberg's own data files and manifests are in the bucket too.
    assert any(k.endswith(".parquet") for k in keys_under(s3, bucket, f"{prefix}/data/"))
    assert any(k.endswith(".avro") for k in metadata_keys)

    # Overwrite: ids 1-4 are replaced by two new rows.
    table.overwrite(arrow([(1, "ann-2"), (2, "bob-2")]), overwrite_filter="id <= 4")

    reader = catalog_for(basalt, bucket)  # another client
    loaded = reader.load_table(("sales", "orders"))
    assert loaded.metadata_location == table.metadata_location
    assert loaded.metadata.table_uuid == table.metadata.table_uuid
    assert rows_of(loaded.scan()) == sorted([(1, "ann-2"), (2, "bob-2")] + second)
    assert rows_of(loaded.scan(row_filter="id >= 2 and id < 7")) == [
        (2, "bob-2"), (5, "eve"), (6, "fay"),
    ]
    frame = loaded.scan(row_filter="name = 'gus'").to_pandas()
    assert frame.to_dict("records") == [{"id": 7, "name": "gus"}]


def test_schema_evolution(basalt, bucket):
    catalog = catalog_for(basalt, bucket)
    catalog.create_namespace("ns")
    table = catalog.create_table(("ns", "people"), schema=SCHEMA)
    table.append(arrow([(1, "ann"), (2, "bob")]))
    schema_id = table.schema().schema_id

    with table.update_schema() as update:
        update.add_column("score", DoubleType())
    assert [f.name for f in table.schema().fields] == ["id", "name", "score"]

    wide = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.float64())])
    table.append(arrow([(3, "cy", 0.5), (4, "dee", 1.5)], schema=wide))

    loaded = catalog_for(basalt, bucket).load_table(("ns", "people"))
    assert loaded.schema().schema_id != schema_id
    assert [f.name for f in loaded.schema().fields] == ["id", "name", "score"]
    assert len(loaded.schemas()) == 2
    assert rows_of(loaded.scan()) == [(1, "ann", None), (2, "bob", None), (3, "cy", 0.5), (4, "dee", 1.5)]
    assert rows_of(loaded.scan(row_filter="score > 1.0")) == [(4, "dee", 1.5)]


def test_time_travel(basalt, bucket):
    catalog = catalog_for(basalt, bucket)
    catalog.create_namespace("ns")
    table = catalog.create_table(("ns", "events"), schema=SCHEMA)
    table.append(arrow([(1, "a"), (2, "b")]))
    first_snapshot = table.current_snapshot().snapshot_id
    table.append(arrow([(3, "c")]))
    second_snapshot = table.current_snapshot().snapshot_id
    assert second_snapshot != first_snapshot

    loaded = catalog_for(basalt, bucket).load_table(("ns", "events"))
    assert [s.snapshot_id for s in loaded.snapshots()] == [first_snapshot, second_snapshot]
    assert loaded.current_snapshot().parent_snapshot_id == first_snapshot
    assert [e.snapshot_id for e in loaded.history()] == [first_snapshot, second_snapshot]
    assert rows_of(loaded.scan(snapshot_id=first_snapshot)) == [(1, "a"), (2, "b")]
    assert rows_of(loaded.scan(snapshot_id=second_snapshot)) == [(1, "a"), (2, "b"), (3, "c")]
    assert rows_of(loaded.scan()) == [(1, "a"), (2, "b"), (3, "c")]


# ---------------------------------------------------------------------------------------------
# concurrent writers


def test_two_writers_one_commit_fails_then_succeeds_after_refresh(basalt, bucket):
    setup = catalog_for(basalt, bucket)
    setup.create_namespace("ns")
    setup.create_table(("ns", "t"), schema=SCHEMA, properties=NO_RETRIES)

    first = catalog_for(basalt, bucket).load_table(("ns", "t"))
    second = catalog_for(basalt, bucket).load_table(("ns", "t"))
    base = first.metadata_location
    assert second.metadata_location == base

    first.append(arrow([(1, "from-first")]))
    winner_location = first.metadata_location
    winner_snapshot = first.current_snapshot().snapshot_id

    # Based on the same (empty) table state: 409, and nothing changes.
    with pytest.raises(CommitFailedException):
        second.append(arrow([(2, "from-second")]))
    check = catalog_for(basalt, bucket).load_table(("ns", "t"))
    assert check.metadata_location == winner_location
    assert [s.snapshot_id for s in check.snapshots()] == [winner_snapshot]
    assert rows_of(check.scan()) == [(1, "from-first")]

    # After a refresh the loser's commit goes through on top of the winner's.
    second.refresh()
    assert second.metadata_location == winner_location
    second.append(arrow([(2, "from-second")]))
    assert second.current_snapshot().parent_snapshot_id == winner_snapshot

    final = catalog_for(basalt, bucket).load_table(("ns", "t"))
    assert final.metadata_location == second.metadata_location
    assert rows_of(final.scan()) == [(1, "from-first"), (2, "from-second")]


def test_pyiceberg_retries_a_conflicting_append_itself(basalt, bucket):
    """With its default commit.retry.num-retries pyiceberg refreshes and retries after a 409:
    the conflict is still seen (recorded here), and both appends land."""
    setup = catalog_for(basalt, bucket)
    setup.create_namespace("ns")
    setup.create_table(("ns", "t"), schema=SCHEMA)

    first = catalog_for(basalt, bucket).load_table(("ns", "t"))
    loser_catalog = catalog_for(basalt, bucket)
    second = loser_catalog.load_table(("ns", "t"))

    outcomes = []
    real_commit = loser_catalog.commit_table

    def recording_commit(table, requirements, updates):
        try:
            response = real_commit(table, requirements, updates)
        except CommitFailedException:
            outcomes.append("409")
            raise
        outcomes.append("ok")
        return response

    loser_catalog.commit_table = recording_commit

    first.append(arrow([(1, "a")]))
    second.append(arrow([(2, "b")]))
    assert outcomes == ["409", "ok"]

    final = catalog_for(basalt, bucket).load_table(("ns", "t"))
    snapshots = final.snapshots()
    assert len(snapshots) == 2
    assert snapshots[1].parent_snapshot_id == snapshots[0].snapshot_id
    assert rows_of(final.scan()) == [(1, "a"), (2, "b")]


def test_racing_commits_exactly_one_wins(basalt, bucket):
    writers = 4
    setup = catalog_for(basalt, bucket)
    setup.create_namespace("ns")
    setup.create_table(("ns", "t"), schema=SCHEMA, properties=NO_RETRIES).append(arrow([(0, "base")]))
    tables = [catalog_for(basalt, bucket).load_table(("ns", "t")) for _ in range(writers)]
    base_snapshot = tables[0].current_snapshot().snapshot_id
    assert {t.current_snapshot().snapshot_id for t in tables} == {base_snapshot}

    barrier = threading.Barrier(writers)
    results = [None] * writers

    def write(i):
        barrier.wait()
        try:
            tables[i].append(arrow([(i + 1, f"writer-{i}")]))
            results[i] = "ok"
        except CommitFailedException:
            results[i] = "409"
        except Exception as e:  # reported below
            results[i] = repr(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(results) == ["409"] * (writers - 1) + ["ok"], results
    winner = results.index("ok")
    final = catalog_for(basalt, bucket).load_table(("ns", "t"))
    assert final.metadata_location == tables[winner].metadata_location
    assert len(final.snapshots()) == 2
    assert final.current_snapshot().parent_snapshot_id == base_snapshot
    assert rows_of(final.scan()) == [(0, "base"), (winner + 1, f"writer-{winner}")]


# ---------------------------------------------------------------------------------------------
# rename, drop, purge, register


def test_rename_list_and_exists(basalt, bucket):
    catalog = catalog_for(basalt, bucket)
    catalog.create_namespace("a")
    catalog.create_namespace("b")
    table = catalog.create_table(("a", "t"), schema=SCHEMA)
    table.append(arrow([(1, "x")]))
    catalog.create_table(("a", "other"), schema=SCHEMA)
    assert sorted(catalog.list_tables("a")) == [("a", "other"), ("a", "t")]
    assert catalog.list_tables("b") == []

    other = catalog_for(basalt, bucket)
    renamed = other.rename_table(("a", "t"), ("b", "t2"))
    assert renamed.metadata.table_uuid == table.metadata.table_uuid
    assert renamed.metadata_location == table.metadata_location
    assert renamed.location() == table.location()  # the files do not move
    assert rows_of(renamed.scan()) == [(1, "x")]

    assert not catalog.table_exists(("a", "t"))
    assert catalog.table_exists(("b", "t2"))
    with pytest.raises(NoSuchTableError):
        catalog.load_table(("a", "t"))
    assert catalog.list_tables("a") == [("a", "other")]
    assert catalog.list_tables("b") == [("b", "t2")]

    # Onto an existing name, or from a missing one: refused, nothing moves.
    with pytest.raises(TableAlreadyExistsError):
        catalog.rename_table(("b", "t2"), ("a", "other"))
    with pytest.raises(NoSuchTableError):
        catalog.rename_table(("a", "t"), ("b", "t3"))
    with pytest.raises(NoSuchNamespaceError):
        catalog.rename_table(("b", "t2"), ("nope", "t2"))
    assert sorted(other.list_tables("a")) == [("a", "other")]
    assert other.list_tables("b") == [("b", "t2")]
    assert other.load_table(("a", "other")).metadata.table_uuid != table.metadata.table_uuid
    assert other.load_table(("b", "t2")).metadata_location == table.metadata_location


def test_drop_keeps_the_files_register_brings_the_table_back_purge_deletes_them(basalt, s3, bucket):
    catalog = catalog_for(basalt, bucket)
    catalog.create_namespace("ns")
    table = catalog.create_table(("ns", "events"), schema=SCHEMA)
    table.append(arrow([(1, "a"), (2, "b")]))
    # A sibling whose location extends the table's ("<location>2"): purge must not touch it.
    prefix = key_of(bucket, table.location())
    sibling = catalog.create_table(
        ("ns", "events2"), schema=SCHEMA, location=f"{table.location()}2"
    )
    sibling.append(arrow([(9, "z")]))
    metadata_location = table.metadata_location
    files = keys_under(s3, bucket, f"{prefix}/")
    sibling_files = keys_under(s3, bucket, f"{prefix}2/")
    assert sibling_files
    assert key_of(bucket, metadata_location) in files
    assert any(k.startswith(f"{prefix}/data/") for k in files)

    with pytest.raises(NoSuchTableError):
        catalog.drop_table(("ns", "missing"))

    catalog.drop_table(("ns", "events"))
    assert not catalog.table_exists(("ns", "events"))
    with pytest.raises(NoSuchTableError):
        catalog_for(basalt, bucket).load_table(("ns", "events"))
    assert catalog.list_tables("ns") == [("ns", "events2")]
    assert keys_under(s3, bucket, f"{prefix}/") == files  # dropped, not purged

    other = catalog_for(basalt, bucket)
    registered = other.register_table(("ns", "events"), metadata_location)
    assert registered.metadata_location == metadata_location
    assert registered.metadata.table_uuid == table.metadata.table_uuid
    assert rows_of(catalog.load_table(("ns", "events")).scan()) == [(1, "a"), (2, "b")]
    with pytest.raises(TableAlreadyExistsError):
        other.register_table(("ns", "events"), sibling.metadata_location)
    assert catalog.load_table(("ns", "events")).metadata_location == metadata_location

    # A registered table takes commits like any other.
    registered.append(arrow([(3, "c")]))
    assert rows_of(catalog.load_table(("ns", "events")).scan()) == [(1, "a"), (2, "b"), (3, "c")]

    catalog.purge_table(("ns", "events"))
    assert not other.table_exists(("ns", "events"))
    assert keys_under(s3, bucket, f"{prefix}/") == []
    assert keys_under(s3, bucket, f"{prefix}2/") == sibling_files
    assert rows_of(other.load_table(("ns", "events2")).scan()) == [(9, "z")]
    with pytest.raises(NoSuchTableError):
        catalog.purge_table(("ns", "events"))


# ---------------------------------------------------------------------------------------------
# raw HTTP: error bodies and commit requirements


@pytest.fixture
def table_with_two_snapshots(basalt, bucket):
    """(catalog, prefix, table) with two appends in ns.t."""
    catalog = catalog_for(basalt, bucket)
    catalog.create_namespace("ns")
    table = catalog.create_table(("ns", "t"), schema=SCHEMA)
    table.append(arrow([(1, "a")]))
    table.append(arrow([(2, "b")]))
    return catalog, catalog.properties["prefix"], table


def _commit_body(requirements, updates):
    return {"identifier": {"namespace": ["ns"], "name": "t"}, "requirements": requirements,
            "updates": updates}


def test_malformed_requests_are_bad_requests(basalt, bucket):
    catalog = catalog_for(basalt, bucket)
    catalog.create_namespace("ns")
    table = catalog.create_table(("ns", "t"), schema=SCHEMA)
    prefix = catalog.properties["prefix"]

    resp = signed_request(basalt, "POST", f"v1/{prefix}/namespaces", body=b'{"namespace": ["x"')
    assert_iceberg_error(resp, 400, "BadRequestException")
    resp = signed_request(basalt, "POST", f"v1/{prefix}/namespaces", body={"namespace": "not-a-list"})
    assert_iceberg_error(resp, 400, "BadRequestException")
    resp = signed_request(basalt, "POST", f"v1/{prefix}/namespaces/ns/tables", body=b"\x00garbage")
    assert_iceberg_error(resp, 400, "BadRequestException")
    resp = signed_request(basalt, "POST", table_path(prefix, ["ns"], "t"), body=b"[")
    assert_iceberg_error(resp, 400, "BadRequestException")
    resp = signed_request(basalt, "POST", table_path(prefix, ["ns"], "t"),
                          body=_commit_body([], [{"action": "no-such-update"}]))
    assert_iceberg_error(resp, 400, "BadRequestException")
    # Nothing was created or committed by any of them.
    assert catalog.list_namespaces() == [("ns",)]
    assert catalog.list_tables("ns") == [("ns", "t")]
    assert catalog.load_table(("ns", "t")).metadata_location == table.metadata_location

    # A well-formed request through the same helper works (the 400s are about the bodies).
    resp = signed_request(basalt, "POST", f"v1/{prefix}/namespaces", body={"namespace": ["x"], "properties": {}})
    assert resp.status_code == 200, resp.text
    assert sorted(catalog.list_namespaces()) == [("ns",), ("x",)]


def test_unknown_namespaces_and_tables_are_404(basalt, bucket):
    catalog = catalog_for(basalt, bucket)
    catalog.create_namespace("ns")
    prefix = catalog.properties["prefix"]
    assert_iceberg_error(signed_request(basalt, "GET", table_path(prefix, ["ns"], "nope")),
                         404, "NoSuchTableException")
    assert_iceberg_error(signed_request(basalt, "GET", f"v1/{prefix}/namespaces/nope"),
                         404, "NoSuchNamespaceException")
    assert_iceberg_error(signed_request(basalt, "GET", f"v1/{prefix}/namespaces/nope/tables"),
                         404, "NoSuchNamespaceException")
    # Nested namespaces travel as levels joined by 0x1F.
    catalog.create_namespace(("ns", "sub"), {"k": "v"})
    resp = signed_request(basalt, "GET", f"v1/{prefix}/namespaces/ns%1Fsub")
    assert resp.status_code == 200, resp.text
    assert resp.json()["namespace"] == ["ns", "sub"]
    assert resp.json()["properties"]["k"] == "v"


def test_a_stale_ref_requirement_fails_the_commit(basalt, table_with_two_snapshots):
    catalog, prefix, table = table_with_two_snapshots
    path = table_path(prefix, ["ns"], "t")
    first, current = (s.snapshot_id for s in table.snapshots())
    before = catalog.load_table(("ns", "t")).metadata_location

    stale = _commit_body(
        [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": first}],
        [{"action": "set-properties", "updates": {"stale": "yes"}}],
    )
    assert_iceberg_error(signed_request(basalt, "POST", path, body=stale), 409, "CommitFailedException")
    after = catalog.load_table(("ns", "t"))
    assert after.metadata_location == before
    assert "stale" not in after.properties

    # "main must not exist" when it does is stale too.
    absent = _commit_body(
        [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": None}],
        [{"action": "set-properties", "updates": {"stale": "yes"}}],
    )
    assert_iceberg_error(signed_request(basalt, "POST", path, body=absent), 409, "CommitFailedException")
    assert catalog.load_table(("ns", "t")).metadata_location == before

    # The same commit based on the current snapshot goes through.
    fresh = _commit_body(
        [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": current}],
        [{"action": "set-properties", "updates": {"fresh": "yes"}}],
    )
    resp = signed_request(basalt, "POST", path, body=fresh)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["metadata-location"] != before
    assert body["metadata"]["properties"]["fresh"] == "yes"
    loaded = catalog.load_table(("ns", "t"))
    assert loaded.metadata_location == body["metadata-location"]
    assert loaded.properties["fresh"] == "yes"


def test_another_tables_uuid_fails_the_commit(basalt, table_with_two_snapshots):
    catalog, prefix, table = table_with_two_snapshots
    path = table_path(prefix, ["ns"], "t")
    before = catalog.load_table(("ns", "t")).metadata_location

    other = _commit_body(
        [{"type": "assert-table-uuid", "uuid": str(uuid.uuid4())}],
        [{"action": "set-properties", "updates": {"other": "yes"}}],
    )
    assert_iceberg_error(signed_request(basalt, "POST", path, body=other), 409, "CommitFailedException")
    after = catalog.load_table(("ns", "t"))
    assert after.metadata_location == before
    assert "other" not in after.properties

    own = _commit_body(
        [{"type": "assert-table-uuid", "uuid": str(table.metadata.table_uuid)}],
        [{"action": "set-properties", "updates": {"own": "yes"}}],
    )
    resp = signed_request(basalt, "POST", path, body=own)
    assert resp.status_code == 200, resp.text
    assert catalog.load_table(("ns", "t")).properties["own"] == "yes"


# ---------------------------------------------------------------------------------------------
# authentication


def test_bearer_token_end_to_end(basalt, bucket):
    resp = fetch_token(basalt, basalt.access_key, basalt.secret_key)
    assert resp.status_code == 200, resp.text
    token = resp.json()
    assert token["access_token"] and token["token_type"].lower() == "bearer"
    assert 0 < token["expires_in"] <= 3600
    resp = signed_request(basalt, "GET", "v1/config", params={"warehouse": bucket}, token=token["access_token"])
    assert resp.status_code == 200, resp.text

    # The FileIO gets the S3 endpoint from the config overrides only.
    catalog = catalog_for(basalt, bucket, auth="bearer", file_io=False)
    catalog.create_namespace("ns")
    table = catalog.create_table(("ns", "t"), schema=SCHEMA)
    table.append(arrow([(1, "a"), (2, "b")]))
    loaded = catalog_for(basalt, bucket, auth="bearer", file_io=False).load_table(("ns", "t"))
    assert loaded.metadata_location == table.metadata_location
    assert rows_of(loaded.scan(row_filter="id = 2")) == [(2, "b")]
    # And the SigV4 client sees the same table.
    assert catalog_for(basalt, bucket).load_table(("ns", "t")).metadata_location == table.metadata_location


def test_bad_or_missing_credentials_are_refused(basalt, bucket):
    catalog_for(basalt, bucket).create_namespace("ns")

    resp = fetch_token(basalt, basalt.access_key, basalt.secret_key + "-wrong")
    assert resp.status_code == 401, resp.text
    assert "access_token" not in resp.text
    resp = fetch_token(basalt, "NOSUCHACCESSKEY", basalt.secret_key)
    assert resp.status_code == 401, resp.text
    with pytest.raises(OAuthError):
        catalog_for(basalt, bucket, auth="bearer", credential=f"{basalt.access_key}:wrong-secret")

    # No Authorization header, a made-up bearer token, a wrong SigV4 secret.
    resp = signed_request(basalt, "GET", "v1/config", params={"warehouse": bucket}, sign=False)
    assert_iceberg_error(resp, 401, "NotAuthorizedException")
    resp = signed_request(basalt, "GET", "v1/config", params={"warehouse": bucket}, token="not-a-token")
    assert_iceberg_error(resp, 401, "NotAuthorizedException")
    resp = signed_request(basalt, "GET", "v1/config", params={"warehouse": bucket}, secret="wrong-secret")
    assert resp.status_code in (401, 403), resp.text
    assert resp.json()["error"]["code"] == resp.status_code

    # pyiceberg without credentials (it sends "Authorization: Bearer None").
    with pytest.raises(UnauthorizedError):
        catalog_for(basalt, bucket, auth="none")
    with pytest.raises((UnauthorizedError, ForbiddenError)):
        catalog_for(basalt, bucket, **{"client.secret-access-key": "wrong-secret"})

    # None of it changed anything.
    prefix = bucket
    resp = signed_request(basalt, "POST", f"v1/{prefix}/namespaces", sign=False,
                          body={"namespace": ["sneaky"], "properties": {}})
    assert_iceberg_error(resp, 401, "NotAuthorizedException")
    assert catalog_for(basalt, bucket).list_namespaces() == [("ns",)]


# ---------------------------------------------------------------------------------------------
# authorization


@pytest.fixture
def populated(basalt, bucket):
    """Root's namespace ns with table ns.t (one append)."""
    catalog = catalog_for(basalt, bucket)
    catalog.create_namespace("ns", {"owner": "root"})
    table = catalog.create_table(("ns", "t"), schema=SCHEMA)
    table.append(arrow([(1, "a")]))
    return catalog, table


def test_a_readonly_user_reads_but_does_not_write(basalt, bucket, populated):
    root, table = populated
    reader = catalog_for(basalt, bucket, user=make_user(basalt, "readonly"))
    assert reader.list_namespaces() == [("ns",)]
    assert reader.load_namespace_properties("ns")["owner"] == "root"
    assert reader.list_tables("ns") == [("ns", "t")]
    loaded = reader.load_table(("ns", "t"))
    assert loaded.metadata_location == table.metadata_location
    assert rows_of(loaded.scan()) == [(1, "a")]

    with pytest.raises(ForbiddenError):
        reader.create_namespace("mine")
    with pytest.raises(ForbiddenError):
        reader.update_namespace_properties("ns", updates={"owner": "reader"})
    with pytest.raises(ForbiddenError):
        reader.create_table(("ns", "mine"), schema=SCHEMA)
    with pytest.raises(ForbiddenError):
        loaded.transaction().set_properties({"touched": "yes"}).commit_transaction()
    with pytest.raises(ForbiddenError):
        reader.rename_table(("ns", "t"), ("ns", "t2"))
    with pytest.raises(ForbiddenError):
        reader.drop_table(("ns", "t"))
    with pytest.raises(ForbiddenError):
        reader.drop_namespace("ns")

    # Nothing changed.
    assert root.list_namespaces() == [("ns",)]
    assert root.load_namespace_properties("ns")["owner"] == "root"
    assert root.list_tables("ns") == [("ns", "t")]
    after = root.load_table(("ns", "t"))
    assert after.metadata_location == table.metadata_location
    assert "touched" not in after.properties


def test_a_readwrite_user_does_everything(basalt, s3, bucket, populated):
    root, table = populated
    user = make_user(basalt, "readwrite")
    writer = catalog_for(basalt, bucket, user=user)
    writer.create_namespace("mine", {"owner": user[0]})
    writer.update_namespace_properties("mine", updates={"tier": "gold"})
    created = writer.create_table(("mine", "t"), schema=SCHEMA)
    created.append(arrow([(1, "x"), (2, "y")]))
    with created.update_schema() as update:
        update.add_column("score", DoubleType())
    renamed = writer.rename_table(("mine", "t"), ("mine", "t2"))
    assert rows_of(root.load_table(("mine", "t2")).scan()) == [(1, "x", None), (2, "y", None)]

    # Root's table too.
    theirs = writer.load_table(("ns", "t"))
    theirs.append(arrow([(2, "b")]))
    assert rows_of(root.load_table(("ns", "t")).scan()) == [(1, "a"), (2, "b")]

    writer.purge_table(("mine", "t2"))
    assert keys_under(s3, bucket, key_of(bucket, renamed.location()) + "/") == []
    writer.drop_namespace("mine")
    assert root.list_namespaces() == [("ns",)]


def test_policies_scope_tables_by_arn(basalt, bucket, populated):
    """Table calls are authorized on arn:aws:s3tables:::bucket/<bucket>/table/<ns.levels>/<table>,
    namespace calls on arn:aws:s3tables:::bucket/<bucket>."""
    root, _ = populated
    root.create_namespace(("ns", "sub"))
    allowed = root.create_table(("ns", "sub", "allowed"), schema=SCHEMA)
    root.create_table(("ns", "sub", "denied"), schema=SCHEMA)
    user = make_user(basalt, doc(
        {"Effect": "Allow", "Action": ["s3tables:Get*", "s3tables:List*"],
         "Resource": f"arn:aws:s3tables:::bucket/{bucket}"},
        {"Effect": "Allow", "Action": ["s3tables:GetTable", "s3tables:UpdateTable"],
         "Resource": f"arn:aws:s3tables:::bucket/{bucket}/table/ns.sub/allowed"},
    ))
    scoped = catalog_for(basalt, bucket, user=user)
    assert sorted(scoped.list_tables(("ns", "sub"))) == [("ns", "sub", "allowed"), ("ns", "sub", "denied")]

    mine = scoped.load_table(("ns", "sub", "allowed"))
    assert mine.metadata_location == allowed.metadata_location
    mine.transaction().set_properties({"touched": "yes"}).commit_transaction()
    assert root.load_table(("ns", "sub", "allowed")).properties["touched"] == "yes"

    denied_before = root.load_table(("ns", "sub", "denied")).metadata_location
    with pytest.raises(ForbiddenError):
        scoped.load_table(("ns", "sub", "denied"))
    with pytest.raises(ForbiddenError):
        scoped.load_table(("ns", "t"))
    with pytest.raises(ForbiddenError):
        scoped.drop_table(("ns", "sub", "allowed"))  # DeleteTable is not granted
    with pytest.raises(ForbiddenError):
        scoped.create_namespace("mine")
    assert root.load_table(("ns", "sub", "denied")).metadata_location == denied_before
    assert root.table_exists(("ns", "sub", "allowed"))
    assert sorted(root.list_namespaces()) == [("ns",)]


def test_table_files_need_the_callers_s3_rights_on_their_location(basalt, s3, bucket):
    """The catalog writes metadata files and purges a table's files for the caller: a caller
    with every catalog action but S3 rights only under lake/ cannot place a table elsewhere,
    move one there, or purge one whose files it may not delete."""
    root = catalog_for(basalt, bucket)
    root.create_namespace("ns")
    victim = root.create_table(("ns", "victim"), schema=SCHEMA, location=f"s3://{bucket}/finance/t")
    victim.append(arrow([(1, "x")]))
    finance = keys_under(s3, bucket, "finance/")
    user = make_user(basalt, doc(
        {"Effect": "Allow", "Action": "s3tables:*", "Resource": f"arn:aws:s3tables:::bucket/{bucket}*"},
        {"Effect": "Allow", "Action": "s3:*", "Resource": f"arn:aws:s3:::{bucket}/lake/*"},
    ))
    scoped = catalog_for(basalt, bucket, user=user, file_io=False)

    with pytest.raises(ForbiddenError):
        scoped.create_table(("ns", "mine"), schema=SCHEMA, location=f"s3://{bucket}/finance/mine")
    assert not root.table_exists(("ns", "mine"))
    # The default location (ns/<table>-<uuid>) is outside lake/ too.
    with pytest.raises(ForbiddenError):
        scoped.create_table(("ns", "mine"), schema=SCHEMA)
    ok = scoped.create_table(("ns", "ok"), schema=SCHEMA, location=f"s3://{bucket}/lake/ok")
    move = _commit_body(
        [{"type": "assert-table-uuid", "uuid": str(ok.metadata.table_uuid)}],
        [{"action": "set-location", "location": f"s3://{bucket}/finance/t"}],
    )
    resp = signed_request(basalt, "POST", table_path(bucket, ["ns"], "ok"), body=move, user=user)
    assert_iceberg_error(resp, 403, "ForbiddenException")
    assert root.load_table(("ns", "ok")).location() == f"s3://{bucket}/lake/ok"

    with pytest.raises(ForbiddenError):
        scoped.purge_table(("ns", "victim"))
    assert root.table_exists(("ns", "victim")), "a refused purge drops nothing"
    assert keys_under(s3, bucket, "finance/") == finance
