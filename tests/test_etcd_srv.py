"""ETCD_DISCOVERY_SRV: etcd endpoints from DNS SRV records, as libcalico-go finds them
(etcd's client/pkg/srv GetClient with service ``etcd-client`` and no service-name suffix).

The DNS is a fake lookup (a dict of SRV name -> records); one test feeds dnspython's own
SRV rdata through the real adapter, and one dials a real etcd found through the fake."""
from __future__ import annotations

import pytest

from node.config import ETCDV3, KUBERNETES, DatastoreConfig, datastore_config_from_env, datastore_config_from_file
from node.datastore import etcd_srv
from node.datastore.etcd_srv import (
    SrvLookupFailed,
    SrvRecord,
    discover_etcd_endpoints,
    order_records,
    srv_queries,
)
from node.errors import ConfigError, ConnectionFailed


def fake_dns(zone: dict[str, list[SrvRecord]]):
    """A lookup over ``zone``; names not in it fail as NXDOMAIN would. Records every ask."""
    asked: list[str] = []

    def lookup(name: str) -> list[SrvRecord]:
        asked.append(name)
        if name not in zone:
            raise SrvLookupFailed(f"The DNS query name does not exist: {name}.")
        return zone[name]

    lookup.asked = asked
    return lookup


def first(n: int) -> int:
    """randbelow that always picks the lowest point: the first record with weight > 0."""
    return 0


def test_the_two_names_asked_and_their_order():
    assert srv_queries("example.com") == (("https", "_etcd-client-ssl._tcp.example.com"),
                                          ("http", "_etcd-client._tcp.example.com"))
    lookup = fake_dns({})
    with pytest.raises(ConnectionFailed):
        discover_etcd_endpoints("example.com", lookup=lookup)
    assert lookup.asked == ["_etcd-client-ssl._tcp.example.com", "_etcd-client._tcp.example.com"]


def test_https_records_come_first_then_http_with_targets_without_the_trailing_dot():
    lookup = fake_dns({
        "_etcd-client._tcp.example.com": [SrvRecord(0, 0, 2379, "etcd3.example.com.")],
        "_etcd-client-ssl._tcp.example.com": [SrvRecord(0, 0, 2379, "etcd1.example.com."),
                                              SrvRecord(0, 0, 12379, "etcd2.example.com.")],
    })
    assert discover_etcd_endpoints("example.com", lookup=lookup, randbelow=first) == (
        "https://etcd1.example.com:2379", "https://etcd2.example.com:12379", "http://etcd3.example.com:2379")


def test_one_of_the_two_names_is_enough():
    only_http = fake_dns({"_etcd-client._tcp.example.com": [SrvRecord(0, 0, 2379, "etcd.example.com.")]})
    assert discover_etcd_endpoints("example.com", lookup=only_http) == ("http://etcd.example.com:2379",)
    only_https = fake_dns({"_etcd-client-ssl._tcp.example.com": [SrvRecord(0, 0, 2379, "etcd.example.com.")]})
    assert discover_etcd_endpoints("example.com", lookup=only_https) == ("https://etcd.example.com:2379",)


def test_both_lookups_failing_is_an_error_naming_the_variable_the_domain_and_each_name():
    with pytest.raises(ConnectionFailed) as info:
        discover_etcd_endpoints("corp.example", "CALICO_ETCD_DISCOVERY_SRV", lookup=fake_dns({}))
    message = str(info.value)
    assert message.startswith("CALICO_ETCD_DISCOVERY_SRV=corp.example: failed to discover etcd endpoints "
                              "through SRV discovery: ")
    assert "_etcd-client-ssl._tcp.corp.example: The DNS query name does not exist" in message
    assert "_etcd-client._tcp.corp.example: The DNS query name does not exist" in message


def test_dot_targets_mean_no_service():
    lookup = fake_dns({"_etcd-client-ssl._tcp.example.com": [SrvRecord(0, 0, 2379, ".")],
                       "_etcd-client._tcp.example.com": [SrvRecord(0, 0, 2379, "etcd.example.com.")]})
    assert discover_etcd_endpoints("example.com", lookup=lookup) == ("http://etcd.example.com:2379",)
    with pytest.raises(ConnectionFailed, match=r"_etcd-client-ssl._tcp.example.com: only '.' targets"):
        discover_etcd_endpoints("example.com", lookup=fake_dns({"_etcd-client-ssl._tcp.example.com":
                                                                 [SrvRecord(0, 0, 2379, ".")]}))


def test_records_by_priority_then_shuffled_by_weight():
    a, b, c = SrvRecord(10, 10, 1, "a."), SrvRecord(10, 30, 1, "b."), SrvRecord(10, 0, 1, "c.")
    low = SrvRecord(5, 0, 1, "low.")
    # Sorted by (priority, weight): low | c(0) a(10) b(30). A point below 10 picks a, then
    # with a gone (sum 30) any point picks b; c, of weight 0, stays last.
    assert order_records([b, c, a, low], first) == [low, a, b, c]
    # A point of 10..39 picks b first.
    assert order_records([b, c, a, low], lambda n: n - 1) == [low, b, a, c]
    # Only weight-0 records: kept in order, no random draw at all.
    def never(n):
        raise AssertionError("no draw expected")
    assert order_records([SrvRecord(1, 0, 1, "y."), SrvRecord(0, 0, 1, "x.")], never) == \
        [SrvRecord(0, 0, 1, "x."), SrvRecord(1, 0, 1, "y.")]


