"""The chart lints, renders with every values file, and every rendered object is valid.

Built-in kinds are validated by ``kubernetes-validate --strict`` (its Python API, in
``.tools/venv``); the custom resources (Strimzi Kafka, KafkaNodePool, KafkaTopic,
KEDA ScaledObject, ServiceMonitor) against the JSON schemas of ``crd_schemas/``.
Any other kind fails: the cluster would not know it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
VALIDATOR = HERE / "validate_manifests.py"


def validate_files(k8s: Any, files: list[Path]) -> list[dict[str, Any]]:
    """The validator's report (one entry per document) for these manifest files."""
    python = k8s.require_tool(k8s.TOOLS_PYTHON)
    done = subprocess.run(
        [str(python), str(VALIDATOR), "--schemas", str(k8s.CRD_SCHEMAS), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"validate_manifests.py failed:\n{done.stderr}"
    report: list[dict[str, Any]] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="session")
def validation(renders: Any, k8s: Any) -> dict[str, list[dict[str, Any]]]:
    """Values-file name -> the validation report of its render (one validator run for all)."""
    all_renders = renders.all()
    report = validate_files(k8s, [r.path for r in all_renders])
    by_file: dict[str, list[dict[str, Any]]] = {str(r.path): [] for r in all_renders}
    for entry in report:
        by_file[entry["file"]].append(entry)
    return {r.name: by_file[str(r.path)] for r in all_renders}


def test_helm_lint_strict(values_name: str, helm: Any, k8s: Any) -> None:
    values = k8s.values_files()[values_name]
    args = ["lint", "--strict", str(k8s.CHART), "--namespace", k8s.NAMESPACE]
    if values is not None:
        args += ["-f", str(values)]
    done = helm(*args)
    assert done.returncode == 0, f"helm lint --strict ({values_name}):\n{done.stdout}{done.stderr}"
    assert "0 chart(s) failed" in done.stdout


def test_every_object_is_identified_and_labelled(render: Any, k8s: Any) -> None:
    assert render.docs, f"{render.name}: the chart rendered nothing"
    seen = set()
    for doc in render.docs:
        where = f"{render.name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        assert {"apiVersion", "kind", "metadata"} <= set(doc), where
        key = (doc["apiVersion"].split("/")[0], doc["kind"], k8s.name_of(doc))
        assert key not in seen, f"{where}: rendered twice"
        seen.add(key)
        assert doc["metadata"].get("namespace", k8s.NAMESPACE) == k8s.NAMESPACE, where
        labels = k8s.labels_of(doc)
        assert labels.get("app.kubernetes.io/name") == "radiounet", f"{where}: {labels}"
        assert labels.get("app.kubernetes.io/instance") == k8s.RELEASE, f"{where}: {labels}"


def test_rendered_objects_are_valid(
    values_name: str, validation: dict[str, list[dict[str, Any]]]
) -> None:
    report = validation[values_name]
    assert report, f"{values_name}: nothing was validated"
    problems = [
        f"{e['kind']} {e['name']} ({e['validator']}): {error}"
        for e in report
        for error in e["errors"]
    ]
    assert not problems, f"{values_name}:\n" + "\n".join(problems)
    assert all(e["validator"] != "none" for e in report)


def test_custom_resources_are_validated_by_their_schemas(
    values_name: str, validation: dict[str, list[dict[str, Any]]]
) -> None:
    """Each CRD kind goes to its own schema, built-in kinds to Kubernetes' schemas."""
    for entry in validation[values_name]:
        group = entry["apiVersion"].split("/")[0] if "/" in entry["apiVersion"] else ""
        if group in ("kafka.strimzi.io", "keda.sh", "monitoring.coreos.com"):
            expected = f"crd {group}_{entry['apiVersion'].split('/')[1]}_{entry['kind']}.json"
            assert entry["validator"] == expected, entry
        else:
            assert entry["validator"].startswith("kubernetes "), entry


#: Documents the CRDs accept: the schemas must pass them.
VALID_CUSTOM_RESOURCES = """
apiVersion: kafka.strimzi.io/v1beta2
kind: Kafka
metadata:
  name: radiounet
  annotations: {strimzi.io/kraft: enabled, strimzi.io/node-pools: enabled}
spec:
  kafka:
    version: 4.1.0
    metadataVersion: 4.1-IV1
    listeners:
      - {name: plain, port: 9092, type: internal, tls: false}
      - {name: tls, port: 9093, type: internal, tls: true, authentication: {type: tls}}
    config:
      offsets.topic.replication.factor: 3
      auto.create.topics.enable: false
    resources: {requests: {cpu: 500m, memory: 2Gi}, limits: {memory: 2Gi}}
  entityOperator:
    topicOperator: {watchedNamespace: radiounet, resources: {requests: {cpu: 100m}}}
    userOperator: {}
---
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaNodePool
metadata: {name: dual-role, labels: {strimzi.io/cluster: radiounet}}
spec:
  replicas: 3
  roles: [controller, broker]
  storage:
    type: jbod
    volumes:
      - {id: 0, type: persistent-claim, size: 20Gi, deleteClaim: false, kraftMetadata: shared}
---
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaTopic
metadata: {name: radiounet.pointings, labels: {strimzi.io/cluster: radiounet}}
spec:
  topicName: radiounet.pointings
  partitions: 12
  replicas: 3
  config: {retention.ms: 604800000}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: radiounet-tiler}
spec:
  scaleTargetRef: {name: radiounet-tiler}
  minReplicaCount: 1
  maxReplicaCount: 12
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: radiounet-kafka-bootstrap:9092
        consumerGroup: radiounet-tiler
        topic: radiounet.cutouts
        lagThreshold: "10"
        offsetResetPolicy: earliest
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: radiounet, labels: {release: kube-prometheus-stack}}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: radiounet}}
  namespaceSelector: {matchNames: [radiounet]}
  endpoints:
    - {port: metrics, path: /metrics, interval: 30s, scrapeTimeout: 10s}
"""

#: Documents the CRDs reject (or silently drop parts of), with the error each must get.
INVALID_CUSTOM_RESOURCES = [
    (
        "KafkaNodePool with an unknown role",
        """
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaNodePool
metadata: {name: pool, labels: {strimzi.io/cluster: radiounet}}
spec: {replicas: 3, roles: [worker], storage: {type: ephemeral}}
""",
        "spec.roles.0: 'worker' is not one of ['controller', 'broker']",
    ),
    (
        "KafkaNodePool without storage",
        """
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaNodePool
metadata: {name: pool, labels: {strimzi.io/cluster: radiounet}}
spec: {replicas: 3, roles: [broker]}
""",
        "spec: 'storage' is a required property",
    ),
    (
        "KafkaTopic without its cluster label",
        """
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaTopic
metadata: {name: t}
spec: {partitions: 3, replicas: 1}
""",
        "metadata: 'labels' is a required property",
    ),
    (
        "KafkaTopic with partitions as a string",
        """
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaTopic
metadata: {name: t, labels: {strimzi.io/cluster: radiounet}}
spec: {partitions: "3", replicas: 1}
""",
        "spec.partitions: '3' is not of type 'integer'",
    ),
    (
        "Kafka listener without tls",
        """
apiVersion: kafka.strimzi.io/v1beta2
kind: Kafka
metadata: {name: k}
spec: {kafka: {listeners: [{name: plain, port: 9092, type: internal}]}}
""",
        "spec.kafka.listeners.0: 'tls' is a required property",
    ),
    (
        "Kafka with a misspelled field",
        """
apiVersion: kafka.strimzi.io/v1beta2
kind: Kafka
metadata: {name: k}
spec: {kafka: {listener: [], listeners: [{name: plain, port: 9092, type: internal, tls: false}]}}
""",
        "spec.kafka: Additional properties are not allowed ('listener' was unexpected)",
    ),
    (
        "ScaledObject with maxReplicas (the HPA's name, not KEDA's)",
        """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: s}
spec:
  scaleTargetRef: {name: d}
  maxReplicas: 4
  triggers: [{type: kafka, metadata: {bootstrapServers: "k:9092", consumerGroup: g}}]
""",
        "spec: Additional properties are not allowed ('maxReplicas' was unexpected)",
    ),
    (
        "ScaledObject kafka trigger with a non-string lagThreshold",
        """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: s}
spec:
  scaleTargetRef: {name: d}
  triggers: [{type: kafka, metadata: {bootstrapServers: "k:9092", consumerGroup: g,
                                      lagThreshold: 10}}]
""",
        "spec.triggers.0.metadata.lagThreshold: 10 is not of type 'string'",
    ),
    (
        "ScaledObject kafka trigger without a consumer group",
        """
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: s}
spec:
  scaleTargetRef: {name: d}
  triggers: [{type: kafka, metadata: {bootstrapServers: "k:9092", topic: t}}]
""",
        "spec.triggers.0.metadata: 'consumerGroup' is a required property",
    ),
    (
        "ServiceMonitor without endpoints",
        """
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: m}
spec: {selector: {matchLabels: {a: b}}}
""",
        "spec: 'endpoints' is a required property",
    ),
    (
        "ServiceMonitor endpoint with a bad interval",
        """
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: m}
spec: {selector: {}, endpoints: [{port: metrics, interval: 30 seconds}]}
""",
        "spec.endpoints.0.interval: '30 seconds' does not match",
    ),
    (
        "Deployment with a misspelled field (strict Kubernetes schema)",
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicaz: 2
  selector: {matchLabels: {a: b}}
  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}
""",
        "spec: Additional properties are not allowed ('replicaz' was unexpected)",
    ),
    (
        "a kind no schema knows",
        """
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
""",
        "unknown kind Widget (example.com/v1)",
    ),
]


def test_crd_schemas_accept_documented_resources(k8s: Any, tmp_path: Path) -> None:
    path = tmp_path / "valid.yaml"
    path.write_text(VALID_CUSTOM_RESOURCES)
    report = validate_files(k8s, [path])
    assert [e["kind"] for e in report] == [
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "ScaledObject",
        "ServiceMonitor",
    ]
    assert all(e["validator"].startswith("crd ") for e in report)
    assert [e["errors"] for e in report] == [[]] * 5


def test_crd_schemas_reject_what_the_crds_reject(k8s: Any, tmp_path: Path) -> None:
    files = []
    for i, (_, text, _) in enumerate(INVALID_CUSTOM_RESOURCES):
        path = tmp_path / f"invalid-{i:02d}.yaml"
        path.write_text(text)
        files.append(path)
    report = validate_files(k8s, files)
    assert len(report) == len(INVALID_CUSTOM_RESOURCES)
    for (what, _, expected), entry in zip(INVALID_CUSTOM_RESOURCES, report, strict=True):
        assert any(expected in error for error in entry["errors"]), (what, entry["errors"])


def test_values_schema_rejects_a_misspelled_key(helm: Any, k8s: Any, renders: Any) -> None:
    assert renders["default"].docs  # the same command without the typo renders
    done = helm(*k8s.template_args(extra=["--set", "tiler.replicaz=2"]))
    assert done.returncode != 0, "helm template accepted tiler.replicaz"
    assert "replicaz" in done.stderr, done.stderr
    assert "schema" in done.stderr.lower(), done.stderr


def test_values_yaml_points_at_its_schema(k8s: Any) -> None:
    values = (k8s.CHART / "values.yaml").read_text()
    assert values.splitlines()[0] == "# yaml-language-server: $schema=values.schema.json"
    schema = json.loads((k8s.CHART / "values.schema.json").read_text())
    assert schema.get("additionalProperties") is False
    assert set(yaml.safe_load(values)) <= set(schema["properties"])


def test_servicemonitors_render_only_where_the_api_exists(render: Any, helm: Any, k8s: Any) -> None:
    """Without monitoring.coreos.com/v1 the render is the same minus the ServiceMonitors."""
    apis = [a for a in k8s.CRD_API_VERSIONS if not a.startswith("monitoring.coreos.com/")]
    done = helm(*k8s.template_args(render.values, api_versions=apis))
    assert done.returncode == 0, done.stderr
    without = k8s.parse_manifests(done.stdout)
    assert [d for d in without if d["kind"] == "ServiceMonitor"] == []
    expected = [d for d in render.docs if d["kind"] != "ServiceMonitor"]
    assert [(d["kind"], k8s.name_of(d)) for d in without] == [
        (d["kind"], k8s.name_of(d)) for d in expected
    ]


def test_monitoring_values_render_both_servicemonitors(renders: Any, k8s: Any) -> None:
    if "monitoring-values" not in k8s.values_files():
        pytest.fail("charts/radiounet/ci/monitoring-values.yaml is missing")
    monitors = renders["monitoring-values"].of_kind("ServiceMonitor")
    paths = {e.get("path", "/metrics") for m in monitors for e in m["spec"]["endpoints"]}
    assert {"/metrics", "/monitoring/prometheus/metrics"} <= paths, paths
    for monitor in monitors:
        assert k8s.labels_of(monitor).get("release"), monitor["metadata"]
