"""The serving fleet's Kubernetes manifests (kubeflow/kustomization.yaml), checked offline.

Every resource, the manifests and the ConfigMaps the kustomization generates
from kubeflow/config, is validated against the Kubernetes API schemas that
kubernetes-validate ships (strict: unknown fields fail); then the resources are
checked against each other: what the Deployment mounts exists, the flags' files
are in those mounts, selectors select the Deployment's pods. No cluster.
"""
import copy
import importlib.metadata
import os
import re

import kubernetes_validate.utils as kubernetes_validate
import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KUBEFLOW = os.path.join(REPO, "kubeflow")
MANIFESTS = os.path.join(KUBEFLOW, "manifests")
CONFIG = os.path.join(KUBEFLOW, "config")
SECRET_TEMPLATE = "secret-tls.template.yaml"
# The oldest release with everything used here GA (gRPC-era probes, policy/v1,
# autoscaling/v2) and the newest whose schemas the validator ships.
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
# The files each generated ConfigMap carries.
CONFIGMAP_FILES = {
    "riskpipe-model-config": ("models.config", "models.config.routing.json"),
    "riskpipe-serving-config": ("monitoring.config", "batching.config"),
}
# The Deployment's flags that name a file, and the file each must be.
FILE_FLAGS = {
    "model_config_file": "models.config",
    "monitoring_config_file": "monitoring.config",
    "batching_parameters_file": "batching.config",
    "ssl_config_file": "ssl_config.pbtxt",
}


def _manifest_files():
    return sorted(name for name in os.listdir(MANIFESTS) if name.endswith(".yaml"))


def _kustomization():
    with open(os.path.join(KUBEFLOW, "kustomization.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def generated_configmaps():
    """The ConfigMaps `kubectl apply -k kubeflow/` generates, as kustomize builds them."""
    kustomization = _kustomization()
    options = kustomization["generatorOptions"]
    configmaps = []
    for generator in kustomization["configMapGenerator"]:
        data = {}
        for source in generator["files"]:
            key, _, path = source.partition("=")
            with open(os.path.join(KUBEFLOW, path), encoding="utf-8") as f:
                data[key] = f.read()
        configmaps.append({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": generator["name"], "namespace": kustomization["namespace"],
                         "labels": dict(options["labels"])},
            "data": data,
        })
    return configmaps


def _load(name):
    with open(os.path.join(MANIFESTS, name), encoding="utf-8") as f:
        documents = [doc for doc in yaml.safe_load_all(f) if doc]
    assert len(documents) == 1, f"{name}: expected one resource per file"
    return documents[0]


@pytest.fixture(scope="module")
def resources():
    """kind -> list of resources: every manifest, the Secret template, the generated ConfigMaps."""
    by_kind = {}
    for resource in [_load(name) for name in _manifest_files()] + generated_configmaps():
        by_kind.setdefault(resource["kind"], []).append(resource)
    return by_kind


def _one(resources, kind):
    assert len(resources.get(kind, [])) == 1, f"expected exactly one {kind}"
    return resources[kind][0]


def _container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _flags(container):
    flags = {}
    for arg in container["args"]:
        assert arg.startswith("--") and "=" in arg, f"flag without --name=value form: {arg}"
        name, value = arg[2:].split("=", 1)
        assert name not in flags, f"flag --{name} given twice"
        flags[name] = value
    return flags


def _validation_error(resource, version):
    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(part) for part in err.path)
        return f"{path}: {err.message}"
    return None


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", _manifest_files())
def test_manifest_is_valid_against_the_kubernetes_schema(name, version):
    resource = _load(name)
    # A kind or apiVersion the schemas do not know raises SchemaNotFoundError,
    # which fails the test as it should.
    assert _validation_error(resource, version) is None, name


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_generated_configmaps_are_valid_against_the_kubernetes_schema(version):
    configmaps = generated_configmaps()
    assert sorted(c["metadata"]["name"] for c in configmaps) == sorted(CONFIGMAP_FILES)
    for configmap in configmaps:
        assert _validation_error(configmap, version) is None, configmap["metadata"]["name"]


def test_schema_validation_rejects_a_misspelled_field():
    deployment = _load("deployment.yaml")
    broken = copy.deepcopy(deployment)
    container = _container(broken)
    container["readinesProbe"] = container.pop("readinessProbe")
    assert _validation_error(deployment, KUBERNETES_VERSIONS[0]) is None
    assert "readinesProbe" in _validation_error(broken, KUBERNETES_VERSIONS[0])


def test_schema_validation_rejects_a_wrong_type():
    hpa = _load("hpa.yaml")
    hpa["spec"]["minReplicas"] = "three"
    assert "minReplicas" in _validation_error(hpa, KUBERNETES_VERSIONS[0])