def test_the_weighted_shuffle_follows_the_weights():
    import random

    rng = random.Random(7)
    heavy, light = SrvRecord(0, 90, 1, "heavy."), SrvRecord(0, 10, 1, "light.")
    firsts = [order_records([light, heavy], rng.randrange)[0] for _ in range(2000)]
    assert 0.85 < firsts.count(heavy) / len(firsts) < 0.95


def test_the_dnspython_adapter(monkeypatch):
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype
    import dns.resolver

    answers = {"_etcd-client._tcp.example.com": [
        dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SRV, "10 60 2379 etcd1.example.com."),
        dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SRV, "0 5 22379 etcd2.example.com."),
    ]}
    asked = []

    class FakeResolver:
        def resolve(self, name, rdtype, search=None):
            asked.append((name, rdtype, search))
            if name not in answers:
                raise dns.resolver.NXDOMAIN(qnames=[dns.name.from_text(name)])
            return answers[name]

    monkeypatch.setattr(dns.resolver, "Resolver", FakeResolver)
    assert etcd_srv.dns_srv_lookup("_etcd-client._tcp.example.com") == [
        SrvRecord(10, 60, 2379, "etcd1.example.com."), SrvRecord(0, 5, 22379, "etcd2.example.com.")]
    assert asked == [("_etcd-client._tcp.example.com", "SRV", True)]
    with pytest.raises(SrvLookupFailed, match="does not exist"):
        etcd_srv.dns_srv_lookup("_etcd-client-ssl._tcp.example.com")
    # The default lookup of discover_etcd_endpoints is that adapter: priority 0 first.
    assert discover_etcd_endpoints("example.com") == ("http://etcd2.example.com:22379",
                                                      "http://etcd1.example.com:2379")


# -- configuration ------------------------------------------------------------------------

def test_discovery_is_a_datastore_config():
    cfg = datastore_config_from_env({"DATASTORE_TYPE": "etcdv3", "ETCD_DISCOVERY_SRV": "example.com"})
    assert (cfg.datastore_type, cfg.etcd_endpoints, cfg.etcd_discovery_srv) == (ETCDV3, (), "example.com")
    assert cfg.etcd_discovery_srv_setting == "ETCD_DISCOVERY_SRV"
    prefixed = datastore_config_from_env({"DATASTORE_TYPE": "etcdv3", "CALICO_ETCD_DISCOVERY_SRV": "corp.example"})
    assert (prefixed.etcd_discovery_srv, prefixed.etcd_discovery_srv_setting) == \
        ("corp.example", "CALICO_ETCD_DISCOVERY_SRV")
    # It does not select etcd by itself (only ETCD_ENDPOINTS does), as in Calico.
    assert datastore_config_from_env({"ETCD_DISCOVERY_SRV": "example.com"}).datastore_type == KUBERNETES
    with pytest.raises(ConfigError, match="multiple discovery or bootstrap options"):
        datastore_config_from_env({"ETCD_ENDPOINTS": "http://a:1", "ETCD_DISCOVERY_SRV": "example.com"})


def test_a_domain_that_is_not_a_dns_name_is_refused_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError) as info:
        datastore_config_from_env({"DATASTORE_TYPE": "etcdv3", "ETCD_DISCOVERY_SRV": "http://example.com"})
    assert str(info.value).startswith("ETCD_DISCOVERY_SRV='http://example.com' is not a DNS domain name")
    path = tmp_path / "calicoctl.cfg"
    path.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
                    "spec:\n  datastoreType: etcdv3\n  etcdDiscoverySrv: example.com\n")
    cfg = datastore_config_from_file(str(path))
    assert (cfg.etcd_discovery_srv, cfg.etcd_discovery_srv_setting) == ("example.com", f"etcdDiscoverySrv in {path}")
    path.write_text(path.read_text().replace("example.com", "'bad domain'"))
    with pytest.raises(ConfigError, match=rf"etcdDiscoverySrv in {path}='bad domain' is not a DNS domain name"):
        datastore_config_from_file(str(path))


def test_the_etcd_client_fails_with_the_discovery_error():
    from node.datastore.etcd import EtcdKV

    config = DatastoreConfig(etcd_discovery_srv="example.com")
    with pytest.raises(ConnectionFailed, match="ETCD_DISCOVERY_SRV=example.com: failed to discover etcd endpoints"):
        EtcdKV(config, srv_lookup=fake_dns({}))


@pytest.mark.etcd
def test_the_etcd_client_dials_what_discovery_found(etcd_clean):
    from urllib.parse import urlsplit

    from node.datastore.etcd import EtcdKV

    port = urlsplit(etcd_clean.endpoint).port
    lookup = fake_dns({"_etcd-client._tcp.cluster.test": [SrvRecord(0, 0, port, "localhost.")]})
    config = datastore_config_from_env({"DATASTORE_TYPE": "etcdv3", "ETCD_DISCOVERY_SRV": "cluster.test"})
    with EtcdKV(config, srv_lookup=lookup, dial_timeout=5, request_timeout=5) as kv:
        assert kv.endpoint == f"http://localhost:{port}"
        kv.put("/calico/srv-test", "found")
        assert kv.get("/calico/srv-test").value == b"found"
    assert lookup.asked == ["_etcd-client-ssl._tcp.cluster.test", "_etcd-client._tcp.cluster.test"]
