"""`--format ascendjob`: MindCluster's `mindxdl.gitee.com/v1` AscendJob (ascend-operator).

Engine facts (mind-cluster@22bb3d98: docs/en/scheduling/api/ascend_job.md,
environment_variable_description.md Table 2, component/ascend-operator/pkg/controllers/v1/consts.go;
research §1.1, §1.7):
- replica types Master (1) and Worker (N-1); the container must be named `ascend` and its port
  `ascendjob-port` (default 2222); `schedulerName: volcano` with
  `runPolicy.schedulingPolicy.{minAvailable, queue}` (gang); `successPolicy: AllWorkers`.
- label `framework: pytorch`: the operator then sets MASTER_ADDR (the master pod's Service),
  MASTER_PORT and RANK = the pod's rank (node rank): the prelude's master and rank. Its
  WORLD_SIZE counts NPUs and LOCAL_RANK is a list ("{0,1,2,3}"): neither is used. The framework
  label is pytorch for every launcher, msrun included: the `mindspore` mode injects the dynamic
  cluster's MS_* variables for a Scheduler replica, while msrun starts its own scheduler from
  envctl's contract (research open question 4).
- `ring-controller.atlas` on job and pod; ASCEND_VISIBLE_DEVICES from the annotation.
- Device kinds: the operator schedules Ascend NPUs (huawei.com/Ascend910) only, so an MLU or CUDA
  environment is refused (exit 2) naming the formats that carry its cards. A CPU environment is
  written, because the wiring test plays the operator with it (tests/remote/test_export_wiring.py):
  its README says that such a job proves the wiring only, not that a cluster runs it.
"""

from __future__ import annotations

from envctl.errors import EXIT_USAGE, EnvctlError
from envctl.export import k8s_pod
from envctl.export.formats import Format
from envctl.export.model import Export


FITTING = ("volcano", "pytorchjob", "k8s-job")  # the Kubernetes formats for any device plugin's cards


def refuse_device_kind(export: Export) -> None:
    """AscendJob is MindCluster's operator for Ascend NPUs: another accelerator's cards in it
    would go to an operator and a scheduler plugin that do not know them. Raises EnvctlError
    (exit 2) naming the formats that fit."""
    if export.device_kind not in ("npu", "cpu"):
        raise EnvctlError(f"--format ascendjob: an AscendJob (MindCluster's ascend-operator) runs on Ascend NPUs; "
                          f"{export.manifest} is a {export.device_kind} environment",
                          hint=f"use --format {', '.join(FITTING)} (or slurm, shell for servers)", exit_code=EXIT_USAGE)


def objects(export: Export) -> list[dict]:
    refuse_device_kind(export)
    names = [f"{export.job}-master-0"] + [f"{export.job}-worker-{i}" for i in range(export.nnodes - 1)]
    spec = k8s_pod.spec_for(export, rank_from="RANK", master_from="MASTER_ADDR", names=names)
    extra_env = [k8s_pod.ascend_visible_devices()] if export.device_kind == "npu" else []
    container = k8s_pod.container(export, "ascend", extra_env, [{"name": "ascendjob-port", "containerPort": export.master_port}])
    pod = k8s_pod.template(export, k8s_pod.pod_spec(export, container))
    replica = {"restartPolicy": "Never", "template": pod}
    job = {"apiVersion": "mindxdl.gitee.com/v1", "kind": "AscendJob",
           "metadata": {"name": export.job, "labels": {**k8s_pod.labels(export), "framework": "pytorch"}},
           "spec": {"schedulerName": "volcano",
                    "runPolicy": {"schedulingPolicy": {"minAvailable": export.nnodes, "queue": "default"}},
                    "successPolicy": "AllWorkers",
                    "replicaSpecs": {"Master": {"replicas": 1, **replica},
                                     "Worker": {"replicas": export.nnodes - 1, **replica}}}}
    return [k8s_pod.config_map(export, spec), job]


def write(export: Export) -> dict[str, str]:
    return k8s_pod.files(export, objects(export))


def how_to_run(export: Export) -> list[str]:
    cpu = ["This is a CPU environment: no NPU is requested, so the job serves to prove the wiring (the operator's "
           "rank and master variables reaching envctl's prelude), not a cluster's Ascend setup; for CPU training on a "
           "cluster use --format volcano, pytorchjob or k8s-job."] if export.device_kind == "cpu" else []
    return cpu + [
        f"`kubectl apply -f {export.job}.yaml` on a cluster with MindCluster: ascend-operator (the AscendJob CRD), "
        "Volcano with ascend-volcano-plugin, ascend-device-plugin; the queue `default` must exist.",
        "Rank: RANK (the operator's pod rank for framework pytorch). Master: MASTER_ADDR (the master's Service).",
        "Add a nodeSelector `accelerator-type` (e.g. module-910b-8) for your servers.",
        "`envctl export --check DIR --crd mindxdl.gitee.com_ascendjobs.yaml` checks it offline.",
    ]


FORMAT = Format("ascendjob", "a MindCluster AscendJob (mindxdl.gitee.com/v1)", write, how_to_run, k8s_pod.check)
