"""Properties every render of the chart must have, for the defaults and each ci values file.

Resources, probes and a restricted securityContext on every container; TF Serving on a
GPU unless CPU-only; selectors that only name the release and the component (and match
what they select); disruption budgets that never block a drain; topics with a partition
for every replica a consumer can scale to; the addresses the services get pointing at
objects the chart renders; KEDA triggers on the consumer groups the code uses; one
dashboard ConfigMap per dashboards/*.json.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from radiounet.stream.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "charts" / "radiounet" / "dashboards"
LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet")
GPU = "nvidia.com/gpu"


def all_containers(render: Any, k8s: Any) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(where, workload, container)`` for every container and init container."""
    for workload in render.workloads():
        for container in k8s.containers(workload):
            where = f"{render.name}: {workload['kind']} {k8s.name_of(workload)}/{container['name']}"
            yield where, workload, container


def test_every_container_has_requests_and_limits(render: Any, k8s: Any) -> None:
    problems = []
    for where, _, container in all_containers(render, k8s):
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(kind) or {})
            if missing:
                problems.append(f"{where}: no {kind} for {sorted(missing)}")
    assert not problems, "\n".join(problems)


def _probe_port_ok(probe: Mapping[str, Any], container: Mapping[str, Any]) -> bool:
    handler = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc")
    if handler is None:
        return "exec" in probe
    port = handler["port"]
    declared = container.get("ports") or []
    return any(port in (p.get("name"), p["containerPort"]) for p in declared)


def test_long_running_containers_have_probes_on_declared_ports(render: Any, k8s: Any) -> None:
    problems = []
    for workload in render.of_kind(*LONG_RUNNING):
        for container in k8s.containers(workload, init=False):
            where = f"{render.name}: {k8s.name_of(workload)}/{container['name']}"
            for kind in ("livenessProbe", "readinessProbe"):
                probe = container.get(kind)
                if not probe:
                    problems.append(f"{where}: no {kind}")
                elif not _probe_port_ok(probe, container):
                    problems.append(f"{where}: {kind} on a port the container does not declare")
    assert not problems, "\n".join(problems)


