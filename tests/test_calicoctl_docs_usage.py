"""calicoctl as Calico's documentation shows an operator using it, checked against
calicoctl v3.32.1's source where our behaviour had differed.

Pages: docs.tigera.io/calico/latest/operations/calicoctl/configure/{etcd,kdd} (config
files), .../reference/calicoctl/{patch,label}. Sources: libcalico-go/lib/apiconfig/load.go,
calicoctl/calicoctl/commands/clientmgr/client.go, libcalico-go/lib/backend/etcdv3/
{etcdv3.go,inline_cert_key.go}, libcalico-go/lib/backend/k8s/client.go,
calicoctl/calicoctl/commands/{patch.go,label.go}, calicoctl/calicoctl/resourcemgr/resourcemgr.go.
"""
from __future__ import annotations

from pathlib import Path


from etcd_server import EtcdServer
from kdd_fixtures import kube, kube_config  # noqa: F401 - fixtures
from node.cli import calicoctl

POOL = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p1}\nspec: {cidr: 10.1.0.0/16}\n"
NODE = "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node-0, labels: {rack: r1}}\nspec: {}\n"


def run(capsys, *args):
    code = calicoctl.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


# --------------------------------------------------------------------------------------
# The config file (configure/etcd.mdx; apiconfig/load.go, clientmgr/client.go)

def test_a_config_file_that_does_not_exist_ends_calicoctl_on_stdout(capsys, tmp_path):
    # clientmgr.LoadClientConfig: fmt.Printf("Error reading config file: %s\n") and os.Exit(1),
    # whatever the command, before the command can wrap or skip the error.
    missing = str(tmp_path / "nope.cfg")
    for args in (["get", "nodes"], ["ipam", "show"], ["label", "nodes", "n1", "a=b"], ["delete", "node", "n1"]):
        assert run(capsys, *args, "-c", missing) == (1, f"Error reading config file: {missing}\n", ""), args
    # version prints the client's lines before it makes a client.
    code, out, err = run(capsys, "version", "-c", missing)
    assert (code, err) == (1, "") and out.startswith("Client Version:")
    assert out.endswith(f"\nError reading config file: {missing}\n")
    # Commands that make no client do not look at it.
    (tmp_path / "pool.yaml").write_text(POOL)
    assert run(capsys, "validate", "-f", str(tmp_path / "pool.yaml"), "-c", missing)[0] == 0


def test_a_config_file_field_calicoctl_does_not_know_is_refused(ctl, tmp_path, capsys, etcd_clean_config):
    # LoadClientConfigFromBytes reads with yaml.UnmarshalStrict: a misspelt field is an error,
    # not a setting silently left out.
    cfg = tmp_path / "typo.cfg"
    endpoint = etcd_clean_config.etcd_endpoints[0]
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata:\nspec:\n"
                   f"  datastoreType: etcdv3\n  etcdEndpoints: {endpoint}\n  etcdCaCertFile: /etc/calico/ca.pem\n")
    code, out, err = run(capsys, "get", "nodes", "-c", str(cfg))
    assert (code, out) == (1, "")
    assert err == (f"Failed to create Calico API client: syntax error in {cfg}: failed to parse config as "
                   'YAML/JSON: error unmarshaling JSON: while decoding JSON: json: unknown field "etcdCaCertFile"\n')
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nstatus: {}\n"
                   f"spec: {{etcdEndpoints: '{endpoint}'}}\n")
    assert 'unknown field "status"' in run(capsys, "get", "nodes", "-c", str(cfg))[2]
    # The page's own example (an empty metadata, no datastoreType) works, in JSON too, and
    # so do the KDD page's fields that change nothing here.
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata:\n"
                   f"spec:\n  etcdEndpoints: {endpoint}\n  k8sDisableNodePoll: true\n")
    assert run(capsys, "get", "nodes", "-c", str(cfg)) == (0, "NAME   \n\n", "")
    cfg.write_text('{"apiVersion": "projectcalico.org/v3", "kind": "CalicoAPIConfig", '
                   f'"spec": {{"datastoreType": "etcdv3", "etcdEndpoints": "{endpoint}"}}}}')
    assert run(capsys, "get", "nodes", "-c", str(cfg))[0] == 0


