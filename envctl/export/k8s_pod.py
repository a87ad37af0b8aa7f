"""The pod every Kubernetes format runs, from an Export: one container that starts the prelude
through the manifest's shell, the prelude's files from a ConfigMap, and the manifest's container
settings in Kubernetes' terms (research scale-out.md §3.8, MindCluster's examples §1.7):

- image with `imagePullPolicy: Never` (imported on every node; nothing is pulled), or, for an
  image the manifest pulls, its canonical name pinned by digest with `IfNotPresent` and the
  `--pull-secret` in imagePullSecrets (envctl.export.pulled);
- the Secret `<job>-secrets` for secrets and container.pass_env (envctl.export.passed);
- `network: host` → `hostNetwork: true` with `dnsPolicy: ClusterFirstWithHostNet` (so the
  cluster's DNS still names the other pods); `ipc: host` → `hostIPC: true`; `pid: host` → `hostPID`;
- `shm_size` → an `emptyDir {medium: Memory, sizeLimit}` at /dev/shm (the `dshm` volume of
  MindCluster's examples);
- `cap_add` → `securityContext.capabilities.add` (names without CAP_), `privileged`;
- device-plugin resources as requests = limits (extended resources cannot be overcommitted);
- host paths: the driver's files, artifacts from envctl's cache and the workspace, read-only
  where `up` mounts them read-only; or, with a claim, subPaths of one PersistentVolumeClaim;
- one pod per node (required anti-affinity on the job's label): with host networking two pods
  of the job on one node would share its ports.
"""

from __future__ import annotations

import re

import yaml

from envctl.export import passed
from envctl.export.files import node_spec, prelude_files
from envctl.export.model import PRELUDE_DIR, Export

JOB_LABEL = "envctl/job"
_VOLUME = re.compile(r"[^a-z0-9-]+")


# MindCluster's `ring-controller.atlas` values by server type. Sources: MindCluster's Ascend
# Operator parameters (hiascend.com mindx-dl 6.0.RC3 clusterscheduling/ref/api/dlug_api_022.html,
# "ring-controller.atlas": Atlas A2 training series and Atlas 900 A3 SuperPoD take ascend-{xxx}b,
# i.e. ascend-910b, as the mind-cluster sample pytorch_multinodes_acjob_910b.yaml writes it;
# the Atlas training series, the first 910, needs none) and MindX DL 3.0.RC3 dlug_000226.html
# (node and pod labels: ring-controller.atlas = ascend-910 for the 910's pods). The label is read by
# Ascend Device Plugin, Ascend Operator and Volcano's Ascend plugin (mindcluster 7.3.0
# dlug_api_024.html, PodGroup labels).
_RING_910B = re.compile(r"910\s*-?\s*[bc]|\ba[23]\b|superpod")  # 910B/910C, Atlas A2/A3 (800T A2, 900 A3 SuperPoD)
_RING_910 = re.compile(r"910")  # the first 910 (910A, 910 Pro; Atlas 800 9000/9010, Atlas 300T)
RING_ADVICE = ("set the label ring-controller.atlas on the job and its pod templates: ascend-910b for Atlas A2 "
               "(910B) and A3 (910C) servers, ascend-910 for the first Atlas training servers (910A)")


def ring_controller(export: Export) -> str | None:
    """MindCluster's `ring-controller.atlas` value for the manifest's device.model (sources
    above): "ascend-910b" for a 910B/910C or an Atlas A2/A3 server, "ascend-910" for the first
    910; None off NPU and for an NPU model not known here (the README then says to set it)."""
    if export.device_kind != "npu":
        return None
    model = (export.extra.get("device_model") or "").lower()
    if _RING_910B.search(model):
        return "ascend-910b"
    return "ascend-910" if _RING_910.search(model) else None