def test_every_container_runs_restricted(render: Any, k8s: Any) -> None:
    problems = []
    for where, workload, container in all_containers(render, k8s):
        pod = k8s.pod_spec(workload).get("securityContext") or {}
        ctx = container.get("securityContext") or {}
        effective = {**pod, **ctx}
        if effective.get("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if effective.get("runAsUser") == 0:
            problems.append(f"{where}: runs as uid 0")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if ctx.get("privileged"):
            problems.append(f"{where}: privileged")
        capabilities = ctx.get("capabilities") or {}
        if capabilities.get("drop") != ["ALL"] or capabilities.get("add"):
            problems.append(f"{where}: capabilities {capabilities} (want drop [ALL], no add)")
        if (effective.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    assert not problems, "\n".join(problems)


def _tf_serving(render: Any) -> dict[str, Any]:
    return render.container("model-server", "tensorflow-serving")


def test_tf_serving_gets_a_gpu_by_default(renders: Any) -> None:
    container = _tf_serving(renders["default"])
    assert int(container["resources"]["limits"][GPU]) >= 1, container["resources"]
    assert container["image"].split("@")[0].endswith("-gpu"), container["image"]


def test_cpu_values_run_tf_serving_without_a_gpu(renders: Any, k8s: Any) -> None:
    render = renders["cpu-values"]
    container = _tf_serving(render)
    resources = container.get("resources") or {}
    spec = k8s.pod_spec(render.component("model-server"))
    assert GPU not in (resources.get("limits") or {}), resources
    assert GPU not in (resources.get("requests") or {}), resources
    assert "-gpu" not in container["image"], container["image"]
    assert not any(GPU in key for key in spec.get("nodeSelector") or {}), spec.get("nodeSelector")
    assert not any(GPU in (t.get("key") or "") for t in spec.get("tolerations") or [])
    assert not spec.get("runtimeClassName"), spec.get("runtimeClassName")


def test_tf_serving_flags_configmaps_and_readiness(render: Any, k8s: Any) -> None:
    workload = render.component("model-server")
    container = _tf_serving(render)
    args = container.get("args") or []
    assert all(a.startswith("--") and "=" in a for a in args), args
    flags = dict(a[2:].split("=", 1) for a in args)
    expected = {
        "port": "8500",
        "rest_api_port": "8501",
        "enable_batching": "true",
        "model_config_file": "/models/models.config",
    }
    assert {k: flags.get(k) for k in expected} == expected, flags
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in k8s.pod_spec(workload).get("volumes") or []}
    for flag, key in (
        ("batching_parameters_file", "batching.config"),
        ("monitoring_config_file", "monitoring.config"),
    ):
        mount, file_name = flags[flag].rsplit("/", 1)
        assert file_name == key, flags[flag]
        source = volumes[mounts[mount]].get("configMap")
        assert source is not None, f"{mount} is not a ConfigMap volume"
        text = render.config_value(source["name"], key)
        if key == "monitoring.config":
            assert "prometheus_config" in text and "enable: true" in text, text
            assert '"/monitoring/prometheus/metrics"' in text, text
        else:
            for field in (
                "max_batch_size",
                "batch_timeout_micros",
                "max_enqueued_batches",
                "num_batch_threads",
            ):
                assert field in text, (field, text)
    readiness = container["readinessProbe"]["httpGet"]
    assert readiness["path"] == "/v1/models/radio_unet", readiness
    pull = render.container("model-server", "model-pull")
    assert [*pull.get("command", []), *pull.get("args", [])] == [
        "radiounet",
        "model",
        "pull",
        "--prefix",
        "model_repo/",
        "--dest",
        "/models",
        "--wait",
        "600",
    ]


def tf_serving_messages() -> dict[str, Any]:
    """TF Serving's config messages, to parse its files the way ``tensorflow_model_server`` does.

    ``ModelServerConfig`` comes from tensorflow-serving-api; ``BatchingParameters``
    (tensorflow_serving/servables/tensorflow/session_bundle_config.proto) and
    ``MonitoringConfig`` (tensorflow_serving/config/monitoring_config.proto) are not in
    that package, so their fields are declared here from those files (TF Serving 2.x).
    Text format rejects an unknown field or a wrong type, as the server does at start.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
    from tensorflow_serving.config import model_server_config_pb2

    field = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(
        name="radiounet_tf_serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    batching = proto.message_type.add(name="BatchingParameters")
    for number, (name, wrapper) in enumerate(
        [
            ("max_batch_size", "Int64Value"),
            ("batch_timeout_micros", "Int64Value"),
            ("max_enqueued_batches", "Int64Value"),
            ("num_batch_threads", "Int64Value"),
            ("thread_pool_name", "StringValue"),
        ],
        1,
    ):
        batching.field.add(
            name=name,
            number=number,
            type=field.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
            label=field.LABEL_OPTIONAL,
        )
    batching.field.add(
        name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED
    )
    batching.field.add(
        name="pad_variable_length_inputs",
        number=7,
        type=field.TYPE_BOOL,
        label=field.LABEL_OPTIONAL,
    )
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=field.TYPE_BOOL, label=field.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=field.TYPE_MESSAGE,
        type_name=".tensorflow.serving.PrometheusConfig",
        label=field.LABEL_OPTIONAL,
    )
    pool.Add(proto)

    def message(name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    return {
        "models.config": model_server_config_pb2.ModelServerConfig,
        "batching.config": message("tensorflow.serving.BatchingParameters"),
        "monitoring.config": message("tensorflow.serving.MonitoringConfig"),
    }


def test_tf_serving_files_parse_as_tf_serving_reads_them(render: Any, k8s: Any) -> None:
    from google.protobuf import text_format

    workload = render.component("model-server")
    container = _tf_serving(render)
    flags = dict(a[2:].split("=", 1) for a in container.get("args") or [])
    volumes = {v["name"]: v for v in k8s.pod_spec(workload).get("volumes") or []}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        source = volumes[mount["name"]].get("configMap")
        if source is None:
            continue
        data = render.get("ConfigMap", source["name"]).get("data") or {}
        for key, text in data.items():
            path = mount["mountPath"] if mount.get("subPath") == key else None
            if not mount.get("subPath"):
                path = f"{mount['mountPath'].rstrip('/')}/{key}"
            if path is not None:
                files[path] = str(text)
    messages = tf_serving_messages()
    parsed = {}
    for flag, kind in (
        ("model_config_file", "models.config"),
        ("batching_parameters_file", "batching.config"),
        ("monitoring_config_file", "monitoring.config"),
    ):
        path = flags[flag]
        assert path in files, f"{render.name}: --{flag}={path} is no file of a ConfigMap mount"
        try:
            parsed[kind] = text_format.Parse(files[path], messages[kind]())
        except text_format.ParseError as exc:
            pytest.fail(f"{render.name}: TF Serving cannot parse {path} ({kind}): {exc}")
    (model,) = parsed["models.config"].model_config_list.config
    tiler = render.container("tiler", "tiler")
    assert model.name == k8s.env_value(render, tiler, "RADIOUNET_MODEL_NAME"), model
    assert model.base_path == f"/models/{model.name}", model.base_path
    assert model.model_platform == "tensorflow", model
    version = int(k8s.env_value(render, tiler, "RADIOUNET_MODEL_VERSION") or 0)
    policy = model.model_version_policy
    if version:
        assert list(policy.specific.versions) == [version], policy
    else:
        assert policy.WhichOneof("policy_choice") in (None, "latest"), policy
    batching = parsed["batching.config"]
    chunk = [
        int(a.split("=")[1]) for a in tiler.get("args") or [] if a.startswith("--chunk-tiles=")
    ]
    assert batching.max_batch_size.value >= max(chunk, default=16), batching
    assert batching.num_batch_threads.value >= 1, batching
    prometheus = parsed["monitoring.config"].prometheus_config
    assert prometheus.enable, prometheus
    assert prometheus.path == "/monitoring/prometheus/metrics", prometheus


def test_setup_job_pushes_the_model_repository(render: Any, k8s: Any) -> None:
    job = render.component("setup", kind="Job")
    (main,) = k8s.containers(job, init=False)
    assert [*main.get("command", []), *main.get("args", [])] == [
        "radiounet",
        "model",
        "push",
        "--repo",
        "/opt/radiounet/model_repo",
        "--prefix",
        "model_repo/",
    ]


def test_selectors_carry_only_identity_labels_and_select_their_pods(render: Any, k8s: Any) -> None:
    pods = [(w, k8s.labels_of(k8s.pod_template(w))) for w in render.of_kind(*LONG_RUNNING)]
    problems = []
    selectors: list[tuple[str, Mapping[str, str]]] = []
    for workload in render.of_kind(*LONG_RUNNING):
        selector = workload["spec"]["selector"]
        assert "matchExpressions" not in selector, workload["metadata"]
        selectors.append((f"{workload['kind']} {k8s.name_of(workload)}", selector["matchLabels"]))
        template_labels = k8s.labels_of(k8s.pod_template(workload))
        if not k8s.matches(selector["matchLabels"], template_labels):
            problems.append(f"{k8s.name_of(workload)}: selector does not match its pod template")
    for service in render.of_kind("Service"):
        if service["spec"].get("selector"):
            selectors.append((f"Service {k8s.name_of(service)}", service["spec"]["selector"]))
    for pdb in render.of_kind("PodDisruptionBudget"):
        selectors.append((f"PDB {k8s.name_of(pdb)}", pdb["spec"]["selector"]["matchLabels"]))
    for where, selector in selectors:
        extra = set(selector) - k8s.SELECTOR_LABELS
        if extra:
            problems.append(f"{render.name}: {where} selects on {sorted(extra)}")
        if not any(k8s.matches(selector, labels) for _, labels in pods):
            problems.append(f"{render.name}: {where} selects no pod of the chart")
    assert not problems, "\n".join(problems)


def _keda_for(render: Any, k8s: Any, deployment: Mapping[str, Any]) -> dict[str, Any] | None:
    for scaled in render.of_kind("ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]
        if target["name"] == k8s.name_of(deployment) and target.get("kind", "Deployment") == (
            "Deployment"
        ):
            return dict(scaled)
    return None


def _max_replicas(render: Any, k8s: Any, workload: Mapping[str, Any]) -> int:
    scaled = _keda_for(render, k8s, workload)
    if scaled is not None:
        return int(scaled["spec"].get("maxReplicaCount", 100))  # KEDA's default
    return int(workload["spec"].get("replicas", 1))


def test_pdbs_never_block_a_drain(render: Any, k8s: Any) -> None:
    problems = []
    for pdb in render.of_kind("PodDisruptionBudget"):
        spec = pdb["spec"]
        name = f"{render.name}: PDB {k8s.name_of(pdb)}"
        if "maxUnavailable" in spec:
            value = spec["maxUnavailable"]
            ok = int(str(value).rstrip("%")) >= 1
            if not ok:
                problems.append(f"{name}: maxUnavailable {value!r}")
            continue
        targets = [
            w
            for w in render.of_kind(*LONG_RUNNING)
            if k8s.matches(spec["selector"]["matchLabels"], k8s.labels_of(k8s.pod_template(w)))
        ]
        for workload in targets:
            scaled = _keda_for(render, k8s, workload)
            fewest = (
                int(scaled["spec"].get("minReplicaCount", 0))
                if scaled is not None
                else int(workload["spec"].get("replicas", 1))
            )
            if not isinstance(spec.get("minAvailable"), int) or spec["minAvailable"] >= fewest:
                problems.append(
                    f"{name}: minAvailable {spec.get('minAvailable')!r} blocks "
                    f"a drain of {k8s.name_of(workload)} ({fewest} replicas)"
                )
    assert not problems, "\n".join(problems)


def test_topics_have_a_partition_for_every_consumer_replica(
    render: Any, k8s: Any, code_facts: Any
) -> None:
    topics = {t["spec"].get("topicName", k8s.name_of(t)): t for t in render.of_kind("KafkaTopic")}
    problems = []
    for stage in k8s.STAGES:
        deployment = render.component(stage)
        container = render.container(stage, stage)
        prefix = k8s.env_value(render, container, "RADIOUNET_TOPIC_PREFIX")
        assert prefix is not None, f"{render.name}: {stage} has no RADIOUNET_TOPIC_PREFIX"
        topic = prefix + code_facts.inputs[stage]
        most = _max_replicas(render, k8s, deployment)
        if topics:
            if topic not in topics:
                problems.append(f"{render.name}: no KafkaTopic {topic} for the {stage}")
                continue
            partitions = int(topics[topic]["spec"]["partitions"])
        else:  # no Strimzi: the services create the topics with RADIOUNET_TOPIC_PARTITIONS
            env = k8s.env_value(render, container, "RADIOUNET_TOPIC_PARTITIONS")
            partitions = int(env) if env is not None else Settings().topic_partitions
        if partitions < most:
            problems.append(
                f"{render.name}: {topic} has {partitions} partitions but the {stage} "
                f"scales to {most} replicas"
            )
    if topics:
        prefix = k8s.env_value(
            render, render.container("fetcher", "fetcher"), "RADIOUNET_TOPIC_PREFIX"
        )
        missing = {f"{prefix}{t}" for t in code_facts.topics} - set(topics)
        assert not missing, f"{render.name}: no KafkaTopic for {sorted(missing)}"
    assert not problems, "\n".join(problems)


def test_strimzi_resources_form_one_kraft_cluster(render: Any, k8s: Any) -> None:
    kafkas = render.of_kind("Kafka")
    if not kafkas:
        assert not render.of_kind("KafkaNodePool", "KafkaTopic"), render.name
        return
    (kafka,) = kafkas
    annotations = kafka["metadata"].get("annotations") or {}
    assert annotations.get("strimzi.io/kraft") == "enabled", annotations
    assert annotations.get("strimzi.io/node-pools") == "enabled", annotations
    cluster = k8s.name_of(kafka)
    pools = render.of_kind("KafkaNodePool")
    assert pools, f"{render.name}: a node-pool cluster without a KafkaNodePool"
    roles = {role for pool in pools for role in pool["spec"]["roles"]}
    assert roles == {"controller", "broker"}, roles
    for obj in [*pools, *render.of_kind("KafkaTopic")]:
        assert k8s.labels_of(obj)["strimzi.io/cluster"] == cluster, obj["metadata"]
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    for topic in render.of_kind("KafkaTopic"):
        assert topic["spec"].get("replicas", 1) <= brokers, topic["spec"]


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _service_serves(render: Any, k8s: Any, address: str, workload: Mapping[str, Any]) -> bool:
    """True if ``host:port`` is a Service port that reaches a declared port of ``workload``."""
    host, port = _host_port(address)
    pod_labels = k8s.labels_of(k8s.pod_template(workload))
    declared = [p for c in k8s.containers(workload, init=False) for p in c.get("ports") or []]
    for service in render.of_kind("Service"):
        selector = service["spec"].get("selector")
        if k8s.name_of(service) != host.split(".")[0] or not selector:
            continue
        if not k8s.matches(selector, pod_labels):
            return False
        for entry in service["spec"]["ports"]:
            if entry["port"] == port:
                target = entry.get("targetPort", port)
                return any(target in (p.get("name"), p["containerPort"]) for p in declared)
    return False


def test_addresses_point_at_the_chart_objects(render: Any, k8s: Any) -> None:
    kafka = render.of_kind("Kafka")
    stores = [
        w for w in render.workloads() if k8s.labels_of(w).get(k8s.COMPONENT) == "object-store"
    ]
    model_server = render.component("model-server")
    for stage in k8s.STAGES:
        container = render.container(stage, stage)
        where = f"{render.name}: {stage}"
        server = k8s.env_value(render, container, "RADIOUNET_MODEL_SERVER")
        assert server and _service_serves(render, k8s, server, model_server), (where, server)
        bootstrap = k8s.env_value(render, container, "RADIOUNET_KAFKA_BOOTSTRAP")
        assert bootstrap, f"{where}: no RADIOUNET_KAFKA_BOOTSTRAP"
        if kafka:
            host, port = _host_port(bootstrap)
            assert host == f"{k8s.name_of(kafka[0])}-kafka-bootstrap", (where, bootstrap)
            listeners = {x["port"] for x in kafka[0]["spec"]["kafka"]["listeners"]}
            assert port in listeners, (where, bootstrap, listeners)
        endpoint = k8s.env_value(render, container, "RADIOUNET_S3_ENDPOINT")
        assert endpoint and "://" not in endpoint, (where, endpoint)
        if stores:
            assert _service_serves(render, k8s, endpoint, stores[0]), (where, endpoint)
        metrics_port = k8s.env_value(render, container, "RADIOUNET_METRICS_PORT")
        ports = {p["containerPort"] for p in container.get("ports") or []}
        assert metrics_port is not None and int(metrics_port) in ports, (where, metrics_port)
        env = {v["name"]: v for v in container.get("env") or []}
        assert env["RADIOUNET_INSTANCE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        for key in ("RADIOUNET_S3_ACCESS_KEY", "RADIOUNET_S3_SECRET_KEY"):
            assert "secretKeyRef" in env[key].get("valueFrom", {}), (where, env[key])


def test_default_install_renders_the_s3_secret(renders: Any, k8s: Any) -> None:
    render = renders["default"]
    container = render.container("tiler", "tiler")
    for key in ("RADIOUNET_S3_ACCESS_KEY", "RADIOUNET_S3_SECRET_KEY"):
        value = k8s.env_value(render, container, key)
        assert value, f"{key} resolves to {value!r}"


def test_keda_scales_the_consumers_on_their_groups(render: Any, k8s: Any, code_facts: Any) -> None:
    scaled_objects = render.of_kind("ScaledObject")
    for stage in k8s.STAGES:
        deployment = render.component(stage)
        scaled = _keda_for(render, k8s, deployment)
        if scaled is None:
            assert "replicas" in deployment["spec"], f"{render.name}: {stage} has no replicas"
            continue
        assert "replicas" not in deployment["spec"], f"{render.name}: KEDA and replicas on {stage}"
        spec = scaled["spec"]
        assert spec.get("minReplicaCount", 0) <= spec["maxReplicaCount"], spec
        (trigger,) = [t for t in spec["triggers"] if t["type"] == "kafka"]
        meta = trigger["metadata"]
        container = render.container(stage, stage)
        prefix = k8s.env_value(render, container, "RADIOUNET_TOPIC_PREFIX")
        assert meta["consumerGroup"] == code_facts.group(stage), meta
        assert meta["topic"] == f"{prefix}{code_facts.inputs[stage]}", meta
        assert int(meta["lagThreshold"]) >= 1, meta
        bootstrap = k8s.env_value(render, container, "RADIOUNET_KAFKA_BOOTSTRAP")
        hosts = [_host_port(a) for a in meta["bootstrapServers"].split(",")]
        wanted = [_host_port(a) for a in bootstrap.split(",")]
        assert [(h.split(".")[0], p) for h, p in hosts] == [
            (h.split(".")[0], p) for h, p in wanted
        ], (meta["bootstrapServers"], bootstrap)
    assert len(scaled_objects) in (0, len(k8s.STAGES)), [k8s.name_of(s) for s in scaled_objects]
    if render.name == "keda-values":
        assert len(scaled_objects) == len(k8s.STAGES)


def test_dashboards_are_shipped_as_configmaps(render: Any, k8s: Any) -> None:
    files = sorted(DASHBOARDS.glob("*.json"))
    maps = [
        m for m in render.of_kind("ConfigMap") if k8s.labels_of(m).get("grafana_dashboard") == "1"
    ]
    shipped: dict[str, Any] = {}
    for config_map in maps:
        for key, text in (config_map.get("data") or {}).items():
            shipped[key] = json.loads(text)
    if not maps and render.name not in ("default", "monitoring-values"):
        return  # a feature file may switch the dashboards off
    assert sorted(shipped) == [f.name for f in files], (sorted(shipped), files)
    for path in files:
        assert shipped[path.name] == json.loads(path.read_text()), path.name


def test_values_files_keep_replicas_and_resources_sane(render: Any, k8s: Any) -> None:
    """Quantities parse, and no limit is below its request."""
    units = {
        "": 1,
        "m": 1e-3,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
    }

    def amount(text: Any) -> float:
        text = str(text)
        for unit in sorted(units, key=len, reverse=True):
            if unit and text.endswith(unit):
                return float(text[: -len(unit)]) * units[unit]
        return float(text)

    problems = []
    for where, _, container in all_containers(render, k8s):
        resources = container.get("resources") or {}
        for key, request in (resources.get("requests") or {}).items():
            limit = (resources.get("limits") or {}).get(key)
            if limit is not None and amount(limit) < amount(request):
                problems.append(f"{where}: {key} limit {limit} below request {request}")
            if not math.isfinite(amount(request)):
                problems.append(f"{where}: {key} request {request}")
    assert not problems, "\n".join(problems)


def test_the_classifier_reads_thresholds_where_the_models_are_pushed(
    renders: Any, env_of: Any
) -> None:
    render = renders["default"]
    classifier = render.container("classifier", "classifier")
    args = classifier["args"]
    assert not any(a.startswith("--threshold") for a in args), args
    (repository,) = [a.split("=", 1)[1] for a in args if a.startswith("--model-repo=")]
    # The bucket every container uses, and the prefix of the setup Job's push and TF Serving's pull.
    bucket = env_of(render, classifier, pod_name="classifier-0")["RADIOUNET_BUCKET"]
    push = render.container("setup", "model-push", kind="Job")
    pull = render.container("model-server", "model-pull")
    for container in (push, pull):
        assert env_of(render, container, pod_name="p-0")["RADIOUNET_BUCKET"] == bucket
        prefix = container["args"][container["args"].index("--prefix") + 1]
        assert repository == f"s3://{bucket}/{prefix}", container["args"]


def test_a_fixed_threshold_replaces_the_repository(helm: Any, k8s: Any) -> None:
    # --set-json: helm --set passes 0.02 as a string, which the schema refuses.
    done = helm(*k8s.template_args(extra=["--set-json", "classifier.threshold=0.02"]))
    assert done.returncode == 0, done.stderr
    (deployment,) = [
        d
        for d in k8s.parse_manifests(done.stdout)
        if d.get("kind") == "Deployment" and k8s.labels_of(d).get(k8s.COMPONENT) == "classifier"
    ]
    args = k8s.containers(deployment)[0]["args"]
    assert "--threshold=0.02" in args and not any(a.startswith("--model-repo") for a in args)