def test_a_config_file_apiversion_is_checked_first(capsys, tmp_path):
    # load.go checks the APIVersion before the kind, and an empty one is no exception.
    cfg = tmp_path / "c.cfg"
    for text, message in (("apiVersion: projectcalico.org/v2\nkind: CalicoAPIConfig\n",
                           "invalid config file: unknown APIVersion 'projectcalico.org/v2'"),
                          ("kind: CalicoAPIConfig\nspec: {etcdEndpoints: 'http://127.0.0.1:2379'}\n",
                           "invalid config file: unknown APIVersion ''"),
                          ("apiVersion: projectcalico.org/v3\nkind: Config\n",
                           "invalid config file: expected kind 'CalicoAPIConfig', got 'Config'")):
        cfg.write_text(text)
        assert run(capsys, "get", "nodes", "-c", str(cfg)) == (1, "", f"Failed to create Calico API client: {message}\n")


def test_inline_etcd_certificates_from_the_etcd_page(tls_etcd, tmp_path, capsys):
    # configure/etcd.mdx "Example configuration file with inline CA certificate, client
    # certificate and key": etcdCACert, etcdCert and etcdKey hold the PEM text.
    ca, cert, key = (Path(p).read_text() for p in (tls_etcd.ca_file, tls_etcd.client_cert_file,
                                                     tls_etcd.client_key_file))
    head = ("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata:\nspec:\n  datastoreType: etcdv3\n"
            f"  etcdEndpoints: '{tls_etcd.endpoint}'\n")
    cfg = tmp_path / "inline.cfg"
    cfg.write_text(head + "  etcdCACert: |\n" + _indent(ca) + "  etcdCert: |\n" + _indent(cert)
                   + "  etcdKey: |\n" + _indent(key))
    (tmp_path / "pool.yaml").write_text(POOL)
    assert run(capsys, "create", "-f", str(tmp_path / "pool.yaml"), "-c", str(cfg)) == \
        (0, "Successfully created 1 'IPPool' resource(s)\n", "")
    code, out, _ = run(capsys, "get", "ippools", "-c", str(cfg))
    assert code == 0 and out.splitlines()[1].split() == ["p1", "10.1.0.0/16", "all()"]

    # etcdv3.go: inline material and files may not be mixed.
    cfg.write_text(head + "  etcdCACert: |\n" + _indent(ca) + "  etcdCert: |\n" + _indent(cert)
                   + "  etcdKey: |\n" + _indent(key) + f"  etcdCACertFile: {tls_etcd.ca_file}\n")
    assert run(capsys, "get", "ippools", "-c", str(cfg)) == (
        1, "", "Failed to create Calico API client: Cannot mix inline certificate-key and certificate / key files\n")
    # inline_cert_key.go: the certificate and key go together.
    cfg.write_text(head + "  etcdCACert: |\n" + _indent(ca))
    assert run(capsys, "get", "ippools", "-c", str(cfg)) == (
        1, "", "Failed to create Calico API client: could not initialize etcdv3 client: "
               "Certificate and Key must both be present inline.\n")
    # A handshake that fails names the inline fields, not the ETCD_*_FILE variables.
    other = EtcdServer(tls=True)  # (never started: only its CA and client pair are used)
    try:
        o_ca, o_cert, o_key = (Path(p).read_text() for p in (other.ca_file, other.client_cert_file,
                                                           other.client_key_file))
        cfg.write_text(head + "  etcdCACert: |\n" + _indent(o_ca) + "  etcdCert: |\n" + _indent(cert)
                       + "  etcdKey: |\n" + _indent(key))
        code, _, err = run(capsys, "get", "ippools", "-c", str(cfg), "--allow-version-mismatch")
        assert code == 1 and "etcd's certificate is not signed by the CA in etcdCACert" in err, err
        assert "set etcdCACert to the CA that signed etcd's certificate" in err and "ETCD_" not in err, err
        cfg.write_text(head + "  etcdCACert: |\n" + _indent(ca) + "  etcdCert: |\n" + _indent(o_cert)
                       + "  etcdKey: |\n" + _indent(o_key))
        code, _, err = run(capsys, "get", "ippools", "-c", str(cfg), "--allow-version-mismatch")
        assert code == 1 and "etcd refused this client's certificate (etcdCert); set etcdCert and etcdKey" in err, err
    finally:
        other.close()
    # A certificate that is not PEM is refused before any dial.
    cfg.write_text(head + "  etcdCert: not a certificate\n  etcdKey: |\n" + _indent(key))
    code, _, err = run(capsys, "get", "ippools", "-c", str(cfg))
    assert code == 1 and err.startswith("Failed to create Calico API client: could not initialize etcdv3 client: "
                                        "etcdCert and etcdKey must hold a PEM certificate")


