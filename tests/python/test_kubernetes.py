"""The Kubernetes manifests: rendered with `kubectl kustomize` (base, and with the cert-manager
component) and validated offline against the Kubernetes schemas with kubernetes-validate, then
checked for what running Basalt on Kubernetes needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes" / "base"
K8S_VERSION = "1.31"


def _render(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed: scripts/test needs it to render the manifests")
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _by_kind(docs):
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_base_renders_and_every_resource_is_valid():
    docs = _render(BASE)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = set(_by_kind(docs))
    assert kinds == {("Secret", "basalt-credentials"), ("Service", "basalt"),
                     ("Service", "basalt-peers"), ("StatefulSet", "basalt"),
                     ("PodDisruptionBudget", "basalt")}


def test_the_statefulset_runs_a_three_node_cluster():
    docs = _by_kind(_render(BASE))
    sts = docs[("StatefulSet", "basalt")]["spec"]
    assert sts["replicas"] == 3 and sts["serviceName"] == "basalt-peers"
    assert sts["podManagementPolicy"] == "Parallel"
    pod = sts["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["BASALT_BOOTSTRAP_EXPECT"]["value"] == "3"
    peers = env["BASALT_PEERS"]["value"].split(",")
    assert len(peers) == 3 and all(".basalt-peers." in p and p.endswith(":9100") for p in peers)
    assert env["BASALT_RPC_ADVERTISE_ADDRESS"]["value"].startswith("$(BASALT_NODE_NAME).basalt-peers.")
    assert env["BASALT_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    for name, key in [("BASALT_ROOT_PASSWORD", "root-password"),
                      ("BASALT_CLUSTER_SECRET", "cluster-secret")]:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "basalt-credentials", "key": key}
    # One PVC per drive, each mounted where BASALT_DATA names a drive.
    claims = [c["metadata"]["name"] for c in sts["volumeClaimTemplates"]]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["BASALT_DATA"]["value"].split(",") == [mounts[c] for c in claims]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    tls = next(v for v in pod["volumes"] if v["name"] == "cluster-tls")
    assert tls["secret"]["secretName"] == "basalt-cluster-tls"
    assert env["BASALT_CLUSTER_TLS_CA"]["value"].startswith(mounts["cluster-tls"])


def test_services_and_disruption_budget():
    docs = _by_kind(_render(BASE))
    peers = docs[("Service", "basalt-peers")]["spec"]
    assert peers["clusterIP"] == "None" and peers["publishNotReadyAddresses"] is True
    labels = docs[("StatefulSet", "basalt")]["spec"]["template"]["metadata"]["labels"]
    for svc in ("basalt", "basalt-peers"):
        assert docs[("Service", svc)]["spec"]["selector"].items() <= labels.items()
    pdb = docs[("PodDisruptionBudget", "basalt")]["spec"]
    assert pdb["minAvailable"] == 2 and pdb["selector"]["matchLabels"].items() <= labels.items()


def test_the_flags_the_manifests_set_are_the_binarys():
    """Every BASALT_* variable the StatefulSet sets is one `basalt server` reads."""
    from helpers import _binary
    docs = _by_kind(_render(BASE))
    (container,) = docs[("StatefulSet", "basalt")]["spec"]["template"]["spec"]["containers"]
    helptext = subprocess.run([str(_binary()), "server", "--help"], capture_output=True,
                              text=True, timeout=30).stdout
    for e in container["env"]:
        name = e["name"]
        if name.startswith("BASALT_") and name not in ("BASALT_ROOT_USER", "BASALT_ROOT_PASSWORD"):
            assert f"env: {name}" in helptext, name


def test_the_cert_manager_overlay_renders():
    docs = _by_kind(_render(BASE.parent / "overlays" / "cert-manager"))
    cert = docs[("Certificate", "basalt-cluster-tls")]
    assert cert["spec"]["secretName"] == "basalt-cluster-tls"
    assert {"server auth", "client auth"} <= set(cert["spec"]["usages"])
    # Everything but cert-manager's own kind still validates.
    for doc in docs.values():
        if doc["kind"] != "Certificate":
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