def test_kustomization_applies_every_manifest_but_the_secret_template():
    kustomization = _kustomization()
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    expected = {f"manifests/{name}" for name in _manifest_files()} - {f"manifests/{SECRET_TEMPLATE}"}
    assert sorted(listed) == sorted(expected)
    assert kustomization["namespace"] == "riskpipe"
    # The servers poll the mounted model config in place: no hash-suffixed names.
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True
    generated = {g["name"]: sorted(f.partition("=")[0] for f in g["files"])
                 for g in kustomization["configMapGenerator"]}
    assert generated == {name: sorted(files) for name, files in CONFIGMAP_FILES.items()}
    for generator in kustomization["configMapGenerator"]:
        for source in generator["files"]:
            key, _, path = source.partition("=")
            # kustomize only reads files below the kustomization's folder.
            assert not path.startswith("..") and os.path.basename(path) == key


def test_the_fleet_has_every_kind_of_resource_in_one_namespace(resources):
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                 "NetworkPolicy", "Secret", "ServiceAccount"):
        _one(resources, kind)
    assert sorted(c["metadata"]["name"] for c in resources["ConfigMap"]) == sorted(CONFIGMAP_FILES)
    namespaced = [r for kind, items in resources.items() if kind != "Namespace" for r in items]
    assert {r["metadata"]["namespace"] for r in namespaced} == {"riskpipe"}
    assert _one(resources, "Namespace")["metadata"]["name"] == "riskpipe"


def test_fleet_runs_the_tf_serving_release_of_the_locked_serving_api(resources):
    container = _container(_one(resources, "Deployment"))
    image, _, tag = container["image"].partition(":")
    assert image == "tensorflow/serving"
    assert tag == importlib.metadata.version("tensorflow-serving-api")