def test_kubeconfig_inline(kube, kube_config, tmp_path, capsys):  # noqa: F811 - fixtures
    # CalicoAPIConfigSpec.kubeconfigInline: the kubeconfig's text, used instead of the
    # kubeconfig file (libcalico-go's CreateKubernetesClientset).
    text = Path(kube_config.kubeconfig).read_text()
    cfg = tmp_path / "kdd.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: kubernetes\n"
                   f"  kubeconfig: {tmp_path / 'missing-kubeconfig'}\n  kubeconfigInline: |\n" + _indent(text))
    (tmp_path / "pool.yaml").write_text(POOL)
    assert run(capsys, "apply", "-f", str(tmp_path / "pool.yaml"), "-c", str(cfg)) == \
        (0, "Successfully applied 1 'IPPool' resource(s)\n", "")
    code, out, _ = run(capsys, "get", "ippool", "p1", "-o", "yaml", "-c", str(cfg))
    assert code == 0 and "cidr: 10.1.0.0/16" in out
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: kubernetes\n"
                   "  kubeconfigInline: '[]'\n")
    code, _, err = run(capsys, "get", "ippools", "-c", str(cfg))
    assert code == 1 and "kubeconfigInline: cannot use the Kubernetes client configuration" in err


# --------------------------------------------------------------------------------------
# patch (reference/calicoctl/patch.mdx; commands/patch.go never reads --type)

def test_patch_with_the_reference_pages_type_json_example(ctl, client):
    ctl("create", "-f", "-", stdin=NODE)
    # The page's second example passes --type json with a merge-style document: calicoctl
    # ignores --type and applies a strategic merge patch, so it succeeds.
    code, out, err = ctl("patch", "node", "node-0", "--patch",
                         '{"spec":{"bgp": {"routeReflectorClusterID": "244.0.0.1"}}}', "--type", "json")
    assert (code, out, err) == (0, "Successfully patched 1 'Node' resource\n", "")
    assert client.get("Node", "node-0").spec["bgp"] == {"routeReflectorClusterID": "244.0.0.1"}
    # Whatever the type, strategic merge directives work (they would be unknown fields
    # under RFC 7386).
    for patch_type in ("merge", "strategic", "anything"):
        code, _, err = ctl("patch", "node", "node-0", "-t", patch_type,
                           "-p", '{"metadata": {"labels": {"$patch": "replace", "t": "%s"}}}' % patch_type)
        assert (code, err) == (0, ""), patch_type
        assert client.get("Node", "node-0").labels == {"t": patch_type}
    # An RFC 6902 operation list is not a strategic merge patch: nothing changes.
    code, out, err = ctl("patch", "node", "node-0", "--type", "json",
                         "-p", '[{"op": "remove", "path": "/metadata/labels"}]')
    assert (code, out) == (1, "")
    assert err.startswith("hit error: performing strategic merge patch: ")
    assert client.get("Node", "node-0").labels == {"t": "anything"}


# --------------------------------------------------------------------------------------
# label (reference/calicoctl/label.mdx; commands/label.go)

def test_label_value_with_an_equals_sign_is_an_invalid_label(ctl, client):
    ctl("create", "-f", "-", stdin=NODE)
    # label.go splits <key>=<value> on every "=" and wants exactly two parts.
    assert ctl("label", "nodes", "node-0", "cluster=front=end") == (1, "", "invalid label cluster=front=end\n")
    # ... checked before the resource is even looked up.
    assert ctl("label", "nodes", "nobody", "a=b=c") == (1, "", "invalid label a=b=c\n")
    assert client.get("Node", "node-0").labels == {"rack": "r1"}
    # The documented forms.
    assert ctl("label", "nodes", "node-0", "cluster=frontend") == \
        (0, "Successfully set label cluster on nodes node-0\n", "")
    assert ctl("label", "nodes", "node-0", "cluster=backend", "--overwrite") == \
        (0, "Successfully updated label cluster on nodes node-0\n", "")
    assert ctl("label", "nodes", "node-0", "cluster", "--remove") == \
        (0, "Successfully removed label cluster from nodes node-0\n", "")
    assert client.get("Node", "node-0").labels == {"rack": "r1"}