def quantity(size: int) -> str:
    for unit, factor in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def config_map(export: Export, spec: dict) -> dict:
    """The ConfigMap holding prelude.py, contract.py and node.json."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{export.job}-envctl", "labels": {JOB_LABEL: export.job}},
            "data": prelude_files(spec)}


def _volume_name(prefix: str, index: int, what: str) -> str:
    name = _VOLUME.sub("-", f"{prefix}-{index}-{what}".lower()).strip("-")
    return name[:63].rstrip("-")


def volumes(export: Export) -> tuple[list[dict], list[dict]]:
    """(volumes, volumeMounts) of the pod."""
    vols = [{"name": "envctl-prelude", "configMap": {"name": f"{export.job}-envctl"}}]
    mounts = [{"name": "envctl-prelude", "mountPath": PRELUDE_DIR, "readOnly": True}]
    if export.shm_bytes:
        vols.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": quantity(export.shm_bytes)}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if export.claim:
        vols.append({"name": "envctl-data", "persistentVolumeClaim": {"claimName": export.claim}})
    for index, path in enumerate(export.host_paths):
        mount = {"mountPath": path.target, "readOnly": path.read_only}
        if path.claim:
            mount.update(name="envctl-data", subPath=path.source)
        else:
            name = _volume_name("host", index, path.what.split()[-1])
            vols.append({"name": name, "hostPath": {"path": path.source}})
            mount["name"] = name
        mounts.append(mount)
    return vols, mounts


def container(export: Export, name: str, extra_env: list[dict] = (), ports: list[dict] = ()) -> dict:
    """The pod's one container."""
    env = [{"name": key, "value": value} for key, value in export.env.items()]
    # Secrets and container.pass_env from the Secret <job>-secrets (envctl.export.passed).
    env += passed.kubernetes_env(export)
    env += list(extra_env)
    _vols, mounts = volumes(export)
    # A pulled image is pulled by digest where a node lacks it; an imported one never (envctl.export.pulled).
    policy = "IfNotPresent" if export.image.pulled is not None else "Never"
    body = {"name": name, "image": export.image.ref, "imagePullPolicy": policy,
            "command": list(export.container_command()), "env": env, "volumeMounts": mounts}
    if ports:
        body["ports"] = list(ports)
    if export.resources:
        body["resources"] = {"requests": dict(export.resources), "limits": dict(export.resources)}
    security = {}
    if export.cap_add:
        security["capabilities"] = {"add": [c.upper().removeprefix("CAP_") for c in export.cap_add]}
    if export.privileged:
        security["privileged"] = True
    if export.user and export.user.split(":")[0].isdigit():
        uid, _, gid = export.user.partition(":")
        security["runAsUser"] = int(uid)
        if gid.isdigit():
            security["runAsGroup"] = int(gid)
    if security:
        body["securityContext"] = security
    return body


def pod_spec(export: Export, the_container: dict, restart_policy: str = "Never", **extra) -> dict:
    """A PodSpec around `the_container`; `extra` adds fields (subdomain, schedulerName...)."""
    vols, _mounts = volumes(export)
    spec = {"restartPolicy": restart_policy, **extra, "containers": [the_container], "volumes": vols}
    if export.image.pulled is not None and export.extra.get("pull_secret"):
        spec["imagePullSecrets"] = [{"name": export.extra["pull_secret"]}]
    if export.host_network:
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    if export.host_ipc:
        spec["hostIPC"] = True
    if export.extra.get("host_pid"):
        spec["hostPID"] = True
    spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {JOB_LABEL: export.job}}, "topologyKey": "kubernetes.io/hostname"}]}}
    return spec


def labels(export: Export) -> dict:
    found = {JOB_LABEL: export.job}
    ring = ring_controller(export)
    if ring:
        found["ring-controller.atlas"] = ring
    return found


def template(export: Export, spec: dict) -> dict:
    return {"metadata": {"labels": labels(export)}, "spec": spec}


def ascend_visible_devices() -> dict:
    """ASCEND_VISIBLE_DEVICES from the annotation Volcano's Ascend plugin writes on the pod
    (`huawei.com/Ascend910: Ascend910-0,Ascend910-1`), as MindCluster's AscendJob and vcjob
    examples declare it (docs/en/scheduling/api/ascend_job.md)."""
    return {"name": "ASCEND_VISIBLE_DEVICES",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['huawei.com/Ascend910']"}}}


class _PlainDumper(yaml.SafeDumper):
    """Writes a template used twice (Master and Worker) out twice: no &anchors and *aliases,
    which some YAML readers refuse and every reader finds harder to read."""

    def ignore_aliases(self, data) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, data: str):
    """Multi-line text (the prelude's files, shell lines) as a literal block, which a reader can
    read; PyYAML itself falls back to quotes where a block cannot hold the text exactly."""
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_PlainDumper.add_representer(str, _text)


def dump(objects: list[dict]) -> str:
    """Objects as one multi-document YAML file, keys in the order built."""
    return "".join("---\n" + yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=120)
                   for obj in objects)


def files(export: Export, objects: list[dict]) -> dict[str, str]:
    return {f"{export.job}.yaml": dump(objects)}


def check(directory, crds):
    """Every Kubernetes format's FORMAT.check: envctl.export.check, imported only when an export
    is checked (it loads kubernetes-validate's schemas and jsonschema)."""
    from envctl.export.check import check_directory

    return check_directory(directory, crds)


def spec_for(export: Export, **where) -> dict:
    """node.json for this export (envctl.export.files.node_spec): where the rank and master are."""
    return node_spec(export, **where)