def test_every_selector_selects_the_deployments_pods(resources):
    deployment = _one(resources, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["spec"]["selector"]["matchLabels"],
        "Service": _one(resources, "Service")["spec"]["selector"],
        "PodDisruptionBudget": _one(resources, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "NetworkPolicy": _one(resources, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    }
    for kind, selector in selectors.items():
        assert selector and selector.items() <= pod_labels.items(), kind
    target = _one(resources, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1", "Deployment", deployment["metadata"]["name"])
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == _one(resources, "ServiceAccount")["metadata"]["name"]


def test_pods_are_labelled_with_the_model_they_serve(resources):
    pod_labels = _one(resources, "Deployment")["spec"]["template"]["metadata"]["labels"]
    model_config = _configmap_data(resources, "riskpipe-model-config")["models.config"]
    # OpenCost attributes the fleet's cost by this label.
    assert {pod_labels["riskpipe.io/model"]} == set(re.findall(r'name:\s*"([^"]+)"', model_config))


def test_service_publishes_only_the_grpc_port(resources):
    container = _container(_one(resources, "Deployment"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    flags = _flags(container)
    assert ports == {"grpc": int(flags["port"]), "rest": int(flags["rest_api_port"])}
    service_ports = _one(resources, "Service")["spec"]["ports"]
    assert [(p["targetPort"], p["port"]) for p in service_ports] == [("grpc", ports["grpc"])]


def test_every_mounted_volume_exists_and_every_config_flag_names_a_mounted_key(resources):
    deployment = _one(resources, "Deployment")
    pod_spec = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    configmaps = {c["metadata"]["name"]: c["data"] for c in resources["ConfigMap"]}
    secret = _one(resources, "Secret")

    volume_keys = {}
    for volume in pod_spec["volumes"]:
        if "configMap" in volume:
            volume_keys[volume["name"]] = set(configmaps[volume["configMap"]["name"]])
        elif "secret" in volume:
            assert volume["secret"]["secretName"] == secret["metadata"]["name"]
            volume_keys[volume["name"]] = set(secret["stringData"])
        else:
            volume_keys[volume["name"]] = None
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert {m["name"] for m in mounts.values()} == set(volume_keys)
    for mount in mounts.values():
        # A subPath mount of a ConfigMap is never refreshed: the model config
        # would never change under a running server.
        assert "subPath" not in mount

    flags = _flags(container)
    for flag, file_name in FILE_FLAGS.items():
        directory, name = os.path.split(flags[flag])
        assert name == file_name, flag
        assert directory in mounts, f"--{flag}={flags[flag]} is in no mounted volume"
        keys = volume_keys[mounts[directory]["name"]]
        assert keys is not None and name in keys, f"--{flag}: no key {name} in its volume"


def test_model_config_is_polled_and_models_are_read_where_the_pipeline_pushes(resources):
    flags = _flags(_container(_one(resources, "Deployment")))
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0
    assert flags["enable_batching"] == "true"
    with open(os.path.join(CONFIG, "pipeline.yaml"), encoding="utf-8") as f:
        pipeline = yaml.safe_load(f)
    model_config = _configmap_data(resources, "riskpipe-model-config")["models.config"]
    entries = re.findall(r'name:\s*"([^"]+)"\s*base_path:\s*"([^"]+)"', model_config)
    assert entries == [(pipeline["model_name"],
                        f"{pipeline['serving_root']}/{pipeline['model_name']}")]


def test_probes_use_the_rest_port_and_a_model_the_config_serves(resources):
    container = _container(_one(resources, "Deployment"))
    model_config = _configmap_data(resources, "riskpipe-model-config")["models.config"]
    model_names = set(re.findall(r'name:\s*"([^"]+)"', model_config))
    labels = set(re.findall(r'key:\s*"([^"]+)"', model_config))
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[probe_name]["httpGet"]
        assert probe["port"] == "rest"
        match = re.fullmatch(r"/v1/models/([^/]+)(?:/labels/([^/]+))?(/metadata)?", probe["path"])
        assert match, probe["path"]
        assert match.group(1) in model_names
        if match.group(2):
            assert match.group(2) in labels
    # Readiness needs a servable (metadata); liveness must not depend on a load.
    assert container["readinessProbe"]["httpGet"]["path"].endswith("/labels/stable/metadata")
    assert not container["livenessProbe"]["httpGet"]["path"].endswith("metadata")


def test_requests_limits_and_thread_pools_agree(resources):
    container = _container(_one(resources, "Deployment"))
    resources_ = container["resources"]
    for kind in ("requests", "limits"):
        assert set(resources_[kind]) == {"cpu", "memory"}
    cpu_limit = int(resources_["limits"]["cpu"])
    assert int(resources_["requests"]["cpu"]) <= cpu_limit
    flags = _flags(container)
    assert int(flags["tensorflow_intra_op_parallelism"]) == cpu_limit
    batching = _configmap_data(resources, "riskpipe-serving-config")["batching.config"]
    assert re.search(r"num_batch_threads\s*{\s*value:\s*(\d+)", batching).group(1) == str(cpu_limit)


def test_pods_run_unprivileged(resources):
    deployment = _one(resources, "Deployment")
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["runAsUser"] != 0
    assert pod_spec["automountServiceAccountToken"] is False
    context = _container(deployment)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]


def test_autoscaler_uses_cpu_and_requests_per_second_and_respects_the_budget(resources):
    spec = _one(resources, "HorizontalPodAutoscaler")["spec"]
    assert 1 <= spec["minReplicas"] < spec["maxReplicas"]
    metrics = {m["type"]: m for m in spec["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "tfserving_requests_per_second"
    with open(os.path.join(CONFIG, "prometheus-adapter-rules.yaml"), encoding="utf-8") as f:
        rules = yaml.safe_load(f)["rules"]
    assert [r["name"]["as"] for r in rules] == ["tfserving_requests_per_second"]
    assert ":tensorflow:serving:request_count" in rules[0]["seriesQuery"]
    # With the fewest replicas, a drain still leaves at least two serving.
    budget = _one(resources, "PodDisruptionBudget")["spec"]
    assert spec["minReplicas"] - budget["maxUnavailable"] >= 2


def test_network_policy_admits_only_the_risk_engine_to_grpc(resources):
    policy = _one(resources, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    flags = _flags(_container(_one(resources, "Deployment")))
    admitted = {}
    for rule in policy["ingress"]:
        assert rule.get("from"), "an ingress rule without `from` admits every pod"
        ports = tuple(p["port"] for p in rule["ports"])
        peers = tuple(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                      for peer in rule["from"])
        admitted[ports] = peers
    assert admitted == {
        (int(flags["port"]),): ("riskpipe-risk-engine",),
        (int(flags["rest_api_port"]),): ("prometheus",),
    }


def _configmap_data(resources, name):
    return next(c["data"] for c in resources["ConfigMap"] if c["metadata"]["name"] == name)


def test_secret_template_is_the_ssl_config_template_and_holds_no_key(resources):
    secret = _one(resources, "Secret")
    assert "data" not in secret
    assert sorted(secret["stringData"]) == ["ssl_config.pbtxt"]
    text = secret["stringData"]["ssl_config.pbtxt"]
    with open(os.path.join(CONFIG, "ssl_config.template"), encoding="utf-8") as f:
        assert text == f.read()
    # Each PEM holds a placeholder, never base64 key material.
    bodies = re.findall(r"-----BEGIN [A-Z ]+-----\\n(.*?)\\n-----END", text)
    assert len(bodies) == 3
    assert all(body.startswith("REPLACE_WITH_") for body in bodies)
