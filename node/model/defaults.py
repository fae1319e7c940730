"""Defaults libcalico-go fills in when it writes a KubeControllersConfiguration.

Calico's typed client sets some fields before validating (the metrics port, the node
controller's leak grace period, the load balancer's assignment mode), and in etcd mode
its validator then applies the CRD schema defaults (health checks and the policy name
migrator enabled). The stored bytes include all of them, so a write must apply them to
store what Calico stores. Pure: the datastore client calls it on create and update.
"""
from __future__ import annotations

from node.errors import ValidationError
from node.model.resource import Resource
from node.model.schema import Collector, canonical_struct
from node.model.validators import DNS1123_MAX

KCC_NAME = "default"


def _crd_defaults(spec: dict) -> None:
    """The KubeControllersConfiguration CRD schema's defaults, applied where absent."""
    if not spec.get("healthChecks"):
        spec["healthChecks"] = "Enabled"
    controllers = spec.get("controllers") or {}
    if isinstance(controllers.get("loadBalancer"), dict) and not controllers["loadBalancer"].get("assignIPs"):
        controllers["loadBalancer"]["assignIPs"] = "AllServices"
    if isinstance(controllers.get("policyMigration"), dict) and not controllers["policyMigration"].get("enabled"):
        controllers["policyMigration"]["enabled"] = "Enabled"


def kube_controllers_write_defaults(res: Resource, creating: bool) -> None:
    """Fill in Calico's defaults on ``res`` (canonical) and check what Calico checks.

    Raises ValidationError naming the field: a host endpoint template without a name, with
    a name past 253 characters or a repeated one, or with neither interfaceCIDRs nor
    interfacePattern; and, on create, a name other than "default".
    """
    ident = res.identifier()
    spec = res.spec
    if spec.get("prometheusMetricsPort") is None:
        spec["prometheusMetricsPort"] = 9094
    controllers = spec.setdefault("controllers", {})
    node = controllers.get("node")
    problems = []
    if isinstance(node, dict):
        if node.get("leakGracePeriod") is None:
            node["leakGracePeriod"] = "15m0s"
        templates = (node.get("hostEndpoint") or {}).get("templates") or []
        seen: set[str] = set()
        for i, template in enumerate(templates):
            path = f"{ident}.spec.controllers.node.hostEndpoint.templates[{i}]"
            name = template.get("generateName", "")
            if not name:
                problems.append((f"{path}.generateName", "", "Template name must be specified"))
            elif len(name) > DNS1123_MAX:
                problems.append((f"{path}.generateName", name, "Template name must be shorter than 253 characters"))
            elif name in seen:
                problems.append((f"{path}.generateName", name, "Template name must be unique"))
            seen.add(name)
            if not template.get("interfaceCIDRs") and not template.get("interfacePattern"):
                problems.append((path, name, "InterfaceCIDRs or InterfacePattern must be specified"))
            # Calico's loop also sets an empty nodeSelector to all(), but on a copy of the
            # template, so nothing is stored: neither do we.
    load_balancer = controllers.get("loadBalancer")
    if isinstance(load_balancer, dict) and not load_balancer.get("assignIPs"):
        load_balancer["assignIPs"] = "AllServices"
    if problems:
        raise ValidationError(problems)
    _crd_defaults(spec)
    running = (res.status or {}).get("runningConfig")
    if isinstance(running, dict):
        _crd_defaults(running)
        res.status = canonical_struct(res.status, res.info.status, "status", Collector(), False)
    res.spec = canonical_struct(spec, res.info.spec, "spec", Collector(), False)
    if creating and res.name != KCC_NAME:
        raise ValidationError([(f"{ident}.metadata.name", res.name,
                                'Cannot create a Kube Controllers Configuration resource with a name other than '
                                '"default"')])
